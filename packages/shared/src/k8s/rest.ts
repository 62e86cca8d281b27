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

export interface ListOptions {
  /** Objects per request (the `limit` query parameter); 500 unless set. */
  pageSize?: number;
  /** Applied to each object as its page arrives, so only one page of untrimmed objects is alive at a time. */
  trim?: (o: never) => void;
}

/**
 * A list as plain JSON (no model classes), in the shape Informer's `list`
 * option expects. It is read in pages: a single response of 10,000 Services
 * is a string of tens of megabytes, parsed whole, which sets the process's
 * peak memory. The pages are one snapshot (the API server's continue token);
 * an expired token fails the list, and the informer lists again.
 */
export function listJSON(kc: KubeSource, path: string, o: ListOptions = {}): () => Promise<{ items: unknown[]; metadata?: { resourceVersion?: string } }> {
  const pageSize = o.pageSize ?? 500;
  const trim = o.trim as ((x: unknown) => void) | undefined;
  return async () => {
    const items: unknown[] = [];
    let resourceVersion: string | undefined;
    let token: string | undefined;
    do {
      const q = new URLSearchParams({ limit: String(pageSize) });
      if (token !== undefined) q.set('continue', token);
      const page = await kubeRequest<{ items?: unknown[]; metadata?: { resourceVersion?: string; continue?: string } }>(kc, 'GET', `${path}${path.includes('?') ? '&' : '?'}${q}`);
      for (const item of page.items ?? []) {
        if (trim && item && typeof item === 'object') trim(item);
        items.push(item);
      }
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      token = page.metadata?.continue || undefined;
    } while (token !== undefined);
    return { items, ...(resourceVersion !== undefined ? { metadata: { resourceVersion } } : {}) };
  };
}
