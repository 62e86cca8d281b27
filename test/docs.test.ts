// docs/ stays true to the code: the Grafana dashboard only queries metrics the
// code exports, the configuration reference names every CRD field and every
// annotation, relative links point at files that exist, and the layouts in
// README.md and docs/architecture.md name the tree as it is.
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ANNOTATIONS } from '@portico/shared';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from './lab/index.ts';

const docs = path.join(repoRoot, 'docs');

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== 'node_modules' && e.name !== 'testdata') sources(p, out); } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

describe('docs', function () {
  it('the Grafana dashboard parses and queries only metrics the code defines', function () {
    const dash = JSON.parse(readFileSync(path.join(docs, 'grafana-dashboard.json'), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
    const defined = new Set<string>();
    for (const f of sources(path.join(repoRoot, 'packages'))) {
      for (const m of readFileSync(f, 'utf8').matchAll(/name: '(portico_[a-z0-9_]+)'/g)) defined.add(m[1]!);
    }
    assert.ok(defined.size > 20, `only ${defined.size} metrics found in the code`);
    const used = new Set<string>();
    for (const p of dash.panels) for (const t of p.targets ?? []) for (const m of t.expr.matchAll(/portico_[a-z0-9_]+/g)) used.add(m[0].replace(/_(bucket|sum|count)$/, (s) => (defined.has(m[0]) ? s : '')));
    assert.ok(used.size > 20);
    const missing = [...used].filter((m) => !defined.has(m));
    assert.deepEqual(missing, [], 'metrics in the dashboard that no code exports');
  });

  it('configuration.md names every spec field of every CRD', function () {
    const text = readFileSync(path.join(docs, 'configuration.md'), 'utf8');
    const missing: string[] = [];
    for (const f of readdirSync(path.join(repoRoot, 'manifests', 'crds'))) {
      const crd = parseAllDocuments(readFileSync(path.join(repoRoot, 'manifests', 'crds', f), 'utf8'))[0]!.toJS() as { spec: { names: { kind: string }; versions: { schema: { openAPIV3Schema: { properties: { spec?: { properties: Record<string, { properties?: Record<string, unknown>; items?: { properties?: Record<string, unknown> } }> } } } } }[] } };
      const kind = crd.spec.names.kind;
      assert.match(text, new RegExp(`^## ${kind}$`, 'm'), `no section for ${kind}`);
      // A status-only kind (ServiceBGPStatus) has no spec to document field by field.
      const props = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec?.properties ?? {};
      for (const [name, p] of Object.entries(props)) {
        if (!text.includes(`spec.${name}`)) missing.push(`${kind} spec.${name}`);
        const nested = p.properties ?? p.items?.properties;
        if (name === 'serviceAllocation' && nested) for (const n of Object.keys(nested)) if (!text.includes(`spec.${name}.${n}`)) missing.push(`${kind} spec.${name}.${n}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it('configuration.md names every annotation Portico reads or writes', function () {
    const text = readFileSync(path.join(docs, 'configuration.md'), 'utf8');
    for (const a of [...Object.values(ANNOTATIONS), 'portico.dev/layer2-node', 'portico.dev/layer2-interfaces', 'portico.dev/ipvs-scheduler', 'portico.dev/ipvs-forward']) assert.ok(text.includes(`\`${a}\``), a);
  });

  it('relative links in docs/ point at files that exist', function () {
    for (const f of readdirSync(docs).filter((x) => x.endsWith('.md'))) {
      const text = readFileSync(path.join(docs, f), 'utf8');
      for (const m of text.matchAll(/\]\(([^)#:]+)(#[^)]*)?\)/g)) assert.ok(existsSync(path.join(docs, m[1]!)), `${f} links to ${m[1]}`);
    }
  });

  it('the layouts in README.md and docs/architecture.md name paths that exist, and every package and top-level directory', function () {
    const layouts: [string, string][] = [
      ['README.md', readFileSync(path.join(repoRoot, 'README.md'), 'utf8').split('## Layout')[1]!.split('```')[1]!],
      ['docs/architecture.md', readFileSync(path.join(docs, 'architecture.md'), 'utf8').split('## The tree')[1]!.split('```')[1]!],
    ];
    const tracked = readdirSync(repoRoot, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules')
      .map((e) => `${e.name}/`);
    const packages = readdirSync(path.join(repoRoot, 'packages')).map((p) => `packages/${p}`);
    for (const [file, block] of layouts) {
      // A path is a word with a slash or a dot in it at the start of a line, or after two spaces.
      const named = [...block.matchAll(/(?:^|\s{2,})([\w.-]+(?:\/[\w.*-]*)+|[\w-]+\.(?:ts|md|yaml)|Dockerfile)(?=\s|$)/gm)].map((m) => m[1]!);
      for (const p of named) assert.ok(existsSync(path.join(repoRoot, p.replace(/\*.*$/, ''))), `${file} names ${p}, which does not exist`);
      for (const want of [...tracked, ...packages]) {
        assert.ok(named.some((p) => p === want || p.startsWith(want.endsWith('/') ? want : `${want}/`) || `${p}/` === want || p === want.replace(/\/$/, '')), `${file}'s layout does not name ${want}`);
      }
    }
  });
});
