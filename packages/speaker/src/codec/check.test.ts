import { strict as assert } from 'node:assert';
import { hex, assertCodec, fuzzDecode } from './check.ts';
import { CodecError, need, type Codec } from './errors.ts';

// A toy length-prefixed string codec: enough to prove the helpers catch mistakes.
const lp: Codec<string> = {
  decode(buf) {
    need(buf, 0, 1, 'length');
    const n = buf[0]!;
    need(buf, 1, n, 'text');
    if (buf.length !== 1 + n) throw new CodecError('PORTICO_CODEC_INVALID', 'trailing bytes', 1 + n);
    return Buffer.from(buf.subarray(1, 1 + n)).toString('latin1');
  },
  encode(v) { const b = Buffer.alloc(this.encodedLength(v)); this.encodeInto(v, b, 0); return b; },
  encodedLength(v) { return 1 + v.length; },
  encodeInto(v, buf, off) { buf[off] = v.length; buf.write(v, off + 1, 'latin1'); return 1 + v.length; },
};

describe('codec test helpers', () => {
  it('hex parses commented, one-field-per-line bytes', () => {
    assert.equal(hex`02    # length
                     6869  # "hi"`.toString('hex'), '026869');
  });
  it('assertCodec passes a correct codec and fails a wrong expectation', () => {
    assertCodec(lp, 'hi', hex`02 6869`);
    assert.throws(() => assertCodec(lp, 'ho', hex`02 6869`));
  });
  it('assertCodec with truncation: N checks only cuts inside the fixed part', () => {
    const prefixOk: Codec<string> = { ...lp, decode(buf) { need(buf, 0, 1, 'length'); return Buffer.from(buf.subarray(1)).toString('latin1'); } };
    assert.throws(() => assertCodec(prefixOk, 'hi', hex`02 6869`), /decoded without error/);
    assertCodec(prefixOk, 'hi', hex`02 6869`, { truncation: 1 });
  });
  it('assertCodec catches an encodeInto that writes past its length', () => {
    const sloppy: Codec<string> = { ...lp, encodeInto(v, buf, off) { lp.encodeInto(v, buf, off); buf[off + 1 + v.length] = 0; return 1 + v.length; } };
    assert.throws(() => assertCodec(sloppy, 'hi', hex`02 6869`), /past its length/);
  });
  it('fuzzDecode reports a decoder that throws something other than CodecError', () => {
    const careless = (buf: Uint8Array): number => { if (buf.length < 2) throw new RangeError('oops'); return buf[1]!; };
    assert.throws(() => fuzzDecode(careless, [Buffer.from([1, 2, 3])], { iterations: 500 }), /not a CodecError/);
    const r = fuzzDecode((b) => lp.decode(b), [hex`02 6869`, hex`00`], { iterations: 2000, encode: (v) => lp.encode(v) });
    assert.ok(r.decoded > 0 && r.rejected > 0, JSON.stringify(r));
  });
});
