// Public surface of @portico/speaker, for end-to-end tests, benchmarks and
// tools: the World model and each feature as a namespace.
export type { Announcer, EndpointState, IPFamily, NodeState, ServicePort, ServiceState, World } from './world/types.ts';
export { endpointsOf, nodeState, serviceState, serviceVerdict } from './world/from-k8s.ts';
export type { SpeakerContext } from './context.ts';
export { ANNOUNCERS, createAnnouncers, type AnnouncerFactory } from './announcers.ts';
export { Dispatcher } from './dispatch.ts';
export * as bgp from './bgp/index.ts';
export * as bfd from './bfd/index.ts';
