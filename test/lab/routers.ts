// Routers on the lab's segment: FRR, BIRD or GoBGP in their own namespace,
// each started from a config the caller writes, queried through its CLI.
import { mkdirSync, writeFileSync, rmSync, chmodSync, existsSync } from 'node:fs';
import path from 'node:path';
import { run, stopDaemon, waitFor, type DaemonRecord } from './sh.ts';
import type { Lab, LabHost } from './lab.ts';

export type RouterKind = 'frr' | 'bird' | 'gobgp';

export interface RouterOptions {
  name: string;
  kind: RouterKind;
  /**
   * The daemon's configuration: FRR's bgpd config (frr.conf syntax), BIRD's
   * bird.conf, or GoBGP's TOML. `{{ipv4}}` and `{{ipv6}}` are replaced by the
   * router's segment addresses.
   */
  config: string;
  /** FRR only: a bfdd config (frr.conf syntax, `bfd` node); bfdd is started with it. */
  bfdd?: string;
}

const GOBGP_API_PORT = 50051;

export class Router {
  readonly host: LabHost;
  readonly kind: RouterKind;
  readonly dir: string;
  private readonly lab: Lab;
  private readonly daemons: DaemonRecord[] = [];
  private readonly frrName: string;

  constructor(lab: Lab, host: LabHost, kind: RouterKind, dir: string) {
    this.lab = lab;
    this.host = host;
    this.kind = kind;
    this.dir = dir;
    this.frrName = `${lab.tag}-${host.name}`;
  }

  get ns(): string { return this.host.ns; }
  get ipv4(): string { return this.host.ipv4; }
  get ipv6(): string { return this.host.ipv6; }

  /** Starts the daemon(s) and waits until the CLI answers. */
  async start(config: string, bfdd?: string): Promise<void> {
    const text = config.replaceAll('{{ipv4}}', this.ipv4).replaceAll('{{ipv6}}', this.ipv6);
    mkdirSync(path.join(this.dir, 'run'), { recursive: true });
    const key = (d: string): string => `router-${this.host.name}-${d}`;
    switch (this.kind) {
      case 'frr': {
        // FRR drops privileges to frr:frr, which must own its directory.
        writeFileSync(path.join(this.dir, 'zebra.conf'), `hostname ${this.host.name}\n`);
        writeFileSync(path.join(this.dir, 'bgpd.conf'), text);
        await run(['chown', '-R', 'frr:frr', this.dir]);
        chmodSync(this.dir, 0o770);
        chmodSync(path.join(this.dir, 'run'), 0o770);
        const common = ['-N', this.frrName, '--vty_socket', path.join(this.dir, 'run'), '-z', path.join(this.dir, 'run', 'zserv.api'), '-A', '127.0.0.1'];
        this.daemons.push(this.lab.spawn(key('zebra'), this.host.name, ['/usr/lib/frr/zebra', ...common, '-f', path.join(this.dir, 'zebra.conf'), '-i', path.join(this.dir, 'run', 'zebra.pid')]));
        await waitFor('FRR zebra socket', () => existsSync(path.join(this.dir, 'run', 'zserv.api')), 10_000, 50);
        if (bfdd !== undefined) {
          writeFileSync(path.join(this.dir, 'bfdd.conf'), bfdd.replaceAll('{{ipv4}}', this.ipv4).replaceAll('{{ipv6}}', this.ipv6));
          await run(['chown', 'frr:frr', path.join(this.dir, 'bfdd.conf')]);
          this.daemons.push(this.lab.spawn(key('bfdd'), this.host.name, ['/usr/lib/frr/bfdd', ...common, '--bfdctl', path.join(this.dir, 'run', 'bfdd.sock'), '-f', path.join(this.dir, 'bfdd.conf'), '-i', path.join(this.dir, 'run', 'bfdd.pid')]));
          await waitFor('FRR bfdd socket', () => existsSync(path.join(this.dir, 'run', 'bfdd.vty')), 10_000, 50);
        }
        this.daemons.push(this.lab.spawn(key('bgpd'), this.host.name, ['/usr/lib/frr/bgpd', ...common, '-f', path.join(this.dir, 'bgpd.conf'), '-i', path.join(this.dir, 'run', 'bgpd.pid')]));
        await waitFor('FRR bgpd to answer vtysh', async () => (await this.cli(['show bgp summary'])).length > 0, 15_000, 100);
        break;
      }
      case 'bird': {
        const conf = path.join(this.dir, 'bird.conf');
        writeFileSync(conf, text);
        this.daemons.push(this.lab.spawn(key('bird'), this.host.name, ['bird', '-f', '-c', conf, '-s', path.join(this.dir, 'run', 'bird.ctl'), '-P', path.join(this.dir, 'run', 'bird.pid')]));
        await waitFor('BIRD to answer birdc', async () => (await this.cli(['show status'])).includes('Daemon is up'), 15_000, 100);
        break;
      }
      case 'gobgp': {
        const conf = path.join(this.dir, 'gobgpd.toml');
        writeFileSync(conf, text);
        this.daemons.push(this.lab.spawn(key('gobgpd'), this.host.name, ['gobgpd', '-f', conf, '-p', '--api-hosts', `127.0.0.1:${GOBGP_API_PORT}`, '--log-level', 'info']));
        await waitFor('GoBGP to answer gobgp', async () => (await this.cli(['global'])).includes('AS'), 15_000, 100);
        break;
      }
    }
  }

  /** Runs the router's CLI (vtysh / birdc / gobgp) with the given command words; resolves with stdout. */
  async cli(args: readonly string[]): Promise<string> {
    switch (this.kind) {
      case 'frr':
        return (await run(['vtysh', '--vty_socket', path.join(this.dir, 'run'), ...args.flatMap((a) => ['-c', a])], { timeoutMs: 10_000 })).stdout;
      case 'bird':
        return (await run(['birdc', '-s', path.join(this.dir, 'run', 'bird.ctl'), ...args], { timeoutMs: 10_000 })).stdout;
      case 'gobgp':
        return (await this.lab.exec(this.host.name, ['gobgp', '-p', String(GOBGP_API_PORT), ...args], { timeoutMs: 10_000 })).stdout;
    }
  }

  /** The router's IPv4 or IPv6 BGP table as prefixes (with whatever detail the CLI shows). */
  async routes(family: 'ipv4' | 'ipv6' = 'ipv4'): Promise<string> {
    switch (this.kind) {
      case 'frr': return this.cli([`show bgp ${family} unicast json`]);
      case 'bird': return this.cli(['show', 'route', 'all']);
      case 'gobgp': return this.cli(['global', 'rib', '-a', family, '-j']);
    }
  }

  async stop(): Promise<void> {
    for (const d of this.daemons.reverse()) {
      await stopDaemon(d);
      // FRR keeps per-process crash-log directories outside ours.
      if (this.kind === 'frr') rmSync(`/var/tmp/frr/${path.basename(d.name.replace(/^.*-/, ''))}.${d.pid}`, { recursive: true, force: true });
    }
    this.daemons.length = 0;
    if (this.kind === 'frr') rmSync(`/run/frr/${this.frrName}`, { recursive: true, force: true });
  }
}

/** Adds a router namespace on the segment and starts its daemon with `config`. */
export async function addRouter(lab: Lab, opts: RouterOptions): Promise<Router> {
  const host = await lab.addRouterHost(opts.name);
  const r = new Router(lab, host, opts.kind, path.join(lab.dir, `router-${opts.name}`));
  lab.onStop(() => r.stop());
  await r.start(opts.config, opts.bfdd);
  return r;
}
