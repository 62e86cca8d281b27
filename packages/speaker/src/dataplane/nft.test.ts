import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { desiredState } from './desired.ts';
import { renderIpvsMasquerade, renderNftDataplane } from './nft.ts';
import { NftDataplane } from './nftables.ts';
import { endpoint, service, world } from './testdata/world.ts';

const EPS = [endpoint('100.64.1.5', 'node-1'), endpoint('100.64.2.5', 'node-2'), endpoint('2001:db8:64:2::5', 'node-2')];

describe('nftables rendering', () => {
  it('replaces table inet portico whole, in one batch, and names no other table', () => {
    const text = renderNftDataplane(desiredState(world('node-1', [service('web', { endpoints: EPS })])));
    assert.deepEqual(text.split('\n').slice(0, 3), ['table inet portico', 'delete table inet portico', 'table inet portico {']);
    assert.deepEqual([...text.matchAll(/\btable (\w+) (\w+)/g)].map((m) => `${m[1]} ${m[2]}`), ['inet portico', 'inet portico', 'inet portico']);
  });

  it('Cluster: random DNAT over every endpoint; the VIP is a Cluster VIP and local endpoints are exempt from masquerade', () => {
    const text = renderNftDataplane(desiredState(world('node-1', [service('web', { endpoints: EPS, ips: ['203.0.113.10', '2001:db8:10::a'] })])));
    assert.match(text, /203\.0\.113\.10 \. tcp \. 80 : goto svc-[0-9a-f]{12}/);
    assert.match(text, /meta l4proto tcp dnat ip to numgen random mod 2 map \{ 0 : 100\.64\.1\.5 \. 8080, 1 : 100\.64\.2\.5 \. 8080 \}/);
    assert.match(text, /meta l4proto tcp dnat ip6 to numgen random mod 1 map \{ 0 : 2001:db8:64:2::5 \. 8080 \}/);
    assert.match(text, /set cluster4 \{\n {4}type ipv4_addr\n {4}elements = \{ 203\.0\.113\.10 \}/);
    assert.match(text, /set local4 \{\n {4}type ipv4_addr\n {4}elements = \{ 100\.64\.1\.5 \}/, 'the local endpoint is not masqueraded');
    assert.match(text, /set cluster6 \{\n {4}type ipv6_addr\n {4}elements = \{ 2001:db8:10::a \}/);
    assert.match(text, /ct original ip daddr @cluster4 ip daddr != @local4 masquerade/);
  });

  it('Local: only local endpoints, no masquerade; ClientIP affinity hashes the source address', () => {
    const text = renderNftDataplane(desiredState(world('node-1', [service('web', { endpoints: EPS, externalTrafficPolicy: 'Local', sessionAffinity: { clientIP: true, timeoutSeconds: 60 } })])));
    assert.match(text, /dnat ip to jhash ip saddr mod 1 seed 0x[0-9a-f]+ map \{ 0 : 100\.64\.1\.5 \. 8080 \}/);
    assert.match(text, /set cluster4 \{\n {4}type ipv4_addr\n {2}\}/, 'no Cluster VIP: nothing is masqueraded');
  });

  it('a virtual service without endpoints drops; empty sets have no elements line', () => {
    const text = renderNftDataplane(desiredState(world('node-9', [service('web', { endpoints: EPS, externalTrafficPolicy: 'Local' })])));
    assert.match(text, /chain svc-[0-9a-f]{12} \{\n {4}drop\n {2}\}/);
    assert.doesNotMatch(text, /elements = \{ \}/);
  });

  it('the same state renders the same text (the dataplane writes only on change)', () => {
    const a = renderNftDataplane(desiredState(world('node-1', [service('web', { endpoints: EPS }), service('api', { ips: ['203.0.113.11'], endpoints: EPS })])));
    const b = renderNftDataplane(desiredState(world('node-1', [service('api', { ips: ['203.0.113.11'], endpoints: EPS }), service('web', { endpoints: EPS })])));
    assert.equal(a, b);
  });

  it('the dataplane rests after a costly rewrite, as long as it took (at most 2 s), and not after a cheap one', () => {
    const dp = new NftDataplane({ nft: async () => undefined });
    assert.deepEqual([dp.restAfter(0.005), dp.restAfter(0.3), dp.restAfter(10)], [0, 300, 2000]);
  });

  it('a restart keeps table inet portico (traffic flows on); leaving (an uninstall) deletes it', async () => {
    const scripts: string[] = [];
    const nft = async (s: string): Promise<void> => { scripts.push(s); };
    const kept = new NftDataplane({ nft });
    await kept.update(world('node-1', [service('web', { endpoints: EPS })]));
    await kept.stop();
    assert.equal(scripts.length, 1, 'the table as written, nothing more');
    const left = new NftDataplane({ nft });
    await left.update(world('node-1', [service('web', { endpoints: EPS })]));
    await left.stop('leave');
    assert.equal(scripts.at(-1), 'table inet portico\ndelete table inet portico\n');
  });

  it('the IPVS dataplane\'s table holds the masquerade only', () => {
    const text = renderIpvsMasquerade(desiredState(world('node-1', [service('web', { endpoints: EPS })])));
    assert.doesNotMatch(text, /dnat|prerouting/);
    assert.match(text, /ct original ip daddr @cluster4 ip daddr != @local4 masquerade/);
  });
});

describe('nftables rendering against the real nft, in a namespace of the test (needs root)', function () {
  const ns = `pdp-nft-${process.pid}`;
  before(function () {
    const why = process.platform !== 'linux' ? 'needs Linux' : process.getuid?.() !== 0 ? 'needs root for a network namespace'
      : spawnSync('sh', ['-c', 'command -v nft'], { stdio: 'ignore' }).status !== 0 ? 'nft is not installed (Debian package nftables)' : null;
    if (why) {
      console.log(`    skipped: ${why}`);
      this.skip();
    }
    assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
  });
  after(() => { spawnSync('ip', ['netns', 'del', ns]); });
  const nft = (script: string): { status: number | null; stderr: string } => spawnSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: script, encoding: 'utf8' });

  it('the kernel takes both tables, twice in a row (the replace idiom works on an existing table), and leaves other tables alone', () => {
    const state = desiredState(world('node-1', [
      service('web', { endpoints: EPS, ips: ['203.0.113.10', '2001:db8:10::a'] }),
      service('aff', { ips: ['203.0.113.11'], endpoints: EPS, sessionAffinity: { clientIP: true, timeoutSeconds: 60 }, ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 53, nodePort: undefined }] }),
      service('empty', { ips: ['203.0.113.12'], endpoints: [] }),
    ]));
    assert.equal(nft('table ip other {\n  chain c {\n    type filter hook input priority 0; policy accept;\n  }\n}\n').status, 0);
    for (const text of [renderNftDataplane(state), renderNftDataplane(state), renderIpvsMasquerade(state)]) {
      const r = nft(text);
      assert.equal(r.status, 0, r.stderr);
    }
    const list = spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables'], { encoding: 'utf8' }).stdout;
    assert.deepEqual(list.trim().split('\n').sort(), ['table inet portico', 'table ip other']);
  });
});
