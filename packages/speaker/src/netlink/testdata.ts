// Test vectors captured from the kernel (see testdata/README.md), for the tests.
import { readdirSync, readFileSync } from 'node:fs';

const DIR = new URL('./testdata/', import.meta.url);

/** The bytes of testdata/NAME.bin. */
export function vector(name: string): Buffer {
  return readFileSync(new URL(`${name}.bin`, DIR));
}

/** Every vector's name (without .bin). */
export function vectorNames(): string[] {
  return readdirSync(DIR).filter((f) => f.endsWith('.bin')).map((f) => f.slice(0, -4)).sort();
}

/** Which protocol a vector speaks, from who produced it. */
export function vectorProtocol(name: string): 'route' | 'generic' {
  return /^(iproute2-|kernel-(link|addr)-|kernel-ack-(link|addr)-|kernel-error-(enodev|link-|extack-))/.test(name) ? 'route' : 'generic';
}
