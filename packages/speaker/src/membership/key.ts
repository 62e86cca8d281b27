// The heartbeat key: read from a Secret in the config namespace (the installer
// creates it). Key `key` signs and verifies; an optional `previous` still
// verifies, so a rotation never splits the cluster.
import { SECRETS, type Logger } from '@portico/shared';

/** Name of the Secret holding the heartbeat key. */
export const HEARTBEAT_SECRET = SECRETS.heartbeat.name;

/** A Secret's data, base64-decoded to bytes (the key is random bytes, not text). */
export type SecretDataReader = (namespace: string, name: string) => Promise<Readonly<Record<string, Uint8Array>> | undefined>;

/** The keys in a Secret's (decoded) data, signing key first; empty when the Secret has none. */
export function keysFromSecret(data: Readonly<Record<string, Uint8Array>> | undefined): Uint8Array[] {
  if (!data) return [];
  return ['key', 'previous'].map((k) => data[k]).filter((v): v is Uint8Array => v !== undefined && v.length > 0);
}

/** Keeps the keys fresh: reads the Secret now and every refreshMs; a failed read keeps the last keys (an API outage must not stop heartbeats). */
export class HeartbeatKeys {
  private keys: Uint8Array[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly read: SecretDataReader;
  private readonly namespace: string;
  private readonly log: Logger;
  private readonly refreshMs: number;
  private readonly onChange: ((keys: readonly Uint8Array[]) => void) | undefined;

  constructor(opts: { read: SecretDataReader; namespace: string; log: Logger; refreshMs?: number; onChange?: (keys: readonly Uint8Array[]) => void }) {
    this.read = opts.read;
    this.namespace = opts.namespace;
    this.log = opts.log;
    this.refreshMs = opts.refreshMs ?? 60_000;
    this.onChange = opts.onChange;
  }

  current(): readonly Uint8Array[] {
    return this.keys;
  }

  async refresh(): Promise<void> {
    try {
      const next = keysFromSecret(await this.read(this.namespace, HEARTBEAT_SECRET));
      if (next.length === 0) {
        if (this.keys.length === 0) this.log.error('heartbeat key missing: this speaker claims no IPs until it can authenticate its peers', { secret: `${this.namespace}/${HEARTBEAT_SECRET}`, key: 'key' });
        this.set(next);
        return;
      }
      if (this.keys.length === 0) this.log.info('heartbeat key loaded', { secret: `${this.namespace}/${HEARTBEAT_SECRET}`, keys: next.length });
      this.set(next);
    } catch (err) {
      this.log.error('heartbeat key not read; keeping the last one', { secret: `${this.namespace}/${HEARTBEAT_SECRET}`, err });
    }
  }

  private set(next: Uint8Array[]): void {
    const same = next.length === this.keys.length && next.every((k, i) => Buffer.from(k).equals(this.keys[i]!));
    this.keys = next;
    if (!same) this.onChange?.(next);
  }

  /** Waits for the first read, then refreshes periodically. */
  async start(): Promise<void> {
    await this.refresh();
    const again = (): void => {
      this.timer = setTimeout(() => { void this.refresh().finally(again); }, this.keys.length > 0 ? this.refreshMs : Math.min(this.refreshMs, 2000));
      this.timer.unref();
    };
    again();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
