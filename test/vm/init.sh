#!/bin/sh
# Portico's VM init: load virtio/9p, mount the host's root read-only with
# writable scratch places, mount the results share, then chroot into the host
# and run the script named by portico.script; power off whatever happens.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
die() { echo "portico-vm: fatal: $*"; sync; poweroff -f; }
arg() { for w in $(cat /proc/cmdline); do case "$w" in "portico.$1="*) echo "${w#*=}"; return;; esac; done; }
OUT=$(arg out); SCRIPT=$(arg script); MODROOT=$(arg modroot); PRELOAD=$(arg modules)
for m in $(cat /modules/order); do insmod "/modules/$m" || die "insmod $m"; done
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host || die "mount host root"
# The host's /tmp is set aside before a tmpfs covers it, so a checkout that
# lives under /tmp (a CI clone) can be bound back at its own path below.
mkdir -p /hosttmp && mount -o bind /host/tmp /hosttmp || die "bind /host/tmp"
for d in run var/tmp tmp dev/shm; do mount -t tmpfs -o mode=1777 tmpfs "/host/$d" || die "tmpfs /host/$d"; done
for k in $(arg keep | tr ',' ' '); do
  case "$k" in /tmp/?*) mkdir -p "/host$k" && mount -o bind "/hosttmp/${k#/tmp/}" "/host$k" || die "bind $k";; esac
done
mount -t proc proc /host/proc || die "proc"
mount -t sysfs sysfs /host/sys || die "sysfs"
mount -t devtmpfs devtmpfs /host/dev || die "devtmpfs"
mkdir -p /host/dev/pts /host/dev/shm && mount -t devpts devpts /host/dev/pts
mkdir -p "/host$OUT" || die "mkdir $OUT"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out "/host$OUT" || die "mount out share"
hostname portico-vm
chroot /host /bin/sh -c 'ip link set lo up' || echo "portico-vm: lo not up"
# The kernel asks its modprobe helper (run in the initramfs's root) for modules
# it needs (a scheduler, a link kind): answer from the unpacked kernel package.
printf '#!/bin/sh\nexec /bin/chroot /host /sbin/modprobe -d %s "$@"\n' "$MODROOT" > /bin/portico-modprobe
chmod 755 /bin/portico-modprobe
echo /bin/portico-modprobe > /proc/sys/kernel/modprobe
for m in $(echo "$PRELOAD" | tr , ' '); do /bin/portico-modprobe "$m" || die "modprobe $m"; done
echo "portico-vm: running $SCRIPT"
chroot /host /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb \
  PORTICO_VM=1 PORTICO_VM_OUT="$OUT" PORTICO_VM_MODROOT="$MODROOT" /bin/sh "$SCRIPT" "$OUT"
echo "portico-vm: script exited $?"
sync
poweroff -f
