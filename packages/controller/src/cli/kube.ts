// How the CLI reaches the API server: Portico's own connection (shared
// k8s/connection.ts: HTTP/2 to the API server, plain JSON), with the credentials
// found where kubectl and client-node's loadFromDefault find them. This is the
// only CLI module that may load @kubernetes/client-node, and only lazily, for a
// kubeconfig whose user runs an exec plugin or an auth provider: those need
// client-node's implementation of them. Importing it costs ~0.7 s and ~90 MB.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  KubeConnection, KubeconfigUnsupportedError, SERVICE_ACCOUNT_DIR, inClusterCredentials, kubeConfigCredentials, kubeconfigCredentials,
  type ConnectionOptions, type CredentialSource,
} from '@portico/shared';

export interface CliKubeOptions extends ConnectionOptions {
  /** --kubeconfig: this file only. */
  kubeconfig?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Where the ServiceAccount's token and CA are (tests). */
  serviceAccountDir?: string;
}

/** Where the credentials come from; `files` for a kubeconfig, else in-cluster. */
export type KubeconfigChoice = { from: 'flag' | 'env' | 'home'; files: string[] } | { from: 'in-cluster' };

/** Kubeconfig users the lazily loaded client-node can serve when Portico's own loader cannot. */
const CLIENT_NODE_FIELDS = ['user exec', 'user auth-provider'];

/**
 * As client-node's loadFromDefault (what `portico status` used before):
 * --kubeconfig; else KUBECONFIG (a list; as kubectl, files that do not exist
 * are skipped); else ~/.kube/config when it exists; else in-cluster when the
 * ServiceAccount token is mounted. Nothing found is an error saying where it
 * looked (client-node fell back to http://localhost:8080).
 */
export function chooseKubeconfig(o: CliKubeOptions = {}): KubeconfigChoice {
  const env = o.env ?? process.env;
  if (o.kubeconfig) return { from: 'flag', files: [o.kubeconfig] };
  const list = (env.KUBECONFIG ?? '').split(path.delimiter).filter((p) => p !== '');
  if (list.length > 0) {
    const present = list.filter((f) => existsSync(f));
    if (present.length === 0) throw new Error(`KUBECONFIG names no file that exists (${list.join(path.delimiter)})`);
    return { from: 'env', files: present };
  }
  const home = path.join(env.HOME ?? os.homedir(), '.kube', 'config');
  if (existsSync(home)) return { from: 'home', files: [home] };
  if (existsSync(path.join(o.serviceAccountDir ?? SERVICE_ACCOUNT_DIR, 'token'))) return { from: 'in-cluster' };
  throw new Error(`no kubeconfig: pass --kubeconfig FILE, set KUBECONFIG, or create ${home} (and no ServiceAccount token is mounted, so not in a cluster)`);
}

/** The connection `portico status` uses; close() it when done. */
export async function cliConnection(o: CliKubeOptions = {}): Promise<KubeConnection> {
  const { kubeconfig: _flag, env = process.env, serviceAccountDir, ...connection } = o;
  const choice = chooseKubeconfig(o);
  let source: CredentialSource;
  if (choice.from === 'in-cluster') source = inClusterCredentials(env, serviceAccountDir);
  else {
    try {
      source = kubeconfigCredentials(choice.files);
    } catch (err) {
      if (!(err instanceof KubeconfigUnsupportedError) || !err.fields.every((f) => CLIENT_NODE_FIELDS.includes(f))) throw err;
      source = await clientNodeCredentials(choice.files);
    }
  }
  // HTTP/2: status sends its GETs at once, and they share one TCP and TLS connection.
  return new KubeConnection(source, { http2: true, ...connection });
}

/** Exec plugins and auth providers, through client-node (loaded here, only now). */
async function clientNodeCredentials(files: readonly string[]): Promise<CredentialSource> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  for (const [i, f] of files.entries()) {
    if (i === 0) kc.loadFromFile(f);
    else {
      const more = new k8s.KubeConfig();
      more.loadFromFile(f);
      kc.mergeConfig(more, true);
    }
  }
  return kubeConfigCredentials(kc);
}
