// Structured logging: a constant message plus fields, one JSON object per line.
// Levels: error and info always; debug when the logger is created with debug on.

export type LogLevel = 'error' | 'info' | 'debug';
export type LogFields = Readonly<Record<string, unknown>>;
export interface LogRecord { readonly level: LogLevel; readonly msg: string; readonly time: string; readonly [field: string]: unknown }
export type LogSink = (record: LogRecord) => void;

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every record (e.g. {component: 'allocator'}). */
  child(fields: LogFields): Logger;
  readonly debugEnabled: boolean;
}

export interface LoggerOptions {
  debug?: boolean;
  sink?: LogSink;
  fields?: LogFields;
  now?: () => Date;
}

const stderrSink: LogSink = (record) => {
  process.stderr.write(`${JSON.stringify(record, jsonSafe)}\n`);
};

// BigInt and Error values are common in fields; JSON.stringify throws on the first and drops the second.
function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return { name: value.name, message: value.message, ...(code !== undefined ? { code } : {}) };
  }
  return value;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const sink = options.sink ?? stderrSink;
  const base = options.fields ?? {};
  const debugOn = options.debug ?? false;
  const now = options.now ?? (() => new Date());
  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    sink({ ...base, ...fields, level, msg, time: now().toISOString() });
  };
  return {
    debugEnabled: debugOn,
    info: (msg, fields) => { emit('info', msg, fields); },
    error: (msg, fields) => { emit('error', msg, fields); },
    debug: (msg, fields) => { if (debugOn) emit('debug', msg, fields); },
    child: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
  };
}

/** A logger that keeps its records in memory, for tests. */
export function memoryLogger(debug = true): Logger & { records: LogRecord[] } {
  const records: LogRecord[] = [];
  return Object.assign(createLogger({ debug, sink: (r) => { records.push(r); } }), { records });
}

export const nullLogger: Logger = createLogger({ sink: () => undefined });
