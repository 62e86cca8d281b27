// Installs Portico on the lab's real nodes exactly as a user does:
// `kubectl apply -f manifests/portico.yaml`, the controller Deployment and the
// speaker DaemonSet then run as real pods from Portico's image (built here by
// scripts/image.sh, loaded into each node's containerd as no registry is
// reachable). When the image's name differs from the manifest's, a kustomize
// overlay with only an `images:` entry points the manifest at it; nothing else
// changes.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Lab } from './lab.ts';
import { repoRoot } from './lab.ts';
import { PORTICO_MANIFEST, PORTICO_NAMESPACE, manifestWorkload } from './portico.ts';
import type { LabImage } from './realnode-images.ts';
import { run, waitFor } from './sh.ts';

export class PorticoImageError extends Error {
  readonly code = 'PORTICO_LAB_NO_IMAGE';
}

/**
 * How long a test hook that may be the first to call porticoImage() (or to
 * build helm) waits. On a fresh machine that hook builds the image from
 * nothing: debootstrap, the workspace install, the compile-cache warm-up
 * (3-5 min at low load, 10 min and more on a busy machine), on top of the
 * real-node lab's start. A build that fails says so at once; this only keeps
 * a slow first build from being reported as a test timeout.
 */
export const FIRST_BUILD_TIMEOUT_MS = 3_600_000;

/** The script that builds Portico's image (or prints the cached one). */
export const IMAGE_SCRIPT = path.join(repoRoot, 'scripts', 'image.sh');

function parseImageOutput(out: string): LabImage | undefined {
  const kv = Object.fromEntries(out.split('\n').map((l) => l.split('=')).filter((f) => f.length >= 2).map(([k, ...v]) => [k!.trim(), v.join('=').trim()]));
  return kv.image && kv.archive ? { name: kv.image, archive: kv.archive } : undefined;
}

/**
 * Portico's image: $PORTICO_IMAGE + $PORTICO_IMAGE_ARCHIVE when set, else what
 * `scripts/image.sh` prints (it builds only when its inputs changed).
 */
export async function porticoImage(log?: (msg: string) => void): Promise<LabImage> {
  const name = process.env.PORTICO_IMAGE;
  const archive = process.env.PORTICO_IMAGE_ARCHIVE;
  if (name && archive) {
    if (!existsSync(archive)) throw new PorticoImageError(`PORTICO_IMAGE_ARCHIVE=${archive} does not exist`);
    return { name, archive };
  }
  if (!existsSync(IMAGE_SCRIPT)) throw new PorticoImageError(`${IMAGE_SCRIPT} is missing: cannot build Portico's image (or set PORTICO_IMAGE and PORTICO_IMAGE_ARCHIVE)`);
  const cached = await run(['bash', IMAGE_SCRIPT, '--print'], { allowFail: true, timeoutMs: 60_000 });
  const got = cached.code === 0 ? parseImageOutput(cached.stdout) : undefined;
  if (got) return got;
  log?.('building Portico\'s image: bash scripts/image.sh (minutes the first time, cached by content afterwards)');
  const built = await run(['bash', IMAGE_SCRIPT], { allowFail: true, timeoutMs: 3_600_000 });
  const img = built.code === 0 ? parseImageOutput(built.stdout) : undefined;
  if (!img) throw new PorticoImageError(`scripts/image.sh failed (exit ${built.code}): ${built.stderr.trim().split('\n').slice(-5).join('\n')}`);
  return img;
}

/** The image the manifest names (the controller's and the speaker's are the same). */
export function manifestImage(file = PORTICO_MANIFEST): string {
  const w = manifestWorkload('DaemonSet', 'portico-speaker', file) as unknown as { spec: { template: { spec: { containers: { image: string }[] } } } };
  const image = w.spec.template.spec.containers[0]?.image;
  if (!image) throw new Error(`the speaker DaemonSet in ${file} names no image`);
  return image;
}

function splitImage(ref: string): { name: string; tag: string } {
  const at = ref.lastIndexOf(':');
  return at > ref.lastIndexOf('/') ? { name: ref.slice(0, at), tag: ref.slice(at + 1) } : { name: ref, tag: 'latest' };
}

export interface RealInstall {
  image: LabImage;
  /** The kubectl arguments that applied it (`-f manifests/portico.yaml` or `-k <overlay>`), for delete. */
  applyArgs: string[];
  /** `kubectl delete` of what was applied; resolves once every Portico pod is gone. */
  uninstall(): Promise<void>;
}

/**
 * The kubectl arguments that apply the manifest with `image`: `-f
 * manifests/portico.yaml` when it names that image and no speaker argument is
 * added, else `-k` an overlay (in the lab's directory) whose only changes are
 * an `images:` entry and, for `speakerArgs`, docs/dataplane.md's patch that
 * appends them to the speaker's arguments.
 */
export function porticoApplyArgs(lab: Lab, image: LabImage, speakerArgs: readonly string[] = []): string[] {
  const shipped = manifestImage();
  if (shipped === image.name && speakerArgs.length === 0) return ['-f', PORTICO_MANIFEST];
  const dir = path.join(lab.dir, speakerArgs.length ? `portico-overlay-${createHash('sha256').update(speakerArgs.join('\0')).digest('hex').slice(0, 8)}` : 'portico-overlay');
  mkdirSync(dir, { recursive: true });
  copyFileSync(PORTICO_MANIFEST, path.join(dir, 'portico.yaml'));
  const from = splitImage(shipped);
  const to = splitImage(image.name);
  const patches = speakerArgs.length === 0 ? '' : `patches:
- target: { kind: DaemonSet, name: portico-speaker }
  patch: |-
${speakerArgs.map((a) => `    - op: add
      path: /spec/template/spec/containers/0/args/-
      value: ${JSON.stringify(a)}`).join('\n')}
`;
  writeFileSync(path.join(dir, 'kustomization.yaml'), `# Written by the lab: manifests/portico.yaml with only its image pointed at the local build${speakerArgs.length ? ' and the speaker\'s arguments appended' : ''}.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [portico.yaml]
images:
- { name: ${from.name}, newName: ${to.name}, newTag: "${to.tag}" }
${patches}`);
  return ['-k', dir];
}

/** Applies the manifest with the image (and `speakerArgs` appended to the speaker's), waits for the CRDs, the controller and a speaker on every node. */
export async function installPorticoReal(lab: Lab, opts: { image?: LabImage; log?: (msg: string) => void; timeoutMs?: number; speakerArgs?: readonly string[] } = {}): Promise<RealInstall> {
  const image = opts.image ?? await porticoImage(opts.log);
  await lab.loadImage(image);
  const applyArgs = porticoApplyArgs(lab, image, opts.speakerArgs);
  const r = await lab.kubectlResult(['apply', ...applyArgs]);
  if (r.code !== 0) throw new Error(`kubectl apply ${applyArgs.join(' ')} failed: ${r.stderr}`);
  await lab.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd', '-l', 'app.kubernetes.io/part-of=portico');
  await waitRolledOut(lab, opts.timeoutMs ?? 180_000);
  return {
    image, applyArgs,
    uninstall: async () => {
      await lab.kubectlResult(['delete', '--ignore-not-found', '--wait=true', '--timeout=120s', ...applyArgs], undefined, { timeoutMs: 150_000 });
      await waitFor('every Portico pod gone', async () => {
        const out = await lab.kubectlResult(['get', 'pods', '-n', PORTICO_NAMESPACE, '-o', 'name']);
        return out.code !== 0 || out.stdout.trim() === '';
      }, 120_000, 250);
    },
  };
}

/** Waits until the controller Deployment and the speaker DaemonSet are rolled out and ready. */
export async function waitRolledOut(lab: Lab, timeoutMs = 180_000): Promise<void> {
  const secs = `${Math.ceil(timeoutMs / 1000)}s`;
  const results = await Promise.all(['deployment/portico-controller', 'daemonset/portico-speaker'].map((w) =>
    lab.kubectlResult(['rollout', 'status', '-n', PORTICO_NAMESPACE, w, `--timeout=${secs}`], undefined, { timeoutMs: timeoutMs + 10_000 })));
  if (results.some((r) => r.code !== 0)) {
    const pods = await lab.kubectlResult(['get', 'pods', '-n', PORTICO_NAMESPACE, '-o', 'wide']);
    throw new Error(`Portico did not roll out: ${results.map((r) => r.stderr.trim()).filter(Boolean).join('; ')}\n${pods.stdout}`);
  }
}
