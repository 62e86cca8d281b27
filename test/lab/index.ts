// The lab library: a real Kubernetes cluster on one machine, for the
// end-to-end tests, the benchmarks and the demo.
export { Lab, SEGMENT, SERVICE_CIDRS, CLUSTER_CIDRS, repoRoot } from './lab.ts';
export { RealNode, type KubeProxyMode } from './realnode.ts';
export { PAUSE_IMAGE, WEB_IMAGE, webContainer, webDeployment, type LabImage } from './realnode-images.ts';
export type { LabOptions, LabNode, LabHost, LabEndpoint, NodeDaemonSpec } from './lab.ts';
export { LabBusyError, clearPrefix, readState } from './state.ts';
export { LabPreflightError, isRoot, preflight } from './preflight.ts';
export { run, sleep, waitFor, CommandError } from './sh.ts';
export type { RunResult, DaemonRecord } from './sh.ts';
export { addRouter, Router } from './routers.ts';
export type { RouterKind, RouterOptions } from './routers.ts';
export { installPortico, applyPorticoManifest, manifestWorkload, commandLine, PORTICO_MANIFEST, PORTICO_NAMESPACE, type InstallOptions, type PorticoInstall } from './portico.ts';
