// Structure of manifests/crds/*.yaml that can be checked without an API server:
// structural schemas, status subresources, printer columns that point at real
// status fields, the validation rules the issue asks for, and field names that
// match what the config parser reads. The refusals themselves are tested
// against the real API server in test/e2e/controller.test.ts.
import { strict as assert } from 'node:assert';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KINDS, PLURALS, parseYAML as parse } from '@portico/shared';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../manifests/crds');

type Schema = { type?: string; properties?: Record<string, Schema>; items?: Schema; additionalProperties?: unknown; required?: string[]; minimum?: number;
  maxItems?: number; minItems?: number; maxLength?: number; 'x-kubernetes-validations'?: { rule: string; message: string }[]; default?: unknown };
interface CRD {
  apiVersion: string; kind: string; metadata: { name: string };
  spec: { group: string; scope: string; names: { kind: string; plural: string }; versions: { name: string; served: boolean; storage: boolean; subresources?: { status?: object };
    additionalPrinterColumns?: { name: string; type: string; jsonPath: string }[]; schema: { openAPIV3Schema: Schema } }[] };
}

const crds = new Map<string, CRD>();
for (const f of readdirSync(dir).filter((x) => x.endsWith('.yaml'))) {
  const doc = parse(readFileSync(path.join(dir, f), 'utf8')) as CRD;
  crds.set(doc.spec.names.kind, doc);
}

/** Spec field names per kind, as the shared API types and the parser define them. */
const SPEC_FIELDS: Record<string, string[]> = {
  IPAddressPool: ['addresses', 'autoAssign', 'avoidBuggyIPs', 'allowExternalIPs', 'serviceAllocation'],
  L2Advertisement: ['ipAddressPools', 'ipAddressPoolSelectors', 'nodeSelectors', 'interfaces', 'serviceSelectors', 'preferredNodeSelectors'],
  BGPAdvertisement: ['aggregationLength', 'aggregationLengthV6', 'localPref', 'communities', 'ipAddressPools', 'ipAddressPoolSelectors', 'nodeSelectors', 'peers', 'serviceSelectors'],
  BGPPeer: ['myASN', 'peerASN', 'peerAddress', 'sourceAddress', 'peerPort', 'holdTime', 'keepaliveTime', 'connectTime', 'routerID', 'nodeSelectors', 'password', 'passwordSecret', 'bfdProfile', 'ebgpMultiHop', 'enableGracefulRestart', 'vrf',
    'dynamicASN', 'localASN', 'interface', 'disableMP', 'dualStackAddressFamily'],
  Community: ['communities'],
  BFDProfile: ['receiveInterval', 'transmitInterval', 'detectMultiplier', 'echoInterval', 'echoMode', 'passiveMode', 'minimumTtl'],
};

function walk(s: Schema, at: string, visit: (s: Schema, at: string) => void): void {
  visit(s, at);
  for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${at}.${k}`, visit);
  if (s.items) walk(s.items, `${at}[]`, visit);
  if (s.additionalProperties && typeof s.additionalProperties === 'object') walk(s.additionalProperties, `${at}{}`, visit);
}

describe('CRD manifests', function () {
  const STATUS_KINDS = ['ServiceBGPStatus'];
  it('has one CRD per portico.dev kind, named <plural>.portico.dev', function () {
    // Configuration kinds (what the watchers read) plus the status kinds the speakers write.
    assert.deepEqual([...crds.keys()].sort(), [...KINDS, ...STATUS_KINDS].sort());
    for (const kind of KINDS) {
      const c = crds.get(kind)!;
      assert.equal(c.apiVersion, 'apiextensions.k8s.io/v1');
      assert.equal(c.spec.group, 'portico.dev');
      assert.equal(c.spec.scope, 'Namespaced');
      assert.equal(c.spec.names.plural, PLURALS[kind]);
      assert.equal(c.metadata.name, `${PLURALS[kind]}.portico.dev`);
      assert.deepEqual(c.spec.versions.map((v) => [v.name, v.served, v.storage]), [['v1beta1', true, true]]);
      assert.deepEqual(c.spec.versions[0]!.subresources?.status, {}, `${kind} has a status subresource`);
    }
  });

  it('has structural schemas: typed everywhere, no additionalProperties beside properties', function () {
    for (const [kind, c] of crds) {
      walk(c.spec.versions[0]!.schema.openAPIV3Schema, kind, (s, at) => {
        assert.ok(s.type, `${at} has a type`);
        assert.ok(!(s.properties && s.additionalProperties !== undefined), `${at}: properties and additionalProperties together are not structural`);
        assert.notEqual(s.additionalProperties, false, `${at}: additionalProperties false is not allowed`);
      });
    }
  });

  it('spec fields match the API types field for field', function () {
    for (const [kind, fields] of Object.entries(SPEC_FIELDS)) {
      const spec = crds.get(kind)!.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
      assert.deepEqual(Object.keys(spec.properties ?? {}).sort(), [...fields].sort(), kind);
    }
  });

  it('bounds every string and list a CEL rule looks at, so the rule cost is accepted', function () {
    for (const [kind, c] of crds) {
      walk(c.spec.versions[0]!.schema.openAPIV3Schema, kind, (s, at) => {
        if (!s['x-kubernetes-validations']) return;
        if (s.type === 'string') assert.ok(s.maxLength, `${at} has maxLength`);
        if (s.type === 'array') assert.ok(s.maxItems && s.items?.maxLength, `${at} has maxItems and item maxLength`);
      });
    }
  });

  it('IPAddressPool refuses malformed CIDRs, inverted ranges and negative priorities, and shows counts', function () {
    const v = crds.get('IPAddressPool')!.spec.versions[0]!;
    const spec = v.schema.openAPIV3Schema.properties!.spec!;
    assert.deepEqual(spec.required, ['addresses']);
    const addr = spec.properties!.addresses!;
    assert.equal(addr.minItems, 1);
    const rules = addr.items!['x-kubernetes-validations']!;
    assert.ok(rules.some((r) => r.rule.includes('isCIDR(self)') && r.rule.includes('masked()')), 'CIDR syntax and host bits');
    assert.ok(rules.some((r) => /ends before it starts/.test(r.message)), 'inverted range');
    assert.ok(rules.some((r) => /same family/.test(r.message)), 'mixed families');
    assert.equal(spec.properties!.serviceAllocation!.properties!.priority!.minimum, 0);
    assert.equal(spec.properties!.autoAssign!.default, true);
    const status = v.schema.openAPIV3Schema.properties!.status!.properties!;
    const cols = v.additionalPrinterColumns!;
    for (const f of ['assignedIPv4', 'availableIPv4', 'assignedIPv6', 'availableIPv6']) {
      assert.ok(status[f], `status.${f}`);
      assert.ok(cols.some((c) => c.jsonPath === `.status.${f}` && c.type === 'integer'), `printer column for ${f}`);
    }
  });

  it('BGPPeer: one of peerASN/dynamicASN, one of peerAddress/interface, disableMP not beside dualStackAddressFamily true, each rule naming its fields', function () {
    const spec = crds.get('BGPPeer')!.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
    assert.deepEqual(spec.required, ['myASN'], 'peerASN and peerAddress have alternatives now');
    const rules = spec['x-kubernetes-validations']!;
    const rule = (re: RegExp): { rule: string; message: string } => {
      const r = rules.find((x) => re.test(x.message));
      assert.ok(r, `a rule whose message matches ${re}`);
      return r;
    };
    assert.equal(rule(/exactly one of peerASN and dynamicASN/).rule, 'has(self.peerASN) != has(self.dynamicASN)');
    assert.equal(rule(/exactly one of peerAddress and interface/).rule, 'has(self.peerAddress) != has(self.interface)');
    assert.match(rule(/disableMP.*dualStackAddressFamily/).rule, /self\.disableMP && .*self\.dualStackAddressFamily/);
    const p = spec.properties!;
    assert.deepEqual((p.dynamicASN as Schema & { enum?: string[] }).enum, ['internal', 'external']);
    assert.equal(p.localASN!.minimum, 1);
    assert.equal(p.interface!.maxLength, 15);
    assert.equal(p.disableMP!.type, 'boolean');
    assert.equal(p.dualStackAddressFamily!.type, 'boolean');
    assert.equal(p.dualStackAddressFamily!.default, undefined, 'unset means both families (Portico\'s default), so no schema default');
  });

  it('every printer column points at a field the schema has', function () {
    for (const [kind, c] of crds) {
      const root = c.spec.versions[0]!.schema.openAPIV3Schema;
      for (const col of c.spec.versions[0]!.additionalPrinterColumns ?? []) {
        if (col.jsonPath.startsWith('.metadata.')) continue;
        const parts = col.jsonPath.replace(/\[\?.*\]\./, '[].').split('.').filter(Boolean);
        let s: Schema | undefined = root;
        for (const p of parts) s = p.endsWith('[]') ? s?.properties?.[p.slice(0, -2)]?.items : s?.properties?.[p];
        assert.ok(s, `${kind}: column ${col.name} -> ${col.jsonPath}`);
      }
    }
  });
});
