// Test helpers shared by every codec test: one check of round trip, byte-exact
// re-encode, length and encoding at an offset; expected bytes written as
// commented hex; and a mutation fuzzer that accepts only CodecError.
import { strict as assert } from 'node:assert';
import { CodecError, type Codec } from './errors.ts';

/**
 * Hex bytes with one field per line and `#` comments:
 *   hex`0001   # hardware type: Ethernet
 *        0800   # protocol type: IPv4`
 */
export function hex(strings: TemplateStringsArray, ...values: unknown[]): Buffer {
  const text = strings.reduce((acc, s, i) => acc + s + (i < values.length ? String(values[i]) : ''), '');
  const digits = text
    .split('\n')
    .map((line) => line.replace(/#.*$/, ''))
    .join('')
    .replace(/[\s:_]/g, '');
  assert.match(digits, /^([0-9a-fA-F]{2})*$/, `hex: odd or invalid digits in ${JSON.stringify(digits)}`);
  return Buffer.from(digits, 'hex');
}

/**
 * Asserts that `bytes` decodes to `value`, that `value` encodes back to exactly
 * `bytes`, that encodedLength agrees, that encoding at an offset leaves the
 * surrounding bytes alone, and that every truncation is a CodecError.
 * For a message whose tail is variable (options, a payload) a shorter prefix can
 * itself be valid: pass `truncation: N` to check only cuts below its fixed N bytes.
 */
export function assertCodec<T>(codec: Codec<T>, value: T, bytes: Uint8Array, opts: { truncation?: boolean | number } = {}): void {
  const decoded = codec.decode(bytes);
  assert.deepStrictEqual(decoded, value, 'decode(bytes) differs from the expected value');
  const encoded = codec.encode(value);
  assert.equal(encoded.toString('hex'), Buffer.from(bytes).toString('hex'), 'encode(value) differs from the expected bytes');
  assert.equal(codec.encodedLength(value), bytes.length, 'encodedLength(value) differs from the byte count');
  assert.equal(codec.encode(codec.decode(encoded)).toString('hex'), encoded.toString('hex'), 're-encode is not byte exact');

  const pad = 7;
  const big = Buffer.alloc(bytes.length + 2 * pad, 0xa5);
  const written = codec.encodeInto(value, big, pad);
  assert.equal(written, bytes.length, 'encodeInto returned a different length');
  assert.equal(big.subarray(pad, pad + bytes.length).toString('hex'), Buffer.from(bytes).toString('hex'), 'encodeInto at an offset wrote different bytes');
  assert.ok(big.subarray(0, pad).every((b) => b === 0xa5), 'encodeInto wrote before its offset');
  assert.ok(big.subarray(pad + bytes.length).every((b) => b === 0xa5), 'encodeInto wrote past its length');

  if (opts.truncation !== false) {
    const upTo = typeof opts.truncation === 'number' ? Math.min(opts.truncation, bytes.length) : bytes.length;
    for (let n = 0; n < upTo; n++) {
      assertCodecError(() => codec.decode(bytes.subarray(0, n)), `decode of the first ${n} of ${bytes.length} bytes`);
    }
  }
}

/** Asserts that fn throws a CodecError (and nothing else). */
export function assertCodecError(fn: () => unknown, what: string): CodecError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CodecError, `${what}: threw ${String(err)} instead of a CodecError`);
    return err;
  }
  assert.fail(`${what}: decoded without error`);
}

/** A small deterministic PRNG (xorshift32) so fuzz runs are reproducible. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

/**
 * Mutation fuzzing from seed inputs: bit flips, byte overwrites, truncation,
 * extension and splices. Decoding must either succeed or throw CodecError; a
 * successful decode must re-encode without throwing. Returns how many inputs
 * decoded and how many were rejected, so a test can assert both happened.
 */
export function fuzzDecode<T>(
  decode: (buf: Uint8Array) => T,
  seeds: readonly Uint8Array[],
  opts: { iterations?: number; seed?: number; encode?: (value: T) => Uint8Array } = {},
): { decoded: number; rejected: number } {
  assert.ok(seeds.length > 0, 'fuzzDecode needs at least one seed');
  const rand = prng(opts.seed ?? 1);
  const pick = (n: number): number => Math.floor(rand() * n);
  let decoded = 0;
  let rejected = 0;
  const iterations = opts.iterations ?? 20_000;
  for (let i = 0; i < iterations; i++) {
    const base = seeds[pick(seeds.length)]!;
    let buf = Buffer.from(base);
    const mutations = 1 + pick(4);
    for (let m = 0; m < mutations; m++) {
      switch (pick(5)) {
        case 0: if (buf.length) { const at = pick(buf.length); buf[at] = buf[at]! ^ (1 << pick(8)); } break;
        case 1: if (buf.length) buf[pick(buf.length)] = pick(256); break;
        case 2: buf = buf.subarray(0, pick(buf.length + 1)); break;
        case 3: buf = Buffer.concat([buf, Buffer.from(Array.from({ length: 1 + pick(16) }, () => pick(256)))]); break;
        default: { const other = seeds[pick(seeds.length)]!; const at = pick(buf.length + 1); buf = Buffer.concat([buf.subarray(0, at), other.subarray(pick(other.length + 1))]); }
      }
    }
    let value: T;
    try {
      value = decode(buf);
    } catch (err) {
      if (!(err instanceof CodecError)) {
        throw new Error(`fuzz input ${buf.toString('hex')} threw ${String(err)} (not a CodecError)`, { cause: err });
      }
      rejected++;
      continue;
    }
    decoded++;
    if (opts.encode) {
      try {
        opts.encode(value);
      } catch (err) {
        throw new Error(`fuzz input ${buf.toString('hex')} decoded but did not re-encode: ${String(err)}`, { cause: err });
      }
    }
  }
  return { decoded, rejected };
}
