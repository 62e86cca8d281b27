// Which dataplane this node runs (--dataplane=ipvs|nftables|none, default:
// IPVS where the kernel has ip_vs, loading the module if needed, else
// nftables) and the announcer factory the speaker registers.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { SpeakerContext } from '../context.ts';
import type { Announcer } from '../world/types.ts';
import { IpvsDataplane } from './ipvs.ts';
import { createDataplaneMetrics } from './metrics.ts';
import { NftDataplane } from './nftables.ts';

export { desiredState, serviceDesired, type DesiredState, type VirtualService } from './desired.ts';
export { diff, applyOps, type Op, type KernelService } from './diff.ts';
export { IpvsDataplane } from './ipvs.ts';
export { NftDataplane } from './nftables.ts';

export const DATAPLANE_MODES = ['ipvs', 'nftables', 'none'] as const;
export type DataplaneMode = (typeof DATAPLANE_MODES)[number];

export interface KernelProbe {
  /** Whether ip_vs is loaded (or built in). */
  hasIpvs(): boolean;
  /** Tries to load a module; resolves with the error text, or undefined on success. */
  modprobe(module: string): Promise<string | undefined>;
}

/**
 * modprobe runs as a child process without blocking the event loop: the
 * speaker answers ARP and renews its heartbeat meanwhile, and a module that
 * takes long to load (or a hung modprobe, killed after 10 s) delays nothing else.
 */
export const hostProbe: KernelProbe = {
  hasIpvs: () => existsSync('/proc/net/ip_vs'),
  modprobe: (module) => new Promise((resolve) => {
    execFile('modprobe', [module], { encoding: 'utf8', timeout: 10_000 }, (err, _stdout, stderr) => {
      if (!err) resolve(undefined);
      else resolve(stderr.trim() || (err.killed ? 'modprobe timed out after 10 s' : err.message));
    });
  }),
};

/** The dataplane to run and why, in words for the log. */
export async function chooseDataplane(asked: DataplaneMode | 'auto', probe: KernelProbe = hostProbe): Promise<{ mode: DataplaneMode; why: string }> {
  if (asked !== 'auto') return { mode: asked, why: `--dataplane=${asked}` };
  if (probe.hasIpvs()) return { mode: 'ipvs', why: 'the kernel has ip_vs' };
  const err = await probe.modprobe('ip_vs');
  if (probe.hasIpvs()) return { mode: 'ipvs', why: 'ip_vs loaded with modprobe' };
  return { mode: 'nftables', why: `the kernel has no ip_vs (modprobe ip_vs: ${err ?? 'loaded, but /proc/net/ip_vs is missing'})` };
}

/**
 * The speaker's factory: the dataplane named by ctx.dataplane (default auto).
 * When IPVS was chosen but cannot open, the speaker logs it, counts it and
 * goes on with nftables, so traffic still reaches the pods.
 */
export async function createDataplane(ctx: SpeakerContext): Promise<Announcer | undefined> {
  const asked = ctx.dataplane ?? 'auto';
  const { mode, why } = await chooseDataplane(asked);
  const metrics = createDataplaneMetrics(ctx.registry);
  const log = ctx.log;
  const events = ctx.writer;
  log.info('dataplane chosen', { dataplane: mode, why });
  if (mode === 'none') return undefined;
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
