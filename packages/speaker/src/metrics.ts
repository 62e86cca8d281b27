// The speaker process's own metrics (each feature keeps its metrics beside it).
import { counter, gauge, type Registry } from '@portico/shared';

export function createSpeakerMetrics(registry: Registry) {
  return {
    services: gauge(registry, { name: 'portico_speaker_services_count', help: 'LoadBalancer Services with IPs that this speaker considers' }),
    worldUpdates: counter(registry, { name: 'portico_speaker_world_updates_total', help: 'World snapshots handed to the announcers' }),
    announcerErrors: counter(registry, { name: 'portico_speaker_announcer_errors_total', help: 'Announcer updates that failed', labelNames: ['announcer'] as const }),
    announcerSeconds: gauge(registry, { name: 'portico_speaker_announcer_update_seconds', help: 'Duration of the last update of each announcer', labelNames: ['announcer'] as const }),
    configStale: gauge(registry, { name: 'portico_speaker_config_stale_state', help: '1 while the newest configuration is refused and the last good one is in force' }),
  };
}
export type SpeakerMetrics = ReturnType<typeof createSpeakerMetrics>;
