// nftables text for Portico's one table, `inet portico`, written whole and
// replaced in one transaction with `nft -f` (the table is created if missing,
// deleted and made again in the same batch, so a reader never sees it half
// written). Nothing outside the table is ever touched.
//
// Two shapes: the nftables dataplane (DNAT per virtual service with random or
// source-hash selection, masquerade for Cluster policy), and the masquerade
// that the IPVS dataplane needs next to IPVS NAT (IPVS, with
// net.ipv4.vs.conntrack=1, leaves conntrack entries whose original destination
// is the VIP; the postrouting rule matches those).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { DesiredState, VirtualService } from './desired.ts';

export const NFT_TABLE = 'portico';
/** The source-hash seed: fixed, so the same client keeps its endpoint across rewrites of the table. */
const JHASH_SEED = '0x706f7274';

function chainName(vs: VirtualService): string {
  return `svc-${createHash('sha256').update(vs.key).digest('hex').slice(0, 12)}`;
}

function elements(items: readonly string[]): string[] {
  return items.length ? [`    elements = { ${items.join(', ')} }`] : [];
}

/**
 * The masquerade sets: the VIPs with a Cluster-policy virtual service, and
 * the endpoints on this node. Traffic whose connection was opened to such a
 * VIP and leaves for an endpoint that is not local is masqueraded, so the
 * reply comes back through this node. Local-policy services only ever pick
 * local endpoints, so sharing a VIP with a Cluster one changes nothing for
 * them. Both sets change with Services and local pods only, not with every
 * endpoint elsewhere in the cluster, so endpoint churn needs no nft write.
 */
function masqueradeParts(state: DesiredState): { cluster4: string[]; cluster6: string[]; local4: string[]; local6: string[] } {
  const split = (x: ReadonlySet<string>): [string[], string[]] => {
    const all = [...x].sort();
    return [all.filter((a) => !a.includes(':')), all.filter((a) => a.includes(':'))];
  };
  const [cluster4, cluster6] = split(state.masquerade.cluster);
  const [local4, local6] = split(state.masquerade.local);
  return { cluster4, cluster6, local4, local6 };
}

function header(): string[] {
  return [`table inet ${NFT_TABLE}`, `delete table inet ${NFT_TABLE}`, `table inet ${NFT_TABLE} {`];
}

function masqueradeBlock(state: DesiredState): string[] {
  const m = masqueradeParts(state);
  const set = (name: string, type: string, items: string[]): string[] => [`  set ${name} {`, `    type ${type}`, ...elements(items), '  }'];
  return [
    ...set('cluster4', 'ipv4_addr', m.cluster4), ...set('cluster6', 'ipv6_addr', m.cluster6),
    ...set('local4', 'ipv4_addr', m.local4), ...set('local6', 'ipv6_addr', m.local6),
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    '    ct original ip daddr @cluster4 ip daddr != @local4 masquerade',
    '    ct original ip6 daddr @cluster6 ip6 daddr != @local6 masquerade',
    '  }',
  ];
}

/** The table the IPVS dataplane keeps: masquerade only. */
export function renderIpvsMasquerade(state: DesiredState): string {
  return [...header(), ...masqueradeBlock(state), '}', ''].join('\n');
}

/**
 * The table of the nftables dataplane: a verdict map from VIP . protocol .
 * port to one chain per virtual service, which DNATs to an endpoint chosen by
 * numgen (random) or, with ClientIP affinity, by a hash of the client address.
 * A virtual service without endpoints drops its traffic.
 */
export function renderNftDataplane(state: DesiredState): string {
  const map4: string[] = [];
  const map6: string[] = [];
  const chains: string[] = [];
  const all = [...state.services.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const vs of all) {
    const name = chainName(vs);
    (vs.family === 'inet' ? map4 : map6).push(`${vs.address} . ${vs.protocol} . ${vs.port} : goto ${name}`);
    chains.push(`  chain ${name} {`);
    if (vs.reals.length === 0) {
      chains.push('    drop');
    } else {
      const ip = vs.family === 'inet' ? 'ip' : 'ip6';
      const pick = vs.persistenceSeconds !== undefined ? `jhash ${ip} saddr mod ${vs.reals.length} seed ${JHASH_SEED}` : `numgen random mod ${vs.reals.length}`;
      const targets = vs.reals.map((r, i) => `${i} : ${r.address} . ${r.port}`).join(', ');
      chains.push(`    meta l4proto ${vs.protocol} dnat ${ip} to ${pick} map { ${targets} }`);
    }
    chains.push('  }');
  }
  return [
    ...header(),
    '  map services4 {', '    type ipv4_addr . inet_proto . inet_service : verdict', ...elements(map4), '  }',
    '  map services6 {', '    type ipv6_addr . inet_proto . inet_service : verdict', ...elements(map6), '  }',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    ip daddr . meta l4proto . th dport vmap @services4',
    '    ip6 daddr . meta l4proto . th dport vmap @services6',
    '  }',
    // Connections from the node itself to a VIP.
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    '    ip daddr . meta l4proto . th dport vmap @services4',
    '    ip6 daddr . meta l4proto . th dport vmap @services6',
    '  }',
    ...masqueradeBlock(state),
    ...chains,
    '}', '',
  ].join('\n');
}

/** Removes the table (nothing else): created first so the delete cannot fail on a missing table. */
export function renderDelete(): string {
  return `table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n`;
}

export class NftError extends Error {
  readonly code = 'PORTICO_NFT_FAILED';
}

/** What runs `nft -f -`; injected so tests and other namespaces can swap it. */
export type NftRunner = (script: string) => Promise<void>;

/** Runs `nft -f -` with the script on stdin; rejects with nft's own message. */
export const runNft: NftRunner = (script) => new Promise((resolve, reject) => {
  const p = spawn('nft', ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  p.on('error', (err) => reject(new NftError(`cannot run nft: ${err.message}`)));
  p.on('close', (code) => (code === 0 ? resolve() : reject(new NftError(`nft -f failed (exit ${code}): ${stderr.trim().split('\n').slice(0, 6).join(' | ')}`))));
  p.stdin.end(script);
});
