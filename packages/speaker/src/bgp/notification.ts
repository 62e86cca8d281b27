// BGP NOTIFICATION codes and subcodes with their names, the RFC 7606 error
// treatments, and the CodecError detail every BGP decoder attaches so that the
// state machine can answer a bad message with the right NOTIFICATION.
import { CodecError, need, type CodecErrorCode } from '../codec/errors.ts';

/** NOTIFICATION error codes (RFC 4271 §4.5, RFC 6608, RFC 4486, RFC 7313). */
export const ERR_HEADER = 1;
export const ERR_OPEN = 2;
export const ERR_UPDATE = 3;
export const ERR_HOLD_TIMER = 4;
export const ERR_FSM = 5;
export const ERR_CEASE = 6;
export const ERR_ROUTE_REFRESH = 7;

/** Message Header Error subcodes (RFC 4271 §6.1). */
export const HEADER_NOT_SYNCHRONIZED = 1;
export const HEADER_BAD_LENGTH = 2;
export const HEADER_BAD_TYPE = 3;

/** OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492 §5). */
export const OPEN_UNSPECIFIC = 0;
export const OPEN_UNSUPPORTED_VERSION = 1;
export const OPEN_BAD_PEER_AS = 2;
export const OPEN_BAD_BGP_ID = 3;
export const OPEN_UNSUPPORTED_PARAMETER = 4;
export const OPEN_UNACCEPTABLE_HOLD_TIME = 6;
export const OPEN_UNSUPPORTED_CAPABILITY = 7;

/** UPDATE Message Error subcodes (RFC 4271 §6.3). */
export const UPDATE_MALFORMED_ATTRIBUTE_LIST = 1;
export const UPDATE_UNRECOGNIZED_WELL_KNOWN = 2;
export const UPDATE_MISSING_WELL_KNOWN = 3;
export const UPDATE_ATTRIBUTE_FLAGS = 4;
export const UPDATE_ATTRIBUTE_LENGTH = 5;
export const UPDATE_INVALID_ORIGIN = 6;
export const UPDATE_INVALID_NEXT_HOP = 8;
export const UPDATE_OPTIONAL_ATTRIBUTE = 9;
export const UPDATE_INVALID_NETWORK = 10;
export const UPDATE_MALFORMED_AS_PATH = 11;

/** FSM Error subcodes (RFC 6608 §4). */
export const FSM_UNSPECIFIED = 0;
export const FSM_UNEXPECTED_IN_OPENSENT = 1;
export const FSM_UNEXPECTED_IN_OPENCONFIRM = 2;
export const FSM_UNEXPECTED_IN_ESTABLISHED = 3;

/** Cease subcodes (RFC 4486 §4, RFC 8538 §5). */
export const CEASE_MAX_PREFIXES = 1;
export const CEASE_ADMIN_SHUTDOWN = 2;
export const CEASE_PEER_DECONFIGURED = 3;
export const CEASE_ADMIN_RESET = 4;
export const CEASE_CONNECTION_REJECTED = 5;
export const CEASE_CONFIG_CHANGE = 6;
export const CEASE_COLLISION = 7;
export const CEASE_OUT_OF_RESOURCES = 8;
export const CEASE_HARD_RESET = 9;
/** RFC 9384: the session was reset because BFD went Down. */
export const CEASE_BFD_DOWN = 10;

const CODE_NAMES: Record<number, string> = {
  1: 'Message Header Error',
  2: 'OPEN Message Error',
  3: 'UPDATE Message Error',
  4: 'Hold Timer Expired',
  5: 'Finite State Machine Error',
  6: 'Cease',
  7: 'ROUTE-REFRESH Message Error',
};

const SUBCODE_NAMES: Record<number, Record<number, string>> = {
  1: { 1: 'Connection Not Synchronized', 2: 'Bad Message Length', 3: 'Bad Message Type' },
  2: {
    0: 'Unspecific', 1: 'Unsupported Version Number', 2: 'Bad Peer AS', 3: 'Bad BGP Identifier',
    4: 'Unsupported Optional Parameter', 5: 'Authentication Failure (deprecated)', 6: 'Unacceptable Hold Time',
    7: 'Unsupported Capability', 11: 'Role Mismatch',
  },
  3: {
    0: 'Unspecific', 1: 'Malformed Attribute List', 2: 'Unrecognized Well-known Attribute', 3: 'Missing Well-known Attribute',
    4: 'Attribute Flags Error', 5: 'Attribute Length Error', 6: 'Invalid ORIGIN Attribute', 7: 'AS Routing Loop (deprecated)',
    8: 'Invalid NEXT_HOP Attribute', 9: 'Optional Attribute Error', 10: 'Invalid Network Field', 11: 'Malformed AS_PATH',
  },
  5: {
    0: 'Unspecified Error', 1: 'Receive Unexpected Message in OpenSent State',
    2: 'Receive Unexpected Message in OpenConfirm State', 3: 'Receive Unexpected Message in Established State',
  },
  6: {
    1: 'Maximum Number of Prefixes Reached', 2: 'Administrative Shutdown', 3: 'Peer De-configured', 4: 'Administrative Reset',
    5: 'Connection Rejected', 6: 'Other Configuration Change', 7: 'Connection Collision Resolution', 8: 'Out of Resources',
    9: 'Hard Reset', 10: 'BFD Down',
  },
  7: { 1: 'Invalid Message Length' },
};

/** 'Cease', 'OPEN Message Error', or 'error code N' for a code nobody defined. */
export function notificationCodeName(code: number): string {
  return CODE_NAMES[code] ?? `error code ${code}`;
}

/** The subcode's name; 0 under a code without subcodes is 'Unspecific'. */
export function notificationSubcodeName(code: number, subcode: number): string {
  return SUBCODE_NAMES[code]?.[subcode] ?? (subcode === 0 ? 'Unspecific' : `subcode ${subcode}`);
}

/**
 * One line an operator reads, e.g. 'Cease / Administrative Shutdown: "maintenance"'
 * or 'OPEN Message Error / Bad Peer AS (data fde8)'. Decodes the shutdown
 * communication of RFC 9003 §2 (a length octet then UTF-8) for Cease 2 and 4.
 */
export function describeNotification(n: { code: number; subcode: number; data: Uint8Array }): string {
  const head = n.code === ERR_HOLD_TIMER && n.subcode === 0
    ? notificationCodeName(n.code)
    : `${notificationCodeName(n.code)} / ${notificationSubcodeName(n.code, n.subcode)}`;
  if (n.data.length === 0) return head;
  if (n.code === ERR_CEASE && (n.subcode === CEASE_ADMIN_SHUTDOWN || n.subcode === CEASE_ADMIN_RESET)) {
    const len = n.data[0]!;
    if (len + 1 <= n.data.length) {
      const text = Buffer.from(n.data.subarray(1, 1 + len)).toString('utf8');
      return `${head}: ${JSON.stringify(text)}`;
    }
  }
  return `${head} (data ${Buffer.from(n.data).toString('hex')})`;
}

/** RFC 9003 §2: the data of a Cease/Administrative Shutdown or Reset carrying `text` (at most 255 UTF-8 bytes). */
export function shutdownCommunication(text: string): Buffer {
  let bytes = Buffer.from(text, 'utf8');
  if (bytes.length > 255) {
    // Cut on a character boundary so the receiver still sees valid UTF-8.
    let end = 255;
    while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
    bytes = bytes.subarray(0, end);
  }
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

/**
 * How a receiver handles a malformed UPDATE (RFC 7606 §2): close the session
 * with a NOTIFICATION, treat the UPDATE's routes as withdrawn, or drop only the
 * bad attribute. The order is the severity.
 */
export type ErrorTreatment = 'session-reset' | 'treat-as-withdraw' | 'attribute-discard';

export const TREATMENT_SEVERITY: Record<ErrorTreatment, number> = {
  'session-reset': 3,
  'treat-as-withdraw': 2,
  'attribute-discard': 1,
};

/** What every BGP CodecError carries in `detail`. */
export interface BgpErrorDetail {
  /** NOTIFICATION to send when the treatment is session-reset. */
  code: number;
  subcode: number;
  data: Buffer;
  treatment: ErrorTreatment;
}

/** A CodecError with BGP detail. */
export function bgpError(
  message: string,
  offset: number,
  code: number,
  subcode: number,
  treatment: ErrorTreatment = 'session-reset',
  data: Uint8Array = Buffer.alloc(0),
  errorCode: CodecErrorCode = 'PORTICO_CODEC_INVALID',
  extra: Record<string, unknown> = {},
): CodecError {
  const detail: BgpErrorDetail & Record<string, unknown> = { code, subcode, data: Buffer.from(data), treatment, ...extra };
  return new CodecError(errorCode, message, offset, detail);
}

/** need() from the shared codec helpers, but the error carries BGP detail. */
export function bgpNeed(
  buf: Uint8Array, off: number, n: number, what: string,
  base: number, code: number, subcode: number, treatment: ErrorTreatment = 'session-reset',
): void {
  try {
    need(buf, off, n, what);
  } catch (err) {
    if (!(err instanceof CodecError)) throw err;
    throw bgpError(err.message, base + err.offset, code, subcode, treatment, undefined, 'PORTICO_CODEC_TRUNCATED');
  }
}

/** The BGP detail of a CodecError, or undefined if it has none. */
export function bgpDetail(err: unknown): BgpErrorDetail | undefined {
  if (!(err instanceof CodecError)) return undefined;
  const d = err.detail;
  if (typeof d.code !== 'number' || typeof d.subcode !== 'number' || typeof d.treatment !== 'string') return undefined;
  return d as unknown as BgpErrorDetail;
}
