// Errors from the API server, whichever client made the request: a
// KubeApiError from connection.ts (the controller, the shared modules) or an
// ApiException from @kubernetes/client-node's generated clients (the speaker,
// the CLI). Both carry `code` (the HTTP status) and `body` (the response text,
// a JSON Status as a string); they are read by shape, so this module loads no
// client library.

/** The HTTP status of an API error, or undefined for anything else (a socket error's string code is not one). */
export function httpStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (err: unknown): boolean => httpStatus(err) === 404;
/** 409: AlreadyExists on create, Conflict on a stale resourceVersion. */
export const isConflict = (err: unknown): boolean => httpStatus(err) === 409;

/** The `message` of the Status in an API error's body, or the error's own message. */
export function apiMessage(err: unknown): string {
  if (httpStatus(err) !== undefined && err !== null && typeof err === 'object' && 'body' in err) {
    const body: unknown = err.body;
    if (typeof body === 'string') {
      try {
        const status = JSON.parse(body) as { message?: unknown };
        if (typeof status.message === 'string') return status.message;
      } catch { /* not JSON */ }
      if (body !== '') return body;
    }
    if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') return (body as { message: string }).message;
  }
  return err instanceof Error ? err.message : String(err);
}
