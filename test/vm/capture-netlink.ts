// Captures the netlink test vectors of packages/speaker/src/netlink/testdata:
// ipvsadm and iproute2 talking to a real kernel (the IPVS VM), recorded with
// strace. Run as root:  node test/vm/capture-netlink.ts [--list]
// --list prints every datagram of every step instead of writing files.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseStraceDumps, type Datagram } from './strace.ts';
import { Vm } from './vm.ts';

const TESTDATA = new URL('../../packages/speaker/src/netlink/testdata/', import.meta.url).pathname;

/**
 * One command traced in the VM. `keep` names the datagrams worth keeping, by
 * index among that step's datagrams (negative counts from the end); the file
 * name says who produced the bytes (ipvsadm, iproute2, genl or the kernel).
 */
interface Step {
  name: string;
  cmd: string;
  /** Shell run before the traced command (not traced). */
  setup?: string;
  /** Whether the traced command is expected to fail. */
  fails?: boolean;
  keep: Array<[index: number, file: string]>;
}

// Addresses from the documentation ranges only (RFC 5737, RFC 3849).
const STEPS: Step[] = [
  { name: 'add-service-tcp', cmd: 'ipvsadm -A -t 203.0.113.10:80 -s rr', keep: [[0, 'ipvsadm-genl-getfamily-ipvs.bin'], [1, 'kernel-genl-family-ipvs.bin'], [2, 'kernel-ack-genl-getfamily.bin'], [6, 'ipvsadm-get-info.bin'], [7, 'kernel-ipvs-info.bin'], [-2, 'ipvsadm-add-service-tcp.bin'], [-1, 'kernel-ack-add-service-tcp.bin']] },
  { name: 'add-service-udp6-persistent', cmd: 'ipvsadm -A -u [2001:db8::10]:53 -s sh -p 300', keep: [[-2, 'ipvsadm-add-service-udp6-persistent.bin']] },
  { name: 'add-service-sctp', cmd: 'ipvsadm -A --sctp-service 203.0.113.11:9000 -s wrr', keep: [[-2, 'ipvsadm-add-service-sctp.bin']] },
  { name: 'add-service-fwmark', cmd: 'ipvsadm -A -f 42 -s wlc -p 60 -M 255.255.255.0', keep: [[-2, 'ipvsadm-add-service-fwmark.bin']] },
  { name: 'set-service-tcp', cmd: 'ipvsadm -E -t 203.0.113.10:80 -s wlc', keep: [[-2, 'ipvsadm-set-service-tcp.bin']] },
  { name: 'add-dest-masq', cmd: 'ipvsadm -a -t 203.0.113.10:80 -r 198.51.100.21:8080 -m -w 2 -x 100 -y 10', keep: [[-2, 'ipvsadm-add-dest-masq.bin']] },
  { name: 'add-dest-dr', cmd: 'ipvsadm -a -t 203.0.113.10:80 -r 198.51.100.22 -g -w 1', keep: [[-2, 'ipvsadm-add-dest-dr.bin']] },
  { name: 'add-dest-tunnel', cmd: 'ipvsadm -a -t 203.0.113.10:80 -r 198.51.100.23 -i -w 1', keep: [[-2, 'ipvsadm-add-dest-tunnel.bin']] },
  { name: 'add-dest-udp6', cmd: 'ipvsadm -a -u [2001:db8::10]:53 -r [2001:db8::21]:5353 -m -w 3', keep: [[-2, 'ipvsadm-add-dest-udp6.bin']] },
  { name: 'set-dest-masq', cmd: 'ipvsadm -e -t 203.0.113.10:80 -r 198.51.100.21:8080 -m -w 0', keep: [[-2, 'ipvsadm-set-dest-masq.bin']] },
  {
    name: 'dump',
    setup: 'ip link add vip0 type dummy && ip link set vip0 up && ip addr add 203.0.113.10/32 dev vip0 && ip addr add 198.51.100.1/24 dev vip0 && ipvsadm -e -t 203.0.113.10:80 -r 198.51.100.21:8080 -m -w 5 && (curl -s --max-time 1 http://203.0.113.10/ || true)',
    cmd: 'ipvsadm -Ln',
    keep: [[11, 'ipvsadm-dump-services.bin'], [12, 'kernel-ipvs-dump-services.bin'], [13, 'kernel-ipvs-dump-services-done.bin'], [17, 'ipvsadm-dump-dests-tcp.bin'], [18, 'kernel-ipvs-dump-dests-tcp.bin'], [29, 'kernel-ipvs-dump-dests-udp6.bin'], [34, 'ipvsadm-dump-dests-fwmark.bin']],
  },
  { name: 'del-dest', cmd: 'ipvsadm -d -t 203.0.113.10:80 -r 198.51.100.23', keep: [[-2, 'ipvsadm-del-dest.bin']] },
  { name: 'del-service', cmd: 'ipvsadm -D --sctp-service 203.0.113.11:9000', keep: [[-2, 'ipvsadm-del-service-sctp.bin']] },
  { name: 'del-service-missing', cmd: 'ipvsadm -D -t 203.0.113.99:81', fails: true, keep: [[-2, 'ipvsadm-del-service-missing.bin'], [-1, 'kernel-error-ipvs-no-such-service.bin']] },
  { name: 'genl-get-ipvs', cmd: 'genl ctrl get name IPVS', keep: [] },
  { name: 'genl-get-nlctrl', cmd: 'genl ctrl get name nlctrl', keep: [[0, 'genl-getfamily-nlctrl.bin'], [1, 'kernel-genl-family-nlctrl.bin']] },
  { name: 'link-add-dummy', cmd: 'ip link add portico0 type dummy', keep: [[1, 'kernel-error-enodev.bin'], [2, 'iproute2-link-add-dummy.bin'], [3, 'kernel-ack-link-add-dummy.bin']] },
  { name: 'link-add-exists', cmd: 'ip link add portico0 type dummy', fails: true, keep: [[3, 'kernel-error-link-exists.bin']] },
  { name: 'link-add-unknown-kind', cmd: 'ip link add portico1 type nosuchkind', fails: true, keep: [[2, 'iproute2-link-add-unknown-kind.bin'], [3, 'kernel-error-extack-unknown-kind.bin']] },
  { name: 'link-get', cmd: 'ip link show dev portico0', keep: [[2, 'iproute2-link-get.bin'], [3, 'kernel-link-portico0.bin']] },
  { name: 'link-dump', cmd: 'ip link show', keep: [[2, 'iproute2-link-dump.bin'], [3, 'kernel-link-dump.bin'], [4, 'kernel-link-dump-done.bin']] },
  { name: 'addr-add-v4', cmd: 'ip addr add 203.0.113.20/32 dev portico0', keep: [[2, 'iproute2-addr-add-v4.bin'], [3, 'kernel-ack-addr-add-v4.bin']] },
  { name: 'addr-add-v6-nodad', cmd: 'ip addr add 2001:db8::20/128 dev portico0 nodad', keep: [[2, 'iproute2-addr-add-v6-nodad.bin']] },
  { name: 'addr-dump', cmd: 'ip addr show dev portico0', keep: [[4, 'iproute2-addr-dump.bin'], [5, 'kernel-addr-dump-v4.bin'], [6, 'kernel-addr-dump-v6.bin'], [7, 'kernel-addr-dump-done.bin']] },
  { name: 'addr-del-v4', cmd: 'ip addr del 203.0.113.20/32 dev portico0', keep: [[2, 'iproute2-addr-del-v4.bin']] },
  { name: 'addr-del-v6', cmd: 'ip addr del 2001:db8::20/128 dev portico0', keep: [[2, 'iproute2-addr-del-v6.bin']] },
  { name: 'link-del', cmd: 'ip link del portico0', keep: [[4, 'iproute2-link-del.bin'], [5, 'kernel-ack-link-del.bin']] },
];

function describe(d: Datagram): string {
  const parts: string[] = [];
  let off = 0;
  while (off + 16 <= d.bytes.length) {
    const len = d.bytes.readUInt32LE(off);
    const type = d.bytes.readUInt16LE(off + 4);
    const flags = d.bytes.readUInt16LE(off + 6);
    let extra = '';
    if (type >= 16 && off + 17 < d.bytes.length && type !== 16 && type !== 20 && type !== 21 && type !== 22) extra = ` cmd=${d.bytes[off + 16]}`;
    if (type === 2) extra = ` errno=${-d.bytes.readInt32LE(off + 16)}`;
    parts.push(`len=${len} type=${type} flags=0x${flags.toString(16)}${extra}`);
    if (len < 16) break;
    off += (len + 3) & ~3;
  }
  return `${d.dir} ${d.bytes.length}B: ${parts.join(' | ')}`;
}

/**
 * iproute2 sends its whole request buffer while nlmsg_len covers only the
 * message; the kernel stops at a zero length. Keep the message, not the slack.
 */
function trimSlack(d: Datagram): Buffer {
  let off = 0;
  while (off + 16 <= d.bytes.length) {
    const len = d.bytes.readUInt32LE(off);
    if (len === 0 && d.bytes.subarray(off).every((b) => b === 0)) return d.bytes.subarray(0, off);
    if (len < 16) break;
    off += (len + 3) & ~3;
  }
  return d.bytes;
}

const list = process.argv.includes('--list');
const vm = await Vm.start({ modules: ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'ip_vs_wlc', 'dummy'] });
try {
  const script = STEPS.map((s) => [
    s.setup ? `${s.setup} > ${s.name}.setup 2>&1` : '',
    `strace -o ${s.name}.strace -e trace=sendmsg,recvmsg,sendto,recvfrom -e write=all -e read=all -xx -s 16 ${s.cmd} > ${s.name}.out 2>&1; echo $? > ${s.name}.rc`,
  ].join('\n')).join('\n');
  const versions = 'uname -r > versions.txt; ipvsadm -v >> versions.txt; ip -V >> versions.txt; strace -V | head -1 >> versions.txt';
  const r = await vm.run(versions + '\n' + script, { timeoutMs: 120_000 });
  if (r.exitCode !== 0) throw new Error(`capture script failed (${r.exitCode}): ${r.stderr}`);
  if (!list) mkdirSync(TESTDATA, { recursive: true });
  const readme: string[] = [
    '# Netlink test vectors',
    '',
    'Captured by `node test/vm/capture-netlink.ts` (run as root): each command ran under',
    '`strace -e write=all -e read=all` in the IPVS VM, and each file holds one datagram',
    'a process sent or the kernel answered. Names say who produced the bytes.',
    'Sequence numbers and port ids are whatever the run had; the tests do not depend on them.',
    '',
    '```',
    (r.files['versions.txt']?.toString() ?? '').trim(),
    '```',
    '',
    '| file | bytes | from |',
    '|---|---|---|',
  ];
  for (const s of STEPS) {
    const rc = Number(r.files[`${s.name}.rc`]?.toString().trim());
    const out = r.files[`${s.name}.out`]?.toString() ?? '';
    if ((rc !== 0) !== Boolean(s.fails)) throw new Error(`${s.name}: ${s.cmd} exited ${rc}: ${out}`);
    const grams = parseStraceDumps(r.files[`${s.name}.strace`]?.toString() ?? '');
    if (list) {
      console.log(`## ${s.name}: ${s.cmd} (exit ${rc})\n${out.trim()}`);
      grams.forEach((d, i) => console.log(`  [${i}] ${describe(d)}`));
      continue;
    }
    for (const [index, file] of s.keep) {
      const d = grams.at(index);
      if (!d) throw new Error(`${s.name}: no datagram ${index} (have ${grams.length})`);
      const bytes = d.dir === 'send' ? trimSlack(d) : d.bytes;
      writeFileSync(join(TESTDATA, file), bytes);
      readme.push(`| ${file} | ${bytes.length} | \`${s.setup ? s.setup.replace(/\|/g, '\\|') + ' && ' : ''}${s.cmd}\` (${d.dir === 'send' ? 'sent' : 'kernel reply'}) |`);
      console.log(`${file}: ${describe(d)}`);
    }
  }
  if (!list) writeFileSync(join(TESTDATA, 'README.md'), readme.join('\n') + '\n');
} finally {
  await vm.stop();
}
