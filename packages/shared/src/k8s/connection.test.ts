// Portico's Kubernetes connection against local HTTPS/HTTP servers started
// here: kubeconfig and in-cluster credentials (TLS checked for real, with the
// test PKI in testdata/), token rotation, API errors, and the informer's
// list + watch (bookmarks, 410 relist, a dropped stream).
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createRegistry, createSharedMetrics } from '../metrics.ts';
import {
  KubeApiError, KubeConnection, defaultKubeconfigPaths, inClusterCredentials, kubeconfigCredentials, kubeconfigTextCredentials,
} from './connection.ts';
import { apiMessage, httpStatus, isConflict, isNotFound } from './errors.ts';
import { Informer, type EventType } from './informer.ts';
import { kubeLeaseStore, microTime } from './leader.ts';
import { listJSON } from './rest.ts';

const testdata = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');
const pem = (f: string): string => readFileSync(path.join(testdata, f), 'utf8');
const b64 = (f: string): string => Buffer.from(pem(f)).toString('base64');

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

interface TestServer { url: string; port: number; close: () => Promise<void> }

/** An HTTP(S) server on 127.0.0.1 that hands each request, with its body read, to `handler`. */
async function serve(handler: Handler, tls?: https.ServerOptions): Promise<TestServer> {
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks).toString('utf8')));
  };
  const server = tls ? https.createServer(tls, onRequest) : http.createServer(onRequest);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, port,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

const json = (res: http.ServerResponse, code: number, body: unknown): void => {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const status = (code: number, reason: string, message: string): unknown => ({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });

/** Answers who the client is: its certificate's CN (if any) and its authorization header. */
const whoami: Handler = (req, res) => {
  const peer = (req.socket as TLSSocket).getPeerCertificate?.();
  json(res, 200, { cn: peer?.subject?.CN ?? null, authorization: req.headers.authorization ?? null });
};

const tlsServerOptions: https.ServerOptions = { cert: pem('server.crt'), key: pem('server.key'), ca: pem('ca.crt'), requestCert: true, rejectUnauthorized: false };

function kubeconfig(server: string, clusterExtra: string, userExtra: string): string {
  return `apiVersion: v1
kind: Config
current-context: main
clusters:
- name: decoy
  cluster:
    server: https://203.0.113.1:6443
- name: main
  cluster:
    server: ${server}
${clusterExtra.replace(/^/gm, '    ')}
users:
- name: decoy
  user:
    token: wrong
- name: main
  user:
${userExtra.replace(/^/gm, '    ')}
contexts:
- name: other
  context: { cluster: decoy, user: decoy }
- name: main
  context: { cluster: main, user: main }
`;
}

describe('k8s connection', function () {
  this.timeout(10_000);
  let dir: string;
  beforeEach(function () { dir = mkdtempSync(path.join(os.tmpdir(), 'portico-conn-')); });
  afterEach(function () { rmSync(dir, { recursive: true, force: true }); });

  describe('kubeconfig', function () {
    let srv: TestServer;
    before(async function () { srv = await serve(whoami, tlsServerOptions); });
    after(async function () { await srv.close(); });

    it('uses the current context: CA file relative to the kubeconfig, client certificate and key as data', async function () {
      writeFileSync(path.join(dir, 'ca.pem'), pem('ca.crt'));
      const file = path.join(dir, 'config');
      writeFileSync(file, kubeconfig(srv.url, 'certificate-authority: ca.pem', `client-certificate-data: ${b64('client.crt')}\nclient-key-data: ${b64('client.key')}`));
      const conn = new KubeConnection(kubeconfigCredentials(file));
      assert.deepEqual(await conn.request('GET', '/whoami'), { cn: 'portico-test-client', authorization: null });
      conn.close();
    });

    it('sends a token; a tokenFile wins over it and is read again; client certificate and key from files', async function () {
      writeFileSync(path.join(dir, 'tok'), 'from-file\n');
      writeFileSync(path.join(dir, 'c.crt'), pem('client.crt'));
      writeFileSync(path.join(dir, 'c.key'), pem('client.key'));
      const text = kubeconfig(srv.url, `certificate-authority-data: ${b64('ca.crt')}`, 'token: literal');
      let now = 0;
      const plain = new KubeConnection(kubeconfigTextCredentials(text));
      assert.deepEqual(await plain.request('GET', '/'), { cn: null, authorization: 'Bearer literal' });
      plain.close();
      const withFile = new KubeConnection(kubeconfigTextCredentials(
        kubeconfig(srv.url, `certificate-authority-data: ${b64('ca.crt')}`, 'token: literal\ntokenFile: tok\nclient-certificate: c.crt\nclient-key: c.key'), { dir }), { now: () => now });
      assert.deepEqual(await withFile.request('GET', '/'), { cn: 'portico-test-client', authorization: 'Bearer from-file' });
      writeFileSync(path.join(dir, 'tok'), 'rotated');
      now += 30_000;
      assert.deepEqual(await withFile.request('GET', '/'), { cn: 'portico-test-client', authorization: 'Bearer rotated' });
      withFile.close();
    });

    it('checks the server certificate: unknown CA refused, insecure-skip-tls-verify accepted, tls-server-name used for the name check', async function () {
      const none = new KubeConnection(kubeconfigTextCredentials(kubeconfig(srv.url, '', 'token: t')));
      await assert.rejects(none.request('GET', '/'), /self-signed|unable to verify|local issuer/i);
      none.close();
      const insecure = new KubeConnection(kubeconfigTextCredentials(kubeconfig(srv.url, 'insecure-skip-tls-verify: true', 'token: t')));
      assert.deepEqual(await insecure.request('GET', '/'), { cn: null, authorization: 'Bearer t' });
      insecure.close();
      const ca = `certificate-authority-data: ${b64('ca.crt')}`;
      const named = new KubeConnection(kubeconfigTextCredentials(kubeconfig(srv.url.replace('127.0.0.1', 'localhost'), `${ca}\ntls-server-name: kube.test`, 'token: t')));
      assert.deepEqual(await named.request('GET', '/'), { cn: null, authorization: 'Bearer t' });
      named.close();
      const misnamed = new KubeConnection(kubeconfigTextCredentials(kubeconfig(srv.url, `${ca}\ntls-server-name: other.test`, 'token: t')));
      await assert.rejects(misnamed.request('GET', '/'), /other\.test/);
      misnamed.close();
    });

    it('refuses exec plugins and auth providers with one error naming them', function () {
      const exec = kubeconfig(srv.url, '', 'exec:\n  apiVersion: client.authentication.k8s.io/v1\n  command: aws');
      assert.throws(() => kubeconfigTextCredentials(exec), /uses user exec, which Portico does not support/);
      const provider = kubeconfig(srv.url, '', 'auth-provider:\n  name: oidc');
      assert.throws(() => kubeconfigTextCredentials(provider), /uses user auth-provider, which Portico does not support/);
      assert.throws(() => kubeconfigTextCredentials(kubeconfig(srv.url, '', 'token: t'), { context: 'missing' }), /context "missing" not found/);
      // Another context of the same file is not checked: only the one in use matters.
      assert.doesNotThrow(() => kubeconfigTextCredentials(kubeconfig(srv.url, '', 'token: t'), { context: 'other' }));
    });

    it('merges the files of KUBECONFIG: the first current-context, names found in any file', async function () {
      const a = path.join(dir, 'a');
      const b = path.join(dir, 'b');
      writeFileSync(a, 'apiVersion: v1\nkind: Config\ncurrent-context: split\ncontexts:\n- name: split\n  context: { cluster: c, user: u }\n');
      writeFileSync(b, `apiVersion: v1\nkind: Config\ncurrent-context: ignored\nclusters:\n- name: c\n  cluster:\n    server: ${srv.url}\n    certificate-authority-data: ${b64('ca.crt')}\nusers:\n- name: u\n  user:\n    token: merged\n`);
      const env = { KUBECONFIG: `${a}${path.delimiter}${b}`, HOME: dir };
      assert.deepEqual(defaultKubeconfigPaths(env), [a, b]);
      const conn = KubeConnection.load({ env });
      assert.deepEqual(await conn.request('GET', '/'), { cn: null, authorization: 'Bearer merged' });
      conn.close();
      assert.deepEqual(defaultKubeconfigPaths({ HOME: dir }), [path.join(dir, '.kube', 'config')]);
    });
  });

  describe('in cluster', function () {
    it('reads the ServiceAccount token again every refresh and at once after a 401 (a rotated token)', async function () {
      let accepted = 'first';
      const seen: string[] = [];
      const srv = await serve((req, res) => {
        seen.push(req.headers.authorization ?? '');
        if (req.headers.authorization !== `Bearer ${accepted}`) json(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
        else json(res, 200, { ok: true });
      }, tlsServerOptions);
      try {
        writeFileSync(path.join(dir, 'ca.crt'), pem('ca.crt'));
        writeFileSync(path.join(dir, 'token'), 'first\n');
        let now = 0;
        const env = { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(srv.port) };
        const conn = new KubeConnection(inClusterCredentials(env, dir), { now: () => now });
        assert.deepEqual(await conn.request('GET', '/api'), { ok: true });
        // The kubelet replaces the token; within the refresh period the old one is still sent (and still valid).
        writeFileSync(path.join(dir, 'token'), 'second\n');
        await conn.request('GET', '/api');
        now += 30_000;
        accepted = 'second';
        await conn.request('GET', '/api');
        // The API server stops accepting a token before the refresh period is over: the 401 makes it read the file again.
        writeFileSync(path.join(dir, 'token'), 'third');
        accepted = 'third';
        assert.deepEqual(await conn.request('GET', '/api'), { ok: true });
        assert.deepEqual(seen, ['Bearer first', 'Bearer first', 'Bearer second', 'Bearer second', 'Bearer third']);
        // A 401 with the same token again is the caller's to see.
        accepted = 'nobody';
        const err = await conn.request('GET', '/api').catch((e: unknown) => e);
        assert.ok(err instanceof KubeApiError && err.code === 401, String(err));
        conn.close();
        assert.throws(() => inClusterCredentials({}), /KUBERNETES_SERVICE_HOST/);
      } finally {
        await srv.close();
      }
    });
  });

  describe('HTTP/2 (the CLI)', function () {
    /** A TLS server speaking h2 and, for clients that ask for it, HTTP/1.1; counts its TLS connections. */
    async function serveH2(allowHTTP1 = true): Promise<TestServer & { connections: () => number; streams: () => number }> {
      let connections = 0;
      let streams = 0;
      const server = http2.createSecureServer({ ...tlsServerOptions, allowHTTP1 } as http2.SecureServerOptions, (req, res) => {
        streams++;
        const code = req.url === '/missing' ? 404 : 200;
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(code === 404 ? status(404, 'NotFound', 'nope') : { path: req.url, version: req.httpVersion, authorization: req.headers.authorization ?? null }));
      });
      server.on('secureConnection', () => { connections++; });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as AddressInfo).port;
      return {
        url: `https://127.0.0.1:${port}`, port, connections: () => connections, streams: () => streams,
        close: () => new Promise((resolve) => { server.close(() => resolve()); }),
      };
    }
    const text = (url: string): string => kubeconfig(url, `certificate-authority-data: ${b64('ca.crt')}`, 'token: t');

    it('sends concurrent requests as streams of one TLS connection, errors as over HTTP/1.1', async function () {
      const srv = await serveH2();
      const conn = new KubeConnection(kubeconfigTextCredentials(text(srv.url)), { http2: true });
      try {
        const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => conn.request<{ path: string; version: string; authorization: string }>('GET', `/r${i}?q=1`)));
        assert.deepEqual(answers.map((a) => a.path), Array.from({ length: 12 }, (_, i) => `/r${i}?q=1`));
        assert.deepEqual(new Set(answers.map((a) => `${a.version} ${a.authorization}`)), new Set(['2.0 Bearer t']));
        assert.equal(srv.connections(), 1);
        const missing = await conn.request('GET', '/missing').catch((e: unknown) => e);
        assert.ok(missing instanceof KubeApiError);
        assert.equal(missing.code, 404);
        assert.equal(apiMessage(missing), 'nope');
        const all = await listJSON(conn, '/list')();
        assert.equal(all.items.length, 0);
        assert.equal(srv.connections(), 1);
      } finally {
        conn.close();
        await srv.close();
      }
    });

    it('a server that offers only HTTP/1.1 gets the keep-alive agent; an unreachable one the socket error', async function () {
      const srv = await serve(whoami, tlsServerOptions);
      const conn = new KubeConnection(kubeconfigTextCredentials(text(srv.url)), { http2: true });
      try {
        assert.deepEqual(await Promise.all([conn.request('GET', '/'), conn.request('GET', '/')]), [{ cn: null, authorization: 'Bearer t' }, { cn: null, authorization: 'Bearer t' }]);
      } finally {
        conn.close();
        await srv.close();
      }
      const refused = new KubeConnection(kubeconfigTextCredentials(text(srv.url)), { http2: true });
      await assert.rejects(refused.request('GET', '/'), /ECONNREFUSED/);
      refused.close();
    });
  });

  describe('errors', function () {
    it('carry the HTTP status and the Status message for isNotFound, isConflict, apiMessage', async function () {
      const srv = await serve((req, res, body) => {
        if (req.url === '/missing') json(res, 404, status(404, 'NotFound', 'services "x" not found'));
        else if (req.method === 'POST') json(res, 409, status(409, 'AlreadyExists', `exists: ${body}`));
        else { res.writeHead(503); res.end('upstream down'); }
      });
      try {
        const conn = new KubeConnection(kubeconfigTextCredentials(kubeconfig(srv.url, '', 'token: t')));
        const notFound = await conn.request('GET', '/missing').catch((e: unknown) => e);
        assert.ok(notFound instanceof KubeApiError);
        assert.equal(isNotFound(notFound), true);
        assert.equal(httpStatus(notFound), 404);
        assert.equal(apiMessage(notFound), 'services "x" not found');
        assert.match(notFound.message, /^HTTP 404 GET \/missing: services "x" not found$/);
        const conflict = await conn.request('POST', '/things', { a: 1 }).catch((e: unknown) => e);
        assert.equal(isConflict(conflict), true);
        assert.equal(apiMessage(conflict), 'exists: {"a":1}');
        const down = await conn.request('GET', '/other').catch((e: unknown) => e);
        assert.equal(httpStatus(down), 503);
        assert.equal(apiMessage(down), 'upstream down');
        conn.close();
        // A socket error is no HTTP status.
        const refused = await new KubeConnection(kubeconfigTextCredentials(kubeconfig(srv.url.replace(/:\d+$/, ':1'), '', 'token: t'))).request('GET', '/').catch((e: unknown) => e);
        assert.equal(httpStatus(refused), undefined);
        assert.match(apiMessage(refused), /ECONNREFUSED/);
      } finally {
        await srv.close();
      }
    });
  });

  describe('Lease store', function () {
    it('writes MicroTime with six fractional digits and reads it back', async function () {
      assert.equal(microTime(new Date('2026-11-21T20:00:00.123Z')), '2026-11-21T20:00:00.123000Z');
      let stored: { metadata: { resourceVersion?: string }; spec: Record<string, unknown> } | undefined;
      const requests: string[] = [];
      const srv = await serve((req, res, body) => {
        requests.push(`${req.method} ${req.url}`);
        if (req.method === 'GET') {
          if (stored) json(res, 200, { ...stored, metadata: { ...stored.metadata, resourceVersion: '7' } });
          else json(res, 404, status(404, 'NotFound', 'leases.coordination.k8s.io "l" not found'));
        } else if (req.method === 'POST') {
          stored = JSON.parse(body) as typeof stored;
          json(res, 201, stored);
        } else if (req.method === 'PUT') {
          const b = JSON.parse(body) as NonNullable<typeof stored>;
          if (b.metadata.resourceVersion !== '7') json(res, 409, status(409, 'Conflict', 'the object has been modified'));
          else { stored = b; json(res, 200, b); }
        }
      });
      try {
        const conn = new KubeConnection(kubeconfigTextCredentials(kubeconfig(srv.url, '', 'token: t')));
        const store = kubeLeaseStore(conn, 'portico-system', 'l');
        assert.equal(await store.get(), undefined);
        const t = new Date('2026-11-21T20:00:00.5Z');
        const rec = { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: t, renewTime: t, leaseTransitions: 0 };
        assert.equal(await store.create(rec), true);
        assert.equal(stored?.spec.renewTime, '2026-11-21T20:00:00.500000Z');
        const got = await store.get();
        assert.equal(got?.version, '7');
        assert.equal(got?.record.renewTime?.getTime(), t.getTime());
        assert.equal(await store.update({ ...rec, holderIdentity: 'b' }, '6'), false);
        assert.equal(await store.update({ ...rec, holderIdentity: 'b' }, '7'), true);
        assert.equal(stored?.spec.holderIdentity, 'b');
        assert.deepEqual(requests.slice(0, 2), ['GET /apis/coordination.k8s.io/v1/namespaces/portico-system/leases/l', 'POST /apis/coordination.k8s.io/v1/namespaces/portico-system/leases']);
        conn.close();
      } finally {
        await srv.close();
      }
    });
  });

  describe('informer over a watch', function () {
    it('lists, follows bookmarks, lists again on 410 Gone, and resumes a dropped stream from the last resourceVersion', async function () {
      const obj = (name: string, rv: string): unknown => ({ metadata: { name, namespace: 'ns', resourceVersion: rv }, spec: { v: rv } });
      const lists = [
        { metadata: { resourceVersion: '10' }, items: [obj('a', '1'), obj('b', '2')] },
        { metadata: { resourceVersion: '20' }, items: [obj('a', '16'), obj('c', '11')] },
      ];
      const line = (type: string, object: unknown): string => `${JSON.stringify({ type, object })}\n`;
      const watchQueries: URLSearchParams[] = [];
      let listCalls = 0;
      let lastWatch: http.ServerResponse | undefined;
      const srv = await serve((req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        if (url.searchParams.get('watch') !== '1') {
          json(res, 200, lists[Math.min(listCalls++, lists.length - 1)]);
          return;
        }
        watchQueries.push(url.searchParams);
        res.writeHead(200, { 'content-type': 'application/json' });
        switch (watchQueries.length) {
          case 1: // a new object, then a bookmark, then the server's timeout ends the stream
            res.write(line('ADDED', obj('c', '11')));
            res.write(line('BOOKMARK', { metadata: { resourceVersion: '15' } }));
            setTimeout(() => res.end(), 20);
            break;
          case 2: // a change, then "too old": the informer must list again (one event split over two writes)
            res.write(line('MODIFIED', obj('a', '16')).slice(0, 10));
            setTimeout(() => {
              res.write(line('MODIFIED', obj('a', '16')).slice(10));
              res.end(line('ERROR', status(410, 'Expired', 'too old resource version: 15 (18)')));
            }, 20);
            break;
          case 3: // a delete, then the connection drops without ending the chunked stream
            res.write(line('DELETED', obj('c', '21')));
            setTimeout(() => res.socket?.destroy(), 50);
            break;
          default:
            lastWatch = res;
        }
      });
      try {
        const registry = createRegistry(false);
        const metrics = createSharedMetrics(registry);
        const conn = new KubeConnection(kubeconfigTextCredentials(kubeconfig(srv.url, '', 'token: t')));
        const inf = new Informer<{ metadata?: { name?: string; namespace?: string; resourceVersion?: string } }>({
          kc: conn, path: '/api/v1/things', resource: 'things', list: () => conn.request('GET', '/api/v1/things'),
          metrics, initialBackoffMs: 10, plain: true, watchTimeoutSeconds: 100,
        });
        const events: string[] = [];
        inf.on((type: EventType, o) => events.push(`${type} ${o.metadata?.name} ${o.metadata?.resourceVersion}`));
        await inf.start();
        const deadline = Date.now() + 5_000;
        while (watchQueries.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        await inf.stop();
        assert.deepEqual(events, ['add a 1', 'add b 2', 'add c 11', 'update a 16', 'delete b 2', 'delete c 21']);
        assert.deepEqual(watchQueries.map((q) => q.get('resourceVersion')), ['10', '15', '20', '21'], 'bookmark followed, relist after 410, resumed after the drop');
        assert.ok(watchQueries.every((q) => q.get('allowWatchBookmarks') === 'true' && q.get('timeoutSeconds') === '100'));
        assert.equal(listCalls, 2, 'one list at start, one after 410; none after the dropped stream');
        assert.deepEqual(inf.list().map((o) => o.metadata?.name), ['a']);
        assert.equal(inf.get('a', 'ns')?.metadata?.resourceVersion, '16');
        assert.equal(inf.get('c', 'ns'), undefined);
        const restarts = (await metrics.informerRestarts.get()).values.find((v) => v.labels.resource === 'things')?.value;
        assert.equal(restarts, 1, 'only the dropped stream counts as a restart (410 Gone is routine)');
        const deletes = (await metrics.informerEvents.get()).values.find((v) => v.labels.type === 'delete')?.value;
        assert.equal(deletes, 2);
        assert.ok(lastWatch?.destroyed || lastWatch?.writableEnded === false, 'the last watch was open until stop');
        conn.close();
      } finally {
        await srv.close();
      }
    });

    it('lists in pages with the continue token, trimming each object as its page arrives, and keeps the snapshot\'s resourceVersion', async function () {
      const queries: URLSearchParams[] = [];
      const all = Array.from({ length: 5 }, (_, i) => ({ metadata: { name: `s${i}`, namespace: 'ns', resourceVersion: String(i + 1), managedFields: [{ manager: 'm' }] } }));
      const srv = await serve((req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        queries.push(url.searchParams);
        const limit = Number(url.searchParams.get('limit'));
        const from = Number(url.searchParams.get('continue') ?? '0');
        const next = from + limit < all.length ? String(from + limit) : undefined;
        json(res, 200, { metadata: { resourceVersion: '42', ...(next ? { continue: next } : {}) }, items: all.slice(from, from + limit) });
      });
      try {
        const conn = new KubeConnection(kubeconfigTextCredentials(kubeconfig(srv.url, '', 'token: t')));
        const seen: number[] = [];
        const list = listJSON(conn, '/api/v1/services', { pageSize: 2, trim: (o: { metadata: Record<string, unknown> }) => { seen.push(queries.length); delete o.metadata.managedFields; } });
        const r = await list();
        assert.deepEqual(queries.map((q) => [q.get('limit'), q.get('continue')]), [['2', null], ['2', '2'], ['2', '4']]);
        assert.deepEqual((r.items as { metadata: { name: string } }[]).map((o) => o.metadata.name), ['s0', 's1', 's2', 's3', 's4']);
        assert.deepEqual(seen, [1, 1, 2, 2, 3], 'each object is trimmed when its page arrives');
        assert.ok((r.items as { metadata: Record<string, unknown> }[]).every((o) => !('managedFields' in o.metadata)));
        assert.equal(r.metadata?.resourceVersion, '42');
        conn.close();
      } finally {
        await srv.close();
      }
    });

    it('restarts with backoff while the list fails, and is synced once it succeeds', async function () {
      let failures = 3;
      const srv = await serve((req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        if (url.searchParams.get('watch') === '1') { res.writeHead(200); return; }
        if (failures-- > 0) json(res, 500, status(500, 'InternalError', 'etcd unavailable'));
        else json(res, 200, { metadata: { resourceVersion: '5' }, items: [{ metadata: { name: 'n1', resourceVersion: '5' } }] });
      });
      try {
        const registry = createRegistry(false);
        const metrics = createSharedMetrics(registry);
        const conn = new KubeConnection(kubeconfigTextCredentials(kubeconfig(srv.url, '', 'token: t')));
        const inf = new Informer({ kc: conn, path: '/api/v1/nodes', resource: 'nodes', list: () => conn.request('GET', '/api/v1/nodes'), metrics, initialBackoffMs: 5 });
        assert.equal(inf.hasSynced, false);
        await inf.start();
        assert.equal(inf.hasSynced, true);
        assert.deepEqual(inf.list().map((o) => o.metadata?.name), ['n1']);
        assert.equal(inf.get('n1')?.metadata?.name, 'n1', 'cluster-scoped objects are found by name alone');
        const restarts = (await metrics.informerRestarts.get()).values[0]?.value;
        assert.equal(restarts, 3);
        await inf.stop();
        conn.close();
      } finally {
        await srv.close();
      }
    });
  });
});
