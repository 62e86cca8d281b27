// Every layer-2 decoder, fuzzed from the kernel-captured frames: decoding
// either succeeds and re-encodes, or throws a CodecError; nothing else.
import { strict as assert } from 'node:assert';
import { fuzzDecode } from '../codec/check.ts';
import { arp } from './arp.ts';
import { ethernet } from './ethernet.ts';
import { icmpv6 } from './icmpv6.ts';
import { ipv6 } from './ipv6.ts';
import { ndp } from './ndp.ts';
import { allVectors } from './testdata/vectors.ts';

const frames = [...allVectors().values()];
const payloads = frames.map((f) => f.subarray(14));
const arps = payloads.filter((_, i) => frames[i]!.readUInt16BE(12) === 0x0806);
const ip6 = payloads.filter((_, i) => frames[i]!.readUInt16BE(12) === 0x86dd);
const icmp = ip6.map((p) => ipv6.decode(p)).filter((p) => p.nextHeader === 58).map((p) => p.payload);
const nd = icmp.filter((m) => m[0] === 135 || m[0] === 136);

describe('layer-2 codec fuzzing (seeded with captured vectors)', () => {
  const cases = [
    { name: 'ethernet', decode: (b: Uint8Array) => ethernet.decode(b), encode: (v: ReturnType<typeof ethernet.decode>) => ethernet.encode(v), seeds: frames },
    { name: 'arp', decode: (b: Uint8Array) => arp.decode(b), encode: (v: ReturnType<typeof arp.decode>) => arp.encode(v), seeds: arps },
    { name: 'ipv6', decode: (b: Uint8Array) => ipv6.decode(b), encode: (v: ReturnType<typeof ipv6.decode>) => ipv6.encode(v), seeds: ip6 },
    { name: 'icmpv6', decode: (b: Uint8Array) => icmpv6.decode(b), encode: (v: ReturnType<typeof icmpv6.decode>) => icmpv6.encode(v), seeds: icmp },
    { name: 'ndp', decode: (b: Uint8Array) => ndp.decode(b), encode: (v: ReturnType<typeof ndp.decode>) => ndp.encode(v), seeds: nd },
  ] as const;
  for (const c of cases) {
    it(`${c.name}: ${c.seeds.length} seeds, only CodecErrors, decoded values re-encode`, () => {
      assert.ok(c.seeds.length >= 2, 'enough seeds');
      const r = fuzzDecode(c.decode as (b: Uint8Array) => unknown, c.seeds, { iterations: 10_000, seed: 11, encode: c.encode as (v: unknown) => Uint8Array });
      assert.ok(r.decoded > 0, `some inputs decoded: ${JSON.stringify(r)}`);
      if (c.name !== 'icmpv6') assert.ok(r.rejected > 0, `some inputs rejected: ${JSON.stringify(r)}`);
    });
  }
});
