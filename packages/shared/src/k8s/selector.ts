// Label selectors (metav1.LabelSelector) evaluated against a label map.
import type { LabelSelector } from '../api/types.ts';

/** True when `labels` satisfy every matchLabels entry and every matchExpressions requirement. */
export function selectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>> | undefined): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(l, req.key);
    const value = l[req.key];
    switch (req.operator) {
      case 'In': if (!has || !(req.values ?? []).includes(value!)) return false; break;
      case 'NotIn': if (has && (req.values ?? []).includes(value!)) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
    }
  }
  return true;
}

/** True when any selector of the list matches (an empty list matches nothing). */
export const anySelectorMatches = (selectors: readonly LabelSelector[], labels: Readonly<Record<string, string>> | undefined): boolean =>
  selectors.some((s) => selectorMatches(s, labels));

/** A stable text form of a label map, used to compare Services' pod selectors. */
export function canonicalLabels(labels: Readonly<Record<string, string>> | undefined): string {
  return Object.keys(labels ?? {}).sort().map((k) => `${k}=${labels![k]}`).join(',');
}
