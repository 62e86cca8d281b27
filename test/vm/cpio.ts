// Writes a cpio archive in the "newc" format the kernel unpacks as an initramfs.
// Ours rather than cpio(1) so the archive can hold /dev/console without mknod
// (no root needed to build it) and is byte-for-byte reproducible.
//
// Each entry: the ASCII magic "070701", then 13 fields of 8 hex digits (ino,
// mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
// rdevminor, namesize, check), the name with its NUL, padding to 4 bytes, the
// data, padding to 4 bytes. The archive ends with an entry named TRAILER!!!.

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Uint8Array; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function header(fields: number[], name: string): Buffer {
  const nameBytes = Buffer.from(name + '\0', 'utf8');
  const head = '070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join('');
  const raw = Buffer.concat([Buffer.from(head, 'ascii'), nameBytes]);
  return Buffer.concat([raw, Buffer.alloc(pad4(raw.length))]);
}

/** Builds a newc cpio archive; paths are relative to the archive root ("init", "bin/sh"). */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of [...entries, { kind: 'file' as const, path: 'TRAILER!!!', data: new Uint8Array(0), mode: 0 }]) {
    let mode: number;
    let data: Uint8Array = new Uint8Array(0);
    let rmaj = 0;
    let rmin = 0;
    switch (e.kind) {
      case 'dir': mode = S_IFDIR | (e.mode ?? 0o755); break;
      case 'file': mode = e.path === 'TRAILER!!!' ? 0 : S_IFREG | (e.mode ?? 0o644); data = e.data; break;
      case 'symlink': mode = S_IFLNK | 0o777; data = Buffer.from(e.target, 'utf8'); break;
      case 'chardev': mode = S_IFCHR | (e.mode ?? 0o600); rmaj = e.major; rmin = e.minor; break;
    }
    const isTrailer = e.path === 'TRAILER!!!';
    const nlink = e.kind === 'dir' ? 2 : 1;
    parts.push(header([isTrailer ? 0 : ino++, mode, 0, 0, isTrailer ? 1 : nlink, 0, data.length, 0, 0, rmaj, rmin, Buffer.byteLength(e.path, 'utf8') + 1, 0], e.path));
    parts.push(Buffer.from(data), Buffer.alloc(pad4(data.length)));
  }
  return Buffer.concat(parts);
}
