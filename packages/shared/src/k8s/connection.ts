// The controller's own way to the API server: credentials from the Pod's
// ServiceAccount or a kubeconfig file, JSON requests and streaming watches,
// all over one keep-alive agent. It exists so that the controller process
// never loads @kubernetes/client-node (about 87 MB of generated models and
// serializers, most of its peak RSS). The speaker still builds a client-node
// KubeConfig for its other uses; kubeConnection() turns one into a
// KubeConnection so the shared modules take either.
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type * as k8s from '@kubernetes/client-node';
import { parse as parseYAML } from 'yaml';

// node:http through getBuiltinModule, not `import http from 'node:http'`: an ESM
// import of node:http copies every export into its namespace, which runs the
// lazy getters of its WebSocket/EventSource-style exports and so loads undici:
// about 14 MB of RSS and 0.1-0.8 s of start-up (most of `portico status` at
// load), none of it used here. node:https and node:http2 have no such getters.
const { Agent: HttpAgent, request: httpRequest } = process.getBuiltinModule('node:http');

/**
 * A status outside 2xx. `code` is the HTTP status and `body` the response
 * text (usually a JSON Status), the same two fields client-node's
 * ApiException carries, so errors.ts reads both alike.
 */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  readonly code: number;
  readonly body: string;
  readonly headers: Record<string, string>;

  constructor(code: number, message: string, body: string, headers: Record<string, string> = {}) {
    super(message);
    this.code = code;
    this.body = body;
    this.headers = headers;
  }
}

/**
 * A kubeconfig whose context uses something kubeconfigCredentials cannot act
 * on. `fields` names them (`user exec`, `cluster proxy-url`), so a caller that
 * can fall back (the CLI, to client-node for exec plugins) knows when to.
 */
export class KubeconfigUnsupportedError extends Error {
  override readonly name = 'KubeconfigUnsupportedError';
  readonly code = 'PORTICO_KUBECONFIG_UNSUPPORTED';
  readonly fields: readonly string[];

  constructor(message: string, fields: readonly string[]) {
    super(message);
    this.fields = fields;
  }
}

/** What one request needs: where, which TLS material, which headers. Read again on every refresh. */
export interface Credentials {
  server: URL;
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** false for insecure-skip-tls-verify. */
  rejectUnauthorized?: boolean;
  /** tls-server-name: the name the server's certificate is checked against. */
  servername?: string;
  /** authorization and anything else sent with every request. */
  headers: Record<string, string>;
}

export type CredentialSource = () => Credentials | Promise<Credentials>;

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * In-cluster: the API server from KUBERNETES_SERVICE_HOST/PORT, the
 * ServiceAccount's token and CA from `dir`. Both files are read on every call:
 * bound tokens are rotated by the kubelet (every hour or so) and the Pod keeps
 * running with the file replaced under it.
 */
export function inClusterCredentials(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): CredentialSource {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new Error('not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set');
  const server = new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`);
  return () => ({
    server,
    ca: readFileSync(path.join(dir, 'ca.crt')),
    headers: { authorization: `Bearer ${readFileSync(path.join(dir, 'token'), 'utf8').trim()}` },
  });
}

type Entry<T> = { name?: unknown } & Record<string, unknown> & { [K in 'cluster' | 'user' | 'context']?: T };

interface KubeconfigFile {
  dir: string;
  doc: {
    'current-context'?: unknown;
    clusters?: Entry<Record<string, unknown>>[];
    users?: Entry<Record<string, unknown>>[];
    contexts?: Entry<Record<string, unknown>>[];
  };
}

/** The kubeconfig files to read: KUBECONFIG (a colon-separated list) or ~/.kube/config. */
export function defaultKubeconfigPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const list = (env.KUBECONFIG ?? '').split(path.delimiter).filter((p) => p !== '');
  return list.length > 0 ? list : [path.join(env.HOME ?? os.homedir(), '.kube', 'config')];
}

/** Fields of a kubeconfig user Portico cannot act on; named in the error. */
const UNSUPPORTED_USER = ['exec', 'auth-provider', 'as', 'as-groups', 'as-uid', 'as-user-extra'] as const;
const UNSUPPORTED_CLUSTER = ['proxy-url'] as const;

/**
 * A kubeconfig's current context (or `context`): cluster server,
 * certificate-authority(-data), insecure-skip-tls-verify, tls-server-name;
 * user token, tokenFile, client-certificate(-data) and client-key(-data),
 * username/password. Several files merge as kubectl merges them: the first to
 * name a cluster, user or context wins, and the first current-context set.
 * Exec plugins, auth providers, impersonation and proxies throw one error that
 * names the field. Relative paths are relative to the file that holds them;
 * files the config points at are read on every call, so a rotated token file
 * or certificate is picked up.
 */
export function kubeconfigCredentials(files: string | string[], opts: { context?: string } = {}): CredentialSource {
  const docs: KubeconfigFile[] = (Array.isArray(files) ? files : [files]).map((f) => {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (err) {
      throw new Error(`kubeconfig ${f}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const doc = (parseYAML(text) ?? {}) as KubeconfigFile['doc'];
    if (typeof doc !== 'object') throw new Error(`kubeconfig ${f}: not a YAML mapping`);
    return { dir: path.dirname(path.resolve(f)), doc };
  });
  return kubeconfigFromDocs(docs, opts.context, String(files));
}

/** The same from kubeconfig text already read (tests, a config from an environment variable). */
export function kubeconfigTextCredentials(text: string, opts: { context?: string; dir?: string } = {}): CredentialSource {
  const doc = (parseYAML(text) ?? {}) as KubeconfigFile['doc'];
  return kubeconfigFromDocs([{ dir: opts.dir ?? process.cwd(), doc }], opts.context, 'kubeconfig');
}

function kubeconfigFromDocs(docs: KubeconfigFile[], wanted: string | undefined, what: string): CredentialSource {
  const find = (kind: 'clusters' | 'users' | 'contexts', name: string): { value: Record<string, unknown>; dir: string } | undefined => {
    const field = kind.slice(0, -1) as 'cluster' | 'user' | 'context';
    for (const d of docs) {
      const e = (d.doc[kind] ?? []).find((x) => x.name === name);
      if (e) return { value: e[field] ?? {}, dir: d.dir };
    }
    return undefined;
  };
  const current = wanted ?? docs.map((d) => d.doc['current-context']).find((c): c is string => typeof c === 'string' && c !== '');
  if (!current) throw new Error(`${what}: no current-context`);
  const context = find('contexts', current);
  if (!context) throw new Error(`${what}: context ${JSON.stringify(current)} not found`);
  const clusterName = str(context.value.cluster);
  const userName = str(context.value.user);
  const cluster = clusterName === undefined ? undefined : find('clusters', clusterName);
  if (!cluster) throw new Error(`${what}: context ${JSON.stringify(current)} names no known cluster (${JSON.stringify(clusterName ?? null)})`);
  const user = userName === undefined ? { value: {}, dir: cluster.dir } : find('users', userName);
  if (!user) throw new Error(`${what}: user ${JSON.stringify(userName)} of context ${JSON.stringify(current)} not found`);

  const unsupported = [
    ...UNSUPPORTED_USER.filter((f) => user.value[f] !== undefined).map((f) => `user ${f}`),
    ...UNSUPPORTED_CLUSTER.filter((f) => cluster.value[f] !== undefined).map((f) => `cluster ${f}`),
  ];
  if (unsupported.length > 0) {
    throw new KubeconfigUnsupportedError(`${what}: context ${JSON.stringify(current)} uses ${unsupported.join(', ')}, which Portico does not support; give it a token, token file or client certificate (or run it in the cluster with its ServiceAccount)`, unsupported);
  }
  const serverText = str(cluster.value.server);
  if (!serverText) throw new Error(`${what}: cluster ${JSON.stringify(clusterName)} has no server`);
  const server = new URL(serverText);

  // data fields are base64 PEM; file fields are paths relative to their kubeconfig.
  const material = (src: { value: Record<string, unknown>; dir: string }, dataField: string, fileField: string): Buffer | undefined => {
    const data = str(src.value[dataField]);
    if (data) return Buffer.from(data, 'base64');
    const file = str(src.value[fileField]);
    return file ? readFileSync(path.resolve(src.dir, file)) : undefined;
  };
  const insecure = cluster.value['insecure-skip-tls-verify'] === true;
  const servername = str(cluster.value['tls-server-name']);
  const token = str(user.value.token);
  const tokenFile = str(user.value.tokenFile);
  const username = str(user.value.username);
  const password = str(user.value.password);

  return () => {
    const headers: Record<string, string> = {};
    // As client-go: a token file, when set, is read again and wins over a literal token.
    const bearer = tokenFile ? readFileSync(path.resolve(user.dir, tokenFile), 'utf8').trim() : token;
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    else if (username !== undefined) headers.authorization = `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}`;
    const ca = material(cluster, 'certificate-authority-data', 'certificate-authority');
    const cert = material(user, 'client-certificate-data', 'client-certificate');
    const key = material(user, 'client-key-data', 'client-key');
    return {
      server, headers,
      ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}),
      ...(insecure ? { rejectUnauthorized: false } : {}),
      ...(servername ? { servername } : {}),
    };
  };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * Credentials from a client-node KubeConfig (the speaker's), through its own
 * applyToHTTPSOptions, so every authentication it knows (exec plugins
 * included) keeps working. Type-only import: nothing here loads client-node.
 */
export function kubeConfigCredentials(kc: k8s.KubeConfig): CredentialSource {
  return async () => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const opts: https.RequestOptions & { headers?: Record<string, unknown> } = {};
    await kc.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = String(v);
    if (opts.auth) headers.authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    return {
      server: new URL(cluster.server), headers,
      ...(opts.ca ? { ca: opts.ca as string | Buffer } : {}), ...(opts.cert ? { cert: opts.cert as string | Buffer } : {}),
      ...(opts.key ? { key: opts.key as string | Buffer } : {}),
      ...(opts.rejectUnauthorized !== undefined ? { rejectUnauthorized: opts.rejectUnauthorized } : {}),
      ...(opts.servername ? { servername: opts.servername } : {}),
    };
  };
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
  object: Record<string, unknown>;
}

export interface WatchOptions {
  /** Query parameters besides watch=1 (resourceVersion, allowWatchBookmarks, labelSelector, timeoutSeconds). */
  query?: Record<string, string | undefined>;
  signal?: AbortSignal;
  /** The stream is cut when nothing (not even a bookmark) arrived for this long; the watch then ends normally. */
  idleTimeoutMs?: number;
  /** Called once the server answered 200, before the first event. */
  onConnect?: () => void;
}

export interface ConnectionOptions {
  /** Credentials are read again when older than this (token rotation). Default 30 s. */
  refreshMs?: number;
  /**
   * Sockets to the API server. Watches hold one each for as long as they
   * run (the controller has 9), requests share the rest.
   */
  maxSockets?: number;
  /** A request with no answer for this long fails. Default 60 s. */
  requestTimeoutMs?: number;
  /**
   * request() over HTTP/2 when the server offers it (ALPN; the API server
   * does): concurrent requests are streams of one TCP and TLS connection
   * instead of one socket and handshake each. A server that answers
   * http/1.1 gets the keep-alive agent. Watches always use HTTP/1.1. The CLI
   * sets it (its GETs go out at once); default false.
   */
  http2?: boolean;
  now?: () => number;
}

interface Transport {
  creds: Credentials;
  agent: http.Agent;
  at: number;
}

const sameTls = (a: Credentials, b: Credentials): boolean =>
  a.server.href === b.server.href && a.rejectUnauthorized === b.rejectUnauthorized && a.servername === b.servername
  && same(a.ca, b.ca) && same(a.cert, b.cert) && same(a.key, b.key);
const same = (a: string | Buffer | undefined, b: string | Buffer | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b)));

export class KubeConnection {
  private readonly o: Required<ConnectionOptions>;
  private current: Transport | undefined;
  private pending: Promise<Transport> | undefined;
  private closed = false;
  private readonly source: CredentialSource;
  /** The HTTP/2 session (undefined inside: the server has no h2), for the agent (= TLS material) it was made with. */
  private h2: { agent: http.Agent; session: Promise<http2.ClientHttp2Session | undefined> } | undefined;

  constructor(source: CredentialSource, opts: ConnectionOptions = {}) {
    this.source = source;
    this.o = { refreshMs: 30_000, maxSockets: 32, requestTimeoutMs: 60_000, http2: false, now: () => Date.now(), ...opts };
  }

  /**
   * As the controller and kubectl decide: an explicit kubeconfig file; else
   * in-cluster when KUBERNETES_SERVICE_HOST is set; else KUBECONFIG or
   * ~/.kube/config.
   */
  static load(opts: { kubeconfig?: string | undefined; context?: string; env?: NodeJS.ProcessEnv } & ConnectionOptions = {}): KubeConnection {
    const { kubeconfig, context, env = process.env, ...rest } = opts;
    const ctx = context === undefined ? {} : { context };
    const source = kubeconfig ? kubeconfigCredentials(kubeconfig, ctx)
      : env.KUBERNETES_SERVICE_HOST ? inClusterCredentials(env)
        : kubeconfigCredentials(defaultKubeconfigPaths(env), ctx);
    return new KubeConnection(source, rest);
  }

  /** The API server's address (for logs). */
  async server(): Promise<URL> {
    return (await this.transport()).creds.server;
  }

  /** Reads the credentials again on the next request (after a 401: a rotated token). */
  invalidate(): void {
    if (this.current) this.current.at = -Infinity;
  }

  /** Closes idle sockets; requests after this fail. */
  close(): void {
    this.closed = true;
    this.current?.agent.destroy();
    this.h2?.session.then((sess) => sess?.close(), () => undefined);
    this.h2 = undefined;
  }

  /**
   * The HTTP/2 session for `t`: one TLS connection offering h2 and
   * http/1.1; undefined when the server picks http/1.1. A session that
   * fails or closes is forgotten, and the next request opens another.
   */
  private session(t: Transport): Promise<http2.ClientHttp2Session | undefined> {
    if (this.h2?.agent === t.agent) return this.h2.session;
    this.h2?.session.then((sess) => sess?.close(), () => undefined);
    const c = t.creds;
    const host = c.server.hostname.replace(/^\[(.*)\]$/, '$1');
    const forget = (): void => { if (this.h2?.session === p) this.h2 = undefined; };
    const p = new Promise<http2.ClientHttp2Session | undefined>((resolve, reject) => {
      const socket = tls.connect({
        host, port: Number(c.server.port || 443), ALPNProtocols: ['h2', 'http/1.1'],
        ...(c.ca ? { ca: c.ca } : {}), ...(c.cert ? { cert: c.cert } : {}), ...(c.key ? { key: c.key } : {}),
        ...(c.rejectUnauthorized !== undefined ? { rejectUnauthorized: c.rejectUnauthorized } : {}),
        ...(c.servername ? { servername: c.servername } : isIP(host) ? {} : { servername: host }),
      });
      socket.once('error', reject);
      socket.once('secureConnect', () => {
        socket.off('error', reject);
        if (socket.alpnProtocol !== 'h2') {
          socket.destroy();
          resolve(undefined);
          return;
        }
        const sess = http2.connect(c.server, { createConnection: () => socket });
        sess.on('error', forget); // the streams in flight fail with it
        sess.on('close', forget);
        resolve(sess);
      });
    });
    p.catch(forget);
    this.h2 = { agent: t.agent, session: p };
    return p;
  }

  private async transport(): Promise<Transport> {
    if (this.closed) throw new Error('Kubernetes connection closed');
    const cur = this.current;
    if (cur && this.o.now() - cur.at < this.o.refreshMs) return cur;
    this.pending ??= (async () => {
      try {
        const creds = await this.source();
        const prev = this.current;
        const keep = prev && sameTls(prev.creds, creds);
        if (prev && !keep) prev.agent.destroy();
        const agent = keep ? prev.agent : this.makeAgent(creds);
        this.current = { creds, agent, at: this.o.now() };
        return this.current;
      } finally {
        this.pending = undefined;
      }
    })();
    return this.pending;
  }

  private makeAgent(c: Credentials): http.Agent {
    const common = { keepAlive: true, maxSockets: this.o.maxSockets };
    if (c.server.protocol === 'http:') return new HttpAgent(common);
    return new https.Agent({
      ...common,
      ...(c.ca ? { ca: c.ca } : {}), ...(c.cert ? { cert: c.cert } : {}), ...(c.key ? { key: c.key } : {}),
      ...(c.rejectUnauthorized !== undefined ? { rejectUnauthorized: c.rejectUnauthorized } : {}),
      ...(c.servername ? { servername: c.servername } : {}),
    });
  }

  private open(t: Transport, method: string, url: URL, headers: Record<string, string>): http.ClientRequest {
    const request = url.protocol === 'https:' ? https.request : httpRequest;
    return request(url, { method, agent: t.agent, headers: { ...t.creds.headers, ...headers } });
  }

  /**
   * One request, JSON in and out (`body` undefined: none). A status outside
   * 2xx throws KubeApiError. A 401 reads the credentials again and, when they
   * changed (a rotated token), sends the request once more.
   */
  async request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const t = await this.transport();
    try {
      return await this.once<T>(t, method, path, payload, contentType);
    } catch (err) {
      if (!(err instanceof KubeApiError) || err.code !== 401) throw err;
      this.invalidate();
      const fresh = await this.transport();
      if (fresh.creds.headers.authorization === t.creds.headers.authorization && fresh.agent === t.agent) throw err;
      return this.once<T>(fresh, method, path, payload, contentType);
    }
  }

  private async once<T>(t: Transport, method: string, path: string, payload: Buffer | undefined, contentType: string): Promise<T> {
    const url = new URL(path, t.creds.server);
    const sess = this.o.http2 && url.protocol === 'https:' ? await this.session(t) : undefined;
    if (sess) return this.onceH2<T>(sess, t, method, url, payload, contentType);
    return new Promise<T>((resolve, reject) => {
      const req = this.open(t, method, url, {
        accept: 'application/json',
        ...(payload ? { 'content-type': contentType, 'content-length': String(payload.length) } : {}),
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => settle(res.statusCode ?? 0, res.headers, chunks, method, url, resolve, reject));
      });
      req.setTimeout(this.o.requestTimeoutMs, () => req.destroy(new Error(`${method} ${url.pathname}: no answer in ${this.o.requestTimeoutMs / 1000} s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** One request as a stream of the HTTP/2 session; answers as once() does. */
  private onceH2<T>(sess: http2.ClientHttp2Session, t: Transport, method: string, url: URL, payload: Buffer | undefined, contentType: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const req = sess.request({
        ':method': method, ':path': `${url.pathname}${url.search}`, ...t.creds.headers, accept: 'application/json',
        ...(payload ? { 'content-type': contentType, 'content-length': String(payload.length) } : {}),
      });
      let code = 0;
      let headers: http.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      req.on('response', (h) => {
        code = Number(h[':status'] ?? 0);
        headers = h;
      });
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => settle(code, headers, chunks, method, url, resolve, reject));
      req.setTimeout(this.o.requestTimeoutMs, () => req.destroy(new Error(`${method} ${url.pathname}: no answer in ${this.o.requestTimeoutMs / 1000} s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /**
   * A watch: newline-delimited JSON events handed to `onEvent` in order.
   * Resolves when the stream ends (the server's timeoutSeconds, the idle
   * timeout, or `signal`); rejects with KubeApiError on a status outside 2xx
   * or an ERROR event (its Status's code: 410 when the resourceVersion is too
   * old and the caller must list again), and with the socket's error when
   * the stream breaks.
   */
  async watch(path: string, onEvent: (e: WatchEvent) => void, opts: WatchOptions = {}): Promise<void> {
    const t = await this.transport();
    const url = new URL(path, t.creds.server);
    url.searchParams.set('watch', '1');
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const signal = opts.signal;
    if (signal?.aborted) return;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: Error): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const req = this.open(t, 'GET', url, { accept: 'application/json' });
      const onAbort = (): void => {
        req.destroy();
        finish();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.setTimeout(opts.idleTimeoutMs ?? 330_000, () => {
        req.destroy();
        finish();
      });
      req.on('error', (err) => finish(err));
      req.on('response', (res) => {
        const code = res.statusCode ?? 0;
        if (code < 200 || code > 299) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => finish(apiError(code, 'WATCH', url, Buffer.concat(chunks).toString('utf8'), res.headers)));
          res.on('error', (err) => finish(err));
          return;
        }
        opts.onConnect?.();
        let buffered = '';
        res.setEncoding('utf8');
        const line = (text: string): void => {
          if (text.trim() === '') return;
          const e = JSON.parse(text) as { type?: string; object?: Record<string, unknown> };
          if (e.type === 'ERROR') {
            const status = e.object ?? {};
            const c = typeof status.code === 'number' ? status.code : 500;
            throw apiError(c, 'WATCH', url, JSON.stringify(status), {});
          }
          if (e.type !== 'ADDED' && e.type !== 'MODIFIED' && e.type !== 'DELETED' && e.type !== 'BOOKMARK') return;
          onEvent({ type: e.type, object: e.object ?? {} });
        };
        res.on('data', (chunk: string) => {
          if (settled) return;
          buffered += chunk;
          let nl: number;
          try {
            while ((nl = buffered.indexOf('\n')) >= 0) {
              const text = buffered.slice(0, nl);
              buffered = buffered.slice(nl + 1);
              line(text);
              if (settled) return;
            }
          } catch (err) {
            req.destroy();
            finish(err instanceof Error ? err : new Error(String(err)));
          }
        });
        res.on('end', () => {
          try {
            line(buffered);
            finish();
          } catch (err) {
            finish(err instanceof Error ? err : new Error(String(err)));
          }
        });
        // A stream cut mid-way closes without 'end' (after 'end' this is a no-op).
        res.on('close', () => finish(new Error(`watch ${url.pathname}: stream cut`)));
        res.on('error', (err) => finish(err));
      });
      req.end();
    });
  }
}

/** A whole response: its JSON, or KubeApiError outside 2xx. */
function settle<T>(code: number, headers: http.IncomingHttpHeaders, chunks: Buffer[], method: string, url: URL, resolve: (v: T) => void, reject: (e: Error) => void): void {
  const text = Buffer.concat(chunks).toString('utf8');
  if (code < 200 || code > 299) {
    reject(apiError(code, method, url, text, headers));
    return;
  }
  try {
    resolve((text === '' ? undefined : JSON.parse(text)) as T);
  } catch (err) {
    reject(err instanceof Error ? err : new Error(String(err)));
  }
}

function apiError(code: number, method: string, url: URL, text: string, headers: http.IncomingHttpHeaders): KubeApiError {
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (typeof v === 'string') h[k] = v;
  return new KubeApiError(code, `HTTP ${code} ${method} ${url.pathname}: ${statusMessage(text)}`, text, h);
}

function statusMessage(text: string): string {
  try {
    const s = JSON.parse(text) as { message?: unknown };
    if (typeof s.message === 'string') return s.message;
  } catch { /* not a Status */ }
  return text.slice(0, 200);
}

/** A KubeConnection or a client-node KubeConfig (the speaker's): what the shared modules accept. */
export type KubeSource = KubeConnection | k8s.KubeConfig;

const adapted = new WeakMap<k8s.KubeConfig, KubeConnection>();

/** The connection for `src`; one per KubeConfig, so all its users share one agent. */
export function kubeConnection(src: KubeSource): KubeConnection {
  if (src instanceof KubeConnection) return src;
  let c = adapted.get(src);
  if (!c) adapted.set(src, (c = new KubeConnection(kubeConfigCredentials(src))));
  return c;
}
