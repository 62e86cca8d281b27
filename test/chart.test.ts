// charts/portico: its default render (with the pinned helm of
// test/lab/gomod/helm, built by test/lab/build-helm.sh) is the same objects as
// manifests/portico.yaml, and each value changes what it names and nothing else.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from './lab/index.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- objects are compared and walked by field path
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };
const parse = (text: string, what: string): Obj[] => parseAllDocuments(text).map((d) => {
  assert.equal(d.errors.length, 0, `${what}: ${d.errors[0]?.message}`);
  return d.toJS() as Obj;
}).filter((o) => o !== null);
const key = (o: Obj): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const byKey = (objs: Obj[]): Map<string, Obj> => new Map(objs.map((o) => [key(o), o]));

describe('Helm chart charts/portico (helm from its pinned Go module)', function () {
  this.timeout(60_000);
  let helm = '';

  before(function () {
    this.timeout(1_200_000);
    const r = spawnSync('bash', [path.join(repoRoot, 'test', 'lab', 'build-helm.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) {
      if (this.test?.parent) this.test.parent.title += ' (skipped: helm could not be built: no Go toolchain or module proxy)';
      this.skip();
    }
    helm = r.stdout.trim();
  });

  const render = (...set: string[]): Obj[] => {
    const r = spawnSync(helm, ['template', 'portico', path.join(repoRoot, 'charts', 'portico'), '--namespace', 'portico-system', '--include-crds', '--kube-version', '1.36.3', ...set.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return parse(r.stdout, 'helm template');
  };

  it('renders by default exactly the objects of manifests/portico.yaml', () => {
    const want = byKey(parse(readFileSync(path.join(repoRoot, 'manifests', 'portico.yaml'), 'utf8'), 'portico.yaml'));
    const got = byKey(render());
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [k, o] of want) assert.deepEqual(got.get(k), o, k);
  });

  it('helm lint passes', () => {
    const r = spawnSync(helm, ['lint', path.join(repoRoot, 'charts', 'portico')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  it('values: image, dataplane, resources, tolerations, nodeSelector, priorityClass change their fields only', () => {
    const base = byKey(render());
    const got = byKey(render('image.repository=registry.example/portico', 'image.tag=9.9.9', 'speaker.dataplane=none',
      'speaker.resources.limits.memory=1Gi', 'speaker.priorityClassName=portico-high', 'speaker.nodeSelector.pool=lb',
      'controller.tolerations[0].key=dedicated', 'controller.tolerations[0].operator=Exists'));
    const ds = got.get('DaemonSet/portico-system/portico-speaker')!;
    const c = ds.spec.template.spec.containers[0];
    assert.equal(c.image, 'registry.example/portico:9.9.9');
    assert.equal(got.get('Deployment/portico-system/portico-controller')!.spec.template.spec.containers[0].image, 'registry.example/portico:9.9.9');
    assert.deepEqual(c.args.slice(-1), ['--dataplane=none']);
    assert.equal(c.resources.limits.memory, '1Gi');
    assert.equal(ds.spec.template.spec.priorityClassName, 'portico-high');
    assert.deepEqual(ds.spec.template.spec.nodeSelector, { 'kubernetes.io/os': 'linux', pool: 'lb' });
    assert.deepEqual(got.get('Deployment/portico-system/portico-controller')!.spec.template.spec.tolerations, [{ key: 'dedicated', operator: 'Exists' }]);
    for (const [k, o] of base) if (!['DaemonSet', 'Deployment'].includes(o.kind)) assert.deepEqual(got.get(k), o, `${k} unchanged`);
  });

  it('ServiceMonitor and PodMonitor only when asked for', () => {
    const kinds = (objs: Obj[]): string[] => objs.map((o) => o.kind).filter((k) => k.endsWith('Monitor')).sort();
    assert.deepEqual(kinds(render()), []);
    assert.deepEqual(kinds(render('metrics.serviceMonitor.enabled=true')), ['ServiceMonitor']);
    assert.deepEqual(kinds(render('metrics.podMonitor.enabled=true')), ['PodMonitor']);
    const pm = render('metrics.podMonitor.enabled=true', 'metrics.podMonitor.labels.release=prom').find((o) => o.kind === 'PodMonitor')!;
    assert.equal(pm.metadata.labels?.release, 'prom');
    assert.equal(pm.spec.podMetricsEndpoints[0].port, 'monitoring');
  });
});
