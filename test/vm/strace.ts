// Reads the datagrams a process sent and received from an strace log made with
// `-e trace=sendmsg,recvmsg,sendto,recvfrom -e write=all -e read=all`: strace
// prints each call, then a hex dump of the bytes actually transferred
// (" * N bytes in buffer K" and "| 00000  30 00 ... |" lines).

export interface Datagram {
  dir: 'send' | 'recv';
  /** The syscall line as strace printed it (decoded view, for humans). */
  call: string;
  bytes: Buffer;
}

export function parseStraceDumps(log: string): Datagram[] {
  const out: Datagram[] = [];
  let cur: { dir: 'send' | 'recv'; call: string; chunks: number[]; announced: number } | null = null;
  const flush = (): void => {
    if (cur && cur.chunks.length) {
      if (cur.chunks.length !== cur.announced) throw new Error(`strace dump has ${cur.chunks.length} bytes, announced ${cur.announced}: ${cur.call}`);
      out.push({ dir: cur.dir, call: cur.call, bytes: Buffer.from(cur.chunks) });
    }
    cur = null;
  };
  for (const line of log.split('\n')) {
    const call = /^(?:\[pid\s+\d+\]\s+|\d+\s+)?(sendmsg|sendto|recvmsg|recvfrom)\(/.exec(line);
    if (call) {
      flush();
      // A peek (libnl sizes its buffer with MSG_PEEK|MSG_TRUNC) transfers nothing new.
      if (/MSG_PEEK/.test(line)) continue;
      // The return value is the byte count the dump that follows must have.
      const ret = /= (-?\d+)(?: \w+ \(.*\))?$/.exec(line);
      cur = { dir: call[1]!.startsWith('send') ? 'send' : 'recv', call: line, chunks: [], announced: ret ? Number(ret[1]) : -1 };
      continue;
    }
    const dump = /^ \| [0-9a-f]{5} {2}((?:[0-9a-f]{2} {1,2}){1,16})/.exec(line);
    if (dump && cur) {
      for (const h of dump[1]!.trim().split(/\s+/)) cur.chunks.push(parseInt(h, 16));
      continue;
    }
    if (/^ \* \d+ bytes in buffer/.test(line)) continue;
    if (line.trim() !== '') flush();
  }
  flush();
  return out;
}
