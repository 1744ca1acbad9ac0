// flowgate_io: the kernel-facing half of packet I/O (ARCHITECTURE.md "Packet I/O"; GWLB.md "Returning a
// packet"), and the TUN helper the GWLB stand-in uses.
//
// Why native at all: GWLB wants replies from <appliance ip>:<GWLB's source port> to <GWLB ip>:6081. Node's
// dgram can only send from the port a socket is bound to, and it moves one datagram per syscall. Here:
//   - receive: recvmmsg on the UDP 6081 socket, straight into a ring Buffer that JS owns, with IP_PKTINFO
//     so we learn which local address each datagram arrived on (the source of the reply). Event-driven by a
//     uv_poll on the socket: one JS call per batch, not per packet.
//   - send: sendmmsg on a raw IPv4 socket (IPPROTO_RAW implies IP_HDRINCL); we write the outer IPv4 + UDP
//     header ourselves (ports chosen per packet, TTL 255, IP id 0, DF clear, valid UDP checksum — what GWLB
//     itself puts on the wire) into per-slot scratch and gather it with the payload, which stays in the JS
//     buffer it was received or built in. No allocation per packet on either path.
//   - TUN: opening /dev/net/tun needs the TUNSETIFF ioctl, which Node cannot issue. No maintained npm
//     package offers it as a Node-API module that builds on Node 24 (tuntap2 is gone from the registry; the
//     remaining ones are NAN/v8-API bindings tied to old Node majors or to a product), and we have the
//     addon anyway, so it is 20 lines here. The same uv_poll reader drains a TUN fd packet by packet.
//
// Plain C on Node-API 8 only (no V8, no node-addon-api C++ wrappers): ABI-stable across Node versions.
// Errors thrown to JS carry code FG_ERR_IO_SYSCALL plus `syscall` and `errno` properties.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

// Per-slot metadata words shared with JS (Uint32Array). Keep in sync with appliance/src/io/native.ts.
#define META_WORDS 8
// rx: [0]=length [1]=source addr [2]=source port [3]=local (destination) addr [4]=flags (1 = truncated)
// tx: [0]=buffer index [1]=offset [2]=length [3]=source addr [4]=destination addr [5]=source port
//     [6]=destination port
#define RX_FLAG_TRUNCATED 1u
#define TX_MAX_BUFFERS 4
#define OUTER_LEN 28 /* IPv4 (20, no options) + UDP (8) */
// How many recvmmsg rounds one readiness event may run before yielding to the rest of the event loop
// (timers, the HTTP control surface): bounds the time the loop is held under a flood.
#define MAX_ROUNDS 16

static napi_value throw_sys(napi_env env, const char *syscall, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s (errno %d)", syscall, strerror(err), err);
  napi_value code, message, error, v;
  napi_create_string_utf8(env, "FG_ERR_IO_SYSCALL", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, error, "syscall", v);
  napi_create_int32(env, err, &v);
  napi_set_named_property(env, error, "errno", v);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_arg(napi_env env, const char *msg) {
  napi_throw_type_error(env, "FG_ERR_IO_ARGUMENT", msg);
  return NULL;
}

static int arg_u32(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

static napi_value num(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

static int get_buffer(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is_buf = false;
  napi_is_buffer(env, v, &is_buf);
  if (!is_buf) return 0;
  void *d;
  if (napi_get_buffer_info(env, v, &d, len) != napi_ok) return 0;
  *data = d;
  return 1;
}

static int get_u32array(napi_env env, napi_value v, uint32_t **data, size_t *count) {
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  if (!is_ta) return 0;
  napi_typedarray_type type;
  void *d;
  if (napi_get_typedarray_info(env, v, &type, count, &d, NULL, NULL) != napi_ok) return 0;
  if (type != napi_uint32_array) return 0;
  *data = d;
  return 1;
}

// ---- TUN ---------------------------------------------------------------------------------------------

// tunOpen(name) -> [fd, name]. IFF_TUN: layer-3 packets; IFF_NO_PI: no 4-byte packet-info prefix, so each
// read/write is exactly one IP packet. Non-blocking so the uv_poll reader can drain it.
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char name[IFNAMSIZ] = {0};
  size_t nlen = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok)
    return throw_arg(env, "tunOpen(name): name must be a string");
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_sys(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, nlen < IFNAMSIZ - 1 ? nlen : IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return throw_sys(env, "ioctl TUNSETIFF", e);
  }
  napi_value out, v;
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, num(env, fd));
  napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &v);
  napi_set_element(env, out, 1, v);
  return out;
}

// ---- sockets -----------------------------------------------------------------------------------------

// udpOpen(addr, port, rcvbuf) -> [fd, boundPort]. addr is an IPv4 address as a host-order u32 (0 = any).
// The socket stays bound for the life of the appliance: while it exists the kernel never answers GWLB
// with ICMP port-unreachable. A large SO_RCVBUF absorbs bursts (gwlbtun: ~50 MB above 1 Mpps).
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t addr, port, rcvbuf;
  if (argc < 3 || !arg_u32(env, argv[0], &addr) || !arg_u32(env, argv[1], &port) ||
      !arg_u32(env, argv[2], &rcvbuf) || port > 65535)
    return throw_arg(env, "udpOpen(addr, port, rcvbuf): u32 arguments expected");
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_sys(env, "socket", errno);
  int one = 1;
  if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0) {
    int e = errno;
    close(fd);
    return throw_sys(env, "setsockopt IP_PKTINFO", e);
  }
  if (rcvbuf > 0) {
    int v = (int)rcvbuf;
    // SO_RCVBUFFORCE passes rmem_max when we are privileged; fall back to the capped SO_RCVBUF.
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(addr);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return throw_sys(env, "bind", e);
  }
  socklen_t sl = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  napi_value out;
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, num(env, fd));
  napi_set_element(env, out, 1, num(env, ntohs(sa.sin_port)));
  return out;
}

// rawOpen(sndbuf) -> fd. IPPROTO_RAW: send-only, and IP_HDRINCL is implied (raw(7)), so we own the whole
// IPv4 header. Needs CAP_NET_RAW.
static napi_value raw_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t sndbuf = 0;
  if (argc >= 1) arg_u32(env, argv[0], &sndbuf);
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) return throw_sys(env, "socket SOCK_RAW", errno);
  if (sndbuf > 0) {
    int v = (int)sndbuf;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0)
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
  }
  return num(env, fd);
}

// captureOpen(protocol) -> fd: a raw socket that receives a copy of every incoming IPv4 packet of that
// protocol, IP header included — how the packet I/O suite sees the outer header we put on the wire
// (TTL, flags, UDP checksum), which a UDP socket hides. Read it with pollerOpen mode 1. CAP_NET_RAW.
static napi_value capture_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t proto;
  if (argc < 1 || !arg_u32(env, argv[0], &proto) || proto == 0 || proto > 254)
    return throw_arg(env, "captureOpen(protocol)");
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, (int)proto);
  if (fd < 0) return throw_sys(env, "socket SOCK_RAW", errno);
  return num(env, fd);
}

static napi_value fd_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd;
  if (argc < 1 || !arg_u32(env, argv[0], &fd)) return throw_arg(env, "fdClose(fd)");
  if (close((int)fd) < 0) return throw_sys(env, "close", errno);
  return NULL;
}

// ---- event-driven batched receive ----------------------------------------------------------------------

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb_ref, ring_ref, meta_ref, resource_ref;
  napi_async_context actx;
  int fd, mode; // mode 0: UDP socket via recvmmsg; mode 1: packet fd (TUN) via read()
  uint8_t *ring;
  size_t slot;
  uint32_t *meta;
  unsigned max;
  int closing;
  struct mmsghdr *msgs;
  struct iovec *iovs;
  struct sockaddr_in *addrs;
  uint8_t *ctrl; // max * CTRL_LEN
} poller_t;

#define CTRL_LEN 64

static int poller_receive(poller_t *p) {
  if (p->mode == 1) {
    unsigned n = 0;
    while (n < p->max) {
      ssize_t r = read(p->fd, p->ring + (size_t)n * p->slot, p->slot);
      if (r < 0) break; // EAGAIN: drained (other errors surface as "nothing more to read")
      uint32_t *m = p->meta + (size_t)n * META_WORDS;
      m[0] = (uint32_t)r;
      m[4] = 0;
      n++;
    }
    return (int)n;
  }
  for (unsigned i = 0; i < p->max; i++) {
    // msg_namelen/msg_controllen are value-result: reset them on every call.
    struct msghdr *h = &p->msgs[i].msg_hdr;
    h->msg_name = &p->addrs[i];
    h->msg_namelen = sizeof(struct sockaddr_in);
    h->msg_iov = &p->iovs[i];
    h->msg_iovlen = 1;
    h->msg_control = p->ctrl + (size_t)i * CTRL_LEN;
    h->msg_controllen = CTRL_LEN;
    h->msg_flags = 0;
  }
  int n = recvmmsg(p->fd, p->msgs, p->max, MSG_DONTWAIT, NULL);
  if (n <= 0) return 0;
  for (int i = 0; i < n; i++) {
    struct msghdr *h = &p->msgs[i].msg_hdr;
    uint32_t *m = p->meta + (size_t)i * META_WORDS;
    m[0] = p->msgs[i].msg_len;
    m[1] = ntohl(p->addrs[i].sin_addr.s_addr);
    m[2] = ntohs(p->addrs[i].sin_port);
    m[3] = 0;
    m[4] = (h->msg_flags & MSG_TRUNC) ? RX_FLAG_TRUNCATED : 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        struct in_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        // ipi_addr: the destination address in the datagram's IP header — the address GWLB sent to, and
        // so the source of our reply.
        m[3] = ntohl(pi.ipi_addr.s_addr);
      }
    }
  }
  return n;
}

static void poller_on_readable(uv_poll_t *handle, int status, int events) {
  poller_t *p = handle->data;
  napi_env env = p->env;
  if (status < 0) {
    // The fd is unusable (e.g. closed under us): stop polling rather than spin on the error. The owner
    // still calls pollerClose, which then only closes the handle.
    uv_poll_stop(handle);
    return;
  }
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg;
  napi_get_reference_value(env, p->cb_ref, &cb);
  napi_get_global(env, &recv); // napi_make_callback needs an object receiver
  for (int round = 0; round < MAX_ROUNDS && !p->closing; round++) {
    int n = poller_receive(p);
    if (n <= 0) break;
    napi_create_uint32(env, (uint32_t)n, &arg);
    napi_status st = napi_make_callback(env, p->actx, recv, cb, 1, &arg, NULL);
    if (st != napi_ok) {
      // The handler threw: hand the error to process 'uncaughtException' like any other callback would,
      // and stop this round (the ring may be in use by a handler that did not finish).
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
      break;
    }
    if ((unsigned)n < p->max) break; // a short batch means the queue is drained: skip the EAGAIN syscall
  }
  napi_close_handle_scope(env, scope);
}

// pollerOpen(fd, mode, ring: Buffer, slotSize, meta: Uint32Array, maxSlots, onBatch(count)) -> handle
static napi_value poller_open(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd, mode, slot, max;
  uint8_t *ring;
  size_t ring_len, meta_len;
  uint32_t *meta;
  napi_valuetype cbt;
  if (argc < 7 || !arg_u32(env, argv[0], &fd) || !arg_u32(env, argv[1], &mode) || mode > 1 ||
      !get_buffer(env, argv[2], &ring, &ring_len) || !arg_u32(env, argv[3], &slot) || slot == 0 ||
      !get_u32array(env, argv[4], &meta, &meta_len) || !arg_u32(env, argv[5], &max) || max == 0 ||
      napi_typeof(env, argv[6], &cbt) != napi_ok || cbt != napi_function)
    return throw_arg(env, "pollerOpen(fd, mode, ring, slotSize, meta, maxSlots, onBatch)");
  if ((size_t)slot * max > ring_len || (size_t)max * META_WORDS > meta_len)
    return throw_arg(env, "pollerOpen: ring or meta too small for maxSlots");
  poller_t *p = calloc(1, sizeof *p);
  p->msgs = calloc(max, sizeof *p->msgs);
  p->iovs = calloc(max, sizeof *p->iovs);
  p->addrs = calloc(max, sizeof *p->addrs);
  p->ctrl = calloc(max, CTRL_LEN);
  p->env = env;
  p->fd = (int)fd;
  p->mode = (int)mode;
  p->ring = ring;
  p->slot = slot;
  p->meta = meta;
  p->max = max;
  for (unsigned i = 0; i < max; i++) {
    p->iovs[i].iov_base = ring + (size_t)i * slot;
    p->iovs[i].iov_len = slot;
  }
  // References keep the ring and meta alive (and their memory in place) while the kernel writes into them.
  napi_create_reference(env, argv[6], 1, &p->cb_ref);
  napi_create_reference(env, argv[2], 1, &p->ring_ref);
  napi_create_reference(env, argv[4], 1, &p->meta_ref);
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &p->resource_ref);
  napi_create_string_utf8(env, "flowgate:packet-io", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &p->actx);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int r = uv_poll_init(loop, &p->poll, p->fd);
  if (r == 0) {
    p->poll.data = p;
    r = uv_poll_start(&p->poll, UV_READABLE, poller_on_readable);
  }
  if (r != 0) {
    napi_delete_reference(env, p->cb_ref);
    napi_delete_reference(env, p->ring_ref);
    napi_delete_reference(env, p->meta_ref);
    napi_delete_reference(env, p->resource_ref);
    napi_async_destroy(env, p->actx);
    free(p->msgs), free(p->iovs), free(p->addrs), free(p->ctrl), free(p);
    return throw_sys(env, "uv_poll_start", -r);
  }
  napi_value ext;
  napi_create_external(env, p, NULL, NULL, &ext);
  return ext;
}

static void poller_closed(uv_handle_t *h) {
  poller_t *p = h->data;
  napi_env env = p->env;
  napi_delete_reference(env, p->cb_ref);
  napi_delete_reference(env, p->ring_ref);
  napi_delete_reference(env, p->meta_ref);
  napi_delete_reference(env, p->resource_ref);
  napi_async_destroy(env, p->actx);
  free(p->msgs), free(p->iovs), free(p->addrs), free(p->ctrl), free(p);
}

// pollerClose(handle): stops polling; the fd stays open (its owner closes it). Idempotent.
static napi_value poller_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  poller_t *p;
  if (argc < 1 || napi_get_value_external(env, argv[0], (void **)&p) != napi_ok)
    return throw_arg(env, "pollerClose(handle)");
  if (p && !p->closing) {
    p->closing = 1;
    uv_poll_stop(&p->poll);
    uv_close((uv_handle_t *)&p->poll, poller_closed);
  }
  return NULL;
}

// pollerRef(handle, ref): whether the poller keeps the event loop alive.
static napi_value poller_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  poller_t *p;
  bool ref = true;
  if (argc < 2 || napi_get_value_external(env, argv[0], (void **)&p) != napi_ok ||
      napi_get_value_bool(env, argv[1], &ref) != napi_ok)
    return throw_arg(env, "pollerRef(handle, ref)");
  if (!p->closing) {
    if (ref) uv_ref((uv_handle_t *)&p->poll);
    else uv_unref((uv_handle_t *)&p->poll);
  }
  return NULL;
}

// ---- batched raw send ----------------------------------------------------------------------------------

typedef struct {
  napi_env env;
  int fd;
  unsigned nbufs, max;
  uint8_t *bufs[TX_MAX_BUFFERS];
  size_t lens[TX_MAX_BUFFERS];
  napi_ref refs[TX_MAX_BUFFERS];
  uint32_t *meta;
  napi_ref meta_ref;
  struct mmsghdr *msgs;
  struct iovec *iovs; // 2 per message: outer header, payload
  struct sockaddr_in *addrs;
  uint8_t *hdrs; // max * OUTER_LEN
  int closed;
} tx_t;

// RFC 1071 sum of big-endian 16-bit words, unfolded.
static uint64_t sum16(const uint8_t *b, size_t len, uint64_t acc) {
  size_t i = 0;
  for (; i + 1 < len; i += 2) acc += ((uint32_t)b[i] << 8) | b[i + 1];
  if (i < len) acc += (uint32_t)b[i] << 8;
  return acc;
}

static uint16_t fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

// The same sum over a payload, 8 bytes per step in native byte order: the ones'-complement sum is
// byte-order independent up to a final swap (RFC 1071 §2(B)), and wide loads cut the per-byte cost that
// dominates at 1,400-byte packets. Returns the folded sum as big-endian words would give it.
static uint16_t sum_payload(const uint8_t *b, size_t len) {
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, b + i, 8);
    acc += w >> 32;
    acc += w & 0xffffffffu;
  }
  for (; i + 2 <= len; i += 2) {
    uint16_t w;
    memcpy(&w, b + i, 2);
    acc += w;
  }
  if (i < len) {
    uint8_t last[2] = {b[i], 0}; // odd tail padded with a zero byte, as RFC 1071 §4.1
    uint16_t w;
    memcpy(&w, last, 2);
    acc += w;
  }
  uint16_t f = fold(acc);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  f = (uint16_t)((f >> 8) | (f << 8));
#endif
  return f;
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = (v >> 16) & 0xff;
  p[2] = (v >> 8) & 0xff;
  p[3] = v & 0xff;
}

// The outer header GWLB itself sends (GWLB.md "Wire format": TTL 255, IP id 0, DF clear, valid UDP
// checksum). The kernel would fill the IPv4 checksum for IP_HDRINCL anyway (raw(7)); we compute it so the
// header is right on its own.
static void build_outer(uint8_t *h, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
                        const uint8_t *payload, size_t plen) {
  size_t udplen = 8 + plen;
  h[0] = 0x45;
  h[1] = 0;
  put16(h + 2, (uint16_t)(20 + udplen));
  put16(h + 4, 0);
  put16(h + 6, 0);
  h[8] = 255;
  h[9] = IPPROTO_UDP;
  put16(h + 10, 0);
  put32(h + 12, src);
  put32(h + 16, dst);
  put16(h + 10, (uint16_t)~fold(sum16(h, 20, 0)));
  uint8_t *u = h + 20;
  put16(u, sport);
  put16(u + 2, dport);
  put16(u + 4, (uint16_t)udplen);
  put16(u + 6, 0);
  // RFC 768 pseudo-header: src, dst, zero, protocol, UDP length.
  uint64_t s = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + IPPROTO_UDP + udplen;
  s = sum16(u, 8, s);
  s += sum_payload(payload, plen);
  uint16_t c = (uint16_t)~fold(s);
  put16(u + 6, c == 0 ? 0xffff : c); // RFC 768: a computed 0 is sent as all ones
}

// txOpen(rawFd, buffers: Buffer[], meta: Uint32Array, maxEntries) -> handle
static napi_value tx_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd, max, nbufs;
  uint32_t *meta;
  size_t meta_len;
  bool is_arr = false;
  if (argc < 4 || !arg_u32(env, argv[0], &fd) || napi_is_array(env, argv[1], &is_arr) != napi_ok ||
      !is_arr || !get_u32array(env, argv[2], &meta, &meta_len) || !arg_u32(env, argv[3], &max) || max == 0)
    return throw_arg(env, "txOpen(rawFd, buffers, meta, maxEntries)");
  napi_get_array_length(env, argv[1], &nbufs);
  if (nbufs > TX_MAX_BUFFERS || (size_t)max * META_WORDS > meta_len)
    return throw_arg(env, "txOpen: too many buffers or meta too small");
  tx_t *t = calloc(1, sizeof *t);
  t->env = env;
  t->fd = (int)fd;
  t->max = max;
  t->nbufs = nbufs;
  t->meta = meta;
  for (uint32_t i = 0; i < nbufs; i++) {
    napi_value b;
    napi_get_element(env, argv[1], i, &b);
    if (!get_buffer(env, b, &t->bufs[i], &t->lens[i])) {
      for (uint32_t j = 0; j < i; j++) napi_delete_reference(env, t->refs[j]);
      free(t);
      return throw_arg(env, "txOpen: buffers must be Buffers");
    }
    napi_create_reference(env, b, 1, &t->refs[i]);
  }
  napi_create_reference(env, argv[2], 1, &t->meta_ref);
  t->msgs = calloc(max, sizeof *t->msgs);
  t->iovs = calloc((size_t)max * 2, sizeof *t->iovs);
  t->addrs = calloc(max, sizeof *t->addrs);
  t->hdrs = calloc(max, OUTER_LEN);
  napi_value ext;
  napi_create_external(env, t, NULL, NULL, &ext);
  return ext;
}

// txSend(handle, count) -> number of datagrams the kernel accepted. Entries with bad bounds and datagrams
// the kernel refuses (e.g. ENOBUFS under a flood) are skipped, not retried: the caller counts
// count - sent as drops. MSG_DONTWAIT: the event loop never blocks on a full send queue.
static napi_value tx_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  tx_t *t;
  uint32_t count;
  if (argc < 2 || napi_get_value_external(env, argv[0], (void **)&t) != napi_ok ||
      !arg_u32(env, argv[1], &count) || t->closed)
    return throw_arg(env, "txSend(handle, count)");
  if (count > t->max) count = t->max;
  unsigned n = 0;
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t *m = t->meta + (size_t)i * META_WORDS;
    uint32_t b = m[0], off = m[1], len = m[2];
    if (b >= t->nbufs || (size_t)off + len > t->lens[b] || len > 65535 - OUTER_LEN || m[5] > 65535 ||
        m[6] > 65535)
      continue;
    const uint8_t *payload = t->bufs[b] + off;
    uint8_t *h = t->hdrs + (size_t)n * OUTER_LEN;
    build_outer(h, m[3], m[4], (uint16_t)m[5], (uint16_t)m[6], payload, len);
    struct iovec *iov = t->iovs + (size_t)n * 2;
    iov[0].iov_base = h;
    iov[0].iov_len = OUTER_LEN;
    iov[1].iov_base = (void *)payload;
    iov[1].iov_len = len;
    struct sockaddr_in *sa = &t->addrs[n];
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(m[4]);
    struct msghdr *mh = &t->msgs[n].msg_hdr;
    memset(mh, 0, sizeof *mh);
    mh->msg_name = sa;
    mh->msg_namelen = sizeof *sa;
    mh->msg_iov = iov;
    mh->msg_iovlen = 2;
    n++;
  }
  unsigned i = 0, sent = 0;
  while (i < n) {
    int r = sendmmsg(t->fd, t->msgs + i, n - i, MSG_DONTWAIT);
    if (r > 0) {
      i += (unsigned)r;
      sent += (unsigned)r;
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      i++; // the datagram at i was refused: skip it and go on with the rest
    }
  }
  return num(env, sent);
}

static napi_value tx_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  tx_t *t;
  if (argc < 1 || napi_get_value_external(env, argv[0], (void **)&t) != napi_ok)
    return throw_arg(env, "txClose(handle)");
  if (!t->closed) {
    t->closed = 1;
    for (unsigned i = 0; i < t->nbufs; i++) napi_delete_reference(env, t->refs[i]);
    napi_delete_reference(env, t->meta_ref);
    free(t->msgs), free(t->iovs), free(t->addrs), free(t->hdrs);
    t->msgs = NULL;
    // The small tx_t itself is left allocated: a stale handle must still read `closed`.
  }
  return NULL;
}

// ---- module --------------------------------------------------------------------------------------------

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rawOpen", NULL, raw_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fdClose", NULL, fd_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"captureOpen", NULL, capture_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollerOpen", NULL, poller_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollerClose", NULL, poller_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollerRef", NULL, poller_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"txOpen", NULL, tx_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"txSend", NULL, tx_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"txClose", NULL, tx_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value v;
  napi_create_uint32(env, META_WORDS, &v);
  napi_set_named_property(env, exports, "META_WORDS", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
