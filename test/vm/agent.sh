#!/bin/sh
# Portico's VM agent: runs the jobs the host queues, one at a time; exits on
# "stop" or when the host's heartbeat stalls (the host died), and the VM's
# init then powers off. Only shell builtins in the loop, so idling is cheap.
out=$1
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
echo up > "$out/ready.tmp" && mv "$out/ready.tmp" "$out/ready"
last=; same=0
while :; do
  for t in "$out"/queue/*; do
    [ -e "$t" ] || continue
    id=${t##*/}
    rm -f "$t"
    j=$out/jobs/$id
    mkdir -p "$j/files"
    read secs < "$j/timeout"
    (cd "$j/files" && PORTICO_OUT="$j/files" PORTICO_IN="$j/in" exec timeout -k 5 "$secs" /bin/sh "$j/script.sh" </dev/null >"$j/stdout" 2>"$j/stderr")
    echo $? > "$j/rc.tmp"; mv "$j/rc.tmp" "$j/rc"
    same=0
  done
  [ -e "$out/stop" ] && exit 0
  read beat < "$out/heartbeat" || beat=
  if [ "$beat" = "$last" ]; then same=$((same + 1)); else same=0; last=$beat; fi
  # 20 polls a second: 600 polls without a new heartbeat is about 30 s.
  if [ $same -gt 600 ]; then echo "portico-vm: host heartbeat stalled, powering off"; exit 1; fi
  sleep 0.05
done
