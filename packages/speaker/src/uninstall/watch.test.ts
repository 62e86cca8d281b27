// Telling an uninstall from a restart: the pure decision (a table), then the
// watches and reads of InstallWatch against a small HTTP server standing in
// for the API server, in the orders real uninstalls happen (kubectl delete -f:
// the namespace first, the speaker's rights gone before its pods stop; helm:
// the DaemonSet first).
import { strict as assert } from 'node:assert';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConnection, kubeconfigTextCredentials, memoryLogger } from '@portico/shared';
import { decideStop, objectState, type InstallFacts, type StopCause } from './decide.ts';
import { InstallWatch } from './watch.ts';

describe('uninstall or restart', () => {
  describe('decideStop', () => {
    const cases: [InstallFacts, 'leave' | 'restart', StopCause][] = [
      [{ daemonSet: 'present', namespace: 'present' }, 'restart', 'installed'],
      [{ daemonSet: 'present', namespace: 'deleting' }, 'leave', 'namespace-deleting'],
      [{ daemonSet: 'unknown', namespace: 'deleting' }, 'leave', 'namespace-deleting'],
      [{ daemonSet: 'deleting', namespace: 'present' }, 'leave', 'daemonset-deleting'],
      [{ daemonSet: 'gone', namespace: 'present' }, 'leave', 'daemonset-gone'],
      [{ daemonSet: 'gone', namespace: 'unknown' }, 'leave', 'daemonset-gone'],
      [{ daemonSet: 'present', namespace: 'unknown' }, 'restart', 'unknown'],
      [{ daemonSet: 'unknown', namespace: 'unknown' }, 'restart', 'unknown'],
    ];
    for (const [facts, reason, cause] of cases) {
      it(`DaemonSet ${facts.daemonSet}, namespace ${facts.namespace}: ${reason} (${cause})`, () => {
        assert.deepEqual(decideStop(facts), { reason, cause });
      });
    }

    it('objectState: absent is gone, a deletionTimestamp is deleting', () => {
      assert.equal(objectState(undefined), 'gone');
      assert.equal(objectState({ metadata: {} }), 'present');
      assert.equal(objectState({ metadata: { deletionTimestamp: '2026-12-07T12:00:00Z' } }), 'deleting');
    });
  });

  describe('InstallWatch against an API server', function () {
    this.timeout(10_000);
    type Obj = { metadata: { name: string; namespace?: string; resourceVersion: string; deletionTimestamp?: string } };
    let server: http.Server;
    let url = '';
    /** What the fake API server holds; undefined: not found. */
    let ds: Obj | undefined;
    let ns: Obj | undefined;
    /** Status answered to GETs of single objects (200: the object), as when the speaker's rights are gone. */
    let getStatus = 200;
    let hangGets = false;
    const watches = new Map<string, http.ServerResponse[]>();
    const seen: string[] = [];

    const send = (which: 'daemonsets' | 'namespaces', type: 'MODIFIED' | 'DELETED', o: Obj): void => {
      for (const res of watches.get(which) ?? []) res.write(`${JSON.stringify({ type, object: o })}\n`);
    };

    beforeEach(async () => {
      ds = { metadata: { name: 'portico-speaker', namespace: 'portico-system', resourceVersion: '5' } };
      ns = { metadata: { name: 'portico-system', resourceVersion: '3' } };
      getStatus = 200;
      hangGets = false;
      watches.clear();
      seen.length = 0;
      server = http.createServer((req, res) => {
        const u = new URL(req.url ?? '/', 'http://x');
        const which = u.pathname.includes('/daemonsets') ? 'daemonsets' : 'namespaces';
        const obj = which === 'daemonsets' ? ds : ns;
        const single = /\/(daemonsets|namespaces)\/[^/]+$/.test(u.pathname);
        seen.push(`${single ? 'get' : u.searchParams.get('watch') ? 'watch' : 'list'} ${which} ${u.searchParams.get('fieldSelector') ?? ''}`.trim());
        if (u.searchParams.get('watch') === '1') {
          res.writeHead(200, { 'content-type': 'application/json' });
          watches.set(which, [...(watches.get(which) ?? []), res]);
          return;
        }
        if (single) {
          if (hangGets) return;
          const code = getStatus !== 200 ? getStatus : obj ? 200 : 404;
          res.writeHead(code, { 'content-type': 'application/json' });
          res.end(JSON.stringify(code === 200 ? obj : { kind: 'Status', code }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ metadata: { resourceVersion: '10' }, items: obj ? [obj] : [] }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterEach(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    const connect = (): KubeConnection => new KubeConnection(kubeconfigTextCredentials(`apiVersion: v1
kind: Config
current-context: c
clusters: [{ name: c, cluster: { server: '${url}' } }]
users: [{ name: u, user: { token: t } }]
contexts: [{ name: c, context: { cluster: c, user: u } }]
`));

    async function started(daemonSet = 'portico-speaker'): Promise<{ w: InstallWatch; log: ReturnType<typeof memoryLogger> }> {
      const log = memoryLogger();
      const w = new InstallWatch({ kc: connect(), namespace: 'portico-system', daemonSet, log });
      w.start();
      await w.synced();
      const until = Date.now() + 5000;
      while ((watches.get('daemonsets')?.length ?? 0) + (watches.get('namespaces')?.length ?? 0) < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      return { w, log };
    }

    /** Waits until the watches have delivered what was sent (the informer applies events as they arrive). */
    async function until(w: InstallWatch, ok: (f: InstallFacts) => boolean): Promise<void> {
      const end = Date.now() + 5000;
      while (!ok(w.facts())) {
        if (Date.now() > end) throw new Error(`facts stayed ${JSON.stringify(w.facts())}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    }

    it('a restart: both there, fresh reads agree; lists and watches ask by name (what RBAC resourceNames allow)', async () => {
      const { w } = await started();
      assert.deepEqual(await w.decide(), { reason: 'restart', cause: 'installed', daemonSet: 'present', namespace: 'present' });
      assert.ok(seen.includes('list daemonsets metadata.name=portico-speaker') && seen.includes('watch daemonsets metadata.name=portico-speaker'), seen.join(', '));
      assert.ok(seen.includes('list namespaces metadata.name=portico-system') && seen.includes('watch namespaces metadata.name=portico-system'), seen.join(', '));
      assert.ok(seen.includes('get daemonsets') && seen.includes('get namespaces'));
      await w.stop();
    });

    it('kubectl delete -f: the namespace marked for deletion is seen by the watch while the reads are refused (401: the ServiceAccount is gone)', async () => {
      const { w } = await started();
      ns = { metadata: { ...ns!.metadata, resourceVersion: '11', deletionTimestamp: '2026-12-07T12:00:00Z' } };
      send('namespaces', 'MODIFIED', ns);
      getStatus = 401;
      await until(w, (f) => f.namespace === 'deleting');
      const d = await w.decide();
      assert.equal(d.reason, 'leave');
      assert.equal(d.cause, 'namespace-deleting');
      assert.equal(d.daemonSet, 'present', 'the DaemonSet still stands: the namespace controller deletes pods first');
      await w.stop();
    });

    it('helm uninstall: the DaemonSet deleted is seen by the watch while the reads are refused (403: the Role is gone)', async () => {
      const { w } = await started();
      const last = { metadata: { ...ds!.metadata, resourceVersion: '12' } };
      ds = undefined;
      send('daemonsets', 'DELETED', last);
      getStatus = 403;
      await until(w, (f) => f.daemonSet === 'gone');
      assert.deepEqual(await w.decide(), { reason: 'leave', cause: 'daemonset-gone', daemonSet: 'gone', namespace: 'present' });
      await w.stop();
    });

    it('a watch that lags: a fresh read answering 404 for a DaemonSet seen before is an uninstall', async () => {
      const { w } = await started();
      ds = undefined;
      assert.deepEqual(await w.decide(), { reason: 'leave', cause: 'daemonset-gone', daemonSet: 'gone', namespace: 'present' });
      await w.stop();
    });

    it('a DaemonSet never seen (a wrong --daemonset, a speaker run by hand) is not an uninstall: every stop is a restart, and the start says so', async () => {
      ds = undefined;
      const { w, log } = await started('not-this-one');
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(await w.decide(), { reason: 'restart', cause: 'unknown', daemonSet: 'unknown', namespace: 'present' });
      assert.ok(log.records.some((r) => r.msg.startsWith('cannot check for an uninstall') && r.name === 'not-this-one'), 'logged at start');
      await w.stop();
    });

    it('reads that do not answer are cut at the bound; the watches\' view (a restart) stands', async () => {
      const { w } = await started();
      hangGets = true;
      const t0 = Date.now();
      const d = await w.decide(200);
      assert.equal(d.reason, 'restart');
      assert.equal(d.cause, 'installed');
      assert.ok(Date.now() - t0 < 3000, `decided in ${Date.now() - t0} ms`);
      await w.stop();
    });

    it('--daemonset= (empty) checks nothing and asks nothing', async () => {
      const w = new InstallWatch({ kc: connect(), namespace: 'portico-system', daemonSet: '', log: memoryLogger() });
      w.start();
      assert.deepEqual(await w.decide(), { reason: 'restart', cause: 'not-checked', daemonSet: 'unknown', namespace: 'unknown' });
      assert.deepEqual(seen, []);
      await w.stop();
    });
  });
});
