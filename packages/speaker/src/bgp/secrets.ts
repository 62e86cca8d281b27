// Where the BGP announcer finds passwordSecret: a watch on the Secrets of
// Portico's namespace (the shared Informer over the speaker's connection), so a
// Secret that is changed, deleted or re-created takes effect at once instead
// of after a cache lifetime. Only the `password` key of each Secret is kept in
// memory; the other keys (and the heartbeat Secret's key material) are
// dropped as objects enter the cache.
import type * as k8s from '@kubernetes/client-node';
import { Informer, listJSON, type Logger, type SharedMetrics } from '@portico/shared';

/** The Secret key MetalLB and Portico read a BGP password from (kubernetes.io/basic-auth). */
export const PASSWORD_KEY = 'password';

/** What the announcer needs from Secrets; tests pass a fake. */
export interface SecretSource {
  /** The one namespace this source sees. */
  readonly namespace: string;
  /** True once the first list has been read (before that, `get` knows nothing). */
  readonly synced: boolean;
  /** Begins watching (idempotent); resolves when the first list has been read. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The Secret's decoded data (its `password` key only), or undefined when there is no such Secret. */
  get(name: string): Readonly<Record<string, string>> | undefined;
  /** Called with the Secret's name whenever one is added, changed or deleted. */
  onChange(handler: (name: string) => void): void;
}

interface SecretObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

/** Drops everything the announcer never reads, in place (the Informer's trim). */
export function trimSecret(o: Record<string, unknown>): void {
  const meta = o.metadata as Record<string, unknown> | undefined;
  if (meta) for (const k of Object.keys(meta)) if (k !== 'name' && k !== 'namespace' && k !== 'resourceVersion') delete meta[k];
  const data = o.data as Record<string, unknown> | undefined;
  if (data) for (const k of Object.keys(data)) if (k !== PASSWORD_KEY) delete data[k];
  for (const k of Object.keys(o)) if (k !== 'metadata' && k !== 'data') delete o[k];
}

/** Decodes a Secret's base64 data (only what trimSecret kept). */
export function secretData(o: SecretObject): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return out;
}

/** A SecretSource over the API server: list/watch of Secrets in `namespace` (the speaker's Role allows that, nothing wider). */
export function kubernetesSecretSource(kc: k8s.KubeConfig, namespace: string, opts: { log?: Logger; metrics?: SharedMetrics } = {}): SecretSource {
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;
  const informer = new Informer<SecretObject>({
    kc, path, resource: 'secrets', plain: true, trim: trimSecret,
    list: listJSON(kc, path, { trim: trimSecret }),
    ...(opts.log ? { log: opts.log } : {}), ...(opts.metrics ? { metrics: opts.metrics } : {}),
  });
  const handlers: ((name: string) => void)[] = [];
  informer.on((_type, o) => {
    const name = o.metadata?.name;
    if (name !== undefined) for (const h of handlers) h(name);
  });
  return {
    namespace,
    get synced() { return informer.hasSynced; },
    start: () => informer.start(),
    stop: () => informer.stop(),
    get: (name) => {
      const o = informer.get(name, namespace);
      return o === undefined ? undefined : secretData(o);
    },
    onChange: (h) => { handlers.push(h); },
  };
}

/** Why a passwordSecret gives no password, or the password. Pure: the announcer words and reports the problem. */
export type PasswordLookup =
  | { ok: true; password: string }
  | { ok: false; reason: 'other-namespace' | 'not-synced' | 'no-secret' | 'no-password-key' | 'empty-password' };

export function lookupPassword(src: SecretSource, ref: { name: string; namespace: string }): PasswordLookup {
  if (ref.namespace !== src.namespace) return { ok: false, reason: 'other-namespace' };
  if (!src.synced) return { ok: false, reason: 'not-synced' };
  const data = src.get(ref.name);
  if (data === undefined) return { ok: false, reason: 'no-secret' };
  const password = data[PASSWORD_KEY];
  if (password === undefined) return { ok: false, reason: 'no-password-key' };
  if (password === '') return { ok: false, reason: 'empty-password' };
  return { ok: true, password };
}
