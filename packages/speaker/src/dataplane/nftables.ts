// The nftables dataplane: the same desired state as IPVS, as DNAT rules in
// the one table `inet portico`, rewritten whole and atomically (`nft -f`)
// whenever the rendered table changes, with a rest after a costly rewrite.
// For kernels without ip_vs, and for clusters leaving kube-proxy's deprecated
// IPVS mode.
import type { Logger } from '@portico/shared';
import type { LivenessFeed } from '../membership/liveness.ts';
import type { StopReason, World } from '../world/types.ts';
import { desiredState } from './desired.ts';
import { quietLogger } from './log.ts';
import type { DataplaneMetrics } from './metrics.ts';
import { Pruner } from './prune.ts';
import { renderDelete, renderNftDataplane, runNft, type NftRunner } from './nft.ts';
import { WarningReporter, type EventSink } from './warnings.ts';

export interface NftDataplaneOptions {
  log?: Logger;
  metrics?: DataplaneMetrics;
  events?: EventSink;
  nft?: NftRunner;
  /** Remove table portico on every stop (default false: only stop('leave') does; a restarting speaker keeps traffic flowing). */
  cleanupOnStop?: boolean;
  /** Membership's verdicts: the endpoints of nodes it saw die are left out (prune.ts). */
  liveness?: LivenessFeed;
}

export class NftDataplane {
  readonly name = 'dataplane-nftables';
  readonly #log: Logger;
  readonly #metrics: DataplaneMetrics | undefined;
  readonly #nft: NftRunner;
  readonly #cleanup: boolean;
  readonly #warnings: WarningReporter;
  /** The table as last written (undefined: not written by this process yet, so the first update always writes). */
  #written: string | undefined;
  #world: World | undefined;
  #chain: Promise<void> = Promise.resolve();
  /** A sync queued and not begun: later requests join it (it reads the latest World and verdicts when it runs). */
  #queued: Promise<void> | undefined;
  readonly #pruner: Pruner;

  constructor(opts: NftDataplaneOptions = {}) {
    this.#log = opts.log ?? quietLogger;
    this.#metrics = opts.metrics;
    this.#nft = opts.nft ?? runNft;
    this.#cleanup = opts.cleanupOnStop ?? false;
    this.#warnings = new WarningReporter(this.#log, opts.events);
    // A node's death rewrites the table at once, without waiting for a World (or for a rest).
    this.#pruner = new Pruner({
      feed: opts.liveness, dataplane: 'nftables', log: this.#log, metrics: this.#metrics,
      onChange: () => { if (this.#world) this.#enqueue().catch(() => undefined); }, // a failed write is logged and counted in #sync
    });
  }

  /**
   * Every update renders and loads the whole table, so its cost grows with
   * the Services: after one that took more than 20 ms, rest as long as it
   * took (at most 2 s), so that under churn nft takes at most about half a
   * CPU instead of all of one, with the changes that arrive meanwhile
   * applied together in the next update.
   */
  restAfter(seconds: number): number {
    const ms = seconds * 1000;
    return ms > 20 ? Math.min(ms, 2000) : 0;
  }

  get table(): string | undefined {
    return this.#written;
  }

  update(world: World): Promise<void> {
    this.#world = world;
    return this.#enqueue();
  }

  /** One write at a time: updates from the World and from membership queue here. */
  #enqueue(): Promise<void> {
    if (this.#queued) return this.#queued;
    const p = this.#chain.then(() => { this.#queued = undefined; return this.#sync(); });
    this.#queued = p;
    this.#chain = p.catch(() => undefined);
    return p;
  }

  async #sync(): Promise<void> {
    const world = this.#world;
    if (!world) return;
    const t0 = performance.now();
    const desired = this.#pruner.apply(desiredState(world));
    this.#warnings.report(world, desired.warnings);
    const text = renderNftDataplane(desired);
    const m = this.#metrics;
    if (text !== this.#written) {
      try {
        await this.#nft(text);
        this.#written = text;
        m?.problem.set({ dataplane: 'nftables', problem: 'nft' }, 0);
        this.#log.debug('dataplane synced', { dataplane: 'nftables', services: desired.services.size, bytes: text.length });
      } catch (err) {
        this.#log.error('cannot write nftables table portico', { dataplane: 'nftables', err });
        m?.syncErrors.inc({ dataplane: 'nftables', reason: 'nft' });
        m?.problem.set({ dataplane: 'nftables', problem: 'nft' }, 1);
        throw err;
      }
    }
    if (m) {
      let reals = 0;
      for (const s of desired.services.values()) reals += s.reals.length;
      m.virtualServices.set({ dataplane: 'nftables' }, desired.services.size);
      m.realServers.set({ dataplane: 'nftables' }, reals);
      m.syncSeconds.observe({ dataplane: 'nftables', kind: 'full' }, (performance.now() - t0) / 1000);
    }
  }

  async stop(reason: StopReason = 'restart'): Promise<void> {
    this.#pruner.stop();
    await this.#chain;
    if (this.#cleanup || reason === 'leave') await this.#nft(renderDelete()).catch((err: unknown) => this.#log.error('cannot remove nftables table portico', { dataplane: 'nftables', err }));
  }
}
