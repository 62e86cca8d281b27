// Plain-JSON requests to the API server for the hot paths (lists, patches,
// Events): @kubernetes/client-node's generated clients run every object
// through their ObjectSerializer both ways, which cost more CPU than the
// request itself once thousands of Services are written. Authentication comes
// from the same KubeConfig (client certificates, bearer tokens, exec and
// token-file plugins), re-applied at most every AUTH_TTL_MS so rotated tokens
// are picked up; one keep-alive agent per KubeConfig carries every request.
import https from 'node:https';
import http from 'node:http';
import * as k8s from '@kubernetes/client-node';

const AUTH_TTL_MS = 30_000;
const MAX_SOCKETS = 16;

interface Transport {
  base: URL;
  agent: http.Agent;
  headers: Record<string, string>;
  tls: https.AgentOptions;
  at: number;
}

const transports = new WeakMap<k8s.KubeConfig, Promise<Transport>>();

async function transport(kc: k8s.KubeConfig): Promise<Transport> {
  const cached = transports.get(kc);
  if (cached) {
    const t = await cached;
    if (Date.now() - t.at < AUTH_TTL_MS) return t;
  }
  const fresh = (async (): Promise<Transport> => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const opts: https.RequestOptions & { headers?: Record<string, string> } = {};
    await kc.applyToHTTPSOptions(opts);
    const base = new URL(cluster.server);
    const tls: https.AgentOptions = {
      ...(opts.ca ? { ca: opts.ca } : {}), ...(opts.cert ? { cert: opts.cert } : {}), ...(opts.key ? { key: opts.key } : {}),
      ...(opts.rejectUnauthorized !== undefined ? { rejectUnauthorized: opts.rejectUnauthorized } : {}),
      ...(opts.servername ? { servername: opts.servername } : {}),
    };
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k] = String(v);
    if (opts.auth) headers.authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    const previous = cached ? await cached.catch(() => undefined) : undefined;
    const same = previous && previous.base.href === base.href && previous.tls.cert === tls.cert && previous.tls.key === tls.key && previous.tls.ca === tls.ca;
    const agent = same ? previous.agent
      : base.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS, ...tls })
        : new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
    if (previous && !same) previous.agent.destroy();
    return { base, agent, headers, tls, at: Date.now() };
  })();
  transports.set(kc, fresh);
  fresh.catch(() => { if (transports.get(kc) === fresh) transports.delete(kc); });
  return fresh;
}

/**
 * One request, JSON in and out. A status outside 2xx throws the same
 * ApiException the generated clients throw (code = HTTP status, body = the
 * response text), so isNotFound/isConflict/apiMessage work unchanged.
 */
export async function kubeRequest<T = unknown>(kc: k8s.KubeConfig, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
  const t = await transport(kc);
  const url = new URL(path, t.base);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise<T>((resolve, reject) => {
    const req = mod.request(url, {
      method, agent: t.agent,
      headers: {
        ...t.headers, accept: 'application/json',
        ...(payload ? { 'content-type': contentType, 'content-length': String(payload.length) } : {}),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const code = res.statusCode ?? 0;
        if (code < 200 || code > 299) {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
          reject(new k8s.ApiException(code, `HTTP ${code} ${method} ${url.pathname}: ${statusMessage(text)}`, text, headers));
          return;
        }
        try {
          resolve((text === '' ? undefined : JSON.parse(text)) as T);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${url.pathname}: no answer in 60 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function statusMessage(text: string): string {
  try {
    const s = JSON.parse(text) as { message?: unknown };
    if (typeof s.message === 'string') return s.message;
  } catch { /* not a Status */ }
  return text.slice(0, 200);
}

export const MERGE_PATCH = 'application/merge-patch+json';

/** A list as plain JSON (no model classes), in the shape Informer's `list` option expects. */
export function listJSON(kc: k8s.KubeConfig, path: string): () => Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }> {
  return () => kubeRequest(kc, 'GET', path);
}
