// Defensive reading of untyped JSON (CRD objects, the legacy ConfigMap): every
// wrong field becomes a ConfigProblem naming its path instead of an exception.
import type { LabelSelector, LabelSelectorRequirement, PorticoKind } from '../api/types.ts';
import type { ConfigProblem } from './model.ts';

export type Json = unknown;

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export class FieldReader {
  readonly kind: PorticoKind | 'ConfigMap';
  readonly name: string;
  readonly problems: ConfigProblem[];
  /** Set when any problem was reported through this reader. */
  failed = false;

  constructor(kind: PorticoKind | 'ConfigMap', name: string, problems: ConfigProblem[]) {
    this.kind = kind;
    this.name = name;
    this.problems = problems;
  }

  invalid(field: string, message: string): undefined {
    this.failed = true;
    this.problems.push({ kind: this.kind, name: this.name, field, code: 'Invalid', message: `${field}: ${message}` });
    return undefined;
  }

  /** Reports fields of `obj` that are not in `known` (an unknown field is usually a typo). */
  noUnknown(obj: Record<string, unknown>, path: string, known: readonly string[]): void {
    for (const k of Object.keys(obj)) if (!known.includes(k)) this.invalid(join(path, k), 'unknown field');
  }

  object(obj: Record<string, unknown>, path: string, key: string): Record<string, unknown> | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (!isObject(v)) return this.invalid(join(path, key), 'must be an object');
    return v;
  }

  string(obj: Record<string, unknown>, path: string, key: string, required = false): string | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return required ? this.invalid(join(path, key), 'is required') : undefined;
    if (typeof v !== 'string') return this.invalid(join(path, key), 'must be a string');
    if (required && v === '') return this.invalid(join(path, key), 'must not be empty');
    return v;
  }

  bool(obj: Record<string, unknown>, path: string, key: string): boolean | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') return this.invalid(join(path, key), 'must be true or false');
    return v;
  }

  int(obj: Record<string, unknown>, path: string, key: string, min: number, max: number, required = false): number | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return required ? this.invalid(join(path, key), 'is required') : undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) return this.invalid(join(path, key), 'must be an integer');
    if (v < min || v > max) return this.invalid(join(path, key), `must be between ${min} and ${max}`);
    return v;
  }

  strings(obj: Record<string, unknown>, path: string, key: string): string[] {
    const v = obj[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) { this.invalid(join(path, key), 'must be a list of strings'); return []; }
    const out: string[] = [];
    v.forEach((s, i) => {
      if (typeof s !== 'string' || s === '') this.invalid(`${join(path, key)}[${i}]`, 'must be a non-empty string');
      else out.push(s);
    });
    return out;
  }

  stringMap(obj: Record<string, unknown>, path: string, key: string): Record<string, string> {
    const v = obj[key];
    if (v === undefined || v === null) return {};
    if (!isObject(v)) { this.invalid(join(path, key), 'must be a map of strings'); return {}; }
    const out: Record<string, string> = {};
    for (const [k, s] of Object.entries(v)) {
      if (typeof s !== 'string') this.invalid(join(join(path, key), k), 'must be a string');
      else out[k] = s;
    }
    return out;
  }

  /** A list of label selectors; `legacy` reads MetalLB's old kebab-case spelling (match-labels). */
  selectors(obj: Record<string, unknown>, path: string, key: string, legacy = false): LabelSelector[] {
    const v = obj[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) { this.invalid(join(path, key), 'must be a list of label selectors'); return []; }
    const ml = legacy ? 'match-labels' : 'matchLabels';
    const me = legacy ? 'match-expressions' : 'matchExpressions';
    const out: LabelSelector[] = [];
    v.forEach((s, i) => {
      const p = `${join(path, key)}[${i}]`;
      if (!isObject(s)) { this.invalid(p, 'must be a label selector'); return; }
      this.noUnknown(s, p, [ml, me]);
      const sel: LabelSelector = {};
      const labels = this.stringMap(s, p, ml);
      if (Object.keys(labels).length > 0) sel.matchLabels = labels;
      const exprs = s[me];
      if (exprs !== undefined && exprs !== null) {
        if (!Array.isArray(exprs)) { this.invalid(join(p, me), 'must be a list'); return; }
        const reqs: LabelSelectorRequirement[] = [];
        exprs.forEach((e, j) => {
          const ep = `${join(p, me)}[${j}]`;
          if (!isObject(e)) { this.invalid(ep, 'must be an object'); return; }
          const k = this.string(e, ep, 'key', true);
          const op = this.string(e, ep, 'operator', true);
          const values = this.strings(e, ep, 'values');
          if (k === undefined || op === undefined) return;
          if (op !== 'In' && op !== 'NotIn' && op !== 'Exists' && op !== 'DoesNotExist') { this.invalid(join(ep, 'operator'), 'must be In, NotIn, Exists or DoesNotExist'); return; }
          if ((op === 'In' || op === 'NotIn') && values.length === 0) { this.invalid(join(ep, 'values'), `must not be empty for ${op}`); return; }
          if ((op === 'Exists' || op === 'DoesNotExist') && values.length > 0) { this.invalid(join(ep, 'values'), `must be empty for ${op}`); return; }
          reqs.push({ key: k, operator: op, ...(values.length ? { values } : {}) });
        });
        if (reqs.length) sel.matchExpressions = reqs;
      }
      out.push(sel);
    });
    return out;
  }
}

export const join = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

/** Go-style duration (`90s`, `1m30s`, `500ms`) in seconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n / 1000 : m[2] === 's' ? n : m[2] === 'm' ? n * 60 : n * 3600;
  }
  return total;
}

/** A BGP community value: `AS:value` (16 bits each) or `large:A:B:C` (32 bits each). */
export function isCommunityValue(text: string): boolean {
  const std = /^(\d+):(\d+)$/.exec(text);
  if (std) return Number(std[1]) <= 0xffff && Number(std[2]) <= 0xffff;
  const large = /^large:(\d+):(\d+):(\d+)$/.exec(text);
  if (large) return [large[1], large[2], large[3]].every((n) => Number(n) <= 0xffffffff);
  return false;
}

/** A DNS-1123 subdomain, which is what Kubernetes object names are. */
export const isObjectName = (s: string): boolean => s.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(s);
