// Plain-JSON requests to the API server (lists, patches, Events, Leases): no
// model classes or serializers on either side, which cost more CPU than the
// request itself once thousands of Services are written. Requests go through
// the KubeConnection of `kc` (connection.ts): one keep-alive agent carries them
// all, and credentials are read again every 30 s so rotated tokens are used.
import { kubeConnection, type KubeSource } from './connection.ts';

/**
 * One request, JSON in and out. A status outside 2xx throws KubeApiError
 * (code = HTTP status, body = the response text), so
 * isNotFound/isConflict/apiMessage read it.
 */
export function kubeRequest<T = unknown>(kc: KubeSource, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
  return kubeConnection(kc).request<T>(method, path, body, contentType);
}

export const MERGE_PATCH = 'application/merge-patch+json';

/** A list as plain JSON (no model classes), in the shape Informer's `list` option expects. */
export function listJSON(kc: KubeSource, path: string): () => Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }> {
  return () => kubeRequest(kc, 'GET', path);
}
