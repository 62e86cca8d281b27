// The HTTP endpoints every Portico process serves: /healthz (the process
// runs), /readyz (ready to do its job) and /metrics (Prometheus text).
import type http from 'node:http';
import type { Registry } from 'prom-client';

// Not `import http from 'node:http'`: an ESM import of node:http reads every
// export, and its lazy WebSocket/fetch getters load undici (~14 MB and 0.1-0.8 s
// of start-up, for nothing here). See k8s/connection.ts.
const { createServer } = process.getBuiltinModule('node:http');

export interface HealthSources {
  registry: Registry;
  ready: () => boolean;
}

export function startHttpServer(port: number, host: string, src: HealthSources): Promise<http.Server> {
  const server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (url === '/readyz') {
      const ok = src.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
    } else if (url === '/metrics') {
      src.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': src.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
