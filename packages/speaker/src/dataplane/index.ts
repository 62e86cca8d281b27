// Which dataplane this node runs (--dataplane=ipvs|nftables|none, default
// auto: none where kube-proxy forwards LoadBalancer IPs, else IPVS where the
// kernel has ip_vs, else nftables; choose.ts) and the announcer factory the
// speaker registers.
import type { SpeakerContext } from '../context.ts';
import type { Announcer } from '../world/types.ts';
import { decideDataplane, hostNodeProbe, nodeFacts, type DataplaneChoice, type DataplaneMode, type NodeProbe } from './choose.ts';
import { IpvsDataplane } from './ipvs.ts';
import { createDataplaneMetrics } from './metrics.ts';
import { NftDataplane } from './nftables.ts';
import { renderDelete, runNft, type NftRunner } from './nft.ts';

export { desiredState, serviceDesired, type DesiredState, type VirtualService } from './desired.ts';
export { diff, applyOps, type Op, type KernelService } from './diff.ts';
export { IpvsDataplane } from './ipvs.ts';
export { NftDataplane } from './nftables.ts';
export { DATAPLANE_MODES, decideDataplane, findKubeProxy, hostNodeProbe, nodeFacts, type DataplaneChoice, type DataplaneMode, type NodeFacts, type NodeProbe } from './choose.ts';

/** The dataplane to run and why, in words for the log: what the node shows, then the pure decision. */
export async function chooseDataplane(asked: DataplaneMode | 'auto', probe: NodeProbe = hostNodeProbe): Promise<DataplaneChoice> {
  return decideDataplane(asked, await nodeFacts(asked, probe));
}

/**
 * With `none`, a table `inet portico` left by an earlier speaker on this node
 * (one that ran the nftables dataplane, or IPVS's masquerade rules, before
 * kube-proxy came or the flag changed) would go on DNATing the VIPs beside
 * kube-proxy: it is removed once at start. Removing a table that is not
 * there is a no-op (renderDelete declares it first).
 */
export async function removeLeftoverTable(log: SpeakerContext['log'], nft: NftRunner = runNft): Promise<void> {
  try {
    await nft(renderDelete());
    log.info('dataplane none: no table inet portico on this node (an earlier one, if any, removed)', { dataplane: 'none' });
  } catch (err) {
    log.error('dataplane none: cannot remove an earlier table inet portico', { dataplane: 'none', err });
  }
}

/**
 * The speaker's factory: the dataplane named by ctx.dataplane (default auto).
 * When IPVS was chosen but cannot open, the speaker logs it, counts it and
 * goes on with nftables, so traffic still reaches the pods.
 */
export async function createDataplane(ctx: SpeakerContext, opts: { nft?: NftRunner } = {}): Promise<Announcer | undefined> {
  const asked = ctx.dataplane ?? 'auto';
  const { mode, why, kubeProxy } = await chooseDataplane(asked);
  const metrics = createDataplaneMetrics(ctx.registry);
  const log = ctx.log;
  const events = ctx.writer;
  log.info('dataplane chosen', { dataplane: mode, why, asked, kubeProxy: kubeProxy ?? null });
  if (mode === 'none') {
    await removeLeftoverTable(log, opts.nft);
    return undefined;
  }
  if (mode === 'ipvs') {
    try {
      return await IpvsDataplane.open({ log, metrics, events, liveness: ctx.liveness });
    } catch (err) {
      metrics.syncErrors.inc({ dataplane: 'ipvs', reason: 'missing-module' });
      metrics.problem.set({ dataplane: 'ipvs', problem: 'missing-module' }, 1);
      log.error('cannot open IPVS; using the nftables dataplane instead', { dataplane: 'ipvs', err });
    }
  }
  return new NftDataplane({ log, metrics, events, liveness: ctx.liveness });
}
