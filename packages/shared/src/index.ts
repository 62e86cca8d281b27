// Public surface of @portico/shared: everything other packages may import.
export * from './errors.ts';
export * from './log.ts';
export * from './metrics.ts';
export * from './api/types.ts';
export * from './ip/ipmath.ts';
export * from './config/model.ts';
export { buildConfig, type ConfigInput, type BuildResult } from './config/build.ts';
export { parseLegacyConfig, type LegacyConfig } from './config/legacy.ts';
export { isCommunityValue, parseDuration, isObjectName } from './config/fields.ts';
export * from './k8s/selector.ts';
export * from './k8s/errors.ts';
export * from './k8s/leader.ts';
export * from './k8s/informer.ts';
export * from './k8s/writer.ts';
export { parse as parseYAML, stringify as stringifyYAML } from 'yaml';
export { shareConnections } from './k8s/client.ts';
export { ConfigWatcher, type ConfigWatcherOptions } from './k8s/config-watcher.ts';
export { startHttpServer, type HealthSources } from './http.ts';
