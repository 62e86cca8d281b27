import { strict as assert } from 'node:assert';
import { assertCodecError } from '../codec/check.ts';
import { MessageFramer } from './framer.ts';
import { encodeMessage, endOfRib, KEEPALIVE, buildOpen } from './message.ts';
import { bgpDetail } from './notification.ts';

const open = encodeMessage(buildOpen({ asn: 64512, holdTime: 90, bgpId: '198.51.100.1', capabilities: [{ type: 'route-refresh' }] }));
const keepalive = encodeMessage(KEEPALIVE);
const eor = encodeMessage(endOfRib(2));
const stream = Buffer.concat([open, keepalive, eor, keepalive]);

describe('bgp stream framer', () => {
  it('returns whole messages however the stream is cut', () => {
    for (const size of [1, 2, 7, 19, 20, 64, stream.length]) {
      const f = new MessageFramer();
      const got: Buffer[] = [];
      for (let off = 0; off < stream.length; off += size) got.push(...f.push(stream.subarray(off, off + size)));
      assert.deepEqual(got.map((b) => b.toString('hex')), [open, keepalive, eor, keepalive].map((b) => b.toString('hex')), `chunks of ${size}`);
      assert.equal(f.buffered, 0);
    }
  });

  it('holds a partial message until the rest arrives', () => {
    const f = new MessageFramer();
    assert.deepEqual(f.push(open.subarray(0, 25)), []);
    assert.equal(f.buffered, 25);
    assert.equal(f.push(open.subarray(25)).length, 1);
  });

  it('rejects a bad marker as soon as the header is in, and stays failed', () => {
    const f = new MessageFramer();
    const bad = Buffer.from(keepalive);
    bad[0] = 0xfe;
    const err = assertCodecError(() => f.push(bad), 'bad marker');
    assert.deepEqual([bgpDetail(err)?.code, bgpDetail(err)?.subcode], [1, 1]);
    assert.throws(() => f.push(keepalive), (e) => e === err);
  });

  it('rejects a length beyond 4096 before waiting for it', () => {
    const f = new MessageFramer();
    const hdr = Buffer.from(keepalive);
    hdr.writeUInt16BE(5000, 16);
    hdr[18] = 2;
    const err = assertCodecError(() => f.push(hdr), 'long message');
    assert.deepEqual([bgpDetail(err)?.code, bgpDetail(err)?.subcode, bgpDetail(err)?.data.toString('hex')], [1, 2, '1388']);
  });

  it('accepts longer messages when the context allows them (RFC 8654)', () => {
    const f = new MessageFramer({ fourOctetAs: true, maxLength: 65535 });
    const hdr = Buffer.alloc(19, 0xff);
    hdr.writeUInt16BE(5000, 16);
    hdr[18] = 2;
    assert.deepEqual(f.push(hdr), []);
    assert.equal(f.push(Buffer.alloc(5000 - 19)).length, 1);
  });
});
