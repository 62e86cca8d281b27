// The one error every Portico codec throws for bad input: a truncated or
// inconsistent packet is a typed CodecError, never a RangeError from Buffer.

export type CodecErrorCode =
  | 'PORTICO_CODEC_TRUNCATED'
  | 'PORTICO_CODEC_INVALID'
  | 'PORTICO_CODEC_UNSUPPORTED';

export class CodecError extends Error {
  readonly code: CodecErrorCode;
  /** Byte offset in the input where the problem was found. */
  readonly offset: number;
  /** Protocol-specific detail (e.g. a BGP NOTIFICATION code/subcode). */
  readonly detail: Readonly<Record<string, unknown>>;

  constructor(code: CodecErrorCode, message: string, offset: number, detail: Record<string, unknown> = {}) {
    super(message);
    this.name = 'CodecError';
    this.code = code;
    this.offset = offset;
    this.detail = detail;
  }
}

/** Throws PORTICO_CODEC_TRUNCATED unless `need` bytes are available at `offset`. */
export function need(buf: Uint8Array, offset: number, need: number, what: string): void {
  if (offset < 0 || offset + need > buf.length) {
    throw new CodecError('PORTICO_CODEC_TRUNCATED', `${what}: need ${need} bytes at offset ${offset}, have ${Math.max(0, buf.length - offset)}`, offset);
  }
}

/** A codec in Portico's shape: decode(buf) -> T, encode(t) -> Buffer, encodedLength(t), encodeInto(t, buf, offset). */
export interface Codec<T> {
  decode(buf: Uint8Array): T;
  encode(value: T): Buffer;
  encodedLength(value: T): number;
  /** Writes `value` at `offset` and returns the number of bytes written. */
  encodeInto(value: T, buf: Buffer, offset: number): number;
}
