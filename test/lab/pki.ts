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
  const sign = async (keyFile: string, subj: string, out: string, ext: string): Promise<void> => {
    const extFile = `${out}.ext`;
    writeFileSync(extFile, ext);
    const csr = await run(['openssl', 'req', '-new', '-key', keyFile, '-subj', subj]);
    await run(['openssl', 'x509', '-req', '-CA', pki.caCert, '-CAkey', pki.caKey, '-CAcreateserial', '-days', '30', '-out', out, '-extfile', extFile], { input: csr.stdout });
  };
  await sign(pki.apiserverKey, '/CN=kube-apiserver', pki.apiserverCert,
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
  await sign(pki.adminKey, '/O=system:masters/CN=portico-lab-admin', pki.adminCert,
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  return pki;
}

/**
 * A client certificate signed by the lab CA, e.g. a real node's kubelet
 * (`/O=system:nodes/CN=system:node:node-1`) or kube-proxy (`/CN=system:kube-proxy`).
 */
export async function makeClientCert(pki: Pki, subj: string, base: string): Promise<{ cert: string; key: string }> {
  const keyFile = `${base}.key`;
  const cert = `${base}.crt`;
  const extFile = `${cert}.ext`;
  await key(keyFile);
  writeFileSync(extFile, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  const csr = await run(['openssl', 'req', '-new', '-key', keyFile, '-subj', subj]);
  // A random serial: several nodes sign at once, and -CAcreateserial would race on one serial file.
  await run(['openssl', 'x509', '-req', '-CA', pki.caCert, '-CAkey', pki.caKey, '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '30', '-out', cert, '-extfile', extFile], { input: csr.stdout });
  return { cert, key: keyFile };
}

/** A kubeconfig that authenticates with a client certificate against `server`. */
export function writeCertKubeconfig(file: string, pki: Pki, server: string, user: string, cert: { cert: string; key: string }): void {
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
    client-certificate: ${cert.cert}
    client-key: ${cert.key}
contexts:
- name: portico-lab
  context:
    cluster: portico-lab
    user: ${user}
current-context: portico-lab
`);
}

/** A kubeconfig that uses the lab admin client certificate against `server`. */
export function writeKubeconfig(file: string, pki: Pki, server: string): void {
  writeFileSync(file, `apiVersion: v1
kind: Config
clusters:
- name: portico-lab
  cluster:
    server: ${server}
    certificate-authority: ${pki.caCert}
users:
- name: lab-admin
  user:
    client-certificate: ${pki.adminCert}
    client-key: ${pki.adminKey}
contexts:
- name: portico-lab
  context:
    cluster: portico-lab
    user: lab-admin
current-context: portico-lab
`);
}
