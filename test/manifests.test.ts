// manifests/: portico.yaml is what the parts generate (stale = failure), every
// document parses, the kustomization lists every part, and the security
// properties issue 7 asks for hold in the objects themselves.
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { OUTPUT, parts, render } from '../scripts/gen-manifests.ts';
import { repoRoot } from './lab/index.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the manifests are walked by field path; a schema type for each kind would be noise here
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: any };
type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
const WRITE = ['create', 'update', 'patch', 'delete', 'deletecollection', '*'];

function load(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    assert.equal(d.errors.length, 0, `${file}: ${d.errors[0]?.message}`);
    return d.toJS() as Obj;
  }).filter((o) => o !== null);
}

describe('manifests', function () {
  const all = load(OUTPUT);
  const find = (kind: string, name: string): Obj => {
    const o = all.find((x) => x.kind === kind && x.metadata.name === name);
    assert.ok(o, `${kind}/${name} is not in portico.yaml`);
    return o;
  };
  const rulesOf = (account: string): Rule[] => {
    const out: Rule[] = [];
    for (const b of all.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
      if (!(b.subjects as { name: string }[]).some((s) => s.name === account)) continue;
      out.push(...(find(b.roleRef.kind, b.roleRef.name).rules as Rule[]));
    }
    return out;
  };
  const writes = (rules: Rule[], group: string, resource: string): Rule[] =>
    rules.filter((r) => r.apiGroups.includes(group) && (r.resources.includes(resource) || r.resources.includes('*')) && r.verbs.some((v) => WRITE.includes(v)));

  it('portico.yaml is generated from the current parts (run node scripts/gen-manifests.ts)', function () {
    assert.equal(readFileSync(OUTPUT, 'utf8'), render());
  });

  it('kubectl kustomize manifests/ renders the same objects as portico.yaml', function () {
    const cache = path.join(os.homedir(), '.cache', 'portico', 'control-plane');
    const kubectl = existsSync(cache) ? readdirSync(cache).map((d) => path.join(cache, d, 'bin', 'kubectl')).find((f) => existsSync(f)) : undefined;
    if (!kubectl) {
      if (this.test) this.test.title += ' (skipped: no kubectl built yet; the lab builds one)';
      this.skip();
    }
    const r = spawnSync(kubectl, ['kustomize', path.join(repoRoot, 'manifests')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const key = (o: Obj): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    const rendered = parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
    assert.deepEqual(rendered.map(key).sort(), all.map(key).sort());
    for (const o of rendered) assert.deepEqual(o, all.find((x) => key(x) === key(o)), key(o));
  });

  it('kustomization.yaml lists every part in manifests/ (examples aside)', function () {
    const onDisk: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(path.join(repoRoot, 'manifests', dir), { withFileTypes: true })) {
        const rel = dir ? `${dir}/${e.name}` : e.name;
        if (e.isDirectory()) { if (rel !== 'examples') walk(rel); } else if (/\.ya?ml$/.test(e.name) && !['portico.yaml', 'kustomization.yaml'].includes(rel)) onDisk.push(rel);
      }
    };
    walk('');
    assert.deepEqual([...parts()].sort(), onDisk.sort());
  });

  it('every example parses and lives in portico-system', function () {
    for (const dir of ['examples', 'examples/invalid']) {
      for (const f of readdirSync(path.join(repoRoot, 'manifests', dir)).filter((x) => x.endsWith('.yaml'))) {
        for (const o of load(path.join(repoRoot, 'manifests', dir, f))) assert.equal(o.metadata.namespace, 'portico-system', `${dir}/${f}`);
      }
    }
  });

  it('every invalid example names the field it is refused for', function () {
    const dir = path.join(repoRoot, 'manifests', 'examples', 'invalid');
    const files = readdirSync(dir).filter((x) => x.endsWith('.yaml'));
    assert.ok(files.length >= 8);
    for (const f of files) assert.match(readFileSync(path.join(dir, f), 'utf8'), /^# refused-field: \S+$/m, f);
  });

  it('the speaker cannot write pools, any portico.dev object or Service status; Services only by patch, under a policy', function () {
    const rules = rulesOf('portico-speaker');
    assert.ok(rules.length > 0);
    assert.deepEqual(writes(rules, '', 'services/status'), []);
    assert.deepEqual(writes(rules, '', 'services').map((r) => r.verbs), [['patch']]);
    const policy = find('ValidatingAdmissionPolicy', 'portico-speaker-services');
    assert.equal(find('ValidatingAdmissionPolicyBinding', 'portico-speaker-services').spec.policyName, 'portico-speaker-services');
    assert.match(JSON.stringify(policy.spec.matchConditions), /portico-system:portico-speaker/);
    // Configuration kinds are read-only for the speaker; it writes only its own status objects.
    const config = ['ipaddresspools', 'l2advertisements', 'bgpadvertisements', 'bgppeers', 'communities', 'bfdprofiles'];
    const written = rules.filter((r) => r.apiGroups.includes('portico.dev') && r.verbs.some((v) => WRITE.includes(v))).flatMap((r) => r.resources);
    assert.deepEqual(written.filter((r) => config.includes(r.replace(/\/status$/, '')) || r === '*'), []);
    assert.deepEqual(written.sort(), ['servicebgpstatuses', 'servicebgpstatuses/status']);
  });

  it('the controller writes Leases only by the name portico-controller (create aside, which RBAC cannot name)', function () {
    const rules = writes(rulesOf('portico-controller'), 'coordination.k8s.io', 'leases');
    for (const r of rules) {
      if (r.resourceNames) assert.deepEqual(r.resourceNames, ['portico-controller']);
      else assert.deepEqual(r.verbs, ['create']);
    }
    const policy = find('ValidatingAdmissionPolicy', 'portico-leases');
    assert.ok((policy.spec.validations as { expression: string }[]).some((v) => v.expression.includes("request.name == 'portico-controller'")));
  });

  it('Secrets: the controller never lists or watches them; the speaker lists and watches (BGP passwords) in portico-system only, and reads nothing else', function () {
    for (const r of rulesOf('portico-controller').filter((x) => x.apiGroups.includes('') && x.resources.includes('secrets'))) {
      assert.ok(!r.verbs.some((v) => ['list', 'watch', '*'].includes(v)), 'the controller lists or watches Secrets');
    }
    const speaker = all.filter((o) => o.kind === 'Role' && o.metadata.name === 'portico-speaker');
    assert.equal(speaker.length, 1);
    assert.equal(speaker[0]!.metadata.namespace, 'portico-system');
    const unnamed = (speaker[0]!.rules as Rule[]).filter((r) => r.resources.includes('secrets') && !r.resourceNames);
    assert.deepEqual(unnamed.map((r) => [...r.verbs].sort()), [['list', 'watch']], 'the speaker\'s unnamed Secret rights are list and watch');
    const seen = rulesOf('portico-speaker').filter((x) => x.apiGroups.includes('') && x.resources.includes('secrets'));
    assert.deepEqual(seen.length, 2, 'no other Role gives the speaker Secrets');
    for (const b of all.filter((o) => o.kind === 'ClusterRole')) {
      assert.ok(!(b.rules as Rule[]).some((r) => r.resources.includes('secrets')), `${b.metadata.name} grants Secrets cluster-wide`);
    }
  });

  it('the controller runs non-root on a read-only root filesystem with probes on 7472', function () {
    const d = find('Deployment', 'portico-controller');
    assert.equal(d.spec.replicas, 2);
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
    assert.equal(c.ports[0].containerPort, 7472);
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory);
    assert.equal(pod.serviceAccountName, 'portico-controller');
  });

  it('each component runs with the flags, path and user the image warmed its compile cache with (the cache is keyed by both)', function () {
    const dockerfile = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    assert.match(runtime, /^ENV NODE_COMPILE_CACHE=\S+/m);
    for (const [kind, name] of [['Deployment', 'portico-controller'], ['DaemonSet', 'portico-speaker']] as const) {
      const pod = find(kind, name).spec.template.spec;
      const c = pod.containers[0];
      const command = c.command as string[];
      assert.equal(command[0], 'node');
      const entry = command[command.length - 1]!;
      assert.ok(entry.startsWith('/app/'), `${name} runs ${entry} from the image's WORKDIR`);
      const flags = command.slice(1, -1);
      const uid = c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
      // The RUN (exec form: the image has no shell) that warms this entry point, and the USER in force at it.
      const lines = runtime.split('\n');
      const want = JSON.stringify(['node', ...flags, entry.slice('/app/'.length), '--help']);
      const at = lines.findIndex((l) => l.startsWith('RUN [') && JSON.stringify(JSON.parse(l.slice(4))) === want);
      assert.ok(at >= 0, `the Dockerfile warms ${entry} with RUN ${want}`);
      const user = lines.slice(0, at).reverse().find((l) => l.startsWith('USER '))?.split(' ')[1]?.split(':')[0] ?? '0';
      assert.equal(Number(user), uid, `${name} runs as the user its cache was written by`);
    }
  });

  it('the speaker has host networking, exactly NET_RAW/NET_ADMIN/NET_BIND_SERVICE/SYS_NICE, control-plane tolerations and NODE_NAME', function () {
    const ds = find('DaemonSet', 'portico-speaker');
    const pod = ds.spec.template.spec;
    const c = pod.containers[0];
    assert.equal(pod.hostNetwork, true);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'], add: ['NET_RAW', 'NET_ADMIN', 'NET_BIND_SERVICE', 'SYS_NICE'] });
    assert.equal(c.securityContext.privileged, undefined);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.ok(pod.tolerations.some((t: { key: string }) => t.key === 'node-role.kubernetes.io/control-plane'));
    assert.deepEqual(c.env.find((e: { name: string }) => e.name === 'NODE_NAME').valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
    assert.equal(c.ports[0].containerPort, 7473);
    assert.ok(c.args.includes('--state-dir=/run/portico'));
    assert.ok(c.volumeMounts.some((m: { mountPath: string }) => m.mountPath === '/run/portico'));
    assert.equal(pod.serviceAccountName, 'portico-speaker');
  });

  it('the image tag comes from package.json\'s version: both pods, kustomization.yaml and scripts/image.sh agree', function () {
    const version = (JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
    for (const [kind, name] of [['Deployment', 'portico-controller'], ['DaemonSet', 'portico-speaker']] as const) {
      assert.equal(find(kind, name).spec.template.spec.containers[0].image, `ghcr.io/portico-lb/portico:${version}`, name);
    }
    const kustomization = readFileSync(path.join(repoRoot, 'manifests', 'kustomization.yaml'), 'utf8');
    assert.match(kustomization, new RegExp(`^- name: ghcr\\.io/portico-lb/portico\\n  newTag: ${version.replaceAll('.', '\\.')}$`, 'm'));
    const script = readFileSync(path.join(repoRoot, 'scripts', 'image.sh'), 'utf8');
    assert.match(script, /^repo=ghcr\.io\/portico-lb\/portico$/m);
    assert.match(script, /version="\$\(sed -n .*package\.json/);
  });

  it('the speaker\'s rollout goes one node at a time and waits until the new pod has been ready a while; probes with a startup allowance', function () {
    const ds = find('DaemonSet', 'portico-speaker');
    assert.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
    assert.ok(ds.spec.minReadySeconds >= 5, `minReadySeconds ${ds.spec.minReadySeconds}`);
    const pod = ds.spec.template.spec;
    const c = pod.containers[0];
    assert.ok(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold >= 30, 'a slow start is not killed');
    assert.equal(c.livenessProbe.initialDelaySeconds, undefined, 'the startup probe guards the start');
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.ok(pod.terminationGracePeriodSeconds >= 5 && pod.terminationGracePeriodSeconds <= 30);
  });
});
