// Opt-in externalIPs: the decision per address (a table that asserts the
// reason), and the allocator's reservations as scenario tables where order
// matters: a reserved address is never allocated, a freed one is again.
import { strict as assert } from 'node:assert';
import { formatIP, parseIP, parseRange, type IP, type Pool } from '@portico/shared';
import { Allocator, type ServiceRequest } from './allocator.ts';
import { judgeExternalIPs, parseRecorded, type ExternalIPReason, type Holder } from './external-ips.ts';

const pool = (name: string, addresses: string[], opts: Partial<Pool> = {}): Pool => ({
  name, source: 'crd', ranges: addresses.map(parseRange), autoAssign: true, avoidBuggyIPs: false, allowExternalIPs: false,
  priority: undefined, namespaces: [], namespaceSelectors: [], serviceSelectors: [], labels: {}, ...opts,
});

const POOLS = [
  pool('lb', ['203.0.113.0/28']),
  pool('ext', ['203.0.113.16/28', '2001:db8:e::/64'], { allowExternalIPs: true }),
  pool('ext-team', ['203.0.113.32/28'], { allowExternalIPs: true, namespaces: ['team'] }),
  pool('ext-labelled', ['203.0.113.48/28'], { allowExternalIPs: true, namespaceSelectors: [{ matchLabels: { tier: 'edge' } }], serviceSelectors: [{ matchLabels: { expose: 'yes' } }] }),
  pool('ext-buggy', ['203.0.113.64/26'], { allowExternalIPs: true, avoidBuggyIPs: true }),
];

describe('externalIPs: the decision per address', function () {
  const holders = new Map<string, Holder>([
    ['203.0.113.20', { kind: 'load-balancer', services: ['shop/lb'] }],
    ['203.0.113.21', { kind: 'external-ip', services: ['shop/other'] }],
    ['203.0.113.22', { kind: 'external-ip', services: ['shop/web'] }],
  ]);
  const holderOf = (ip: IP): Holder | undefined => holders.get(formatIP(ip));
  type Case = [what: string, ns: string, labels: Record<string, string>, nsLabels: Record<string, string>, ip: string, want: ExternalIPReason, pool?: string];
  const cases: Case[] = [
    ['inside an allowing pool that admits everyone', 'shop', {}, {}, '203.0.113.17', 'accepted', 'ext'],
    ['IPv6 inside an allowing pool, written long', 'shop', {}, {}, '2001:0db8:000e::0010', 'accepted', 'ext'],
    ['inside a pool without allowExternalIPs', 'shop', {}, {}, '203.0.113.3', 'no-pool-allows', 'lb'],
    ['outside every pool', 'shop', {}, {}, '198.51.100.7', 'no-pool-allows'],
    ['in a namespace-restricted pool, from that namespace', 'team', {}, {}, '203.0.113.33', 'accepted', 'ext-team'],
    ['in a namespace-restricted pool, from another namespace', 'shop', {}, {}, '203.0.113.33', 'namespace-not-admitted', 'ext-team'],
    ['namespace and Service selectors both match', 'edge', { expose: 'yes' }, { tier: 'edge' }, '203.0.113.49', 'accepted', 'ext-labelled'],
    ['namespace selector matches, Service selector does not', 'edge', {}, { tier: 'edge' }, '203.0.113.49', 'namespace-not-admitted', 'ext-labelled'],
    ['Service selector matches, namespace selector does not', 'shop', { expose: 'yes' }, {}, '203.0.113.49', 'namespace-not-admitted', 'ext-labelled'],
    ['the LoadBalancer IP of a Service', 'shop', {}, {}, '203.0.113.20', 'in-use', 'ext'],
    ['an accepted externalIP of another Service', 'shop', {}, {}, '203.0.113.21', 'in-use', 'ext'],
    ['already this Service\'s accepted externalIP', 'shop', {}, {}, '203.0.113.22', 'accepted', 'ext'],
    ['a .0 address in a pool that avoids buggy IPs (the user chose it)', 'shop', {}, {}, '203.0.113.64', 'accepted', 'ext-buggy'],
    ['not an address', 'shop', {}, {}, '203.0.113.300', 'invalid'],
    ['a CIDR instead of an address', 'shop', {}, {}, '203.0.113.16/28', 'invalid'],
  ];
  for (const [what, ns, labels, nsLabels, ip, want, wantPool] of cases) {
    it(`${what}: ${want}`, function () {
      const [d, ...rest] = judgeExternalIPs({ key: `${ns}/web`, namespace: ns, labels, namespaceLabels: nsLabels }, [ip], POOLS, holderOf);
      assert.equal(rest.length, 0);
      assert.equal(d!.reason, want, d!.message);
      assert.equal(d!.pool, wantPool);
    });
  }

  it('keeps spec order, canonicalises, counts a duplicate once and explains each refusal', function () {
    const ds = judgeExternalIPs({ key: 'shop/web', namespace: 'shop', labels: {}, namespaceLabels: {} },
      ['203.0.113.18', '2001:db8:e:0::1', '203.0.113.3', '203.0.113.018', '2001:db8:e::1', 'junk', 'junk'], POOLS, holderOf);
    assert.deepEqual(ds.map((d) => [d.ip, d.reason]), [
      ['203.0.113.18', 'accepted'], ['2001:db8:e::1', 'accepted'], ['203.0.113.3', 'no-pool-allows'], ['203.0.113.018', 'invalid'], ['junk', 'invalid'],
    ]);
    assert.match(ds[2]!.message, /pool "lb", which does not set allowExternalIPs: true/);
    const inUse = judgeExternalIPs({ key: 'shop/web', namespace: 'shop', labels: {}, namespaceLabels: {} }, ['203.0.113.20', '203.0.113.21'], POOLS, holderOf);
    assert.deepEqual(inUse.map((d) => d.message), ['203.0.113.20 is the LoadBalancer IP of shop/lb', '203.0.113.21 is already an accepted externalIP of shop/other']);
  });

  it('reads the annotation it writes and skips junk in it', function () {
    assert.deepEqual(parseRecorded('203.0.113.17, 2001:db8:e::1,,nonsense').map(formatIP), ['203.0.113.17', '2001:db8:e::1']);
    assert.deepEqual(parseRecorded(undefined), []);
  });
});

describe('externalIPs: reservations in the allocator', function () {
  const req = (key: string, over: Partial<ServiceRequest> = {}): ServiceRequest => ({
    key, namespace: key.split('/')[0]!, labels: {}, namespaceLabels: {}, families: ['IPv4'], policy: 'SingleStack', requestedIPs: [],
    pool: undefined, sharingKey: undefined, backendKey: '', ports: ['TCP/80'], ...over,
  });
  const ips = (...s: string[]): IP[] => s.map(parseIP);
  const fmt = (r: ReturnType<Allocator['allocate']>): string => (r.ok ? r.ips.map(formatIP).join(',') : r.code);
  const autoExt = [pool('ext', ['203.0.113.16/30'], { allowExternalIPs: true })];

  type Step =
    | { reserve: string; ips: string[]; got: string[]; freed?: boolean; why: string }
    | { allocate: string; request?: string; got: string; why: string }
    | { release: string; why: string }
    | { releaseExternal: string; why: string }
    | { setPools: Pool[]; why: string }
    | { check: (a: Allocator) => void; why: string };
  const scenarios: { name: string; pools: Pool[]; steps: Step[] }[] = [
    {
      name: 'a reserved address is never handed out', pools: autoExt, steps: [
        { reserve: 'a/x', ips: ['203.0.113.16', '203.0.113.18'], got: ['203.0.113.16', '203.0.113.18'], why: 'x accepts two externalIPs' },
        { allocate: 'a/lb1', got: '203.0.113.17', why: 'first free skips .16' },
        { allocate: 'a/lb2', got: '203.0.113.19', why: 'then skips .18' },
        { allocate: 'a/lb3', got: 'PORTICO_POOL_EXHAUSTED', why: 'the pool is full with two reserved' },
        { allocate: 'a/lb4', request: '203.0.113.16', got: 'PORTICO_IP_IN_USE', why: 'asking for a reserved address does not take it' },
        { check: (a) => assert.deepEqual(a.usage('ext')!.IPv4, { total: 4n, available: 0n, assigned: 4n }), why: 'reservations count as assigned' },
        { reserve: 'a/x', ips: ['203.0.113.18'], got: ['203.0.113.18'], freed: true, why: 'x drops .16' },
        { allocate: 'a/lb3', got: '203.0.113.16', why: 'the dropped address is free again' },
        { releaseExternal: 'a/x', why: 'x is deleted' },
        { allocate: 'a/lb5', got: '203.0.113.18', why: 'and so is the last one' },
      ],
    },
    {
      name: 'an allocated or reserved address is not reserved again', pools: autoExt, steps: [
        { allocate: 'a/lb', got: '203.0.113.16', why: 'lb takes the first' },
        { reserve: 'a/x', ips: ['203.0.113.16', '203.0.113.17'], got: ['203.0.113.17'], why: 'x cannot have lb\'s address' },
        { reserve: 'a/y', ips: ['203.0.113.17'], got: [], why: 'nor y x\'s' },
        { check: (a) => assert.deepEqual(a.holderOf(parseIP('203.0.113.17')), { kind: 'external-ip', services: ['a/x'] }), why: 'holder' },
        { release: 'a/lb', why: 'lb goes' },
        { reserve: 'a/y', ips: ['203.0.113.16'], got: ['203.0.113.16'], why: 'y can have it now' },
      ],
    },
    {
      name: 'reservations follow a pool change and leave with their pool', pools: autoExt, steps: [
        { reserve: 'a/x', ips: ['203.0.113.17'], got: ['203.0.113.17'], why: 'x reserves .17' },
        { setPools: [pool('ext', ['203.0.113.16/29'], { allowExternalIPs: true })], why: 'the pool grows' },
        { allocate: 'a/lb1', got: '203.0.113.16', why: 'first' },
        { allocate: 'a/lb2', got: '203.0.113.18', why: 'still skips .17' },
        { release: 'a/lb1', why: 'lb1 goes' },
        { release: 'a/lb2', why: 'lb2 goes' },
        { setPools: [pool('other', ['203.0.113.0/28'])], why: 'the pool goes away (only a reservation in it: not a stranded allocation)' },
        { check: (a) => assert.deepEqual(a.externalIPs('a/x').map(formatIP), ['203.0.113.17']), why: 'kept until x is reconciled' },
        { releaseExternal: 'a/x', why: 'x reconciled: nothing accepted' },
        { check: (a) => assert.equal(a.usage('other')!.IPv4.assigned, 0n), why: 'nothing leaks into the new pool' },
      ],
    },
  ];
  for (const sc of scenarios) {
    it(sc.name, function () {
      const a = new Allocator(sc.pools);
      sc.steps.forEach((step, i) => {
        const where = `step ${i + 1} (${step.why})`;
        if ('reserve' in step) {
          const r = a.setExternalIPs(step.reserve, ips(...step.ips));
          assert.deepEqual(r.reserved.map(formatIP), step.got, where);
          assert.equal(r.freed, step.freed ?? false, where);
        } else if ('allocate' in step) {
          assert.equal(fmt(a.allocate(req(step.allocate, step.request ? { requestedIPs: ips(step.request) } : {}))), step.got, where);
        } else if ('release' in step) {
          a.release(step.release);
        } else if ('releaseExternal' in step) {
          assert.equal(a.releaseExternalIPs(step.releaseExternal), true, where);
        } else if ('setPools' in step) {
          assert.deepEqual(a.stranded(step.setPools), [], where);
          a.setPools(step.setPools);
        } else {
          step.check(a);
        }
      });
    });
  }
});
