// The Secret watch's pure parts: what it keeps of a Secret and how a
// passwordSecret lookup fails, case by case.
import { strict as assert } from 'node:assert';
import { lookupPassword, secretData, trimSecret, type SecretSource } from './secrets.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('bgp secrets', () => {
  it('trimSecret keeps the name, namespace, resourceVersion and the password key only', () => {
    const o: Record<string, unknown> = {
      apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/basic-auth',
      metadata: { name: 'bgp', namespace: 'portico-system', resourceVersion: '7', uid: 'u', managedFields: [{}], annotations: { a: 'b' } },
      data: { password: b64('s3cret'), username: b64('admin'), key: b64('heartbeat key material') },
    };
    trimSecret(o);
    assert.deepEqual(o, { metadata: { name: 'bgp', namespace: 'portico-system', resourceVersion: '7' }, data: { password: b64('s3cret') } });
    assert.deepEqual(secretData(o), { password: 's3cret' });
  });

  const source = (data: Record<string, Record<string, string>>, synced = true): SecretSource => ({
    namespace: 'portico-system', synced, start: () => Promise.resolve(), stop: () => Promise.resolve(),
    get: (name) => data[name], onChange: () => undefined,
  });

  const cases: { name: string; src: SecretSource; ref: { name: string; namespace: string }; want: ReturnType<typeof lookupPassword> }[] = [
    { name: 'a good Secret', src: source({ p: { password: 'x' } }), ref: { name: 'p', namespace: 'portico-system' }, want: { ok: true, password: 'x' } },
    { name: 'another namespace', src: source({ p: { password: 'x' } }), ref: { name: 'p', namespace: 'default' }, want: { ok: false, reason: 'other-namespace' } },
    { name: 'the watch not listed yet', src: source({ p: { password: 'x' } }, false), ref: { name: 'p', namespace: 'portico-system' }, want: { ok: false, reason: 'not-synced' } },
    { name: 'no such Secret', src: source({}), ref: { name: 'p', namespace: 'portico-system' }, want: { ok: false, reason: 'no-secret' } },
    { name: 'no password key', src: source({ p: {} }), ref: { name: 'p', namespace: 'portico-system' }, want: { ok: false, reason: 'no-password-key' } },
    { name: 'an empty password', src: source({ p: { password: '' } }), ref: { name: 'p', namespace: 'portico-system' }, want: { ok: false, reason: 'empty-password' } },
  ];
  for (const c of cases) {
    it(`lookupPassword: ${c.name}`, () => assert.deepEqual(lookupPassword(c.src, c.ref), c.want));
  }
});
