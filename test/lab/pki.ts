// The lab's certificates: one CA, the API server's serving certificate, a
// client certificate for the lab's own tooling (system:masters) and the
// service-account signing key. EC P-256 keys: quick to make with openssl.
import { writeFileSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { run } from './sh.ts';

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

async function key(file: string): Promise<void> {
  await run(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
}

const CLIENT_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';

/**
 * Signs `keyFile`'s certificate for `subj` with the lab CA into `out`, with the
 * extensions `ext`. A random serial: several nodes sign at once, and
 * -CAcreateserial would race on one serial file.
 */
async function signCert(pki: Pki, keyFile: string, subj: string, out: string, ext: string): Promise<void> {
  const extFile = `${out}.ext`;
  writeFileSync(extFile, ext);
  const csr = await run(['openssl', 'req', '-new', '-key', keyFile, '-subj', subj]);
  await run(['openssl', 'x509', '-req', '-CA', pki.caCert, '-CAkey', pki.caKey, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '30', '-out', out, '-extfile', extFile], { input: csr.stdout });
}

export async function makePki(dir: string, apiserverIps: readonly string[]): Promise<Pki> {
  mkdirSync(dir, { recursive: true });
  const p = (f: string): string => path.join(dir, f);
  const pki: Pki = {
    dir,
    caCert: p('ca.crt'), caKey: p('ca.key'),
    apiserverCert: p('apiserver.crt'), apiserverKey: p('apiserver.key'),
    adminCert: p('admin.crt'), adminKey: p('admin.key'),
    saKey: p('sa.key'), saPub: p('sa.pub'),
  };
  await Promise.all([key(pki.caKey), key(pki.apiserverKey), key(pki.adminKey), key(pki.saKey)]);
  await run(['openssl', 'pkey', '-in', pki.saKey, '-pubout', '-out', pki.saPub]);
  await run(['openssl', 'req', '-x509', '-new', '-key', pki.caKey, '-subj', '/CN=portico-lab-ca', '-days', '30', '-out', pki.caCert,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const san = [
    'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local', 'DNS:localhost',
    ...apiserverIps.map((ip) => `IP:${ip}`),
  ].join(',');
  await signCert(pki, pki.apiserverKey, '/CN=kube-apiserver', pki.apiserverCert,
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
  await signCert(pki, pki.adminKey, '/O=system:masters/CN=portico-lab-admin', pki.adminCert, CLIENT_EXT);
  return pki;
}

/**
 * A client certificate signed by the lab CA, e.g. a real node's kubelet
 * (`/O=system:nodes/CN=system:node:node-1`) or kube-proxy (`/CN=system:kube-proxy`).
 */
export async function makeClientCert(pki: Pki, subj: string, base: string): Promise<{ cert: string; key: string }> {
  const keyFile = `${base}.key`;
  const cert = `${base}.crt`;
  await key(keyFile);
  await signCert(pki, keyFile, subj, cert, CLIENT_EXT);
  return { cert, key: keyFile };
}

/** How a kubeconfig's user authenticates: a client certificate or a bearer token. */
export type KubeconfigUser = { cert: string; key: string } | { token: string };

/** A kubeconfig for `user` against `server`, trusting the lab CA; `namespace` sets the context's default. */
export function writeLabKubeconfig(file: string, pki: Pki, server: string, user: string, cred: KubeconfigUser, namespace?: string): void {
  const auth = 'token' in cred
    ? `    token: ${cred.token}\n`
    : `    client-certificate: ${cred.cert}\n    client-key: ${cred.key}\n`;
  writeFileSync(file, `apiVersion: v1
kind: Config
clusters:
- name: portico-lab
  cluster:
    server: ${server}
    certificate-authority: ${pki.caCert}
users:
- name: ${user}
  user:
${auth}contexts:
- name: portico-lab
  context:
    cluster: portico-lab
    user: ${user}
${namespace === undefined ? '' : `    namespace: ${namespace}\n`}current-context: portico-lab
`, { mode: 0o600 });
}

/** A kubeconfig that uses the lab admin client certificate against `server`. */
export function writeKubeconfig(file: string, pki: Pki, server: string): void {
  writeLabKubeconfig(file, pki, server, 'lab-admin', { cert: pki.adminCert, key: pki.adminKey });
}
