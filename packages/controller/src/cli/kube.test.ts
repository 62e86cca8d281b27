// Where `portico status` finds its credentials (as client-node's
// loadFromDefault did), against kubeconfig files written here and a local
// HTTP server that says who called; an exec plugin goes through client-node.
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chooseKubeconfig, cliConnection } from './kube.ts';

const kubeconfig = (server: string, user: string, cluster = ''): string =>
  `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${server}"${cluster}}}]\nusers: [{name: u, user: ${user}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`;

describe('portico status: finding the kubeconfig', function () {
  let dir: string;
  let server: http.Server;
  let url: string;
  beforeEach(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'portico-cli-kube-'));
    server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ authorization: req.headers.authorization ?? null }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async function () {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const file = (name: string, text: string): string => {
    const f = path.join(dir, name);
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, text);
    return f;
  };
  const noSA = path.join('/nonexistent', 'serviceaccount');

  it('--kubeconfig, else KUBECONFIG (missing files skipped), else ~/.kube/config, else in-cluster, else an error saying where it looked', function () {
    const home = path.join(dir, 'home');
    const flag = file('flag', '');
    const a = file('a', '');
    const cfg = file('home/.kube/config', '');
    const sa = path.join(dir, 'sa');
    file('sa/token', 't');
    const env = (e: Record<string, string>): NodeJS.ProcessEnv => ({ HOME: home, ...e });
    assert.deepEqual(chooseKubeconfig({ kubeconfig: flag, env: env({ KUBECONFIG: a }) }), { from: 'flag', files: [flag] });
    assert.deepEqual(chooseKubeconfig({ env: env({ KUBECONFIG: `${path.join(dir, 'missing')}:${a}` }) }), { from: 'env', files: [a] });
    assert.throws(() => chooseKubeconfig({ env: env({ KUBECONFIG: path.join(dir, 'missing') }) }), /KUBECONFIG names no file that exists/);
    assert.deepEqual(chooseKubeconfig({ env: env({}), serviceAccountDir: sa }), { from: 'home', files: [cfg] });
    rmSync(cfg);
    assert.deepEqual(chooseKubeconfig({ env: env({}), serviceAccountDir: sa }), { from: 'in-cluster' });
    assert.throws(() => chooseKubeconfig({ env: env({}), serviceAccountDir: noSA }),
      new RegExp(`^Error: no kubeconfig: pass --kubeconfig FILE, set KUBECONFIG, or create ${path.join(home, '.kube', 'config')} \\(and no ServiceAccount token is mounted`));
  });

  it('a token (literal or file) or basic auth is sent as the kubeconfig says, without client-node', async function () {
    file('token', 'from-file\n');
    const cases: [string, string][] = [
      ['{token: literal}', 'Bearer literal'],
      ['{tokenFile: token}', 'Bearer from-file'],
      ['{username: jane, password: pw}', `Basic ${Buffer.from('jane:pw').toString('base64')}`],
    ];
    for (const [user, want] of cases) {
      const conn = await cliConnection({ kubeconfig: file('kc', kubeconfig(url, user)), env: {} });
      try {
        assert.deepEqual(await conn.request('GET', '/version'), { authorization: want }, user);
      } finally {
        conn.close();
      }
    }
  });

  it('in-cluster: the ServiceAccount token, the server from KUBERNETES_SERVICE_HOST/PORT', async function () {
    const sa = path.join(dir, 'sa');
    file('sa/token', 'sa-token');
    file('sa/ca.crt', '');
    const conn = await cliConnection({ env: { HOME: path.join(dir, 'nohome'), KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '6443' }, serviceAccountDir: sa });
    try {
      assert.equal((await conn.server()).href, 'https://127.0.0.1:6443/');
    } finally {
      conn.close();
    }
  });

  it('an exec plugin runs through client-node (loaded only for it); impersonation is refused by name', async function () {
    const cred = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } });
    const plugin = file('plugin.cjs', `process.stdout.write(${JSON.stringify(cred)});\n`);
    const exec = `{exec: {apiVersion: client.authentication.k8s.io/v1, command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(plugin)}], interactiveMode: Never}}`;
    // (client-node wants insecure-skip-tls-verify to speak plain HTTP to the test server.)
    const conn = await cliConnection({ kubeconfig: file('exec', kubeconfig(url, exec, ', insecure-skip-tls-verify: true')), env: {} });
    try {
      assert.deepEqual(await conn.request('GET', '/version'), { authorization: 'Bearer from-exec' });
    } finally {
      conn.close();
    }
    await assert.rejects(cliConnection({ kubeconfig: file('as', kubeconfig(url, '{token: t, as: admin}')), env: {} }), /uses user as, which Portico does not support/);
  });
});
