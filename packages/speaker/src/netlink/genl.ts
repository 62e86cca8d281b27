// Generic netlink family resolution (the "nlctrl" family, id GENL_ID_CTRL):
// CTRL_CMD_GETFAMILY by name answers with the family's id, version, operations
// and multicast groups (linux/genetlink.h).
import { CodecError } from '../codec/errors.ts';
import { attr, read, type AttrSchema, type NlAttr } from './attr.ts';
import { CTRL_ATTR, CTRL_ATTR_MCAST_GRP, CTRL_ATTR_OP, CTRL_CMD, GENL_ID_CTRL, NLM_F } from './constants.ts';
import type { GenlMessage } from './message.ts';

/** CTRL_ATTR_OPS and CTRL_ATTR_MCAST_GROUPS are arrays of nested attributes. */
export const CTRL_SCHEMA: AttrSchema = { [CTRL_ATTR.OPS]: { '*': {} }, [CTRL_ATTR.MCAST_GROUPS]: { '*': {} } };

export interface GenlFamily {
  id: number;
  name: string;
  version: number;
  headerSize: number;
  maxAttr: number;
  ops: Array<{ id: number; flags: number }>;
  /** Multicast groups by name, with the id to join (NETLINK_ADD_MEMBERSHIP). */
  groups: Array<{ name: string; id: number }>;
}

/** CTRL_CMD_GETFAMILY for one family by name, with an ACK requested (as libnl asks). */
export function getFamilyRequest(name: string, seq: number, opts: { pid?: number; version?: number } = {}): GenlMessage {
  return {
    kind: 'genl',
    header: { type: GENL_ID_CTRL, flags: NLM_F.REQUEST | NLM_F.ACK, seq, pid: opts.pid ?? 0 },
    cmd: CTRL_CMD.GETFAMILY,
    version: opts.version ?? 1,
    reserved: 0,
    attrs: [attr.str(CTRL_ATTR.FAMILY_NAME, name)],
  };
}

function entries(list: NlAttr[] | undefined, what: string): NlAttr[][] {
  return (list ?? []).map((a) => {
    if (!('attrs' in a)) throw new CodecError('PORTICO_CODEC_INVALID', `${what}: entry ${a.type} is not nested`, 0);
    return a.attrs;
  });
}

/** Reads a CTRL_CMD_NEWFAMILY answer. */
export function parseFamily(msg: GenlMessage): GenlFamily {
  if (msg.header.type !== GENL_ID_CTRL || msg.cmd !== CTRL_CMD.NEWFAMILY) {
    throw new CodecError('PORTICO_CODEC_INVALID', `not a CTRL_CMD_NEWFAMILY message (type ${msg.header.type}, cmd ${msg.cmd})`, 0);
  }
  const a = msg.attrs;
  const id = read.u16(a, CTRL_ATTR.FAMILY_ID, 'CTRL_ATTR_FAMILY_ID');
  const name = read.str(a, CTRL_ATTR.FAMILY_NAME, 'CTRL_ATTR_FAMILY_NAME');
  if (id === undefined || name === undefined) throw new CodecError('PORTICO_CODEC_INVALID', 'family answer without id or name', 0);
  return {
    id,
    name,
    version: read.u32(a, CTRL_ATTR.VERSION, 'CTRL_ATTR_VERSION') ?? 0,
    headerSize: read.u32(a, CTRL_ATTR.HDRSIZE, 'CTRL_ATTR_HDRSIZE') ?? 0,
    maxAttr: read.u32(a, CTRL_ATTR.MAXATTR, 'CTRL_ATTR_MAXATTR') ?? 0,
    ops: entries(read.nested(a, CTRL_ATTR.OPS, 'CTRL_ATTR_OPS'), 'CTRL_ATTR_OPS').map((op) => ({
      id: read.u32(op, CTRL_ATTR_OP.ID, 'CTRL_ATTR_OP_ID') ?? 0,
      flags: read.u32(op, CTRL_ATTR_OP.FLAGS, 'CTRL_ATTR_OP_FLAGS') ?? 0,
    })),
    groups: entries(read.nested(a, CTRL_ATTR.MCAST_GROUPS, 'CTRL_ATTR_MCAST_GROUPS'), 'CTRL_ATTR_MCAST_GROUPS').map((g) => ({
      name: read.str(g, CTRL_ATTR_MCAST_GRP.NAME, 'CTRL_ATTR_MCAST_GRP_NAME') ?? '',
      id: read.u32(g, CTRL_ATTR_MCAST_GRP.ID, 'CTRL_ATTR_MCAST_GRP_ID') ?? 0,
    })),
  };
}
