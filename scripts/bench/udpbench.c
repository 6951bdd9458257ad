/*
 * udpbench: the kernel-side load generator and reference peer for `make bench` (UDP figures).
 * Runs inside a test namespace, against paf's stack or against the kernel on a veth peer, so both
 * are driven by the same sender and measured in the same run.
 *
 *   udpbench flood  ADDR PORT SIZE SECONDS [PPS]   send as fast as possible (sendmmsg, 64 per
 *                                              call), or at most PPS datagrams per second
 *   udpbench sink   PORT SECONDS               count datagrams received (recvmmsg)
 *   udpbench echo   ADDR PORT SIZE SECONDS WINDOW   keep WINDOW requests in flight, count replies
 *   udpbench server PORT SECONDS               UDP echo server (reference for `echo`)
 *   udpbench tcpsend ADDR PORT BYTES       connect, send BYTES, half-close, wait for the peer's close
 *                                          (env UDPBENCH_CC=NAME: that congestion control, e.g. reno);
 *                                          prints Gbit/s and its own CPU seconds (`cpu`)
 *   udpbench tcpsink PORT SECONDS          accept one connection, read until EOF (or SECONDS)
 *   udpbench tcpconnect ADDR PORT SECONDS CONC   keep CONC connections being opened: connect,
 *                                          wait for the server's close (it closes on accept),
 *                                          close; count completed connections per second
 * Every mode prints one line of JSON. Bounded by SECONDS (TCP send: by a 60 s socket timeout).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

/* CPU seconds (user + system) this process has used: a sender's cost per byte, softirq work done
 * in its context included. */
static double cpu_seconds(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static int make_addr(const char *a, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    *len = sizeof *s4;
    return AF_INET;
  }
  if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    *len = sizeof *s6;
    return AF_INET6;
  }
  fprintf(stderr, "bad address %s\n", a);
  exit(2);
}

static int bound_socket(int family, int port) {
  int s = socket(family, SOCK_DGRAM, 0);
  int big = 8 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    len = sizeof *s6;
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    len = sizeof *s4;
  }
  if (bind(s, (struct sockaddr *)&ss, len) < 0) {
    perror("bind");
    exit(1);
  }
  return s;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: see the comment at the top of udpbench.c\n");
    return 2;
  }
  static char buf[BATCH][2048];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  const char *mode = argv[1];
  if (!strcmp(mode, "flood") && (argc == 6 || argc == 7)) {
    struct sockaddr_storage dst;
    socklen_t dlen;
    int fam = make_addr(argv[2], atoi(argv[3]), &dst, &dlen);
    int size = atoi(argv[4]);
    double secs = atof(argv[5]);
    double pps = argc == 7 ? atof(argv[6]) : 0;
    int s = socket(fam, SOCK_DGRAM, 0);
    for (int i = 0; i < BATCH; i++) {
      memset(buf[i], 'p', size);
      iov[i].iov_base = buf[i];
      iov[i].iov_len = size;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &dst;
      msgs[i].msg_hdr.msg_namelen = dlen;
    }
    long sent = 0;
    double t0 = now(), end = t0 + secs;
    while (now() < end) {
      /* Paced: no batch before its time (sent / pps seconds after the start). */
      if (pps > 0 && sent / pps > now() - t0) {
        struct timespec d = {0, 20000};
        nanosleep(&d, NULL);
        continue;
      }
      int n = sendmmsg(s, msgs, BATCH, 0);
      if (n > 0) sent += n;
    }
    double dt = now() - t0;
    printf("{\"mode\":\"flood\",\"sent\":%ld,\"seconds\":%.3f,\"pps\":%.0f}\n", sent, dt, sent / dt);
    return 0;
  }
  if (!strcmp(mode, "sink") && argc == 4) {
    int s = bound_socket(AF_INET, atoi(argv[2]));
    double secs = atof(argv[3]);
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = buf[i];
      iov[i].iov_len = sizeof buf[i];
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    long got = 0;
    double first = 0, last = 0, end = now() + secs;
    /* recvmmsg's own timeout is only checked after a datagram arrives; SO_RCVTIMEO bounds the wait. */
    struct timeval tv = {0, 100 * 1000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (now() < end) {
      int n = recvmmsg(s, msgs, BATCH, MSG_WAITFORONE, NULL);
      if (n > 0) {
        if (!got) first = now();
        got += n;
        last = now();
      }
    }
    double dt = last > first ? last - first : 1;
    printf("{\"mode\":\"sink\",\"received\":%ld,\"seconds\":%.3f,\"pps\":%.0f}\n", got, dt, got / dt);
    return 0;
  }
  if (!strcmp(mode, "server") && argc == 4) {
    int s = bound_socket(AF_INET, atoi(argv[2]));
    double end = now() + atof(argv[3]);
    struct sockaddr_storage from;
    long n = 0;
    while (now() < end) {
      struct pollfd p = {s, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      socklen_t fl = sizeof from;
      ssize_t r = recvfrom(s, buf[0], sizeof buf[0], 0, (struct sockaddr *)&from, &fl);
      if (r > 0 && sendto(s, buf[0], r, 0, (struct sockaddr *)&from, fl) > 0) n++;
    }
    printf("{\"mode\":\"server\",\"echoed\":%ld}\n", n);
    return 0;
  }
  if (!strcmp(mode, "echo") && argc == 7) {
    struct sockaddr_storage dst;
    socklen_t dlen;
    int fam = make_addr(argv[2], atoi(argv[3]), &dst, &dlen);
    int size = atoi(argv[4]);
    double secs = atof(argv[5]);
    int window = atoi(argv[6]);
    int s = socket(fam, SOCK_DGRAM, 0);
    if (connect(s, (struct sockaddr *)&dst, dlen) < 0) {
      perror("connect");
      return 1;
    }
    memset(buf[0], 'e', size);
    long replies = 0, sent = 0;
    double t0 = now(), end = t0 + secs;
    for (int i = 0; i < window; i++)
      if (send(s, buf[0], size, 0) > 0) sent++;
    while (now() < end) {
      struct pollfd p = {s, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) {
        /* a lost request or reply: top the window up again */
        if (send(s, buf[0], size, 0) > 0) sent++;
        continue;
      }
      while (recv(s, buf[1], sizeof buf[1], MSG_DONTWAIT) > 0) {
        replies++;
        if (send(s, buf[0], size, 0) > 0) sent++;
      }
    }
    double dt = now() - t0;
    printf("{\"mode\":\"echo\",\"window\":%d,\"sent\":%ld,\"replies\":%ld,\"seconds\":%.3f,\"rtps\":%.0f}\n", window, sent, replies, dt, replies / dt);
    return 0;
  }
  if (!strcmp(mode, "tcpsend") && argc == 5) {
    struct sockaddr_storage dst;
    socklen_t dlen;
    int fam = make_addr(argv[2], atoi(argv[3]), &dst, &dlen);
    long total = atol(argv[4]), sent = 0;
    int s = socket(fam, SOCK_STREAM, 0);
    struct timeval tv = {60, 0};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const char *cc = getenv("UDPBENCH_CC");
    if (cc && *cc && setsockopt(s, IPPROTO_TCP, TCP_CONGESTION, cc, strlen(cc)) < 0) {
      perror("TCP_CONGESTION");
      return 1;
    }
    if (connect(s, (struct sockaddr *)&dst, dlen) < 0) {
      perror("connect");
      return 1;
    }
    static char big[1 << 20];
    memset(big, 'x', sizeof big);
    /* UDPBENCH_WRITE: bytes per send() (default 65536, at most 1 MiB; e.g. 65160 = 45 x 1448, a
     * whole number of segments, so that no sub-MSS tail waits for an ACK under Nagle's rule, or
     * 131072, iperf3's default block). */
    const char *ws = getenv("UDPBENCH_WRITE");
    long chunk = ws && atol(ws) > 0 && atol(ws) <= (long)sizeof big ? atol(ws) : 65536;
    double t0 = now();
    while (sent < total) {
      long n = total - sent < chunk ? total - sent : chunk;
      ssize_t w = send(s, big, n, 0);
      if (w <= 0) break;
      sent += w;
    }
    shutdown(s, SHUT_WR);
    while (recv(s, big, sizeof big, 0) > 0) {
    }
    double dt = now() - t0;
    printf("{\"mode\":\"tcpsend\",\"bytes\":%ld,\"seconds\":%.3f,\"gbps\":%.3f,\"cpu\":%.3f}\n", sent, dt, sent * 8 / dt / 1e9, cpu_seconds());
    return sent == total ? 0 : 1;
  }
  if (!strcmp(mode, "tcpsink") && argc == 4) {
    int l = socket(AF_INET6, SOCK_STREAM, 0);
    int one = 1, zero = 0;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(atoi(argv[2]));
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4) < 0) {
      perror("bind/listen");
      return 1;
    }
    printf("ready\n");
    fflush(stdout);
    struct timeval tv = {(long)atof(argv[3]), 0};
    setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int c = accept(l, NULL, NULL);
    if (c < 0) {
      perror("accept");
      return 1;
    }
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    static char big[1 << 16];
    long got = 0;
    double t0 = now();
    ssize_t r;
    while ((r = recv(c, big, sizeof big, 0)) > 0) got += r;
    double dt = now() - t0;
    close(c);
    printf("{\"mode\":\"tcpsink\",\"bytes\":%ld,\"seconds\":%.3f,\"gbps\":%.3f}\n", got, dt, got * 8 / dt / 1e9);
    return 0;
  }
  if (!strcmp(mode, "tcpconnect") && argc == 6) {
    struct sockaddr_storage dst;
    socklen_t dlen;
    int fam = make_addr(argv[2], atoi(argv[3]), &dst, &dlen);
    double secs = atof(argv[4]);
    int conc = atoi(argv[5]);
    struct rlimit rl = {conc + 64, conc + 64};
    setrlimit(RLIMIT_NOFILE, &rl);
    int ep = epoll_create1(0);
    long done = 0, failed = 0;
    int open_now = 0;
    double t0 = now(), end = t0 + secs;
    struct epoll_event evs[256];
    static char tmp[4096];
    for (;;) {
      double t = now();
      while (t < end && open_now < conc) {
        int s = socket(fam, SOCK_STREAM | SOCK_NONBLOCK, 0);
        /* The server closes first (HTTP/1.0 style): no TIME-WAIT here, ports are reused at once. */
        if (s < 0 || (connect(s, (struct sockaddr *)&dst, dlen) < 0 && errno != EINPROGRESS)) {
          failed++;
          if (s >= 0) close(s);
          break;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = s};
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
        open_now++;
      }
      if (open_now == 0 && t >= end) break;
      if (t > end + 10) break; /* connections the server never closes */
      int n = epoll_wait(ep, evs, 256, 100);
      for (int i = 0; i < n; i++) {
        int s = evs[i].data.fd;
        ssize_t r = recv(s, tmp, sizeof tmp, 0);
        if (r > 0 || (r < 0 && errno == EAGAIN)) continue;
        if (r == 0) done++;
        else failed++;
        epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
        close(s);
        open_now--;
      }
    }
    double dt = now() - t0;
    printf("{\"mode\":\"tcpconnect\",\"conns\":%ld,\"failed\":%ld,\"seconds\":%.3f,\"cps\":%.0f}\n", done, failed, dt, done / dt);
    return 0;
  }
  fprintf(stderr, "usage: see the comment at the top of udpbench.c\n");
  return 2;
}
