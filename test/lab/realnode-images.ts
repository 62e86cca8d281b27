// The small images the real-node lab needs besides Portico's: the pod sandbox
// ("pause", a static C program) and a web server for test Services (Debian's
// static busybox running httpd with a CGI answer). No registry is reachable, so
// each is written here as a docker-archive tarball (FROM scratch, one layer)
// that `ctr images import` loads; cached by content outside the repository.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, copyFileSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './sh.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
export const IMAGE_CACHE = path.join(process.env.PORTICO_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'portico'), 'realnode-images');

/** The lab's sandbox image, named in each containerd's sandbox_image. */
export const PAUSE_IMAGE = 'portico.dev/lab-pause:1';
/** The lab's web server: answers {"pod","node","client"} on port 80, /healthz for probes. */
export const WEB_IMAGE = 'portico.dev/lab-web:1';

export interface LabImage {
  name: string;
  archive: string;
}

export class ImageBuildError extends Error {
  readonly code = 'PORTICO_LAB_IMAGE_BUILD';
}

interface ImageSpec {
  name: string;
  entrypoint: string[];
  /** Fills the root filesystem directory. */
  fill: (root: string) => Promise<void>;
  /** Everything the content depends on, for the cache key. */
  inputs: string[];
}

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Writes a docker-archive (docker save layout) with one layer made of `root`. */
async function writeArchive(spec: ImageSpec, root: string, out: string): Promise<void> {
  const work = path.dirname(root);
  const layer = path.join(work, 'layer.tar');
  await run(['tar', '--numeric-owner', '--owner=0', '--group=0', '--sort=name', '--mtime=@0', '-C', root, '-cf', layer, '.']);
  const layerSha = sha256(readFileSync(layer));
  const config = JSON.stringify({
    architecture: 'amd64', os: 'linux', created: '1970-01-01T00:00:00Z',
    config: { Entrypoint: spec.entrypoint, Env: ['PATH=/bin'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [`sha256:${layerSha}`] },
    history: [{ created: '1970-01-01T00:00:00Z', created_by: 'portico lab image builder' }],
  });
  const configSha = sha256(config);
  const pack = path.join(work, 'pack');
  mkdirSync(path.join(pack, layerSha), { recursive: true });
  renameSync(layer, path.join(pack, layerSha, 'layer.tar'));
  writeFileSync(path.join(pack, `${configSha}.json`), config);
  writeFileSync(path.join(pack, 'manifest.json'), JSON.stringify([{ Config: `${configSha}.json`, RepoTags: [spec.name], Layers: [`${layerSha}/layer.tar`] }]));
  await run(['tar', '--numeric-owner', '--owner=0', '--group=0', '-C', pack, '-cf', out, '.']);
}

async function build(spec: ImageSpec): Promise<LabImage> {
  const key = sha256(JSON.stringify([spec.name, spec.entrypoint, ...spec.inputs])).slice(0, 12);
  const archive = path.join(IMAGE_CACHE, `${spec.name.replace(/[^a-z0-9.-]+/g, '_')}-${key}.tar`);
  if (existsSync(archive)) return { name: spec.name, archive };
  mkdirSync(IMAGE_CACHE, { recursive: true });
  const work = mkdtempSync(path.join(IMAGE_CACHE, 'build-'));
  try {
    const root = path.join(work, 'root');
    mkdirSync(root);
    await spec.fill(root);
    const tmp = path.join(work, 'image.tar');
    await writeArchive(spec, root, tmp);
    renameSync(tmp, archive);
    return { name: spec.name, archive };
  } catch (err) {
    throw new ImageBuildError(`could not build the lab image ${spec.name}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const BUSYBOX = '/bin/busybox';

/** The sandbox image: pause.c built with gcc -static. */
export function pauseImage(): Promise<LabImage> {
  const src = path.join(here, 'realnode', 'pause.c');
  return build({
    name: PAUSE_IMAGE, entrypoint: ['/pause'], inputs: [readFileSync(src, 'utf8')],
    fill: async (root) => {
      await run(['gcc', '-static', '-O2', '-o', path.join(root, 'pause'), src]).catch((err: unknown) => {
        throw new ImageBuildError(`gcc -static failed (apt-get install build-essential): ${String(err)}`);
      });
      await run(['strip', path.join(root, 'pause')]);
    },
  });
}

/** The web image: static busybox, httpd on port 80 with a CGI index. */
export function webImage(): Promise<LabImage> {
  const cgi = path.join(here, 'realnode', 'web.cgi');
  if (!existsSync(BUSYBOX)) throw new ImageBuildError(`${BUSYBOX} is missing: apt-get install busybox-static`);
  // The read-only root filesystem of a hardened pod is fine: the document root is made in /tmp.
  const start = 'mkdir -p /tmp/www/cgi-bin && cp /web.cgi /tmp/www/cgi-bin/index.cgi && echo ok > /tmp/www/healthz && echo "lab-web: $POD_NAME serving on port 80" && exec httpd -f -p 80 -h /tmp/www';
  return build({
    name: WEB_IMAGE, entrypoint: ['/bin/sh', '-c', start],
    inputs: [readFileSync(cgi, 'utf8'), sha256(readFileSync(BUSYBOX))],
    fill: async (root) => {
      mkdirSync(path.join(root, 'bin'));
      mkdirSync(path.join(root, 'tmp'), { mode: 0o1777 });
      chmodSync(path.join(root, 'tmp'), 0o1777);
      copyFileSync(BUSYBOX, path.join(root, 'bin', 'busybox'));
      chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
      for (const applet of ['sh', 'httpd', 'mkdir', 'cp', 'echo', 'cat', 'printf', 'sleep', 'ls', 'wget']) symlinkSync('busybox', path.join(root, 'bin', applet));
      copyFileSync(cgi, path.join(root, 'web.cgi'));
      chmodSync(path.join(root, 'web.cgi'), 0o755);
    },
  });
}

/** The web container for a real-node pod: the downward API fields its answer reports and a readiness probe on /healthz. */
export function webContainer(): Record<string, unknown> {
  const field = (name: string, fieldPath: string): Record<string, unknown> => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  return {
    name: 'web', image: WEB_IMAGE, imagePullPolicy: 'Never', ports: [{ containerPort: 80 }],
    env: [field('POD_NAME', 'metadata.name'), field('POD_NAMESPACE', 'metadata.namespace'), field('NODE_NAME', 'spec.nodeName'), field('POD_IP', 'status.podIP')],
    readinessProbe: { httpGet: { path: '/healthz', port: 80 }, periodSeconds: 1 },
  };
}

/** A Deployment of the web image for real nodes (webContainer's pods). */
export function webDeployment(name: string, replicas: number, namespace = 'default'): string {
  // YAML takes the container as JSON (flow style).
  return `apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [${JSON.stringify(webContainer())}]
`;
}
