import { strict as assert } from 'node:assert';
import type * as k8s from '@kubernetes/client-node';
import { HEARTBEAT_SECRET, ensureHeartbeatSecret, type SecretApi } from './heartbeat-secret.ts';

/** An in-memory Secret store; `raceWith` is a Secret another replica creates just before our create. */
function store(initial?: Record<string, string>, raceWith?: Record<string, string>): SecretApi & { secrets: Map<string, k8s.V1Secret>; creates: number } {
  const secrets = new Map<string, k8s.V1Secret>();
  if (initial) secrets.set(`portico-system/${HEARTBEAT_SECRET.name}`, { data: initial });
  const s = {
    secrets, creates: 0,
    async read(ns: string, name: string) { return secrets.get(`${ns}/${name}`)?.data; },
    async create(ns: string, secret: k8s.V1Secret) {
      s.creates++;
      const k = `${ns}/${secret.metadata!.name}`;
      if (raceWith && !secrets.has(k)) secrets.set(k, { data: raceWith });
      if (secrets.has(k)) return false;
      secrets.set(k, secret);
      return true;
    },
  };
  return s;
}

describe('heartbeat Secret', function () {
  it('is created with 32 random bytes when missing', async function () {
    const api = store();
    assert.equal(await ensureHeartbeatSecret(api, 'portico-system', (n) => Buffer.alloc(n, 7)), 'created');
    const s = api.secrets.get('portico-system/portico-heartbeat')!;
    assert.equal(s.type, 'Opaque');
    assert.deepEqual(Buffer.from(s.data!.key!, 'base64'), Buffer.alloc(32, 7));
  });
  it('two clusters get different keys', async function () {
    const a = store(); const b = store();
    await ensureHeartbeatSecret(a, 'portico-system');
    await ensureHeartbeatSecret(b, 'portico-system');
    assert.notEqual(a.secrets.get('portico-system/portico-heartbeat')!.data!.key, b.secrets.get('portico-system/portico-heartbeat')!.data!.key);
  });
  it('an existing key is never rewritten', async function () {
    const api = store({ key: Buffer.from('operator-chosen').toString('base64') });
    assert.equal(await ensureHeartbeatSecret(api, 'portico-system'), 'exists');
    assert.equal(api.creates, 0);
    assert.equal(Buffer.from(api.secrets.get('portico-system/portico-heartbeat')!.data!.key!, 'base64').toString(), 'operator-chosen');
  });
  it('a Secret without the key is reported, not overwritten', async function () {
    const api = store({ other: 'eA==' });
    assert.equal(await ensureHeartbeatSecret(api, 'portico-system'), 'exists-without-key');
    assert.deepEqual(api.secrets.get('portico-system/portico-heartbeat')!.data, { other: 'eA==' });
  });
  it('losing the create race to another replica keeps the winner\'s key', async function () {
    const api = store(undefined, { key: 'd2lubmVy' });
    assert.equal(await ensureHeartbeatSecret(api, 'portico-system'), 'exists');
    assert.equal(api.secrets.get('portico-system/portico-heartbeat')!.data!.key, 'd2lubmVy');
  });
});
