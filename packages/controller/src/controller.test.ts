// The controller's work loop (Controller: informers, queue, workers, retries)
// against a small API server started here on 127.0.0.1. It answers the lists
// and watches the controller opens (Services, Namespaces, the config
// namespace's ConfigMaps and portico.dev objects), applies merge patches to
// the Service it holds, echoes them on the Service watch as a real API
// server would, and records every request so the tests can check what went
// over the wire as well as what the Service ends up holding.
import { strict as assert } from 'node:assert';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  KubeConnection, createRegistry, kubeconfigTextCredentials, memoryLogger, type LogRecord, type Registry,
} from '@portico/shared';
import { Controller } from './controller.ts';
import type { ServiceObject } from './service.ts';

const CONFIG_NS = 'portico-system';
const POOL_ANNOTATION = 'portico.dev/ip-allocated-from-pool';
const POOL_IPS = ['203.0.113.0', '203.0.113.1', '203.0.113.2', '203.0.113.3'];
const SERVICE_PATH = '/api/v1/namespaces/demo/services/web';
const SERVICE_STATUS_PATH = `${SERVICE_PATH}/status`;

interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType: string | undefined;
  body: unknown;
}

type Json = Record<string, unknown>;

/** RFC 7386 JSON merge patch: objects merge key by key, null removes a key, anything else replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Json = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Json) } : {};
  for (const [k, v] of Object.entries(patch as Json)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

const statusBody = (code: number, reason: string, message: string): Json => ({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });

/** The API server double: one Service, one Namespace, one IPAddressPool. */
class FakeApiServer {
  readonly requests: Recorded[] = [];
  private readonly watches = new Map<string, Set<http.ServerResponse>>();
  private readonly server: http.Server;
  private rv = 100;
  service: ServiceObject & { apiVersion: string; kind: string; metadata: { resourceVersion?: string } } = {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: 'web', namespace: 'demo', uid: 'uid-web', resourceVersion: '10', creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: { type: 'LoadBalancer', ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: 'web' } },
    status: { loadBalancer: {} },
  };
  private readonly pool = {
    apiVersion: 'portico.dev/v1beta1', kind: 'IPAddressPool',
    metadata: { name: 'pool-a', namespace: CONFIG_NS, uid: 'uid-pool-a', generation: 1, resourceVersion: '5' },
    spec: { addresses: ['203.0.113.0/30'] },
  };
  private readonly namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo', uid: 'uid-demo', resourceVersion: '3', labels: { 'kubernetes.io/metadata.name': 'demo' } } };

  constructor() {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, res, Buffer.concat(chunks).toString('utf8')));
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const set of this.watches.values()) for (const w of set) w.end();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The lists the controller may ask for, by path; any other portico.dev list is empty. */
  private listItems(path: string): unknown[] | undefined {
    switch (path) {
      case '/api/v1/services': return [this.service];
      case '/api/v1/namespaces': return [this.namespace];
      case `/api/v1/namespaces/${CONFIG_NS}/configmaps`: return [];
      case `/apis/portico.dev/v1beta1/namespaces/${CONFIG_NS}/ipaddresspools`: return [this.pool];
      default: return path.startsWith(`/apis/portico.dev/v1beta1/namespaces/${CONFIG_NS}/`) ? [] : undefined;
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, text: string): void {
    const url = new URL(req.url ?? '/', 'http://x');
    let body: unknown;
    try { body = text === '' ? undefined : JSON.parse(text); } catch { body = text; }
    this.requests.push({ method: req.method ?? '', path: url.pathname, query: url.searchParams, contentType: req.headers['content-type'], body });
    const send = (code: number, obj: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };

    if (req.method === 'GET') {
      const items = this.listItems(url.pathname);
      if (items === undefined) { send(404, statusBody(404, 'NotFound', `no ${url.pathname}`)); return; }
      if (url.searchParams.get('watch') === '1') {
        // Held open (nothing to say yet) until the client goes away or close() ends it.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        let set = this.watches.get(url.pathname);
        if (!set) this.watches.set(url.pathname, (set = new Set()));
        set.add(res);
        res.on('close', () => set.delete(res));
        return;
      }
      send(200, { kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items });
      return;
    }
    if (req.method === 'PATCH' && (url.pathname === SERVICE_STATUS_PATH || url.pathname === SERVICE_PATH)) {
      // The Service itself or its status subresource: like the Service status strategy, a status
      // patch keeps its metadata changes too, so both apply the whole patch here.
      this.service = mergePatch(this.service, body) as typeof this.service;
      this.service.metadata.resourceVersion = String(++this.rv);
      send(200, this.service);
      const event = `${JSON.stringify({ type: 'MODIFIED', object: this.service })}\n`;
      for (const w of this.watches.get('/api/v1/services') ?? []) w.write(event);
      return;
    }
    if (req.method === 'PATCH' && url.pathname === `/apis/portico.dev/v1beta1/namespaces/${CONFIG_NS}/ipaddresspools/pool-a/status`) {
      send(200, mergePatch(this.pool, body));
      return;
    }
    if (req.method === 'POST' && /^\/api\/v1\/namespaces\/[^/]+\/events$/.test(url.pathname)) {
      send(201, mergePatch(body, { metadata: { name: `event-${++this.rv}`, resourceVersion: String(this.rv) } }));
      return;
    }
    send(404, statusBody(404, 'NotFound', `${req.method} ${url.pathname} not served here`));
  }

  /** Writes to the Service (the object or its status subresource). */
  serviceWrites(): Recorded[] {
    return this.requests.filter((r) => r.method !== 'GET' && r.path.startsWith(SERVICE_PATH));
  }
}

const kubeconfig = (server: string): string => `apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test
  cluster:
    server: ${server}
users:
- name: test
  user:
    token: controller-test
contexts:
- name: test
  context: { cluster: test, user: test }
`;

/** Polls `cond` every 10 ms until it holds; fails with `what` after `ms`. */
async function until(what: string, ms: number, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function reconciles(registry: Registry, outcome: string): Promise<number> {
  const m = await registry.getSingleMetric('portico_controller_reconciles_total')?.get();
  return m?.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

describe('Controller work loop (fake API server)', function () {
  this.timeout(10_000);
  let api: FakeApiServer;
  let conn: KubeConnection | undefined;
  let controller: Controller | undefined;
  let registry: Registry;
  let log: ReturnType<typeof memoryLogger>;
  let writable: boolean;

  /** Starts a Controller against the fake server as main.ts does once the Lease is won: caches synced, then lead(). */
  async function startLeading(): Promise<void> {
    const url = await api.listen();
    conn = new KubeConnection(kubeconfigTextCredentials(kubeconfig(url)));
    registry = createRegistry(false);
    log = memoryLogger(false);
    controller = new Controller({
      kc: conn, namespace: CONFIG_NS, loadBalancerClass: undefined, log, registry,
      canWrite: () => writable,
      // No resync during a test: only the work loop itself may bring a key back.
      resyncMs: 600_000,
      workers: 4,
    });
    await controller.startInformers();
    controller.lead();
  }

  beforeEach(function () {
    api = new FakeApiServer();
    conn = undefined;
    controller = undefined;
    writable = true;
  });

  afterEach(async function () {
    try {
      await controller?.stop();
    } finally {
      conn?.close();
      await api.close();
    }
  });

  const refusals = (): LogRecord[] => log.records.filter((r) => r.msg === 'service write failed' && r.service === 'demo/web');

  it('retries, with growing backoff, a Service write refused while canWrite() is false, and allocates once writes are allowed again (no lead/stop in between)', async function () {
    writable = false;
    await startLeading();
    // Three refused attempts: the first pass and two retries, all while still "leader" but unable to write.
    await until('three refused writes of demo/web', 3_000, () => refusals().length >= 3);
    assert.deepEqual(api.serviceWrites(), [], 'nothing reaches the API server while canWrite() is false');
    const times = refusals().map((r) => Date.parse(r.time));
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    assert.ok(gaps[0]! >= 150, `a backoff before the first retry, not a hot loop (gaps ${gaps.join(', ')} ms)`);
    assert.ok(gaps[1]! >= 350, `the backoff grows (gaps ${gaps.join(', ')} ms)`);
    assert.match(String((refusals()[0]!.err as Error | undefined)?.message), /not the leader/);

    writable = true;
    await until('demo/web to get an IP', 3_000, () => (api.service.status?.loadBalancer?.ingress?.length ?? 0) > 0);
    const ingress = api.service.status?.loadBalancer?.ingress ?? [];
    assert.equal(ingress.length, 1);
    assert.ok(POOL_IPS.includes(ingress[0]!.ip ?? ''), `${ingress[0]!.ip} is from pool-a`);
    assert.equal(ingress[0]!.ipMode, 'VIP');
    assert.equal(api.service.metadata.annotations?.[POOL_ANNOTATION], 'pool-a');
    // The server applies the patch before the controller reads the answer: wait for the pass to end.
    await until('the reconcile of demo/web to succeed', 3_000, async () => await reconciles(registry, 'success') >= 1);
    assert.ok(await reconciles(registry, 'retry') >= 3);
  });

  it('writes an allocation as one merge PATCH of the status subresource carrying the ingress (ipMode VIP) and the pool annotation', async function () {
    await startLeading();
    // The allocation, then the pass that follows the watch's echo of it (nothing left to write).
    await until('the allocation and the pass after its watch echo', 3_000, async () => await reconciles(registry, 'success') >= 2);
    await until('the IPAllocated Event', 3_000, () => api.requests.some((r) => r.method === 'POST' && (r.body as { reason?: string } | undefined)?.reason === 'IPAllocated'));

    const writes = api.serviceWrites();
    assert.equal(writes.length, 1, `one write to the Service, got ${writes.map((w) => `${w.method} ${w.path}`).join(', ')}`);
    const w = writes[0]!;
    assert.equal(w.method, 'PATCH');
    assert.equal(w.path, SERVICE_STATUS_PATH);
    assert.ok(w.path.endsWith('/status'));
    assert.equal(w.contentType, 'application/merge-patch+json');
    const body = w.body as { metadata?: { annotations?: Record<string, unknown> }; status?: { loadBalancer?: { ingress?: { ip?: string; ipMode?: string }[] } } };
    const ingress = body.status?.loadBalancer?.ingress ?? [];
    assert.equal(ingress.length, 1);
    assert.ok(POOL_IPS.includes(ingress[0]!.ip ?? ''), `${ingress[0]!.ip} is from pool-a`);
    assert.equal(ingress[0]!.ipMode, 'VIP');
    assert.deepEqual(body.metadata?.annotations, { [POOL_ANNOTATION]: 'pool-a' });
    // What the API server holds afterwards: both halves applied.
    assert.deepEqual(api.service.status?.loadBalancer?.ingress, ingress);
    assert.equal(api.service.metadata.annotations?.[POOL_ANNOTATION], 'pool-a');
    assert.equal(log.records.filter((r) => r.level === 'error').length, 0, 'no errors logged');
  });
});
