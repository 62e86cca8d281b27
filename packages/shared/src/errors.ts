// Portico's error type: a stable `code` that callers, tests and Events match on,
// plus structured detail. Messages are for humans and may change; codes may not.

export type PorticoErrorCode =
  | 'PORTICO_INVALID_ADDRESS'
  | 'PORTICO_INVALID_RANGE'
  | 'PORTICO_INVALID_CONFIG'
  | 'PORTICO_CONFIG_CONFLICT'
  | 'PORTICO_POOL_EXHAUSTED'
  | 'PORTICO_POOL_NOT_FOUND'
  | 'PORTICO_NO_MATCHING_POOL'
  | 'PORTICO_IP_NOT_IN_POOL'
  | 'PORTICO_IP_IN_USE'
  | 'PORTICO_IP_FAMILY_UNAVAILABLE'
  | 'PORTICO_LEASE_LOST'
  | 'PORTICO_NOT_LEADER';

export class PorticoError extends Error {
  readonly code: PorticoErrorCode;
  readonly detail: Readonly<Record<string, unknown>>;

  constructor(code: PorticoErrorCode, message: string, detail: Record<string, unknown> = {}) {
    super(message);
    this.name = 'PorticoError';
    this.code = code;
    this.detail = detail;
  }
}

/** True when `err` is a PorticoError, optionally with the given code. */
export function isPorticoError(err: unknown, code?: PorticoErrorCode): err is PorticoError {
  return err instanceof PorticoError && (code === undefined || err.code === code);
}
