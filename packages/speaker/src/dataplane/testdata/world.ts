// Builders for Services and endpoints in the dataplane's tests and VM scripts.
import type { EndpointState, ServicePort, ServiceState, World } from '../../world/types.ts';

export function endpoint(ip: string, node: string, opts: Partial<EndpointState> = {}): EndpointState {
  return {
    ip, family: ip.includes(':') ? 'IPv6' : 'IPv4', node, ready: true, serving: true, terminating: false,
    ports: { http: { port: 8080, protocol: 'TCP' } }, pod: undefined, ...opts,
  };
}

export function port(p: Partial<ServicePort> = {}): ServicePort {
  return { name: 'http', protocol: 'TCP', port: 80, targetPort: 'http', nodePort: undefined, ...p };
}

export function service(name: string, opts: Partial<ServiceState> = {}): ServiceState {
  return {
    key: `default/${name}`, namespace: 'default', name, uid: `uid-${name}`, labels: {}, annotations: {},
    ips: ['203.0.113.10'], pool: 'default', externalTrafficPolicy: 'Cluster', sessionAffinity: { clientIP: false, timeoutSeconds: 0 },
    ports: [port()], endpoints: [], ...opts,
  };
}

export function world(self: string, services: readonly ServiceState[]): World {
  return { self, config: undefined, services: new Map(services.map((s) => [s.key, s])), nodes: new Map() };
}
