// A Pod's "container" in the lab: a tiny HTTP server that answers with the
// pod's name and the client's address, so tests see where a request landed
// and whether the client IP was preserved. GET /healthz is the readiness
// check; POST /fail and POST /recover flip it.
import http from 'node:http';

const args = new Map(process.argv.slice(2).map((a) => { const i = a.indexOf('='); return [a.slice(2, i), a.slice(i + 1)] as const; }));
const pod = args.get('pod') ?? 'unknown';
const namespace = args.get('namespace') ?? 'default';
const node = args.get('node') ?? 'unknown';
const ports = (args.get('ports') ?? '80').split(',').map(Number).filter((p) => p > 0);
let healthy = true;

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const local = `${req.socket.localAddress?.replace(/^::ffff:/, '')}:${req.socket.localPort}`;
  if (req.url === '/healthz') {
    res.writeHead(healthy ? 200 : 503, { 'content-type': 'text/plain' }).end(healthy ? 'ok\n' : 'failing\n');
    return;
  }
  if (req.method === 'POST' && (req.url === '/fail' || req.url === '/recover')) {
    healthy = req.url === '/recover';
    res.writeHead(200).end(healthy ? 'recovered\n' : 'failing\n');
    return;
  }
  const body = JSON.stringify({ pod, namespace, node, client: req.socket.remoteAddress?.replace(/^::ffff:/, ''), clientPort: req.socket.remotePort, server: local });
  res.writeHead(200, { 'content-type': 'application/json' }).end(body + '\n');
}

for (const port of ports) {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 1000;
  server.listen({ port, host: '::', ipv6Only: false });
}
process.on('SIGTERM', () => process.exit(0));
