// Packet I/O benchmark helpers in C (bench/packet-io.ts compiles this with cc at bench time).
//
//   echo ADDR PORT MAX_SECONDS
//       The C baseline: a minimal recvmmsg/sendmmsg UDP echo (batches of 64, one socket), replying to each
//       sender's address at PORT from PORT — the practical limit of this machine for moving datagrams
//       through one socket. (Not GWLB-correct: the source port is PORT, not GWLB's; it only has to cost
//       what the real thing costs.) Prints "listening" once bound; exits after MAX_SECONDS.
//
//   gen TARGET_ADDR TARGET_PORT GWLB_ADDR INNER_SIZE FLOWS WINDOW SECONDS
//       The traffic generator: GWLB-shaped datagrams (40-byte Geneve header + an inner IPv4/UDP packet of
//       INNER_SIZE bytes) from FLOWS source ports on GWLB_ADDR, keeping WINDOW datagrams in flight, for
//       SECONDS. Replies are accepted wherever they come back: on GWLB_ADDR:TARGET_PORT (the GWLB way) or
//       on the source port (a naive echo). Prints one JSON line: replies per second and round-trip
//       latency percentiles (each datagram carries its send time).
//
// Every loop is bounded by time (and the generator also by a packet cap).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define SLOT 2048
#define MAX_FLOWS 64
#define HIST_US 100000 /* latency histogram: 1 µs buckets up to 100 ms */
#define MAX_PACKETS 200000000ULL

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int udp_bound(const char *addr, int port, int nonblock) {
  int fd = socket(AF_INET, SOCK_DGRAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) {
    perror("socket");
    exit(1);
  }
  int one = 1, big = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, addr, &sa.sin_addr);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    fprintf(stderr, "bind %s:%d: %s\n", addr, port, strerror(errno));
    exit(1);
  }
  return fd;
}

static int echo_main(int argc, char **argv) {
  if (argc < 5) return 2;
  int port = atoi(argv[3]);
  int fd = udp_bound(argv[2], port, 0);
  double max_s = atof(argv[4]);
  // A receive timeout lets the bounded loop notice the deadline while idle.
  struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  static uint8_t bufs[BATCH][SLOT];
  struct mmsghdr msgs[BATCH];
  struct iovec iovs[BATCH];
  struct sockaddr_in addrs[BATCH];
  printf("listening\n");
  fflush(stdout);
  uint64_t deadline = now_ns() + (uint64_t)(max_s * 1e9);
  while (now_ns() < deadline) {
    for (int i = 0; i < BATCH; i++) {
      iovs[i] = (struct iovec){bufs[i], SLOT};
      msgs[i].msg_hdr = (struct msghdr){.msg_name = &addrs[i], .msg_namelen = sizeof addrs[i], .msg_iov = &iovs[i], .msg_iovlen = 1};
    }
    int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n <= 0) continue;
    // Back to the sender's address at the Geneve port, like the appliance's replies, so the generator
    // does the same work for every target (all replies arrive on its one 6081 socket).
    for (int i = 0; i < n; i++) {
      iovs[i].iov_len = msgs[i].msg_len;
      addrs[i].sin_port = htons((uint16_t)port);
    }
    int off = 0;
    while (off < n) {
      int s = sendmmsg(fd, msgs + off, n - off, 0);
      if (s <= 0) break;
      off += s;
    }
  }
  return 0;
}

static uint16_t csum_fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

static int gen_main(int argc, char **argv) {
  if (argc < 9) return 2;
  const char *taddr = argv[2];
  int tport = atoi(argv[3]);
  const char *gaddr = argv[4];
  int inner = atoi(argv[5]);
  int flows = atoi(argv[6]);
  int window = atoi(argv[7]);
  double secs = atof(argv[8]);
  if (flows < 1) flows = 1;
  if (flows > MAX_FLOWS) flows = MAX_FLOWS;
  if (inner < 44) inner = 44;
  if (inner + 40 > SLOT) inner = SLOT - 40;
  int len = 40 + inner;

  int fds[MAX_FLOWS + 1];
  for (int k = 0; k < flows; k++) fds[k] = udp_bound(gaddr, 60000 + k, 1);
  fds[flows] = udp_bound(gaddr, tport, 1); // where GWLB-way replies arrive
  int nfds = flows + 1;
  struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tport)};
  inet_pton(AF_INET, taddr, &target.sin_addr);

  // Template: Geneve with GWLB's three AWS options, then IPv4/UDP 10.0.1.2:40000 → 10.0.2.2:5201.
  static uint8_t tmpl[SLOT];
  uint8_t g[40] = {0x08, 0, 0x08, 0x00, 0, 0, 0, 0, 0x01, 0x08, 0x01, 0x02, 1, 2, 3, 4, 5, 6, 7, 8,
                   0x01, 0x08, 0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x08, 0x03, 0x01, 0xca, 0xfe, 0, 1};
  memcpy(tmpl, g, 40);
  uint8_t *ip = tmpl + 40;
  ip[0] = 0x45;
  ip[2] = inner >> 8;
  ip[3] = inner & 0xff;
  ip[8] = 64;
  ip[9] = 17;
  uint8_t src[4] = {10, 0, 1, 2}, dst[4] = {10, 0, 2, 2};
  memcpy(ip + 12, src, 4);
  memcpy(ip + 16, dst, 4);
  uint32_t s = 0;
  for (int i = 0; i < 20; i += 2) s += (ip[i] << 8) | ip[i + 1];
  uint16_t c = csum_fold(s);
  ip[10] = c >> 8;
  ip[11] = c & 0xff;
  ip[20] = 40000 >> 8, ip[21] = 40000 & 0xff, ip[22] = 5201 >> 8, ip[23] = 5201 & 0xff;
  ip[24] = (inner - 20) >> 8, ip[25] = (inner - 20) & 0xff; // UDP checksum left 0 (absent)
  const int TS_OFF = 40 + 28; // send time, 8 bytes, in the inner payload

  static uint8_t sbufs[BATCH][SLOT], rbufs[BATCH][SLOT];
  struct mmsghdr smsgs[BATCH], rmsgs[BATCH];
  struct iovec siovs[BATCH], riovs[BATCH];
  for (int i = 0; i < BATCH; i++) {
    memcpy(sbufs[i], tmpl, (size_t)len);
    siovs[i] = (struct iovec){sbufs[i], (size_t)len};
    smsgs[i].msg_hdr = (struct msghdr){.msg_name = &target, .msg_namelen = sizeof target, .msg_iov = &siovs[i], .msg_iovlen = 1};
  }
  uint32_t *hist = calloc(HIST_US + 1, sizeof *hist);
  uint64_t sent = 0, received = 0, lost = 0, gwlb_way = 0, inflight = 0;
  uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9), last_rx = t0;
  int flow = 0;
  struct pollfd pfds[MAX_FLOWS + 1];
  for (int k = 0; k < nfds; k++) pfds[k] = (struct pollfd){.fd = fds[k], .events = POLLIN};
  uint64_t now;
  while ((now = now_ns()) < end && sent < MAX_PACKETS) {
    // Fill the window, a batch at a time, rotating over the flows' source ports.
    while (inflight < (uint64_t)window) {
      int want = window - (int)inflight;
      if (want > BATCH) want = BATCH;
      uint64_t ts = now_ns();
      for (int i = 0; i < want; i++) memcpy(sbufs[i] + TS_OFF, &ts, 8);
      int r = sendmmsg(fds[flow], smsgs, (unsigned)want, 0);
      flow = (flow + 1) % flows;
      if (r <= 0) break;
      sent += (uint64_t)r;
      inflight += (uint64_t)r;
    }
    int pr = poll(pfds, (nfds_t)nfds, 1);
    now = now_ns();
    if (pr <= 0) {
      // Nothing back for 20 ms: what is in flight is lost (drops at a full queue); start over.
      if (now - last_rx > 20000000ULL && inflight > 0) {
        lost += inflight;
        inflight = 0;
        last_rx = now;
      }
      continue;
    }
    for (int k = 0; k < nfds; k++) {
      if (!(pfds[k].revents & POLLIN)) continue;
      for (int i = 0; i < BATCH; i++) {
        riovs[i] = (struct iovec){rbufs[i], SLOT};
        rmsgs[i].msg_hdr = (struct msghdr){.msg_iov = &riovs[i], .msg_iovlen = 1};
      }
      int n = recvmmsg(fds[k], rmsgs, BATCH, MSG_DONTWAIT, NULL);
      if (n <= 0) continue;
      uint64_t t = now_ns();
      for (int i = 0; i < n; i++) {
        if (rmsgs[i].msg_len < (unsigned)TS_OFF + 8) continue;
        uint64_t ts;
        memcpy(&ts, rbufs[i] + TS_OFF, 8);
        uint64_t us = (t - ts) / 1000;
        hist[us > HIST_US ? HIST_US : us]++;
        received++;
        if (k == flows) gwlb_way++;
        if (inflight > 0) inflight--;
      }
      last_rx = t;
    }
  }
  double el = (double)(now_ns() - t0) / 1e9;
  uint64_t acc = 0, p50 = 0, p99 = 0;
  int got50 = 0, got99 = 0;
  for (int us = 0; us <= HIST_US && received; us++) {
    acc += hist[us];
    if (!got50 && acc * 2 >= received) p50 = (uint64_t)us, got50 = 1;
    if (!got99 && acc * 100 >= received * 99) p99 = (uint64_t)us, got99 = 1;
  }
  printf("{\"sent\":%llu,\"received\":%llu,\"lost\":%llu,\"gwlbWay\":%llu,\"seconds\":%.3f,\"pps\":%.0f,"
         "\"p50us\":%llu,\"p99us\":%llu}\n",
         (unsigned long long)sent, (unsigned long long)received, (unsigned long long)lost,
         (unsigned long long)gwlb_way, el, received / el, (unsigned long long)p50, (unsigned long long)p99);
  free(hist);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "echo") == 0) return echo_main(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "gen") == 0) return gen_main(argc, argv);
  fprintf(stderr, "usage: echo ADDR PORT MAX_SECONDS | gen TADDR TPORT GADDR INNER FLOWS WINDOW SECONDS\n");
  return 2;
}
