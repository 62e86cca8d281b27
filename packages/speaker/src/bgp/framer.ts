// Cuts the TCP byte stream of a BGP session into whole messages. It checks the
// header (marker, length, type) as soon as 19 bytes are in, so a peer that is
// out of sync is answered at once instead of after waiting for a bogus length.
import { CodecError } from '../codec/errors.ts';
import { HEADER_LENGTH, FOUR_OCTET, checkHeader, type MessageContext } from './message.ts';

/** RFC 4271 §4.1 framing: each message states its own length in its header. */
export class MessageFramer {
  #pending: Buffer = Buffer.alloc(0);
  #failed: CodecError | undefined;
  readonly #ctx: MessageContext;

  constructor(ctx: MessageContext = FOUR_OCTET) {
    this.#ctx = ctx;
  }

  /** Bytes received but not yet part of a whole message. */
  get buffered(): number {
    return this.#pending.length;
  }

  /**
   * Adds bytes from the socket and returns the whole messages they complete,
   * each as its own Buffer. A bad header throws a BGP CodecError (Message
   * Header Error); after that the stream is unusable and every call rethrows it.
   */
  push(chunk: Uint8Array): Buffer[] {
    if (this.#failed) throw this.#failed;
    let buf = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const out: Buffer[] = [];
    let off = 0;
    try {
      while (buf.length - off >= HEADER_LENGTH) {
        const { length } = checkHeader(buf, off, this.#ctx);
        if (buf.length - off < length) break;
        // Copy so a message never pins the (possibly large) socket chunk.
        out.push(Buffer.from(buf.subarray(off, off + length)));
        off += length;
      }
    } catch (err) {
      if (err instanceof CodecError) this.#failed = err;
      throw err;
    }
    buf = buf.subarray(off);
    this.#pending = buf.length ? Buffer.from(buf) : Buffer.alloc(0);
    return out;
  }
}
