// Netlink numbers Portico uses, from the kernel's uapi headers (linux/netlink.h,
// genetlink.h, rtnetlink.h, if_link.h, if_addr.h, ip_vs.h). Plain objects, not
// enums: Node runs erasable TypeScript only.

/** linux/netlink.h: protocols (socket(AF_NETLINK, SOCK_RAW, protocol)). */
export const NETLINK_ROUTE = 0;
export const NETLINK_GENERIC = 16;

/** linux/netlink.h: control message types below NLMSG_MIN_TYPE. */
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
export const NLMSG_MIN_TYPE = 0x10;

/** linux/netlink.h: nlmsg_flags. GET requests use the second group, NEW requests the third. */
export const NLM_F = {
  REQUEST: 0x01,
  MULTI: 0x02,
  ACK: 0x04,
  ECHO: 0x08,
  DUMP_INTR: 0x10,
  DUMP_FILTERED: 0x20,
  // GET
  ROOT: 0x100,
  MATCH: 0x200,
  ATOMIC: 0x400,
  DUMP: 0x300,
  // NEW
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
  // ACK (flags of an NLMSG_ERROR)
  CAPPED: 0x100,
  ACK_TLVS: 0x200,
} as const;

/** linux/netlink.h: nlattr type bits. */
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;
export const NLA_HDRLEN = 4;
export const NLMSG_HDRLEN = 16;

/** linux/netlink.h: attributes of an extended ACK (enum nlmsgerr_attrs). */
export const NLMSGERR_ATTR = { MSG: 1, OFFS: 2, COOKIE: 3, POLICY: 4, MISS_TYPE: 5, MISS_NEST: 6 } as const;

/** linux/genetlink.h */
export const GENL_HDRLEN = 4;
export const GENL_ID_CTRL = NLMSG_MIN_TYPE;
export const CTRL_CMD = { NEWFAMILY: 1, DELFAMILY: 2, GETFAMILY: 3, NEWOPS: 4, DELOPS: 5, GETOPS: 6, NEWMCAST_GRP: 7, DELMCAST_GRP: 8, GETMCAST_GRP: 9, GETPOLICY: 10 } as const;
export const CTRL_ATTR = { FAMILY_ID: 1, FAMILY_NAME: 2, VERSION: 3, HDRSIZE: 4, MAXATTR: 5, OPS: 6, MCAST_GROUPS: 7, POLICY: 8, OP_POLICY: 9, OP: 10 } as const;
export const CTRL_ATTR_OP = { ID: 1, FLAGS: 2 } as const;
export const CTRL_ATTR_MCAST_GRP = { NAME: 1, ID: 2 } as const;

/** linux/rtnetlink.h: message types Portico speaks. */
export const RTM = { NEWLINK: 16, DELLINK: 17, GETLINK: 18, SETLINK: 19, NEWADDR: 20, DELADDR: 21, GETADDR: 22 } as const;

/** linux/if_link.h: IFLA_* (link attributes) and IFLA_INFO_* (inside IFLA_LINKINFO). */
export const IFLA = { ADDRESS: 1, BROADCAST: 2, IFNAME: 3, MTU: 4, LINK: 5, QDISC: 6, STATS: 7, MASTER: 10, TXQLEN: 13, OPERSTATE: 16, LINKMODE: 17, LINKINFO: 18, IFALIAS: 20, GROUP: 27, EXT_MASK: 29, XDP: 43, PROP_LIST: 52 } as const;
export const IFLA_INFO = { KIND: 1, DATA: 2, XSTATS: 3, SLAVE_KIND: 4, SLAVE_DATA: 5 } as const;

/** linux/if_addr.h: IFA_* (address attributes) and ifa_flags. */
export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4, ANYCAST: 5, CACHEINFO: 6, MULTICAST: 7, FLAGS: 8, RT_PRIORITY: 9, TARGET_NETNSID: 10, PROTO: 11 } as const;
export const IFA_F = { SECONDARY: 0x01, NODAD: 0x02, OPTIMISTIC: 0x04, DADFAILED: 0x08, HOMEADDRESS: 0x10, DEPRECATED: 0x20, TENTATIVE: 0x40, PERMANENT: 0x80, MANAGETEMPADDR: 0x100, NOPREFIXROUTE: 0x200, MCAUTOJOIN: 0x400, STABLE_PRIVACY: 0x800 } as const;

/** linux/if.h: interface flags (ifi_flags). */
export const IFF = { UP: 0x1, BROADCAST: 0x2, LOOPBACK: 0x8, POINTOPOINT: 0x10, RUNNING: 0x40, NOARP: 0x80, LOWER_UP: 0x10000 } as const;

/** linux/rtnetlink.h: address scopes. */
export const RT_SCOPE = { UNIVERSE: 0, SITE: 200, LINK: 253, HOST: 254, NOWHERE: 255 } as const;

/** linux/socket.h */
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

/** linux/in.h */
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;

/** linux/ip_vs.h: the generic netlink family name and version. */
export const IPVS_GENL_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;
export const IPVS_CMD = { NEW_SERVICE: 1, SET_SERVICE: 2, DEL_SERVICE: 3, GET_SERVICE: 4, NEW_DEST: 5, SET_DEST: 6, DEL_DEST: 7, GET_DEST: 8, NEW_DAEMON: 9, DEL_DAEMON: 10, GET_DAEMON: 11, SET_CONFIG: 12, GET_CONFIG: 13, SET_INFO: 14, GET_INFO: 15, ZERO: 16, FLUSH: 17 } as const;
export const IPVS_CMD_ATTR = { SERVICE: 1, DEST: 2, DAEMON: 3, TIMEOUT_TCP: 4, TIMEOUT_TCP_FIN: 5, TIMEOUT_UDP: 6 } as const;
export const IPVS_SVC_ATTR = { AF: 1, PROTOCOL: 2, ADDR: 3, PORT: 4, FWMARK: 5, SCHED_NAME: 6, FLAGS: 7, TIMEOUT: 8, NETMASK: 9, STATS: 10, PE_NAME: 11, STATS64: 12 } as const;
export const IPVS_DEST_ATTR = { ADDR: 1, PORT: 2, FWD_METHOD: 3, WEIGHT: 4, U_THRESH: 5, L_THRESH: 6, ACTIVE_CONNS: 7, INACT_CONNS: 8, PERSIST_CONNS: 9, STATS: 10, ADDR_FAMILY: 11, STATS64: 12, TUN_TYPE: 13, TUN_PORT: 14, TUN_FLAGS: 15 } as const;
export const IPVS_STATS_ATTR = { CONNS: 1, INPKTS: 2, OUTPKTS: 3, INBYTES: 4, OUTBYTES: 5, CPS: 6, INPPS: 7, OUTPPS: 8, INBPS: 9, OUTBPS: 10, PAD: 11 } as const;
export const IPVS_INFO_ATTR = { VERSION: 1, CONN_TAB_SIZE: 2 } as const;
/** linux/ip_vs.h: forwarding methods (IP_VS_CONN_F_FWD_MASK bits of a destination). */
export const IP_VS_CONN_F = { MASQ: 0, LOCALNODE: 1, TUNNEL: 2, DROUTE: 3, BYPASS: 4 } as const;
/** linux/ip_vs.h: service flags. */
export const IP_VS_SVC_F = { PERSISTENT: 0x1, HASHED: 0x2, ONEPACKET: 0x4, SCHED1: 0x8, SCHED2: 0x10, SCHED3: 0x20 } as const;
