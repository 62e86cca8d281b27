// The announcers this speaker runs. Each feature registers its factory here;
// a factory returns undefined when its feature is off on this node.
import type { SpeakerContext } from './context.ts';
import { createDataplane } from './dataplane/index.ts';
import type { Announcer } from './world/types.ts';
import { createLayer2Announcer } from './l2/factory.ts';
import { createBgpAnnouncer } from './bgp/announcer.ts';

export type AnnouncerFactory = (ctx: SpeakerContext) => Announcer | undefined | Promise<Announcer | undefined>;

export const ANNOUNCERS: readonly AnnouncerFactory[] = [
  createLayer2Announcer,
  createBgpAnnouncer,
  createDataplane,
];

export async function createAnnouncers(ctx: SpeakerContext, factories: readonly AnnouncerFactory[] = ANNOUNCERS): Promise<Announcer[]> {
  const out: Announcer[] = [];
  for (const f of factories) {
    const a = await f(ctx);
    if (a) out.push(a);
  }
  return out;
}
