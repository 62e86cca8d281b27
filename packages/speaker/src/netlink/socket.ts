// Request/response over an AF_NETLINK socket from the native addon: each
// request gets a sequence number; its answer is the messages with that number
// up to the ACK (NLMSG_ERROR) or, for a dump, up to NLMSG_DONE. Failures come
// back as NetlinkError with the errno name and the kernel's extended-ACK text.
import { CodecError, type Codec } from '../codec/errors.ts';
import { loadNative, openNetlinkSocket, type NetlinkSocket } from '../native/index.ts';
import { GENL_ID_CTRL, IPVS_GENL_NAME, NETLINK_GENERIC, NETLINK_ROUTE, NLM_F } from './constants.ts';
import { CTRL_SCHEMA, getFamilyRequest, parseFamily, type GenlFamily } from './genl.ts';
import { ipvsCodec } from './ipvs.ts';
import { messageError, netlinkCodec, NetlinkError, routeCodec, type NlMessage } from './message.ts';

export { NetlinkError };

export interface NetlinkClientOptions {
  /** How long a request may wait for its answer (default 5 s). */
  timeoutMs?: number;
  /** Receive buffer per datagram (dumps of many IPVS services come in 16-32 KiB datagrams). */
  bufferSize?: number;
}

interface Pending {
  dump: boolean;
  ack: boolean;
  replies: NlMessage[];
  resolve: (msgs: NlMessage[]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  context: string;
}

export class NetlinkTimeoutError extends Error {
  readonly code = 'PORTICO_NETLINK_TIMEOUT';
}

/**
 * One netlink socket and the requests in flight on it. `codec` decides how
 * answers are read (rtnetlink, or generic netlink with the family schemas).
 */
export class NetlinkClient {
  readonly socket: NetlinkSocket;
  codec: Codec<NlMessage[]>;
  /** Answers that matched no request (late answers after a timeout). */
  unmatched = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #timeoutMs: number;
  #seq: number;

  constructor(socket: NetlinkSocket, codec: Codec<NlMessage[]>, opts: NetlinkClientOptions = {}) {
    this.socket = socket;
    this.codec = codec;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    // Start from a time-based number, as iproute2 does, so a restarted speaker's answers are not confused with old ones.
    this.#seq = Math.floor(Date.now() / 1000) >>> 0;
    socket.onDatagram((d) => this.#onDatagram(d.data, d.truncated));
    socket.onError((err) => this.#failAll(err));
    socket.ref(false);
  }

  /** Opens a socket of `protocol` with extended ACKs on and capped ACKs (the echo of our own request is not needed). */
  static open(protocol: number, codec: Codec<NlMessage[]>, opts: NetlinkClientOptions = {}): NetlinkClient {
    const socket = openNetlinkSocket(protocol, { bufferSize: opts.bufferSize ?? 256 * 1024 });
    const c = loadNative().constants;
    socket.setOption(c.SOL_NETLINK, c.NETLINK_EXT_ACK, 1);
    socket.setOption(c.SOL_NETLINK, c.NETLINK_CAP_ACK, 1);
    if (protocol === NETLINK_ROUTE) socket.setOption(c.SOL_NETLINK, c.NETLINK_GET_STRICT_CHK, 1);
    return new NetlinkClient(socket, codec, opts);
  }

  /**
   * Sends `msg` (its seq and pid are filled in) and resolves with the data
   * messages of the answer: one or none for a plain request, all of them for
   * a dump (NLM_F_DUMP). Rejects with NetlinkError when the kernel refuses.
   */
  request(msg: NlMessage, context = 'netlink request'): Promise<NlMessage[]> {
    const seq = this.#seq = (this.#seq + 1) >>> 0;
    const header = { ...msg.header, seq, pid: this.socket.portId };
    const bytes = this.codec.encode([{ ...msg, header }]);
    const dump = (header.flags & NLM_F.DUMP) === NLM_F.DUMP;
    const ack = (header.flags & NLM_F.ACK) !== 0;
    return new Promise<NlMessage[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#finish(seq);
        reject(new NetlinkTimeoutError(`${context}: no answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      this.#pending.set(seq, { dump, ack, replies: [], resolve, reject, timer, context });
      this.socket.ref(true);
      if (!this.socket.send(bytes)) {
        this.#finish(seq);
        reject(new Error(`${context}: the netlink socket's send buffer is full`));
      }
    });
  }

  #finish(seq: number): Pending | undefined {
    const p = this.#pending.get(seq);
    if (p) clearTimeout(p.timer);
    this.#pending.delete(seq);
    if (this.#pending.size === 0) this.socket.ref(false);
    return p;
  }

  #failAll(err: Error): void {
    for (const seq of [...this.#pending.keys()]) this.#finish(seq)?.reject(err);
  }

  #onDatagram(data: Buffer, truncated: boolean): void {
    if (truncated) {
      this.#failAll(new CodecError('PORTICO_CODEC_TRUNCATED', `a netlink answer was longer than the ${data.length}-byte receive buffer`, data.length));
      return;
    }
    let msgs: NlMessage[];
    try {
      msgs = this.codec.decode(data);
    } catch (err) {
      this.#failAll(err as Error);
      return;
    }
    for (const m of msgs) {
      const p = this.#pending.get(m.header.seq);
      if (!p) {
        this.unmatched++;
        continue;
      }
      if (m.kind === 'error' || m.kind === 'done') {
        this.#finish(m.header.seq);
        const err = messageError(m, p.context);
        if (err) p.reject(err);
        else p.resolve(p.replies);
        continue;
      }
      p.replies.push(m);
      // A plain GET without NLM_F_ACK is answered by exactly one message.
      if (!p.dump && !p.ack) {
        this.#finish(m.header.seq);
        p.resolve(p.replies);
      }
    }
  }

  /** Rejects what is in flight and closes the socket. */
  close(): void {
    this.#failAll(new Error('netlink socket closed'));
    this.socket.close();
  }
}

/** Resolves a generic netlink family by name (CTRL_CMD_GETFAMILY); ENOENT when the kernel has no such family (module not loaded). */
export async function resolveFamily(client: NetlinkClient, name: string): Promise<GenlFamily> {
  const replies = await client.request(getFamilyRequest(name, 0), `resolve generic netlink family ${name}`);
  const m = replies.find((r) => r.kind === 'genl' && r.header.type === GENL_ID_CTRL);
  if (!m || m.kind !== 'genl') throw new NetlinkError(-2, `no answer about family ${name}`, undefined, `resolve generic netlink family ${name}`);
  return parseFamily(m);
}

/** A client for rtnetlink (links, addresses). */
export function openRouteClient(opts: NetlinkClientOptions = {}): NetlinkClient {
  return NetlinkClient.open(NETLINK_ROUTE, routeCodec, opts);
}

/**
 * A generic netlink client for IPVS: resolves the family (ENOENT when ip_vs
 * is not loaded) and reads answers with the IPVS schemas under its id.
 */
export async function openIpvsClient(opts: NetlinkClientOptions = {}): Promise<{ client: NetlinkClient; family: GenlFamily }> {
  const client = NetlinkClient.open(NETLINK_GENERIC, netlinkCodec({ protocol: NETLINK_GENERIC, families: { [GENL_ID_CTRL]: CTRL_SCHEMA } }), opts);
  try {
    const family = await resolveFamily(client, IPVS_GENL_NAME);
    client.codec = ipvsCodec(family.id);
    return { client, family };
  } catch (err) {
    client.close();
    throw err;
  }
}
