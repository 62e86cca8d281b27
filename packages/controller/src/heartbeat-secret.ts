// The key speakers authenticate their UDP heartbeats with lives in a Secret
// that must differ on every cluster, so it cannot ship in a manifest: the
// leader creates it when it is missing (32 random bytes) and never rewrites
// one that exists, so an operator can rotate or pre-seed the key.
import { randomBytes } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { LABELS, SECRETS, isConflict, isNotFound, kubeRequest, type KubeSource } from '@portico/shared';

/** Secret portico-system/portico-heartbeat, key `key`: the speakers' heartbeat HMAC key. */
export const HEARTBEAT_SECRET = SECRETS.heartbeat;

/** The two calls this needs, so tests run without an API server. */
export interface SecretApi {
  /** The Secret's data (base64 values), or undefined when it does not exist. */
  read(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  /** Creates it; false when it already exists (someone else was first). */
  create(namespace: string, secret: k8s.V1Secret): Promise<boolean>;
}

export type HeartbeatSecretOutcome = 'created' | 'exists' | 'exists-without-key';

export async function ensureHeartbeatSecret(api: SecretApi, namespace: string, random: (n: number) => Buffer = randomBytes): Promise<HeartbeatSecretOutcome> {
  const { name, key } = HEARTBEAT_SECRET;
  const data = await api.read(namespace, name);
  if (data) return data[key] ? 'exists' : 'exists-without-key';
  const created = await api.create(namespace, {
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
    metadata: { name, namespace, labels: { [LABELS.partOf]: 'portico', [LABELS.managedBy]: 'portico' } },
    data: { [key]: random(32).toString('base64') },
  });
  if (created) return 'created';
  // Lost a race with another replica: report what is there now.
  const now = await api.read(namespace, name);
  return now?.[key] ? 'exists' : 'exists-without-key';
}

/** SecretApi over the API server (plain JSON requests). */
export function kubeSecretApi(kc: KubeSource): SecretApi {
  const secrets = (namespace: string): string => `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;
  return {
    async read(namespace, name) {
      try {
        return (await kubeRequest<{ data?: Record<string, string> }>(kc, 'GET', `${secrets(namespace)}/${encodeURIComponent(name)}`)).data ?? {};
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async create(namespace, body) {
      try {
        await kubeRequest(kc, 'POST', secrets(namespace), body);
        return true;
      } catch (err) {
        if (isConflict(err)) return false;
        throw err;
      }
    },
  };
}
