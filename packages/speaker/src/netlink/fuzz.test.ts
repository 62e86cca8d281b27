// Mutation fuzzing seeded with every captured vector: decoding (and reading
// the result as Portico's types) either works or throws CodecError, and what
// decodes re-encodes.
import { strict as assert } from 'node:assert';
import { fuzzDecode } from '../codec/check.ts';
import { parseFamily } from './genl.ts';
import { ipvsCodec, parseIpvsInfo, parseIpvsMessage } from './ipvs.ts';
import { routeCodec, messageError, type NlMessage } from './message.ts';
import { parseAddr, parseLink } from './rtnl.ts';
import { vector, vectorNames, vectorProtocol } from './testdata.ts';
import { GENL_ID_CTRL, IPVS_CMD } from './constants.ts';

const generic = ipvsCodec(0x20);

/** Reads each message the way the speaker will, so those readers are fuzzed too. */
function readAll(msgs: NlMessage[]): NlMessage[] {
  for (const m of msgs) {
    switch (m.kind) {
      case 'link': parseLink(m); break;
      case 'addr': parseAddr(m); break;
      case 'genl':
        if (m.header.type === GENL_ID_CTRL) parseFamily(m);
        else if (m.cmd === IPVS_CMD.SET_INFO) parseIpvsInfo(m);
        else parseIpvsMessage(m, 'inet');
        break;
      case 'error': case 'done': messageError(m); break;
      case 'raw': break;
    }
  }
  return msgs;
}

describe('netlink fuzz (seeded with the kernel captures)', function () {
  this.timeout(60_000);
  for (const protocol of ['route', 'generic'] as const) {
    it(`${protocol}: decode and read throw nothing but CodecError; whatever decodes re-encodes to the same bytes`, () => {
      const codec = protocol === 'route' ? routeCodec : generic;
      const seeds = vectorNames().filter((n) => vectorProtocol(n) === protocol).map(vector);
      assert.ok(seeds.length >= 15, `${seeds.length} seeds`);
      const lossless = (b: Uint8Array): NlMessage[] => {
        const msgs = codec.decode(b);
        const again = codec.encode(msgs);
        // A plain Error (not CodecError) makes fuzzDecode fail with the input.
        if (!again.equals(b)) throw new Error(`decode -> encode is not lossless: ${again.toString('hex')}`);
        return readAll(msgs);
      };
      const r = fuzzDecode(lossless, seeds, { iterations: 15_000, seed: protocol === 'route' ? 7 : 11, encode: (v) => codec.encode(v) });
      assert.ok(r.decoded > 500 && r.rejected > 500, JSON.stringify(r));
    });
  }
});
