import { strict as assert } from 'node:assert';
import { assertCodec, assertCodecError, hex } from '../codec/check.ts';
import { CodecError } from '../codec/errors.ts';
import { attr, attrsLength, decodeAttrs, encodeAttrs } from './attr.ts';
import { NETLINK_GENERIC, NLA_F_NESTED, NLM_F, NLMSG_DONE, NLMSG_ERROR } from './constants.ts';
import { errnoName } from './errno.ts';
import { ipvsCodec } from './ipvs.ts';
import { messageError, netlinkCodec, routeCodec, type NlMessage } from './message.ts';
import { vector, vectorNames, vectorProtocol } from './testdata.ts';

/** The IPVS family id the kernel gave out in the capture run. */
const IPVS_ID = 0x20;
const generic = ipvsCodec(IPVS_ID);
const codecFor = (name: string): typeof routeCodec => (vectorProtocol(name) === 'route' ? routeCodec : generic);

describe('netlink messages', () => {
  describe('every captured vector', () => {
    it('there are vectors from ipvsadm, iproute2, genl and the kernel', () => {
      const names = vectorNames();
      for (const who of ['ipvsadm-', 'iproute2-', 'genl-', 'kernel-']) assert.ok(names.some((n) => n.startsWith(who)), who);
      assert.ok(names.length >= 40, `${names.length} vectors`);
    });
    for (const name of vectorNames()) {
      it(`${name}: decodes to known message kinds and re-encodes byte exact`, () => {
        const bytes = vector(name);
        const msgs = codecFor(name).decode(bytes);
        assert.ok(msgs.length >= 1);
        for (const m of msgs) assert.notEqual(m.kind, 'raw', `${name}: a ${m.header.type} message fell through to raw`);
        assertCodec(codecFor(name), msgs, bytes, { truncation: false });
      });
    }
  });

  it('a capped ACK (kernel-ack-add-service-tcp): error 0, the request header echoed with its full length', () => {
    const [m] = generic.decode(vector('kernel-ack-add-service-tcp')) as [NlMessage];
    assert.equal(m.kind, 'error');
    if (m.kind !== 'error') return;
    assert.equal(m.header.type, NLMSG_ERROR);
    assert.equal(m.header.flags, NLM_F.CAPPED);
    assert.equal(m.error, 0);
    assert.equal(messageError(m), null);
    const req = generic.decode(vector('ipvsadm-add-service-tcp'))[0]!;
    assert.equal(m.request.length, vector('ipvsadm-add-service-tcp').length, 'echoed nlmsg_len is the request length');
    assert.deepEqual(m.request.header, req.header, 'the ACK names the request it answers');
    assert.equal(m.request.payload.length, 0);
  });

  it('an extended ACK (kernel-error-extack-unknown-kind): EOPNOTSUPP with the kernel\'s text, request echoed', () => {
    const [m] = routeCodec.decode(vector('kernel-error-extack-unknown-kind'));
    assert.ok(m?.kind === 'error');
    assert.equal(m.header.flags, NLM_F.ACK_TLVS);
    assert.equal(m.error, -95);
    const request = vector('iproute2-link-add-unknown-kind');
    assert.equal(m.request.length, request.length);
    assert.deepEqual(m.request.payload, request.subarray(16), 'the whole request is echoed');
    const err = messageError(m, 'create link portico1');
    assert.ok(err);
    assert.equal(err.code, 'PORTICO_NETLINK_ERROR');
    assert.equal(err.errnoName, 'EOPNOTSUPP');
    assert.equal(err.errno, 95);
    assert.equal(err.kernelMessage, 'Unknown device type');
    assert.equal(err.offset, undefined);
    assert.equal(err.message, 'create link portico1 failed: EOPNOTSUPP: Unknown device type');
  });

  it('errors without extack carry just the errno name', () => {
    const cases: Array<[string, string]> = [
      ['kernel-error-link-exists', 'EEXIST'],
      ['kernel-error-enodev', 'ENODEV'],
      ['kernel-error-ipvs-no-such-service', 'ESRCH'],
    ];
    for (const [name, errno] of cases) {
      const [m] = codecFor(name).decode(vector(name));
      assert.ok(m?.kind === 'error', name);
      const err = messageError(m);
      assert.equal(err?.errnoName, errno, name);
      assert.equal(err?.kernelMessage, undefined, name);
    }
  });

  it('an error with NLMSGERR_ATTR_MSG and NLMSGERR_ATTR_OFFS (hand-written, capped)', () => {
    const bytes = hex`
      38000000   # nlmsg_len 56
      0200       # NLMSG_ERROR
      0003       # NLM_F_CAPPED | NLM_F_ACK_TLVS
      07000000   # seq 7
      00000000   # pid 0 (the kernel)
      eaffffff   # error -22 (EINVAL)
      40000000 1000 0506 07000000 00000000   # echoed header: len 64, RTM_NEWLINK, REQUEST|ACK|EXCL|CREATE, seq 7
      0c00 0100 62616420 6d747500            # NLMSGERR_ATTR_MSG "bad mtu\0" (len 12)
      0800 0200 24000000                     # NLMSGERR_ATTR_OFFS 36
    `;
    const value: NlMessage[] = [{
      kind: 'error',
      header: { type: NLMSG_ERROR, flags: NLM_F.CAPPED | NLM_F.ACK_TLVS, seq: 7, pid: 0 },
      error: -22,
      request: { length: 64, header: { type: 16, flags: 0x605, seq: 7, pid: 0 }, payload: Buffer.alloc(0) },
      extack: [attr.str(1, 'bad mtu'), attr.u32(2, 36)],
    }];
    assertCodec(routeCodec, value, bytes);
    const err = messageError(value[0] as Extract<NlMessage, { kind: 'error' }>);
    assert.equal(err?.errnoName, 'EINVAL');
    assert.equal(err?.kernelMessage, 'bad mtu');
    assert.equal(err?.offset, 36);
  });

  it('NLMSG_DONE ends a dump (kernel-link-dump-done) and may carry an error', () => {
    const [done] = routeCodec.decode(vector('kernel-link-dump-done'));
    assert.deepEqual(done, { kind: 'done', header: { ...done!.header, type: NLMSG_DONE }, error: 0, extack: [] });
    assert.equal(done.header.flags & NLM_F.MULTI, NLM_F.MULTI);
    const failed = hex`
      14000000 0300 0200 09000000 01020304   # DONE, NLM_F_MULTI, seq 9, pid 0x04030201
      f0ffffff                               # error -16 (EBUSY): the dump was interrupted
    `;
    const [m] = routeCodec.decode(failed);
    assert.ok(m?.kind === 'done');
    assert.equal(messageError(m)?.errnoName, 'EBUSY');
    assertCodec(routeCodec, [m], failed);
  });

  it('a multipart dump holds several NLM_F_MULTI messages in one datagram (kernel-ipvs-dump-services)', () => {
    const msgs = generic.decode(vector('kernel-ipvs-dump-services'));
    assert.equal(msgs.length, 4);
    for (const m of msgs) {
      assert.equal(m.header.flags & NLM_F.MULTI, NLM_F.MULTI);
      assert.equal(m.header.type, IPVS_ID);
    }
    const seqs = new Set(msgs.map((m) => m.header.seq));
    assert.equal(seqs.size, 1, 'one dump, one sequence number');
    const req = generic.decode(vector('ipvsadm-dump-services'))[0]!;
    assert.equal(req.header.flags, NLM_F.REQUEST | NLM_F.ACK | NLM_F.DUMP);
    assert.equal(msgs[0]!.header.seq, req.header.seq, 'the dump answers the request');
  });

  it('a generic netlink message, hand-written: header, genl header, nested attribute with NLA_F_NESTED', () => {
    const codec = netlinkCodec({ protocol: NETLINK_GENERIC });
    const bytes = hex`
      28000000   # nlmsg_len 40
      2000       # type 0x20 (a family id)
      0500       # NLM_F_REQUEST | NLM_F_ACK
      01000000   # seq 1
      00000000   # pid 0
      01 01 0000 # cmd 1, version 1, reserved
      1400 0180  # attr 1, NLA_F_NESTED, len 20
        0600 0100 0200 0000   # attr 1: u16 2 (+2 padding)
        0600 0400 0050 0000   # attr 4: be16 80 (+2 padding)
    `;
    const value: NlMessage[] = [{
      kind: 'genl', header: { type: 0x20, flags: 5, seq: 1, pid: 0 }, cmd: 1, version: 1, reserved: 0,
      attrs: [{ type: 1, flags: NLA_F_NESTED, attrs: [attr.u16(1, 2), attr.be16(4, 80)] }],
    }];
    assertCodec(codec, value, bytes);
  });

  it('bad input is a CodecError, never a RangeError', () => {
    const bad: Array<[string, Buffer]> = [
      ['empty', Buffer.alloc(0)],
      ['nlmsg_len below the header', hex`0f000000 1000 0000 00000000 00000000`],
      ['nlmsg_len past the end', hex`20000000 1000 0000 00000000 00000000`],
      ['non-zero padding after a message', hex`12000000 1000 0000 00000000 00000000 0000 0100`],
      ['attribute longer than its message', hex`18000000 2000 0000 00000000 00000000 01010000 0900 0100`],
      ['attribute shorter than its header', hex`18000000 2000 0000 00000000 00000000 01010000 0200 0100`],
      ['non-zero attribute padding', hex`1c000000 2000 0000 00000000 00000000 01010000 0500 0100 01020000`],
      ['error echo longer than the message', hex`24000000 0200 0000 00000000 00000000 eaffffff 40000000 1000 0000 00000000 00000000`],
      ['DONE without its int', hex`10000000 0300 0200 00000000 00000000`],
    ];
    for (const [what, b] of bad) {
      const e = assertCodecError(() => netlinkCodec({ protocol: NETLINK_GENERIC }).decode(b), what);
      assert.ok(e instanceof CodecError);
    }
  });
});

describe('netlink attributes', () => {
  it('keep order, flags and unknown types; nested ones decode where NLA_F_NESTED or the schema says', () => {
    const attrs = [attr.u32(7, 1), attr.nest(2, [attr.str(1, 'x')], false), attr.nest(3, [attr.u8(9, 4)]), attr.bytes(0x3fff, Buffer.from([1, 2, 3]))];
    const b = Buffer.alloc(attrsLength(attrs));
    assert.equal(encodeAttrs(attrs, b, 0), b.length);
    assert.deepEqual(decodeAttrs(b, 0, b.length, { 2: {} }), attrs);
    // Without the schema, the unflagged nest stays bytes; the flagged one still decodes.
    const plain = decodeAttrs(b, 0, b.length);
    assert.ok('data' in plain[1]!);
    assert.ok('attrs' in plain[2]!);
  });
});

describe('errno names', () => {
  it('maps Linux errno numbers, either sign', () => {
    assert.equal(errnoName(-17), 'EEXIST');
    assert.equal(errnoName(95), 'EOPNOTSUPP');
    assert.equal(errnoName(-3), 'ESRCH');
    assert.equal(errnoName(11), 'EAGAIN');
    assert.equal(errnoName(-4095), 'E4095');
  });
});
