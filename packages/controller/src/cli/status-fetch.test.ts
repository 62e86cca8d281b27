// fetchStatus against a local HTTP server playing the API server: every GET
// is sent before any is answered (the server holds the answers until all have
// arrived), lists are read in pages, and each error case gives what the
// client-node version gave: an absent kind (404) has no objects, the legacy
// ConfigMap is absent on any refusal, anything else fails naming the server.
import { strict as assert } from 'node:assert';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConnection, kubeconfigTextCredentials } from '@portico/shared';
import { StatusFetchError, buildStatus, fetchStatus } from './status.ts';

const NS = 'portico-system';
/** Services, Service Events, namespace Events, the ConfigMap, ServiceBGPStatus, and the six portico.dev kinds. */
const GETS = 11;

type Answer = { code: number; body: unknown };
type Route = (url: URL) => Answer;

interface FakeApi { url: string; paths: string[]; maxInFlight: number; close: () => Promise<void> }

const notFound: Answer = { code: 404, body: { kind: 'Status', code: 404, reason: 'NotFound', message: 'the server could not find the requested resource' } };
const forbidden = (what: string): Answer => ({ code: 403, body: { kind: 'Status', code: 403, reason: 'Forbidden', message: `${what} is forbidden: User "jane" cannot list resource "${what}"` } });
const list = (items: unknown[], cont = ''): Answer => ({ code: 200, body: { kind: 'List', metadata: { resourceVersion: '7', ...(cont ? { continue: cont } : {}) }, items } });

/**
 * Answers nothing until `hold` requests are in flight at once (so a client
 * that waits for one answer before the next request never gets one), then
 * answers everything by `route`.
 */
async function fakeApi(route: Route, hold = GETS): Promise<FakeApi> {
  const waiting: (() => void)[] = [];
  let inFlight = 0;
  let released = false;
  const state = { paths: [] as string[], maxInFlight: 0 };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    state.paths.push(`${url.pathname}${url.search}`);
    inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    const answer = (): void => {
      const a = route(url);
      inFlight--;
      res.writeHead(a.code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(a.body));
    };
    if (released) { answer(); return; }
    waiting.push(answer);
    if (waiting.length >= hold) {
      released = true;
      for (const w of waiting.splice(0)) w();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`, get paths() { return state.paths; }, get maxInFlight() { return state.maxInFlight; },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

const connect = (server: string): KubeConnection => new KubeConnection(kubeconfigTextCredentials(
  `clusters: [{name: c, cluster: {server: "${server}"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`));

const svc = (ns: string, name: string, ip?: string): unknown => ({
  metadata: { name, namespace: ns, annotations: ip ? { 'portico.dev/ip-allocated-from-pool': 'lan' } : {} },
  spec: { type: 'LoadBalancer' }, status: { loadBalancer: ip ? { ingress: [{ ip }] } : {} },
});

/** A cluster with everything installed; `over` replaces the answer for a path. */
function cluster(over: Record<string, Answer> = {}): Route {
  return (url) => {
    const o = over[url.pathname];
    if (o) return o;
    switch (url.pathname) {
      case '/api/v1/services':
        // Two pages: the second only with the first page's continue token.
        if (url.searchParams.get('continue') === 'page2') return list([svc('shop', 'b', '203.0.113.11')]);
        assert.equal(url.searchParams.get('limit'), '500');
        return list([svc('shop', 'a', '203.0.113.10'), svc('shop', 'pending')], 'page2');
      case '/api/v1/events':
        assert.equal(url.searchParams.get('fieldSelector'), 'involvedObject.kind=Service');
        return list([{ type: 'Warning', reason: 'AllocationFailed', message: 'PORTICO_POOL_EXHAUSTED: no free IPv4 address in pool lan', involvedObject: { kind: 'Service', namespace: 'shop', name: 'pending' }, lastTimestamp: '2026-01-01T00:00:00Z' }]);
      case `/api/v1/namespaces/${NS}/events`:
        return list([
          { type: 'Normal', reason: 'BGPSessionEstablished', message: 'up', involvedObject: { kind: 'BGPPeer', namespace: NS, name: 'tor-1' }, lastTimestamp: '2026-01-01T00:00:00Z' },
          // Also in the all-namespaces list: kept once.
          { type: 'Warning', reason: 'AllocationFailed', message: 'dup', involvedObject: { kind: 'Service', namespace: NS, name: 'x' } },
        ]);
      case `/api/v1/namespaces/${NS}/configmaps/config`: return notFound;
      case `/apis/portico.dev/v1beta1/namespaces/${NS}/ipaddresspools`:
        return list([{ metadata: { name: 'lan' }, spec: { addresses: ['203.0.113.10-203.0.113.11'] }, status: { assignedIPv4: 2, availableIPv4: 0, conditions: [{ type: 'Valid', status: 'True' }] } }]);
      case `/apis/portico.dev/v1beta1/namespaces/${NS}/bgppeers`:
        return list([{ metadata: { name: 'tor-1' }, spec: { myASN: 64512, peerASN: 64513, peerAddress: '198.51.100.1' } }]);
      case `/apis/portico.dev/v1beta1/namespaces/${NS}/servicebgpstatuses`:
        return list([{ metadata: { name: 'n1-a' }, status: { node: 'node-1', serviceName: 'a', serviceNamespace: 'shop', peers: ['tor-1'] } }]);
      default:
        if (url.pathname.startsWith(`/apis/portico.dev/v1beta1/namespaces/${NS}/`)) return list([]);
        return notFound;
    }
  };
}

describe('portico status: fetchStatus against an API server', function () {
  let api: FakeApi | undefined;
  let conn: KubeConnection | undefined;
  afterEach(async function () {
    conn?.close();
    await api?.close();
    api = undefined;
    conn = undefined;
  });

  const fetch = async (route: Route, hold = GETS): Promise<ReturnType<typeof fetchStatus>> => {
    api = await fakeApi(route, hold);
    conn = connect(api.url);
    return fetchStatus(conn, NS);
  };

  it('sends every GET before any answer, reads lists in pages, and gives buildStatus what it needs', async function () {
    const input = await fetch(cluster());
    assert.ok(api!.maxInFlight >= GETS, `at most ${api!.maxInFlight} requests in flight`);
    assert.equal(api!.paths.length, GETS + 1, 'one more for the second page of Services');
    assert.ok(api!.paths.includes('/api/v1/services?limit=500&continue=page2'));
    assert.deepEqual(input.services.map((s) => s.metadata?.name), ['a', 'pending', 'b']);
    assert.deepEqual(input.events.map((e) => e.message), ['PORTICO_POOL_EXHAUSTED: no free IPv4 address in pool lan', 'up']);
    assert.equal(input.legacyConfig, undefined);
    assert.deepEqual(Object.keys(input.config).sort(), ['BFDProfile', 'BGPAdvertisement', 'BGPPeer', 'Community', 'IPAddressPool', 'L2Advertisement']);
    const m = buildStatus(input);
    assert.deepEqual(m.services.map((s) => [s.name, s.state, s.announcedBy]), [['a', 'allocated', 'BGP from node-1 to tor-1'], ['b', 'allocated', ''], ['pending', 'pending', '']]);
    assert.deepEqual(m.problems, ['Service shop/pending pending: PORTICO_POOL_EXHAUSTED: no free IPv4 address in pool lan']);
    assert.deepEqual(m.peers.map((p) => [p.name, p.state]), [['tor-1', 'up']]);
  });

  it('CRDs not installed (404): no objects of those kinds and no bgpStatuses, as before', async function () {
    const crd = (plural: string): string => `/apis/portico.dev/v1beta1/namespaces/${NS}/${plural}`;
    const input = await fetch(cluster({ [crd('servicebgpstatuses')]: notFound, [crd('bgppeers')]: notFound, [crd('communities')]: notFound }));
    assert.equal(input.bgpStatuses, undefined);
    assert.equal(input.config.BGPPeer, undefined);
    assert.equal(input.config.Community, undefined);
    assert.equal(input.config.IPAddressPool?.length, 1);
    assert.deepEqual(buildStatus(input).services.find((s) => s.name === 'a')?.announcedBy, '');
  });

  it('the legacy ConfigMap is read when present, and absent when the user may not read it (403), as before', async function () {
    const cm = `/api/v1/namespaces/${NS}/configmaps/config`;
    const present = await fetch(cluster({ [cm]: { code: 200, body: { metadata: { name: 'config' }, data: { config: 'address-pools: []\n' } } } }));
    assert.equal(present.legacyConfig, 'address-pools: []\n');
    conn?.close();
    await api?.close();
    const refused = await fetch(cluster({ [cm]: forbidden('configmaps') }));
    assert.equal(refused.legacyConfig, undefined);
  });

  it('a 403 on Services or a portico.dev kind fails, naming the server, the read and the reason', async function () {
    await assert.rejects(fetch(cluster({ '/api/v1/services': forbidden('services') })), (err: unknown) => {
      assert.ok(err instanceof StatusFetchError);
      assert.equal(err.status, 403);
      assert.equal(err.message, `API server ${api!.url} refused to list services (all namespaces): HTTP 403: services is forbidden: User "jane" cannot list resource "services"`);
      return true;
    });
    conn?.close();
    await api?.close();
    const bgp = `/apis/portico.dev/v1beta1/namespaces/${NS}/servicebgpstatuses`;
    await assert.rejects(fetch(cluster({ [bgp]: forbidden('servicebgpstatuses.portico.dev') })),
      /refused to list servicebgpstatuses\.portico\.dev in portico-system: HTTP 403: servicebgpstatuses\.portico\.dev is forbidden/);
  });

  it('a 401 says the credentials are not accepted', async function () {
    await assert.rejects(fetch(() => ({ code: 401, body: { kind: 'Status', code: 401, reason: 'Unauthorized', message: 'Unauthorized' } })),
      /refused to list .*: unauthorized \(are the kubeconfig's credentials current\?\)/);
  });

  it('an unreachable server fails with its address and the socket error', async function () {
    // A port that was just listening and is closed now: connection refused.
    api = await fakeApi(cluster());
    const url = api.url;
    await api.close();
    api = undefined;
    conn = connect(url);
    await assert.rejects(fetchStatus(conn, NS), new RegExp(`^StatusFetchError: cannot reach the API server ${url.replace(/\./g, '\\.')}: connect ECONNREFUSED`));
  });
});
