// Packs many prefixes that share one attribute set into as few UPDATEs as fit
// (RFC 4271 §4.3: a message is at most 4096 octets), so 10,000 Services cost
// a few dozen messages instead of 10,000.
import { strict as assert } from 'node:assert';
import { attributeCode, attributeLength, type AttributeContext, type PathAttribute } from './attributes.ts';
import { AFI_IPV4, AFI_IPV6, SAFI_UNICAST, parsePrefix } from './ip.ts';
import { HEADER_LENGTH, MAX_MESSAGE_LENGTH, type UpdateMessage } from './message.ts';

/** Length of the Withdrawn Routes Length and Total Path Attribute Length fields. */
const UPDATE_FIXED = HEADER_LENGTH + 4;

function wireLength(prefix: string): number {
  return 1 + ((parsePrefix(prefix).length + 7) >> 3);
}

function split(prefixes: readonly string[]): { v4: string[]; v6: string[] } {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const p of prefixes) (parsePrefix(p).afi === AFI_IPV4 ? v4 : v6).push(p);
  return { v4, v6 };
}

/**
 * Orders attributes the way RFC 7606 §5.1 and RFC 4271 §5 ask a sender to:
 * MP_REACH_NLRI / MP_UNREACH_NLRI first, the rest by ascending type code.
 */
export function orderAttributes(attrs: readonly PathAttribute[]): PathAttribute[] {
  const rank = (a: PathAttribute): number => (a.type === 'mp-reach' || a.type === 'mp-unreach' ? -1 : attributeCode(a));
  return [...attrs].sort((a, b) => rank(a) - rank(b));
}

/** Greedy packing of prefixes into chunks whose wire size stays within `room(chunkBytes)`. */
function chunk(prefixes: readonly string[], fits: (bytes: number) => boolean): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let bytes = 0;
  for (const p of prefixes) {
    const n = wireLength(p);
    if (cur.length > 0 && !fits(bytes + n)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    assert.ok(fits(bytes + n), `prefix ${p} cannot fit a BGP message with these attributes`);
    cur.push(p);
    bytes += n;
  }
  if (cur.length) out.push(cur);
  return out;
}

/**
 * UPDATEs announcing `prefixes` with one attribute set. IPv4 prefixes go in the
 * NLRI field and need a 'next-hop' attribute; IPv6 prefixes go in the IPv6
 * 'mp-reach' attribute (RFC 4760 §3), whose nlri the builder fills. When the
 * set holds both, each family's messages carry only their own next hop.
 */
export function packAnnouncements(
  attributes: readonly PathAttribute[],
  prefixes: readonly string[],
  ctx: AttributeContext,
  maxLength: number = MAX_MESSAGE_LENGTH,
): UpdateMessage[] {
  const { v4, v6 } = split(prefixes);
  const out: UpdateMessage[] = [];
  if (v4.length) {
    assert.ok(attributes.some((a) => a.type === 'next-hop'), 'IPv4 announcements need a next-hop attribute');
    const attrs = orderAttributes(attributes.filter((a) => a.type !== 'mp-reach' && a.type !== 'mp-unreach'));
    const fixed = UPDATE_FIXED + attrs.reduce((n, a) => n + attributeLength(a, ctx), 0);
    for (const nlri of chunk(v4, (bytes) => fixed + bytes <= maxLength)) out.push({ type: 'update', withdrawn: [], attributes: attrs, nlri });
  }
  if (v6.length) {
    const template = attributes.find((a) => a.type === 'mp-reach' && a.afi === AFI_IPV6);
    assert.ok(template?.type === 'mp-reach', 'IPv6 announcements need an IPv6 mp-reach attribute carrying the next hop');
    const others = attributes.filter((a) => a.type !== 'next-hop' && a.type !== 'mp-reach' && a.type !== 'mp-unreach');
    const otherBytes = others.reduce((n, a) => n + attributeLength(a, ctx), 0);
    const empty = attributeLength({ type: 'mp-reach', afi: AFI_IPV6, safi: template.safi, nextHops: template.nextHops, nlri: [] }, ctx) - 3;
    const fits = (bytes: number): boolean => {
      const value = empty + bytes;
      return UPDATE_FIXED + otherBytes + (value > 255 ? 4 : 3) + value <= maxLength;
    };
    for (const nlri of chunk(v6, fits)) {
      const mp: PathAttribute = { type: 'mp-reach', afi: AFI_IPV6, safi: template.safi, nextHops: template.nextHops, nlri };
      out.push({ type: 'update', withdrawn: [], attributes: orderAttributes([mp, ...others]), nlri: [] });
    }
  }
  return out;
}

/** UPDATEs withdrawing `prefixes`: IPv4 in Withdrawn Routes, IPv6 in MP_UNREACH_NLRI (RFC 4760 §4). */
export function packWithdrawals(prefixes: readonly string[], maxLength: number = MAX_MESSAGE_LENGTH): UpdateMessage[] {
  const { v4, v6 } = split(prefixes);
  const out: UpdateMessage[] = [];
  for (const withdrawn of chunk(v4, (bytes) => UPDATE_FIXED + bytes <= maxLength)) out.push({ type: 'update', withdrawn, attributes: [], nlri: [] });
  const fits = (bytes: number): boolean => UPDATE_FIXED + (3 + bytes > 255 ? 4 : 3) + 3 + bytes <= maxLength;
  for (const withdrawn of chunk(v6, fits)) {
    out.push({ type: 'update', withdrawn: [], attributes: [{ type: 'mp-unreach', afi: AFI_IPV6, safi: SAFI_UNICAST, withdrawn }], nlri: [] });
  }
  return out;
}
