// Allocator scenarios: each table is a sequence of steps on one allocator, with
// the IPs (or the failure code) expected after each step. A `restart` step
// builds a fresh allocator from what the Services' status holds, as the
// controller does at start-up, and every later step runs on that one.
import { strict as assert } from 'node:assert';
import { formatIP, parseIP, parseRange, type Pool } from '@portico/shared';
import { Allocator, familyPlan, type FailureCode, type ServiceRequest } from './allocator.ts';

function pool(name: string, addresses: string[], opts: Partial<Pool> = {}): Pool {
  return {
    name, source: 'crd', ranges: addresses.map(parseRange), autoAssign: true, avoidBuggyIPs: false, allowExternalIPs: false,
    priority: undefined, namespaces: [], namespaceSelectors: [], serviceSelectors: [], labels: {}, ...opts,
  };
}

type Svc = Partial<Omit<ServiceRequest, 'requestedIPs'>> & { key: string; requestedIPs?: string[] };

function request(s: Svc): ServiceRequest {
  const [namespace = 'default'] = s.key.split('/');
  return {
    namespace, labels: {}, namespaceLabels: {}, families: ['IPv4'], policy: 'SingleStack', pool: undefined, sharingKey: undefined,
    backendKey: '', ports: ['TCP/80'], ...s, requestedIPs: (s.requestedIPs ?? []).map(parseIP),
  };
}

type Step =
  | { allocate: Svc; ips: string[]; pool?: string; why: string }
  | { allocate: Svc; fails: FailureCode; why: string }
  | { release: string; why: string }
  | { restart: true; why: string }
  | { setPools: Pool[]; stranded?: string[]; why: string };

interface Scenario { name: string; pools: Pool[]; steps: Step[] }

function run(sc: Scenario): void {
  let pools = sc.pools;
  let alloc = new Allocator(pools);
  // What the API server would hold: each Service's last request and status IPs.
  const world = new Map<string, { req: ServiceRequest; ips: string[] }>();
  sc.steps.forEach((step, i) => {
    const where = `${sc.name}, step ${i + 1} (${step.why})`;
    if ('allocate' in step) {
      const req = request(step.allocate);
      const r = alloc.allocate(req);
      if ('fails' in step) {
        assert.equal(r.ok, false, `${where}: expected ${step.fails}, got ${r.ok ? r.ips.map(formatIP).join(',') : ''}`);
        if (!r.ok) assert.equal(r.code, step.fails, `${where}: ${r.message}`);
        world.delete(req.key);
        return;
      }
      assert.ok(r.ok, `${where}: ${r.ok ? '' : `${r.code}: ${r.message}`}`);
      assert.deepEqual(r.ips.map(formatIP), step.ips, where);
      if (step.pool) assert.equal(r.pool, step.pool, where);
      world.set(req.key, { req, ips: step.ips });
    } else if ('release' in step) {
      alloc.release(step.release);
      world.delete(step.release);
    } else if ('restart' in step) {
      const before = new Map([...world].map(([k, v]) => [k, v.ips]));
      alloc = new Allocator(pools);
      for (const [, { req, ips }] of world) {
        const r = alloc.assign(req, ips.map(parseIP));
        assert.ok(r.ok, `${where}: rebuild of ${req.key} failed: ${r.ok ? '' : r.message}`);
      }
      for (const [key, { req }] of world) {
        const r = alloc.allocate(req);
        assert.ok(r.ok && !r.changed, `${where}: ${key} changed after restart`);
        assert.deepEqual(r.ips.map(formatIP), before.get(key), `${where}: ${key} moved`);
      }
    } else {
      const stranded = alloc.stranded(step.setPools).map((s) => s.ip);
      assert.deepEqual(stranded, step.stranded ?? [], `${where}: stranded IPs`);
      if (stranded.length === 0) {
        pools = step.setPools;
        alloc.setPools(pools);
      }
    }
  });
}

const v4 = pool('v4', ['203.0.113.0/30']);

const scenarios: Scenario[] = [
  {
    name: 'first free address, release and reuse',
    pools: [v4],
    steps: [
      { allocate: { key: 'a/s1' }, ips: ['203.0.113.0'], why: 'the lowest address first' },
      { allocate: { key: 'a/s2' }, ips: ['203.0.113.1'], why: 'the next one' },
      { allocate: { key: 'a/s1' }, ips: ['203.0.113.0'], why: 'allocating again is idempotent' },
      { release: 'a/s1', why: 's1 deleted' },
      { allocate: { key: 'a/s3' }, ips: ['203.0.113.0'], why: 's3 gets the freed lowest address' },
    ],
  },
  {
    name: 'exhaustion',
    pools: [pool('tiny', ['203.0.113.10-203.0.113.11'])],
    steps: [
      { allocate: { key: 'a/s1' }, ips: ['203.0.113.10'], why: 'first' },
      { allocate: { key: 'a/s2' }, ips: ['203.0.113.11'], why: 'second' },
      { allocate: { key: 'a/s3' }, fails: 'PORTICO_POOL_EXHAUSTED', why: 'nothing left' },
      { release: 'a/s1', why: 's1 deleted' },
      { allocate: { key: 'a/s3' }, ips: ['203.0.113.10'], why: 'pending s3 gets the freed IP' },
    ],
  },
  {
    name: 'requested IPs',
    pools: [pool('p', ['203.0.113.0/28']), pool('q', ['198.51.100.0/28'])],
    steps: [
      { allocate: { key: 'a/s1', requestedIPs: ['203.0.113.5'] }, ips: ['203.0.113.5'], pool: 'p', why: 'loadBalancerIP honoured' },
      { allocate: { key: 'a/s2', requestedIPs: ['203.0.113.5'] }, fails: 'PORTICO_IP_IN_USE', why: 's2 cannot take s1\'s IP' },
      { allocate: { key: 'a/s3', requestedIPs: ['198.51.100.200'] }, fails: 'PORTICO_IP_NOT_IN_POOL', why: 'outside every pool' },
      { allocate: { key: 'a/s4', requestedIPs: ['198.51.100.3'], pool: 'p' }, fails: 'PORTICO_IP_NOT_IN_POOL', why: 'IP in q but pool p asked for' },
      { allocate: { key: 'a/s5', requestedIPs: ['198.51.100.3'] }, ips: ['198.51.100.3'], pool: 'q', why: 'pool follows the requested IP' },
      { allocate: { key: 'a/s6' }, ips: ['203.0.113.0'], pool: 'p', why: 'auto allocation skips nothing below the requested IP' },
      { allocate: { key: 'a/s1', requestedIPs: ['203.0.113.6'] }, ips: ['203.0.113.6'], why: 'changing the request moves the IP' },
      { allocate: { key: 'a/s2', requestedIPs: ['203.0.113.5'] }, ips: ['203.0.113.5'], why: 'the old one is free again' },
      { allocate: { key: 'a/s7', pool: 'nope' }, fails: 'PORTICO_POOL_NOT_FOUND', why: 'unknown pool' },
      { allocate: { key: 'a/s8', pool: 'q' }, ips: ['198.51.100.0'], pool: 'q', why: 'pool annotation' },
      { allocate: { key: 'a/s9', requestedIPs: ['2001:db8::1'] }, fails: 'PORTICO_IP_NOT_IN_POOL', why: 'no IPv6 pool at all' },
    ],
  },
  {
    name: 'sharing rules',
    pools: [pool('p', ['203.0.113.0/29'])],
    steps: [
      { allocate: { key: 'a/web', sharingKey: 'k', ports: ['TCP/80'] }, ips: ['203.0.113.0'], why: 'first of the group' },
      { allocate: { key: 'a/dns', sharingKey: 'k', ports: ['UDP/53', 'TCP/53'] }, ips: ['203.0.113.0'], why: 'same key, other ports: shared' },
      { allocate: { key: 'a/web2', sharingKey: 'k', ports: ['TCP/80'] }, ips: ['203.0.113.1'], why: 'port clash: a new IP for the same key' },
      { allocate: { key: 'a/other', sharingKey: 'x', requestedIPs: ['203.0.113.0'], ports: ['TCP/443'] }, fails: 'PORTICO_IP_IN_USE', why: 'different key cannot share' },
      { allocate: { key: 'a/nokey', requestedIPs: ['203.0.113.0'], ports: ['TCP/443'] }, fails: 'PORTICO_IP_IN_USE', why: 'no key cannot share' },
      { allocate: { key: 'a/tcp80', sharingKey: 'k', requestedIPs: ['203.0.113.0'], ports: ['TCP/80'] }, fails: 'PORTICO_IP_IN_USE', why: 'requested shared IP with a clashing port' },
      { allocate: { key: 'a/udp80', sharingKey: 'k', requestedIPs: ['203.0.113.0'], ports: ['UDP/80'] }, ips: ['203.0.113.0'], why: 'same port number, other protocol is no clash' },
      { release: 'a/web', why: 'web deleted' },
      { allocate: { key: 'a/x', ports: ['TCP/80'] }, ips: ['203.0.113.2'], why: 'the shared IP stays used while dns and udp80 hold it' },
      { release: 'a/dns', why: 'dns deleted' },
      { release: 'a/udp80', why: 'last user gone' },
      { allocate: { key: 'a/y' }, ips: ['203.0.113.0'], why: 'now free' },
    ],
  },
  {
    name: 'sharing with externalTrafficPolicy Local needs the same pods',
    pools: [pool('p', ['203.0.113.0/29'])],
    steps: [
      { allocate: { key: 'a/s1', sharingKey: 'k', backendKey: 'app=web', ports: ['TCP/80'] }, ips: ['203.0.113.0'], why: 'Local, selector app=web' },
      { allocate: { key: 'a/s2', sharingKey: 'k', backendKey: 'app=web', ports: ['TCP/443'] }, ips: ['203.0.113.0'], why: 'same pods: shared' },
      { allocate: { key: 'a/s3', sharingKey: 'k', backendKey: 'app=api', ports: ['TCP/8080'] }, ips: ['203.0.113.1'], why: 'other pods: not shared' },
      { allocate: { key: 'a/s4', sharingKey: 'k', backendKey: 'app=api', requestedIPs: ['203.0.113.0'], ports: ['TCP/9090'] }, fails: 'PORTICO_IP_IN_USE', why: 'asking explicitly does not help' },
      { allocate: { key: 'a/s5', sharingKey: 'k', backendKey: '', requestedIPs: ['203.0.113.0'], ports: ['TCP/9090'] }, fails: 'PORTICO_IP_IN_USE', why: 'Cluster and Local do not mix' },
    ],
  },
  {
    name: 'dual-stack from one pool',
    pools: [pool('ds', ['203.0.113.8/30', '2001:db8:1::/126']), pool('only4', ['198.51.100.0/30'])],
    steps: [
      { allocate: { key: 'a/s1', families: ['IPv4', 'IPv6'], policy: 'RequireDualStack' }, ips: ['203.0.113.8', '2001:db8:1::'], pool: 'ds', why: 'both families, v4 first' },
      { allocate: { key: 'a/s2', families: ['IPv6', 'IPv4'], policy: 'PreferDualStack' }, ips: ['2001:db8:1::1', '203.0.113.9'], why: 'primary family first' },
      { allocate: { key: 'a/s3', families: ['IPv6'], policy: 'SingleStack' }, ips: ['2001:db8:1::2'], why: 'single-stack IPv6' },
      { allocate: { key: 'a/s4', families: ['IPv4', 'IPv6'], policy: 'SingleStack' }, ips: ['203.0.113.10'], why: 'SingleStack takes the primary only' },
      { allocate: { key: 'a/s5', families: ['IPv6', 'IPv4'], policy: 'RequireDualStack' }, ips: ['2001:db8:1::3', '203.0.113.11'], why: 'the last of each' },
      { allocate: { key: 'a/s6', families: ['IPv4', 'IPv6'], policy: 'RequireDualStack' }, fails: 'PORTICO_POOL_EXHAUSTED', why: 'ds full, only4 has no IPv6: never mixes pools' },
      { allocate: { key: 'a/s7', families: ['IPv4', 'IPv6'], policy: 'PreferDualStack' }, ips: ['198.51.100.0'], pool: 'only4', why: 'PreferDualStack settles for one family' },
      { release: 'a/s3', why: 'an IPv6 address frees up in ds' },
      { allocate: { key: 'a/s7', families: ['IPv4', 'IPv6'], policy: 'PreferDualStack' }, ips: ['198.51.100.0'], pool: 'only4', why: 'only4 still has no IPv6 to add: kept' },
      { allocate: { key: 'a/s8', families: ['IPv4', 'IPv6'], policy: 'RequireDualStack', requestedIPs: ['203.0.113.10', '2001:db8:1::2'] }, fails: 'PORTICO_IP_IN_USE', why: 'requested v4 held by s4' },
      { release: 'a/s4', why: 's4 deleted' },
      { allocate: { key: 'a/s8', families: ['IPv4', 'IPv6'], policy: 'RequireDualStack', requestedIPs: ['203.0.113.10', '2001:db8:1::2'] }, ips: ['203.0.113.10', '2001:db8:1::2'], why: 'requested pair' },
      { allocate: { key: 'a/s9', families: ['IPv4'], requestedIPs: ['2001:db8:1::2'] }, fails: 'PORTICO_IP_FAMILY_UNAVAILABLE', why: 'IPv6 requested for an IPv4-only Service' },
    ],
  },
  {
    name: 'namespace-restricted pools',
    pools: [
      pool('shared', ['198.51.100.0/30']),
      pool('team-a', ['203.0.113.0/30'], { namespaces: ['team-a'], priority: 10 }),
      pool('team-a-first', ['203.0.113.4/30'], { namespaces: ['team-a'], priority: 1 }),
      pool('labelled', ['203.0.113.8/30'], { namespaceSelectors: [{ matchLabels: { tier: 'gold' } }] }),
      pool('svc-sel', ['203.0.113.12/30'], { serviceSelectors: [{ matchExpressions: [{ key: 'expose', operator: 'Exists' }] }] }),
    ],
    steps: [
      { allocate: { key: 'team-a/s1' }, ips: ['203.0.113.4'], pool: 'team-a-first', why: 'own pools first, lowest priority number first' },
      { allocate: { key: 'team-b/s1' }, ips: ['198.51.100.0'], pool: 'shared', why: 'other namespaces only get the shared pool' },
      { allocate: { key: 'team-b/s2', requestedIPs: ['203.0.113.1'] }, fails: 'PORTICO_NO_MATCHING_POOL', why: 'cannot take team-a\'s IP by asking' },
      { allocate: { key: 'team-b/s3', pool: 'team-a' }, fails: 'PORTICO_NO_MATCHING_POOL', why: 'cannot take team-a\'s pool by asking' },
      { allocate: { key: 'gold/s1', namespaceLabels: { tier: 'gold' } }, ips: ['203.0.113.8'], pool: 'labelled', why: 'namespace selector' },
      { allocate: { key: 'x/s1', labels: { expose: 'yes' } }, ips: ['203.0.113.12'], pool: 'svc-sel', why: 'service selector' },
      { allocate: { key: 'team-a/s2', pool: 'shared' }, ips: ['198.51.100.1'], why: 'restricted namespaces may still use shared pools' },
    ],
  },
  {
    name: 'autoAssign false and deterministic order',
    pools: [pool('zeta', ['198.51.100.0/30']), pool('alpha', ['203.0.113.0/30']), pool('manual', ['203.0.113.100/30'], { autoAssign: false }), pool('prio', ['203.0.113.200/30'], { priority: 5 })],
    steps: [
      { allocate: { key: 'a/s1' }, ips: ['203.0.113.200'], pool: 'prio', why: 'a priority beats none' },
      { allocate: { key: 'a/s2', pool: 'alpha' }, ips: ['203.0.113.0'], why: 'explicit' },
      { allocate: { key: 'a/s3', requestedIPs: ['203.0.113.101'] }, ips: ['203.0.113.101'], pool: 'manual', why: 'autoAssign false pools serve explicit requests' },
      { allocate: { key: 'a/s4', pool: 'manual' }, ips: ['203.0.113.100'], why: 'and explicit pool requests' },
      { allocate: { key: 'a/s5' }, ips: ['203.0.113.201'], why: 'prio again' },
      { allocate: { key: 'a/s6' }, ips: ['203.0.113.202'], why: 'prio again' },
      { allocate: { key: 'a/s7' }, ips: ['203.0.113.203'], why: 'prio full after this' },
      { allocate: { key: 'a/s8' }, ips: ['203.0.113.1'], pool: 'alpha', why: 'then by name: alpha before zeta, never manual' },
    ],
  },
  {
    name: 'avoidBuggyIPs',
    pools: [pool('b', ['203.0.113.254-203.0.114.1', '198.51.100.255/32'], { avoidBuggyIPs: true })],
    steps: [
      { allocate: { key: 'a/s1' }, ips: ['203.0.113.254'], why: '.254 is fine' },
      { allocate: { key: 'a/s2' }, ips: ['203.0.114.1'], why: '.255 and .0 skipped' },
      { allocate: { key: 'a/s3' }, fails: 'PORTICO_POOL_EXHAUSTED', why: '198.51.100.255 is never handed out' },
      { allocate: { key: 'a/s4', requestedIPs: ['203.0.114.0'] }, fails: 'PORTICO_IP_NOT_IN_POOL', why: 'nor when asked for' },
    ],
  },
  {
    name: 'IPv6 /64 pools are never enumerated',
    pools: [pool('big', ['2001:db8:ffff::/64']), pool('huge', ['2001:db8:8000::/33'])],
    steps: [
      { allocate: { key: 'a/s1', families: ['IPv6'], pool: 'big' }, ips: ['2001:db8:ffff::'], why: 'first of 2^64' },
      { allocate: { key: 'a/s2', families: ['IPv6'], requestedIPs: ['2001:db8:ffff:0:ffff:ffff:ffff:ffff'] }, ips: ['2001:db8:ffff:0:ffff:ffff:ffff:ffff'], why: 'last of 2^64' },
      { allocate: { key: 'a/s3', families: ['IPv6'], pool: 'big' }, ips: ['2001:db8:ffff::1'], why: 'next lowest' },
      { allocate: { key: 'a/s4', families: ['IPv6'], pool: 'huge' }, ips: ['2001:db8:8000::'], why: 'a /33 (2^95) too' },
      { restart: true, why: 'and they survive a restart' },
    ],
  },
  {
    name: 'restart keeps every IP',
    pools: [pool('p', ['203.0.113.0/28', '2001:db8:2::/120']), pool('q', ['198.51.100.0/28'], { namespaces: ['q'] })],
    steps: [
      { allocate: { key: 'a/s1' }, ips: ['203.0.113.0'], why: 's1' },
      { allocate: { key: 'a/s2' }, ips: ['203.0.113.1'], why: 's2' },
      { allocate: { key: 'a/s3', requestedIPs: ['203.0.113.9'] }, ips: ['203.0.113.9'], why: 's3 asked' },
      { allocate: { key: 'a/s4', sharingKey: 'k', ports: ['TCP/1'] }, ips: ['203.0.113.2'], why: 's4 shares' },
      { allocate: { key: 'a/s5', sharingKey: 'k', ports: ['TCP/2'] }, ips: ['203.0.113.2'], why: 's5 shares' },
      { allocate: { key: 'a/s6', families: ['IPv6', 'IPv4'], policy: 'RequireDualStack' }, ips: ['2001:db8:2::', '203.0.113.3'], why: 'dual' },
      { allocate: { key: 'q/s7' }, ips: ['198.51.100.0'], why: 'restricted pool' },
      { release: 'a/s1', why: 'a hole at the start' },
      { restart: true, why: 'controller restarts' },
      { allocate: { key: 'a/s8' }, ips: ['203.0.113.0'], why: 'the hole is the first free address, no duplicate' },
      { allocate: { key: 'a/s9' }, ips: ['203.0.113.4'], why: 'nothing held is handed out again' },
      { restart: true, why: 'and again' },
    ],
  },
  {
    name: 'pool removal and change',
    pools: [pool('p', ['203.0.113.0/30']), pool('q', ['198.51.100.0/30'])],
    steps: [
      { allocate: { key: 'a/s1', pool: 'q' }, ips: ['198.51.100.0'], why: 's1 in q' },
      { setPools: [pool('p', ['203.0.113.0/30'])], stranded: ['198.51.100.0'], why: 'removing q would strand s1: refused' },
      { allocate: { key: 'a/s1', pool: 'q' }, ips: ['198.51.100.0'], why: 's1 keeps its IP' },
      { release: 'a/s1', why: 's1 deleted' },
      { setPools: [pool('p', ['203.0.113.0/30'])], why: 'now q can go' },
      { allocate: { key: 'a/s2', pool: 'q' }, fails: 'PORTICO_POOL_NOT_FOUND', why: 'q is gone' },
      { allocate: { key: 'a/s3' }, ips: ['203.0.113.0'], why: 'p still serves' },
      { setPools: [pool('p2', ['203.0.113.0/29'])], why: 'a rename that keeps the address is no strand' },
      { allocate: { key: 'a/s3' }, ips: ['203.0.113.0'], pool: 'p2', why: 's3 keeps its IP under the new pool name' },
      { allocate: { key: 'a/s4' }, ips: ['203.0.113.1'], why: 'the used address stays used in the new pool' },
      { setPools: [pool('p2', ['203.0.113.0/29'], { avoidBuggyIPs: true })], stranded: ['203.0.113.0'], why: 'avoidBuggyIPs would strand .0' },
    ],
  },
];

// Issue 16, points 1-3: sharing decided by the Services' current keys, and
// the dual-stack policies giving what they promise.
scenarios.push(
  {
    name: 'sharing enabled, changed and removed after the IP was taken',
    pools: [pool('p', ['203.0.113.0/30'])],
    steps: [
      { allocate: { key: 'a/web', ports: ['TCP/80'] }, ips: ['203.0.113.0'], why: 'web takes an IP without a key' },
      { allocate: { key: 'a/dns', sharingKey: 'k1', ports: ['UDP/53'], requestedIPs: ['203.0.113.0'] }, fails: 'PORTICO_IP_IN_USE', why: 'no key on web yet: no sharing' },
      { allocate: { key: 'a/web', sharingKey: 'k1', ports: ['TCP/80'] }, ips: ['203.0.113.0'], why: 'web adds the key and keeps its IP' },
      { allocate: { key: 'a/dns', sharingKey: 'k1', ports: ['UDP/53'] }, ips: ['203.0.113.0'], why: 'now dns shares it (not a new IP, not exhausted)' },
      { allocate: { key: 'a/dns', sharingKey: 'k2', ports: ['UDP/53'] }, ips: ['203.0.113.1'], why: 'dns changes its key while sharing: it moves, web stays' },
      { allocate: { key: 'a/web', sharingKey: 'k1', ports: ['TCP/80'] }, ips: ['203.0.113.0'], why: 'web kept' },
      { allocate: { key: 'a/web', sharingKey: 'k2', ports: ['TCP/80'] }, ips: ['203.0.113.0'], why: 'web alone on its IP changes its key: kept' },
      { allocate: { key: 'a/ntp', sharingKey: 'k2', ports: ['UDP/123'] }, ips: ['203.0.113.0'], why: 'the lowest IP with key k2 is web\'s now' },
      { allocate: { key: 'a/ntp', ports: ['UDP/123'] }, ips: ['203.0.113.2'], why: 'ntp drops its key while sharing: it moves' },
      { allocate: { key: 'a/ntp', sharingKey: 'k3', ports: ['UDP/123'] }, ips: ['203.0.113.2'], why: 'alone, ntp adds a key: kept' },
      { allocate: { key: 'a/web', ports: ['TCP/80'] }, ips: ['203.0.113.0'], why: 'web alone drops its key: kept' },
      { allocate: { key: 'a/x', sharingKey: 'k2', ports: ['TCP/8080'] }, ips: ['203.0.113.1'], why: 'k2 now only on dns\'s IP' },
      { restart: true, why: 'the keys as they are now survive a restart' },
      { allocate: { key: 'a/y', sharingKey: 'k3', ports: ['TCP/1'] }, ips: ['203.0.113.2'], why: 'ntp\'s late key counts after the restart' },
    ],
  },
  {
    name: 'RequireDualStack with one requested family is refused, not half served',
    pools: [pool('ds', ['203.0.113.0/30', '2001:db8:1::/126'])],
    steps: [
      { allocate: { key: 'a/s1', families: ['IPv4', 'IPv6'], policy: 'RequireDualStack', requestedIPs: ['203.0.113.2'] }, fails: 'PORTICO_IP_FAMILY_UNAVAILABLE', why: 'only IPv4 named' },
      { allocate: { key: 'a/s2', families: ['IPv6', 'IPv4'], policy: 'RequireDualStack', requestedIPs: ['2001:db8:1::3'] }, fails: 'PORTICO_IP_FAMILY_UNAVAILABLE', why: 'only IPv6 named' },
      { allocate: { key: 'a/s1', families: ['IPv4', 'IPv6'], policy: 'RequireDualStack', requestedIPs: ['203.0.113.2', '2001:db8:1::2'] }, ips: ['203.0.113.2', '2001:db8:1::2'], why: 'both named' },
      { allocate: { key: 'a/s1', families: ['IPv4', 'IPv6'], policy: 'RequireDualStack', requestedIPs: ['203.0.113.2'] }, fails: 'PORTICO_IP_FAMILY_UNAVAILABLE', why: 'an edit down to one family loses both, never keeps a half' },
      { allocate: { key: 'a/s3', families: ['IPv4', 'IPv6'], policy: 'RequireDualStack' }, ips: ['203.0.113.0', '2001:db8:1::'], why: 'the freed pair is free; no request: both from the pool' },
      { allocate: { key: 'a/s4', families: ['IPv4', 'IPv6'], policy: 'PreferDualStack', requestedIPs: ['203.0.113.3'] }, ips: ['203.0.113.3'], why: 'PreferDualStack may name one family' },
    ],
  },
  {
    name: 'PreferDualStack takes what a one-family pool has, and prefers a pool with both',
    pools: [
      pool('a-v4', ['203.0.113.0/31'], { priority: 1 }),
      pool('b-v6', ['2001:db8:6::/127'], { priority: 2 }),
      pool('c-dual', ['203.0.113.8/31', '2001:db8:d::/127'], { priority: 3 }),
    ],
    steps: [
      { allocate: { key: 'a/s1', families: ['IPv6', 'IPv4'], policy: 'PreferDualStack' }, ips: ['2001:db8:d::', '203.0.113.8'], pool: 'c-dual', why: 'a pool with both families wins over priority' },
      { allocate: { key: 'a/s2', families: ['IPv4', 'IPv6'], policy: 'PreferDualStack' }, ips: ['203.0.113.9', '2001:db8:d::1'], pool: 'c-dual', why: 'again, primary family first' },
      { allocate: { key: 'a/s3', families: ['IPv6', 'IPv4'], policy: 'PreferDualStack' }, ips: ['203.0.113.0'], pool: 'a-v4', why: 'c-dual full: IPv4 from the first pool by priority, though IPv6 is the primary' },
      { allocate: { key: 'a/s4', families: ['IPv4', 'IPv6'], policy: 'PreferDualStack', pool: 'b-v6' }, ips: ['2001:db8:6::'], pool: 'b-v6', why: 'an IPv6-only pool asked by name serves the IPv6 part' },
      { allocate: { key: 'a/s5', families: ['IPv4', 'IPv6'], policy: 'PreferDualStack' }, ips: ['203.0.113.1'], pool: 'a-v4', why: 'a-v4 before b-v6 by priority' },
      { allocate: { key: 'a/s6', families: ['IPv4', 'IPv6'], policy: 'PreferDualStack' }, ips: ['2001:db8:6::1'], pool: 'b-v6', why: 'only IPv6 left anywhere' },
      { allocate: { key: 'a/s7', families: ['IPv4', 'IPv6'], policy: 'PreferDualStack' }, fails: 'PORTICO_POOL_EXHAUSTED', why: 'nothing of either family left' },
      { allocate: { key: 'a/s8', families: ['IPv4'], policy: 'PreferDualStack', pool: 'b-v6' }, fails: 'PORTICO_IP_FAMILY_UNAVAILABLE', why: 'an IPv4-only cluster\'s PreferDualStack needs IPv4' },
      { restart: true, why: 'one-family results survive a restart' },
    ],
  },
);

describe('allocator scenarios', function () {
  for (const sc of scenarios) it(sc.name, function () { run(sc); });
});

describe('allocator', function () {
  it('plans families from ipFamilies and ipFamilyPolicy', function () {
    const table: [Parameters<typeof familyPlan>[0], ReturnType<typeof familyPlan>][] = [
      [{ families: ['IPv4'], policy: 'SingleStack' }, { required: ['IPv4'], optional: [] }],
      [{ families: ['IPv6', 'IPv4'], policy: 'PreferDualStack' }, { required: [], optional: ['IPv6', 'IPv4'] }],
      [{ families: ['IPv6'], policy: 'PreferDualStack' }, { required: ['IPv6'], optional: [] }],
      [{ families: ['IPv4', 'IPv6'], policy: 'RequireDualStack' }, { required: ['IPv4', 'IPv6'], optional: [] }],
      [{ families: [], policy: 'SingleStack' }, { required: ['IPv4'], optional: [] }],
    ];
    for (const [input, want] of table) assert.deepEqual(familyPlan(input), want, JSON.stringify(input));
  });

  it('reports usage per family without enumerating a /64', function () {
    const a = new Allocator([pool('p', ['203.0.113.0/24', '2001:db8::/64'], { avoidBuggyIPs: true })]);
    a.allocate(request({ key: 'a/s1', families: ['IPv4', 'IPv6'], policy: 'RequireDualStack' }));
    const u = a.usage('p')!;
    assert.deepEqual(u.IPv4, { total: 254n, assigned: 1n, available: 253n });
    assert.deepEqual(u.IPv6, { total: 1n << 64n, assigned: 1n, available: (1n << 64n) - 1n });
  });

  it('allocates 10,000 Services and frees them in O(log n) each', function () {
    const a = new Allocator([pool('p', ['203.0.113.0/24', '198.51.100.0/24', '2001:db8::/64'])]);
    const started = performance.now();
    for (let i = 0; i < 10_000; i++) {
      const r = a.allocate(request({ key: `a/s${i}`, families: i < 500 ? ['IPv4'] : ['IPv6'] }));
      assert.ok(r.ok);
    }
    for (let i = 0; i < 10_000; i += 2) a.release(`a/s${i}`);
    const r = a.allocate(request({ key: 'a/new', families: ['IPv6'] }));
    assert.ok(r.ok);
    assert.equal(formatIP(r.ips[0]!), '2001:db8::');
    assert.ok(performance.now() - started < 5000, 'took too long');
  });
});
