// Loggers for the dataplane that need nothing at run time from @portico/shared:
// the runners load the dataplane inside the IPVS VM, where loading the shared
// package (and the Kubernetes client behind it) takes most of a minute.
import type { LogFields, Logger } from '@portico/shared';

export const quietLogger: Logger = {
  info: () => {}, debug: () => {}, error: () => {}, child: () => quietLogger, debugEnabled: false,
};

/** One JSON object per line on stdout, like the shared logger's format. */
export function lineLogger(fields: LogFields = {}, debug = true): Logger {
  const write = (level: string) => (msg: string, f: LogFields = {}): void => {
    if (level === 'debug' && !debug) return;
    process.stdout.write(`${JSON.stringify({ level, msg, time: new Date().toISOString(), ...fields, ...f }, (_k, v: unknown) => (v instanceof Error ? { name: v.name, message: v.message } : v))}\n`);
  };
  return { info: write('info'), debug: write('debug'), error: write('error'), child: (more) => lineLogger({ ...fields, ...more }, debug), debugEnabled: debug };
}
