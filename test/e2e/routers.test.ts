// The lab's router helpers with real daemons: FRR takes BGP sessions from BIRD
// and GoBGP (dynamic neighbours), BIRD announces a /32, and the route travels
// BIRD -> FRR -> GoBGP and into FRR's kernel table.
import { strict as assert } from 'node:assert';
import { addRouter, waitFor, type Lab, type Router } from '../lab/index.ts';
import { requireE2e, sharedLab } from './shared-lab.ts';

const ROUTE = '203.0.113.99/32';

describe('lab routers (e2e, root): FRR, BIRD and GoBGP in namespaces', function () {
  this.timeout(120_000);
  let lab: Lab;
  let frr: Router;
  let bird: Router;
  let gobgp: Router;

  before(async function () {
    requireE2e(this);
    lab = await sharedLab();
    frr = await addRouter(lab, {
      name: 'r-frr', kind: 'frr', config: `
frr defaults datacenter
hostname r-frr
router bgp 64512
 bgp router-id {{ipv4}}
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor PEERS peer-group
 neighbor PEERS remote-as external
 neighbor PEERS timers 1 3
 bgp listen range 198.51.100.0/24 peer-group PEERS
 address-family ipv4 unicast
  neighbor PEERS activate
 exit-address-family
`,
    });
    bird = await addRouter(lab, {
      name: 'r-bird', kind: 'bird', config: `
router id {{ipv4}};
protocol device {}
protocol static s4 { ipv4; route ${ROUTE} blackhole; }
protocol bgp frr {
  local as 64513;
  neighbor ${frr.ipv4} as 64512;
  connect delay time 1; connect retry time 1; hold time 3; keepalive time 1;
  ipv4 { import all; export where source = RTS_STATIC; };
}
`,
    });
    gobgp = await addRouter(lab, {
      name: 'r-gobgp', kind: 'gobgp', config: `
[global.config]
  as = 64514
  router-id = "{{ipv4}}"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "${frr.ipv4}"
    peer-as = 64512
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 3
    keepalive-interval = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
`,
    });
  });

  it('each router runs in its own namespace on the segment with the configured identity', async () => {
    assert.deepEqual(new Set([frr.ns, bird.ns, gobgp.ns]).size, 3);
    const frrTable = JSON.parse(await frr.routes('ipv4')) as { routerId?: string; localAS?: number };
    assert.deepEqual([frrTable.routerId, frrTable.localAS], [frr.ipv4, 64512]);
    assert.match(await bird.cli(['show', 'status']), new RegExp(`Router ID is ${bird.ipv4.replaceAll('.', '\\.')}`));
    assert.match(await gobgp.cli(['global']), /AS:\s+64514/);
  });

  it('a route BIRD announces reaches FRR (and its kernel table) and GoBGP with the right AS path', async () => {
    const viaFrr = await waitFor('the route in FRR', async () => {
      const table = JSON.parse(await frr.routes('ipv4')) as { routes?: Record<string, { path?: string; aspath?: { string?: string } }[]> };
      return table.routes?.[ROUTE];
    }, 30_000, 200);
    assert.equal(viaFrr[0]?.aspath?.string ?? viaFrr[0]?.path, '64513');
    await waitFor('the route in FRR\'s kernel table', async () => (await lab.exec(frr.host.name, ['ip', 'route', 'show', ROUTE])).stdout.includes(`via ${bird.ipv4}`), 10_000, 200);
    const viaGobgp = await waitFor('the route in GoBGP', async () => {
      const rib = JSON.parse(await gobgp.routes('ipv4')) as Record<string, { attrs?: { type: number; as_paths?: { asns: number[] }[] }[] }[]>;
      return rib[ROUTE];
    }, 30_000, 200);
    const asPath = viaGobgp[0]?.attrs?.find((a) => a.type === 2)?.as_paths?.[0]?.asns;
    assert.deepEqual(asPath, [64512, 64513]);
  });
});
