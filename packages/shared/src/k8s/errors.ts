// Errors from @kubernetes/client-node 2.x: an ApiException whose `code` is the
// HTTP status and whose `body` is the response text (a JSON Status as a string).
import { ApiException } from '@kubernetes/client-node';

export function httpStatus(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (err: unknown): boolean => httpStatus(err) === 404;
/** 409: AlreadyExists on create, Conflict on a stale resourceVersion. */
export const isConflict = (err: unknown): boolean => httpStatus(err) === 409;

/** The `message` of the Status in an ApiException's string body, or the error's own message. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    if (typeof body === 'string') {
      try {
        const status = JSON.parse(body) as { message?: unknown };
        if (typeof status.message === 'string') return status.message;
      } catch { /* not JSON */ }
      return body;
    }
    if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') return (body as { message: string }).message;
  }
  return err instanceof Error ? err.message : String(err);
}
