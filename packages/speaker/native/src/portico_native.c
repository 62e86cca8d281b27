/*
 * Portico's native addon: the few socket calls Node cannot make itself.
 * AF_PACKET (ARP/NDP frames), AF_NETLINK (rtnetlink, generic netlink),
 * TCP_MD5SIG for BGP, and readiness through libuv (uv_poll_t) so the JS side
 * reads a socket only when the kernel says it is readable: no threads, no
 * busy loops. Every packet is parsed and built in TypeScript; this file only
 * moves bytes. Plain C against Node-API, which is ABI-stable across Node
 * versions. Errors are thrown as Error objects whose `code` is the errno name.
 */
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23 /* Linux 4.20 */
#endif
#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif
#ifndef TP_STATUS_VLAN_VALID
#define TP_STATUS_VLAN_VALID (1 << 4)
#endif
#ifndef TP_STATUS_VLAN_TPID_VALID
#define TP_STATUS_VLAN_TPID_VALID (1 << 6)
#endif

/* Kernel ABI of struct tcp_md5sig (include/uapi/linux/tcp.h); declared here so
 * the build does not depend on which libc headers carry the _EXT fields. */
#define PORTICO_TCP_MD5SIG 14
#define PORTICO_TCP_MD5SIG_EXT 32
#define PORTICO_TCP_MD5SIG_FLAG_PREFIX 0x1
#define PORTICO_TCP_MD5SIG_FLAG_IFINDEX 0x2
#define PORTICO_TCP_MD5SIG_MAXKEYLEN 80
struct portico_tcp_md5sig {
  struct sockaddr_storage addr;
  uint8_t flags;
  uint8_t prefixlen;
  uint16_t keylen;
  int ifindex;
  uint8_t key[PORTICO_TCP_MD5SIG_MAXKEYLEN];
};

/* ---------------------------------------------------------------- errors */

static const char *errno_name(int err) {
  switch (err) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF)
    E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(ENODEV)
    E(EINVAL) E(ENFILE) E(EMFILE) E(ENOSPC) E(ERANGE) E(ENAMETOOLONG)
    E(ENOSYS) E(ENOTSOCK) E(EDESTADDRREQ) E(EMSGSIZE) E(EPROTOTYPE)
    E(ENOPROTOOPT) E(EPROTONOSUPPORT) E(ESOCKTNOSUPPORT) E(EOPNOTSUPP)
    E(EPFNOSUPPORT) E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN)
    E(ENETUNREACH) E(ECONNABORTED) E(ECONNRESET) E(ENOBUFS) E(EISCONN)
    E(ENOTCONN) E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTDOWN) E(EHOSTUNREACH)
    E(EALREADY) E(EINPROGRESS)
#undef E
    default: return NULL;
  }
}

/* Throws Error{code: 'EPERM', errno: -1, syscall: 'socket'} like Node's own
 * system errors, with `subject` (an interface, an fd) in the message. */
static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *subject) {
  char codebuf[16];
  const char *code = errno_name(err);
  if (code == NULL) {
    snprintf(codebuf, sizeof codebuf, "E%d", err);
    code = codebuf;
  }
  char msg[256];
  if (subject != NULL && subject[0] != '\0')
    snprintf(msg, sizeof msg, "%s: %s, %s '%s'", code, strerror(err), syscall, subject);
  else
    snprintf(msg, sizeof msg, "%s: %s, %s", code, strerror(err), syscall);
  napi_value jcode, jmsg, error, jerrno, jsyscall;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg);
  napi_create_error(env, jcode, jmsg, &error);
  napi_create_int32(env, -err, &jerrno);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &jsyscall);
  napi_set_named_property(env, error, "errno", jerrno);
  napi_set_named_property(env, error, "syscall", jsyscall);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

/* ------------------------------------------------------------- arguments */

#define ARGS(n)                                                            \
  size_t argc = (n);                                                       \
  napi_value argv[(n) > 0 ? (n) : 1];                                      \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)     \
    return NULL;

static int arg_int(napi_env env, napi_value v, int32_t *out, const char *what) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_number) {
    char m[128];
    snprintf(m, sizeof m, "%s must be a number", what);
    throw_type(env, m);
    return 0;
  }
  napi_get_value_int32(env, v, out);
  return 1;
}

static int arg_uint(napi_env env, napi_value v, uint32_t *out, const char *what) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_number) {
    char m[128];
    snprintf(m, sizeof m, "%s must be a number", what);
    throw_type(env, m);
    return 0;
  }
  napi_get_value_uint32(env, v, out);
  return 1;
}

static int arg_fd(napi_env env, napi_value v, int *fd) {
  int32_t x;
  if (!arg_int(env, v, &x, "fd")) return 0;
  if (x < 0) {
    throw_errno(env, EBADF, "fd", NULL);
    return 0;
  }
  *fd = x;
  return 1;
}

static int arg_bool(napi_env env, napi_value v, int *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) { *out = 0; return 1; }
  bool b;
  if (napi_get_value_bool(env, v, &b) != napi_ok) { throw_type(env, "expected a boolean"); return 0; }
  *out = b ? 1 : 0;
  return 1;
}

/* Any TypedArray (a Buffer is a Uint8Array) as raw bytes. */
static int arg_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len, const char *what) {
  bool is;
  napi_is_typedarray(env, v, &is);
  if (!is) {
    char m[128];
    snprintf(m, sizeof m, "%s must be a Buffer or TypedArray", what);
    throw_type(env, m);
    return 0;
  }
  napi_typedarray_type type;
  size_t count, offset;
  void *p;
  napi_value ab;
  napi_get_typedarray_info(env, v, &type, &count, &p, &ab, &offset);
  size_t unit = 1;
  switch (type) {
    case napi_int16_array: case napi_uint16_array: unit = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: unit = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: unit = 8; break;
    default: unit = 1;
  }
  *data = p;
  *len = count * unit;
  return 1;
}

static int arg_string(napi_env env, napi_value v, char *buf, size_t size, const char *what) {
  size_t n;
  if (napi_get_value_string_utf8(env, v, buf, size, &n) != napi_ok) {
    char m[128];
    snprintf(m, sizeof m, "%s must be a string", what);
    throw_type(env, m);
    return 0;
  }
  if (n >= size - 1) {
    throw_errno(env, ENAMETOOLONG, what, buf);
    return 0;
  }
  return 1;
}

static napi_value num(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

/* Parses an IPv4 or IPv6 literal into a sockaddr; `want_family` 0 = as written,
 * AF_INET6 maps an IPv4 literal to ::ffff:a.b.c.d (an IPv6 socket's view). */
static int parse_addr(const char *s, int port, int want_family, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, s, &a4) == 1) {
    if (want_family == AF_INET6) {
      struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons((uint16_t)port);
      s6->sin6_addr.s6_addr[10] = 0xff;
      s6->sin6_addr.s6_addr[11] = 0xff;
      memcpy(&s6->sin6_addr.s6_addr[12], &a4, 4);
      *len = sizeof *s6;
      return AF_INET6;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    s4->sin_addr = a4;
    *len = sizeof *s4;
    return AF_INET;
  }
  if (inet_pton(AF_INET6, s, &a6) == 1) {
    if (want_family == AF_INET) return -1;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    s6->sin6_addr = a6;
    *len = sizeof *s6;
    return AF_INET6;
  }
  return -1;
}

/* ------------------------------------------------------- per-env polling */

typedef struct instance instance;

typedef struct poll_entry {
  uv_poll_t handle;
  napi_env env; /* NULL once the env is being torn down */
  napi_ref callback;
  napi_async_context async;
  int fd;
} poll_entry;

struct instance {
  uv_loop_t *loop;
  poll_entry **polls; /* indexed by fd */
  size_t cap;
};

static void on_poll_closed(uv_handle_t *h) {
  poll_entry *e = h->data;
  if (e->env != NULL) {
    napi_delete_reference(e->env, e->callback);
    napi_async_destroy(e->env, e->async);
  }
  free(e);
}

static void poll_release(instance *inst, int fd) {
  if (fd < 0 || (size_t)fd >= inst->cap || inst->polls[fd] == NULL) return;
  poll_entry *e = inst->polls[fd];
  inst->polls[fd] = NULL;
  uv_poll_stop(&e->handle);
  uv_close((uv_handle_t *)&e->handle, on_poll_closed);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  poll_entry *e = h->data;
  napi_env env = e->env;
  if (env == NULL) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  napi_get_reference_value(env, e->callback, &cb);
  napi_get_global(env, &recv); /* make_callback needs an object receiver */
  if (status < 0) {
    napi_value code, msg;
    napi_create_string_utf8(env, uv_err_name(status), NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, uv_strerror(status), NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &arg);
  } else {
    napi_get_null(env, &arg);
  }
  /* make_callback (not call_function) so process.nextTick and promise jobs
   * queued by the handler run before we return to libuv. */
  napi_make_callback(env, e->async, recv, cb, 1, &arg, &result);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) { /* the handler threw: surface it as an uncaught exception */
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

static void instance_cleanup(void *arg) {
  instance *inst = arg;
  for (size_t fd = 0; fd < inst->cap; fd++) {
    poll_entry *e = inst->polls[fd];
    if (e == NULL) continue;
    napi_delete_reference(e->env, e->callback);
    napi_async_destroy(e->env, e->async);
    e->env = NULL;
    poll_release(inst, (int)fd);
  }
  free(inst->polls);
  inst->polls = NULL;
  inst->cap = 0;
}

static void instance_finalize(napi_env env, void *data, void *hint) {
  free(data);
}

static instance *get_instance(napi_env env) {
  void *p = NULL;
  napi_get_instance_data(env, &p);
  return p;
}

/* pollStart(fd, callback(err|null)): calls back each time fd is readable. */
static napi_value js_poll_start(napi_env env, napi_callback_info info) {
  ARGS(2);
  int fd;
  if (!arg_fd(env, argv[0], &fd)) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) return throw_type(env, "callback must be a function");
  instance *inst = get_instance(env);
  if ((size_t)fd >= inst->cap) {
    size_t cap = inst->cap ? inst->cap : 64;
    while (cap <= (size_t)fd) cap *= 2;
    poll_entry **p = realloc(inst->polls, cap * sizeof *p);
    if (p == NULL) return throw_errno(env, ENOMEM, "pollStart", NULL);
    memset(p + inst->cap, 0, (cap - inst->cap) * sizeof *p);
    inst->polls = p;
    inst->cap = cap;
  }
  if (inst->polls[fd] != NULL) return throw_errno(env, EBUSY, "pollStart", NULL);
  poll_entry *e = calloc(1, sizeof *e);
  if (e == NULL) return throw_errno(env, ENOMEM, "pollStart", NULL);
  napi_value name, resource;
  napi_create_string_utf8(env, "PorticoSocketPoll", NAPI_AUTO_LENGTH, &name);
  napi_create_object(env, &resource);
  if (napi_async_init(env, resource, name, &e->async) != napi_ok) {
    free(e);
    return NULL;
  }
  int rc = uv_poll_init(inst->loop, &e->handle, fd);
  if (rc < 0) {
    napi_async_destroy(env, e->async);
    free(e);
    return throw_errno(env, -rc, "uv_poll_init", NULL);
  }
  e->handle.data = e;
  e->env = env;
  e->fd = fd;
  napi_create_reference(env, argv[1], 1, &e->callback);
  inst->polls[fd] = e;
  rc = uv_poll_start(&e->handle, UV_READABLE, on_poll);
  if (rc < 0) {
    poll_release(inst, fd);
    return throw_errno(env, -rc, "uv_poll_start", NULL);
  }
  return NULL;
}

/* pollStop(fd): stops calling back; harmless when not polling. */
static napi_value js_poll_stop(napi_env env, napi_callback_info info) {
  ARGS(1);
  int fd;
  if (!arg_fd(env, argv[0], &fd)) return NULL;
  poll_release(get_instance(env), fd);
  return NULL;
}

/* pollRef(fd, ref): whether an active poll keeps the event loop alive. */
static napi_value js_poll_ref(napi_env env, napi_callback_info info) {
  ARGS(2);
  int fd, ref;
  if (!arg_fd(env, argv[0], &fd) || !arg_bool(env, argv[1], &ref)) return NULL;
  instance *inst = get_instance(env);
  if ((size_t)fd < inst->cap && inst->polls[fd] != NULL) {
    if (ref) uv_ref((uv_handle_t *)&inst->polls[fd]->handle);
    else uv_unref((uv_handle_t *)&inst->polls[fd]->handle);
  }
  return NULL;
}

/* close(fd): stops polling first (libuv must not watch a closed fd). */
static napi_value js_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  int fd;
  if (!arg_fd(env, argv[0], &fd)) return NULL;
  poll_release(get_instance(env), fd);
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, errno, "close", NULL);
  return NULL;
}

/* ----------------------------------------------------------- interfaces */

/* interfaceInfo(name) -> {index, mac, hwType, mtu, flags} */
static napi_value js_interface_info(napi_env env, napi_callback_info info) {
  ARGS(1);
  char name[IFNAMSIZ + 1];
  if (!arg_string(env, argv[0], name, sizeof name, "interface name")) return NULL;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return throw_errno(env, errno, "socket", name);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, strlen(name)); /* arg_string capped it at IFNAMSIZ - 1 */
  int index, mtu, flags, hwtype;
  uint8_t mac[6];
  if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) goto fail;
  index = ifr.ifr_ifindex;
  if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) goto fail;
  hwtype = ifr.ifr_hwaddr.sa_family;
  memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
  if (ioctl(s, SIOCGIFMTU, &ifr) < 0) goto fail;
  mtu = ifr.ifr_mtu;
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) goto fail;
  flags = ifr.ifr_flags & 0xffff;
  close(s);
  napi_value obj, jmac;
  void *macp;
  napi_create_object(env, &obj);
  napi_create_buffer_copy(env, 6, mac, &macp, &jmac);
  napi_set_named_property(env, obj, "index", num(env, index));
  napi_set_named_property(env, obj, "mac", jmac);
  napi_set_named_property(env, obj, "hwType", num(env, hwtype));
  napi_set_named_property(env, obj, "mtu", num(env, mtu));
  napi_set_named_property(env, obj, "flags", num(env, flags));
  return obj;
fail:;
  int err = errno;
  close(s);
  return throw_errno(env, err, "ioctl", name);
}

/* ---------------------------------------------------------- AF_PACKET */

static int attach_filter(int fd, uint8_t *prog, size_t len) {
  if (len == 0 || len % sizeof(struct sock_filter) != 0 || len / sizeof(struct sock_filter) > 4096) {
    errno = EINVAL;
    return -1;
  }
  struct sock_fprog fprog = {
    .len = (unsigned short)(len / sizeof(struct sock_filter)),
    .filter = (struct sock_filter *)prog,
  };
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog);
}

/* packetOpen(ifindex, protocol, ignoreOutgoing, filter|null) -> fd.
 * The socket is created with protocol 0 (it receives nothing) and only bound
 * to the protocol and interface once options and filter are in place, so no
 * unfiltered frame is ever queued. */
static napi_value js_packet_open(napi_env env, napi_callback_info info) {
  ARGS(4);
  int32_t ifindex, protocol;
  int ignore_out;
  if (!arg_int(env, argv[0], &ifindex, "ifindex") || !arg_int(env, argv[1], &protocol, "protocol") ||
      !arg_bool(env, argv[2], &ignore_out))
    return NULL;
  uint8_t *prog = NULL;
  size_t proglen = 0;
  napi_valuetype t;
  napi_typeof(env, argv[3], &t);
  if (t != napi_undefined && t != napi_null && !arg_bytes(env, argv[3], &prog, &proglen, "filter")) return NULL;

  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket", "AF_PACKET");
  int one = 1;
  const char *step = "setsockopt";
  if (ignore_out && setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) goto fail;
  if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0) goto fail;
  if (prog != NULL && attach_filter(fd, prog, proglen) < 0) goto fail;
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons((uint16_t)protocol);
  sll.sll_ifindex = ifindex;
  step = "bind";
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) goto fail;
  return num(env, fd);
fail:;
  int err = errno;
  close(fd);
  return throw_errno(env, err, step, "AF_PACKET");
}

/* packetMembership(fd, ifindex, mac, add): receive frames sent to a multicast
 * MAC (e.g. an IPv6 solicited-node group 33:33:ff:xx:xx:xx). */
static napi_value js_packet_membership(napi_env env, napi_callback_info info) {
  ARGS(4);
  int fd, add;
  int32_t ifindex;
  uint8_t *mac;
  size_t maclen;
  if (!arg_fd(env, argv[0], &fd) || !arg_int(env, argv[1], &ifindex, "ifindex") ||
      !arg_bytes(env, argv[2], &mac, &maclen, "mac") || !arg_bool(env, argv[3], &add))
    return NULL;
  if (maclen != 6) return throw_errno(env, EINVAL, "packetMembership", "mac must be 6 bytes");
  struct packet_mreq mr;
  memset(&mr, 0, sizeof mr);
  mr.mr_ifindex = ifindex;
  mr.mr_type = PACKET_MR_MULTICAST;
  mr.mr_alen = 6;
  memcpy(mr.mr_address, mac, 6);
  if (setsockopt(fd, SOL_PACKET, add ? PACKET_ADD_MEMBERSHIP : PACKET_DROP_MEMBERSHIP, &mr, sizeof mr) < 0)
    return throw_errno(env, errno, "setsockopt", add ? "PACKET_ADD_MEMBERSHIP" : "PACKET_DROP_MEMBERSHIP");
  return NULL;
}

/* setFilter(fd, program): attach a classic BPF program (struct sock_filter[]). */
static napi_value js_set_filter(napi_env env, napi_callback_info info) {
  ARGS(2);
  int fd;
  uint8_t *prog;
  size_t len;
  if (!arg_fd(env, argv[0], &fd) || !arg_bytes(env, argv[1], &prog, &len, "program")) return NULL;
  if (attach_filter(fd, prog, len) < 0) return throw_errno(env, errno, "setsockopt", "SO_ATTACH_FILTER");
  return NULL;
}

/* --------------------------------------------------------- AF_NETLINK */

/* netlinkOpen(protocol, groups) -> fd, bound with a kernel-assigned port id. */
static napi_value js_netlink_open(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t protocol;
  uint32_t groups;
  if (!arg_int(env, argv[0], &protocol, "protocol") || !arg_uint(env, argv[1], &groups, "groups")) return NULL;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) return throw_errno(env, errno, "socket", "AF_NETLINK");
  struct sockaddr_nl snl;
  memset(&snl, 0, sizeof snl);
  snl.nl_family = AF_NETLINK;
  snl.nl_groups = groups;
  if (bind(fd, (struct sockaddr *)&snl, sizeof snl) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "bind", "AF_NETLINK");
  }
  return num(env, fd);
}

/* netlinkPortId(fd) -> the port id (nl_pid) the kernel assigned. */
static napi_value js_netlink_port_id(napi_env env, napi_callback_info info) {
  ARGS(1);
  int fd;
  if (!arg_fd(env, argv[0], &fd)) return NULL;
  struct sockaddr_nl snl;
  socklen_t len = sizeof snl;
  if (getsockname(fd, (struct sockaddr *)&snl, &len) < 0) return throw_errno(env, errno, "getsockname", NULL);
  return num(env, snl.nl_pid);
}

/* ------------------------------------------------------- send / receive */

/* The result of a non-blocking read or write: the byte count, -1 when the
 * socket has nothing queued (or no room), or a thrown error. */
static napi_value io_result(napi_env env, ssize_t n, const char *syscall, const char *subject) {
  if (n >= 0) return num(env, (double)n);
  if (errno == EAGAIN || errno == EWOULDBLOCK) return num(env, -1);
  return throw_errno(env, errno, syscall, subject);
}

/* One datagram into buf without blocking, retried on EINTR; MSG_TRUNC makes
 * the result the datagram's real size. `from` and `control` receive the
 * sender's address and the ancillary data. */
static ssize_t recv_datagram(int fd, struct msghdr *msg, struct iovec *iov, uint8_t *buf, size_t len,
                             struct sockaddr_storage *from, void *control, size_t control_len) {
  iov->iov_base = buf;
  iov->iov_len = len;
  memset(msg, 0, sizeof *msg);
  msg->msg_name = from;
  msg->msg_namelen = sizeof *from;
  msg->msg_iov = iov;
  msg->msg_iovlen = 1;
  msg->msg_control = control;
  msg->msg_controllen = control_len;
  ssize_t n;
  do {
    n = recvmsg(fd, msg, MSG_DONTWAIT | MSG_TRUNC);
  } while (n < 0 && errno == EINTR);
  return n;
}

/* sendto() without blocking or SIGPIPE, retried on EINTR (to == NULL: send). */
static ssize_t send_datagram(int fd, const uint8_t *buf, size_t len, const struct sockaddr *to, socklen_t tolen) {
  ssize_t n;
  do {
    n = sendto(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, to, tolen);
  } while (n < 0 && errno == EINTR);
  return n;
}

/* recv(fd, buf, meta|null) -> length, or -1 when nothing is queued.
 * The length is the datagram's real size (MSG_TRUNC): larger than buf means
 * it was cut. meta (Int32Array, >= 6) gets the sender:
 *   AF_PACKET:  [17, ifindex, pkttype, ethertype, vlanTci|-1, vlanTpid|0]
 *   AF_NETLINK: [16, portId, groups, 0, 0, 0]                             */
static napi_value js_recv(napi_env env, napi_callback_info info) {
  ARGS(3);
  int fd;
  uint8_t *buf, *metap = NULL;
  size_t len, metalen = 0;
  if (!arg_fd(env, argv[0], &fd) || !arg_bytes(env, argv[1], &buf, &len, "buffer")) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t != napi_undefined && t != napi_null) {
    if (!arg_bytes(env, argv[2], &metap, &metalen, "meta")) return NULL;
    if (metalen < 6 * sizeof(int32_t)) return throw_errno(env, EINVAL, "recv", "meta needs 6 int32 slots");
  }
  struct sockaddr_storage from;
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
  } control;
  struct iovec iov;
  struct msghdr msg;
  ssize_t n = recv_datagram(fd, &msg, &iov, buf, len, &from, control.buf, sizeof control.buf);
  if (n < 0) return io_result(env, n, "recvmsg", NULL);
  if (metap != NULL) {
    int32_t m[6] = { 0, 0, 0, 0, -1, 0 };
    if (msg.msg_namelen > 0) m[0] = from.ss_family;
    if (from.ss_family == AF_PACKET) {
      struct sockaddr_ll *sll = (struct sockaddr_ll *)&from;
      m[1] = sll->sll_ifindex;
      m[2] = sll->sll_pkttype;
      m[3] = ntohs(sll->sll_protocol);
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
        struct tpacket_auxdata aux;
        memcpy(&aux, CMSG_DATA(c), sizeof aux);
        if (aux.tp_status & TP_STATUS_VLAN_VALID) {
          m[4] = aux.tp_vlan_tci;
          m[5] = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) ? aux.tp_vlan_tpid : ETH_P_8021Q;
        }
      }
    } else if (from.ss_family == AF_NETLINK) {
      struct sockaddr_nl *snl = (struct sockaddr_nl *)&from;
      m[1] = (int32_t)snl->nl_pid;
      m[2] = (int32_t)snl->nl_groups;
    }
    memcpy(metap, m, sizeof m);
  }
  return num(env, (double)n);
}

/* send(fd, buf) -> bytes sent, or -1 when the socket buffer is full. On a
 * bound AF_PACKET socket the frame leaves on the bound interface; on netlink
 * it goes to the kernel (port 0). */
static napi_value js_send(napi_env env, napi_callback_info info) {
  ARGS(2);
  int fd;
  uint8_t *buf;
  size_t len;
  if (!arg_fd(env, argv[0], &fd) || !arg_bytes(env, argv[1], &buf, &len, "buffer")) return NULL;
  return io_result(env, send_datagram(fd, buf, len, NULL, 0), "send", NULL);
}

/* ------------------------------------------------------ socket options */

/* setIntOption(fd, level, name, value) */
static napi_value js_set_int_option(napi_env env, napi_callback_info info) {
  ARGS(4);
  int fd;
  int32_t level, name, value;
  if (!arg_fd(env, argv[0], &fd) || !arg_int(env, argv[1], &level, "level") ||
      !arg_int(env, argv[2], &name, "name") || !arg_int(env, argv[3], &value, "value"))
    return NULL;
  if (setsockopt(fd, level, name, &value, sizeof value) < 0) {
    char what[48];
    snprintf(what, sizeof what, "level %d option %d", level, name);
    return throw_errno(env, errno, "setsockopt", what);
  }
  return NULL;
}

/* getIntOption(fd, level, name) -> value */
static napi_value js_get_int_option(napi_env env, napi_callback_info info) {
  ARGS(3);
  int fd;
  int32_t level, name, value = 0;
  if (!arg_fd(env, argv[0], &fd) || !arg_int(env, argv[1], &level, "level") || !arg_int(env, argv[2], &name, "name"))
    return NULL;
  socklen_t len = sizeof value;
  if (getsockopt(fd, level, name, &value, &len) < 0) {
    char what[48];
    snprintf(what, sizeof what, "level %d option %d", level, name);
    return throw_errno(env, errno, "getsockopt", what);
  }
  return num(env, value);
}

/* ------------------------------------------------------------------ TCP */

/* A non-blocking, close-on-exec AF_INET/AF_INET6 socket of `type` for the
 * family argument (4|6, stored in *family); -1 after throwing. */
static int inet_socket(napi_env env, napi_value arg, int type, const char *fn, int32_t *family) {
  if (!arg_int(env, arg, family, "family")) return -1;
  if (*family != 4 && *family != 6) {
    throw_errno(env, EAFNOSUPPORT, fn, "family must be 4 or 6");
    return -1;
  }
  int fd = socket(*family == 4 ? AF_INET : AF_INET6, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno(env, errno, "socket", *family == 4 ? "AF_INET" : "AF_INET6");
  return fd;
}

/* tcpSocket(family 4|6) -> a non-blocking TCP socket fd, for `new
 * net.Socket({fd})` or `server.listen({fd})` once options are set. */
static napi_value js_tcp_socket(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t family;
  int fd = inet_socket(env, argv[0], SOCK_STREAM, "tcpSocket", &family);
  return fd < 0 ? NULL : num(env, fd);
}

static int socket_domain(int fd) {
  int domain = 0;
  socklen_t len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) return -1;
  return domain;
}

/* bindAddress(fd, address, port): SO_REUSEADDR then bind (e.g. before listen). */
static napi_value js_bind_address(napi_env env, napi_callback_info info) {
  ARGS(3);
  int fd;
  int32_t port;
  char addr[INET6_ADDRSTRLEN + 1];
  if (!arg_fd(env, argv[0], &fd) || !arg_string(env, argv[1], addr, sizeof addr, "address") ||
      !arg_int(env, argv[2], &port, "port"))
    return NULL;
  int domain = socket_domain(fd);
  if (domain < 0) return throw_errno(env, errno, "getsockopt", "SO_DOMAIN");
  struct sockaddr_storage ss;
  socklen_t sslen;
  if (port < 0 || port > 65535 || parse_addr(addr, port, domain, &ss, &sslen) < 0)
    return throw_errno(env, EINVAL, "bind", addr);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) return throw_errno(env, errno, "bind", addr);
  return NULL;
}

/* ------------------------------------------------------------------ UDP */

/* udpSocket(family 4|6) -> a non-blocking UDP socket that reports, with each
 * datagram, the TTL / hop limit it arrived with and the address it was sent
 * to (IP_RECVTTL + IP_PKTINFO, IPV6_RECVHOPLIMIT + IPV6_RECVPKTINFO): what a
 * GTSM check (RFC 5082, BFD's RFC 5881 §5) needs. IPv6 sockets are v6-only. */
static napi_value js_udp_socket(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t family;
  int fd = inet_socket(env, argv[0], SOCK_DGRAM, "udpSocket", &family);
  if (fd < 0) return NULL;
  int one = 1;
  int ok = family == 4
    ? setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof one) == 0 && setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) == 0
    : setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0 &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one) == 0 &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) == 0;
  if (!ok) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "setsockopt", "IP_RECVTTL/IPV6_RECVHOPLIMIT");
  }
  return num(env, fd);
}

/* udpRecv(fd, buf, addrs, meta) -> length (larger than buf when cut), or -1
 * when nothing is queued. addrs (32 bytes) receives the source address at 0
 * and the destination address at 16 (IPv4: the first 4 bytes of each);
 * meta (Int32Array of 4): family (4|6), source port, TTL or hop limit (-1 if
 * the kernel gave none), receiving ifindex. */
static napi_value js_udp_recv(napi_env env, napi_callback_info info) {
  ARGS(4);
  int fd;
  uint8_t *buf, *addrs, *metap;
  size_t len, addrslen, metalen;
  if (!arg_fd(env, argv[0], &fd) || !arg_bytes(env, argv[1], &buf, &len, "buffer") ||
      !arg_bytes(env, argv[2], &addrs, &addrslen, "addrs") || !arg_bytes(env, argv[3], &metap, &metalen, "meta"))
    return NULL;
  if (addrslen < 32) return throw_errno(env, EINVAL, "udpRecv", "addrs needs 32 bytes");
  if (metalen < 4 * sizeof(int32_t)) return throw_errno(env, EINVAL, "udpRecv", "meta needs 4 int32 slots");
  struct sockaddr_storage from;
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)) + 64];
  } control;
  struct iovec iov;
  struct msghdr msg;
  ssize_t n = recv_datagram(fd, &msg, &iov, buf, len, &from, control.buf, sizeof control.buf);
  if (n < 0) return io_result(env, n, "recvmsg", NULL);
  int32_t m[4] = { 0, 0, -1, 0 };
  memset(addrs, 0, 32);
  if (from.ss_family == AF_INET) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&from;
    m[0] = 4;
    m[1] = ntohs(s4->sin_port);
    memcpy(addrs, &s4->sin_addr, 4);
  } else if (from.ss_family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&from;
    m[0] = 6;
    m[1] = ntohs(s6->sin6_port);
    memcpy(addrs, &s6->sin6_addr, 16);
  }
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) {
      int ttl;
      memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
      m[2] = ttl;
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      memcpy(addrs + 16, &pi.ipi_addr, 4);
      m[3] = pi.ipi_ifindex;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) {
      int hops;
      memcpy(&hops, CMSG_DATA(c), sizeof hops);
      m[2] = hops;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      memcpy(addrs + 16, &pi.ipi6_addr, 16);
      m[3] = (int32_t)pi.ipi6_ifindex;
    }
  }
  memcpy(metap, m, sizeof m);
  return num(env, (double)n);
}

/* udpSendTo(fd, buf, address, port) -> bytes sent, or -1 when the socket
 * buffer is full. An IPv6 link-local address may carry a %zone. */
static napi_value js_udp_send_to(napi_env env, napi_callback_info info) {
  ARGS(4);
  int fd;
  uint8_t *buf;
  size_t len;
  int32_t port;
  char addr[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (!arg_fd(env, argv[0], &fd) || !arg_bytes(env, argv[1], &buf, &len, "buffer") ||
      !arg_string(env, argv[2], addr, sizeof addr, "address") || !arg_int(env, argv[3], &port, "port"))
    return NULL;
  unsigned int scope = 0;
  char *pct = strchr(addr, '%');
  if (pct != NULL) {
    *pct = '\0';
    scope = if_nametoindex(pct + 1);
    if (scope == 0) scope = (unsigned int)strtoul(pct + 1, NULL, 10);
  }
  int domain = socket_domain(fd);
  if (domain < 0) return throw_errno(env, errno, "getsockopt", "SO_DOMAIN");
  struct sockaddr_storage ss;
  socklen_t sslen;
  if (port < 0 || port > 65535 || parse_addr(addr, port, domain, &ss, &sslen) < 0) return throw_errno(env, EINVAL, "sendto", addr);
  if (ss.ss_family == AF_INET6) ((struct sockaddr_in6 *)&ss)->sin6_scope_id = scope;
  return io_result(env, send_datagram(fd, buf, len, (struct sockaddr *)&ss, sslen), "sendto", addr);
}

/* tcpMd5Sig(fd, address, prefixLength, key, ifindex): RFC 2385 key for a peer
 * (or, with a prefix length >= 0, for every peer in a prefix). An empty key
 * deletes it. An IPv4 peer on an IPv6 socket is keyed as ::ffff:a.b.c.d, as
 * the kernel expects. prefixLength -1 = the single address; ifindex 0 = any. */
static napi_value js_tcp_md5sig(napi_env env, napi_callback_info info) {
  ARGS(5);
  int fd;
  int32_t prefix, ifindex = 0;
  char addr[INET6_ADDRSTRLEN + 1];
  uint8_t *key;
  size_t keylen;
  if (!arg_fd(env, argv[0], &fd) || !arg_string(env, argv[1], addr, sizeof addr, "address") ||
      !arg_int(env, argv[2], &prefix, "prefixLength") || !arg_bytes(env, argv[3], &key, &keylen, "key"))
    return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[4], &t);
  if (t != napi_undefined && !arg_int(env, argv[4], &ifindex, "ifindex")) return NULL;
  if (keylen > PORTICO_TCP_MD5SIG_MAXKEYLEN) return throw_errno(env, EINVAL, "tcpMd5Sig", "key longer than 80 bytes");
  int domain = socket_domain(fd);
  if (domain < 0) return throw_errno(env, errno, "getsockopt", "SO_DOMAIN");
  struct portico_tcp_md5sig sig;
  memset(&sig, 0, sizeof sig);
  socklen_t sslen;
  int fam = parse_addr(addr, 0, domain, &sig.addr, &sslen);
  if (fam < 0) return throw_errno(env, EINVAL, "tcpMd5Sig", addr);
  int max = fam == AF_INET ? 32 : 128;
  int opt = PORTICO_TCP_MD5SIG;
  if (prefix >= 0) {
    /* An IPv4 prefix on an IPv6 socket covers the mapped range. */
    int p = prefix + ((domain == AF_INET6 && strchr(addr, ':') == NULL) ? 96 : 0);
    if (p > max) return throw_errno(env, EINVAL, "tcpMd5Sig", "prefix length too long");
    sig.flags |= PORTICO_TCP_MD5SIG_FLAG_PREFIX;
    sig.prefixlen = (uint8_t)p;
    opt = PORTICO_TCP_MD5SIG_EXT;
  }
  if (ifindex > 0) {
    sig.flags |= PORTICO_TCP_MD5SIG_FLAG_IFINDEX;
    sig.ifindex = ifindex;
    opt = PORTICO_TCP_MD5SIG_EXT;
  }
  sig.keylen = (uint16_t)keylen;
  memcpy(sig.key, key, keylen);
  if (setsockopt(fd, IPPROTO_TCP, opt, &sig, sizeof sig) < 0) return throw_errno(env, errno, "setsockopt", "TCP_MD5SIG");
  return NULL;
}

/* ---------------------------------------------------------------- init */

static void set_const(napi_env env, napi_value obj, const char *name, double v) {
  napi_set_named_property(env, obj, name, num(env, v));
}

static napi_value init(napi_env env, napi_value exports) {
  instance *inst = calloc(1, sizeof *inst);
  if (inst == NULL) return throw_errno(env, ENOMEM, "init", NULL);
  if (napi_get_uv_event_loop(env, &inst->loop) != napi_ok) {
    free(inst);
    return NULL;
  }
  napi_set_instance_data(env, inst, instance_finalize, NULL);
  napi_add_env_cleanup_hook(env, instance_cleanup, inst);

  napi_property_descriptor fns[] = {
#define F(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL }
    F("interfaceInfo", js_interface_info),
    F("packetOpen", js_packet_open),
    F("packetMembership", js_packet_membership),
    F("setFilter", js_set_filter),
    F("netlinkOpen", js_netlink_open),
    F("netlinkPortId", js_netlink_port_id),
    F("recv", js_recv),
    F("send", js_send),
    F("setIntOption", js_set_int_option),
    F("getIntOption", js_get_int_option),
    F("tcpSocket", js_tcp_socket),
    F("bindAddress", js_bind_address),
    F("tcpMd5Sig", js_tcp_md5sig),
    F("udpSocket", js_udp_socket),
    F("udpRecv", js_udp_recv),
    F("udpSendTo", js_udp_send_to),
    F("pollStart", js_poll_start),
    F("pollStop", js_poll_stop),
    F("pollRef", js_poll_ref),
    F("close", js_close),
#undef F
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);

  napi_value c;
  napi_create_object(env, &c);
#define C(x) set_const(env, c, #x, x)
  C(AF_INET); C(AF_INET6); C(AF_PACKET); C(AF_NETLINK);
  C(ETH_P_ALL); C(ETH_P_ARP); C(ETH_P_IP); C(ETH_P_IPV6); C(ETH_P_8021Q);
  C(PACKET_HOST); C(PACKET_BROADCAST); C(PACKET_MULTICAST); C(PACKET_OTHERHOST); C(PACKET_OUTGOING);
  C(SOL_SOCKET); C(SOL_PACKET); C(SOL_NETLINK); C(IPPROTO_IP); C(IPPROTO_IPV6); C(IPPROTO_TCP);
  C(SO_RCVBUF); C(SO_SNDBUF); C(SO_RCVBUFFORCE); C(SO_SNDBUFFORCE); C(SO_REUSEADDR);
  C(IP_TTL); C(IP_MINTTL); C(IPV6_UNICAST_HOPS); C(IPV6_V6ONLY); C(IPV6_MINHOPCOUNT);
  C(NETLINK_ROUTE); C(NETLINK_GENERIC);
  C(NETLINK_ADD_MEMBERSHIP); C(NETLINK_DROP_MEMBERSHIP); C(NETLINK_NO_ENOBUFS);
  C(NETLINK_CAP_ACK); C(NETLINK_EXT_ACK); C(NETLINK_GET_STRICT_CHK);
  C(ARPHRD_ETHER); C(ARPHRD_LOOPBACK);
  C(IFF_UP); C(IFF_BROADCAST); C(IFF_LOOPBACK); C(IFF_RUNNING); C(IFF_MULTICAST);
#undef C
  napi_set_named_property(env, exports, "constants", c);
  return exports;
}

NAPI_MODULE_INIT() {
  return init(env, exports);
}
