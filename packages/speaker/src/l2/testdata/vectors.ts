// Reads the captured frames next to this file (see README.md).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export function vector(name: string): Buffer {
  return readFileSync(path.join(here, `${name}.bin`));
}

/** Every captured frame, by file name without `.bin`. */
export function allVectors(): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const f of readdirSync(here).sort()) {
    if (f.endsWith('.bin')) out.set(f.slice(0, -4), readFileSync(path.join(here, f)));
  }
  return out;
}
