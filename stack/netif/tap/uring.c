/*
 * io_uring for the TAP's reads and writes (see uring.h). Raw system calls, no liburing: the part used is
 * small (one multishot read, a provided-buffer ring, completions) and liburing's headers are not
 * on every machine that builds paf.
 *
 * Why: a TAP hands over one frame per read(2), and on the VMs paf is measured on a system call
 * costs ~1 us by itself, about half of what reading a 1400-byte frame costs in all. A multishot
 * read (IORING_OP_READ_MULTISHOT, Linux 6.7) is armed once; whenever the TAP has frames the
 * kernel reads them, each into a buffer it takes from a ring this file keeps filled, and posts a
 * completion per frame. With IORING_SETUP_COOP_TASKRUN that work runs in this thread's next
 * system call (the event loop's epoll_wait, a write), not by interrupting JavaScript; the ring's
 * fd polls readable when completions wait, which is what libuv watches.
 *
 * The buffers are JS memory (the TAP's slots). The kernel writes only into buffers in the ring;
 * a buffer given out in a completion stays out until uring_give returns it, so JS may hold the
 * frame as long as it likes. Reading stops for good (and the buffers may be released) only once
 * the read's last completion has been seen: uring_close cancels and waits for it.
 */
#define _GNU_SOURCE
#include "uring.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Headers older than Linux 6.7 do not name it; the kernel answers -EINVAL if it does not know it
 * (and uring_supported asks it first). */
#ifndef IORING_OP_READ_MULTISHOT
#define IORING_OP_READ_MULTISHOT 49
#endif

enum { UD_READ = 1, UD_CANCEL = 2, BGID = 0 };

/* A ring's mapped queues: the part the reader and the writer share. */
struct ring {
  int fd;
  void *ring;
  size_t ring_len;
  struct io_uring_sqe *sqes;
  size_t sqes_len;
  unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_cqe *cqes;
};

struct tap_uring {
  struct ring q;
  int tap_fd;
  struct io_uring_buf_ring *br;
  size_t br_len;
  uint16_t br_mask, br_tail;
  uint32_t buf_len;
  bool armed;
};

static int sys_setup(unsigned entries, struct io_uring_params *p) { return (int)syscall(__NR_io_uring_setup, entries, p); }
static int sys_enter(int fd, unsigned submit, unsigned min, unsigned flags) {
  return (int)syscall(__NR_io_uring_enter, fd, submit, min, flags, NULL, 0);
}
static int sys_register(int fd, unsigned op, void *arg, unsigned n) { return (int)syscall(__NR_io_uring_register, fd, op, arg, n); }

static unsigned pow2_at_least(unsigned n) {
  unsigned p = 1;
  while (p < n) p <<= 1;
  return p;
}

bool uring_supported(void) {
  static int known = -1;
  if (known >= 0) return known;
  known = 0;
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
  int fd = sys_setup(2, &p); /* EPERM where io_uring is disabled (kernel.io_uring_disabled, seccomp) */
  if (fd < 0) return false;
  size_t len = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
  struct io_uring_probe *probe = calloc(1, len);
  if (probe && sys_register(fd, IORING_REGISTER_PROBE, probe, 256) == 0 && probe->last_op >= IORING_OP_READ_MULTISHOT &&
      (probe->ops[IORING_OP_READ_MULTISHOT].flags & IO_URING_OP_SUPPORTED))
    known = 1;
  free(probe);
  close(fd);
  return known;
}

static void ring_unmap(struct ring *q) {
  if (q->sqes) munmap(q->sqes, q->sqes_len);
  if (q->ring) munmap(q->ring, q->ring_len);
  if (q->fd >= 0) close(q->fd);
}

static void unmap_all(tap_uring_t *u) {
  if (u->br) munmap(u->br, u->br_len);
  ring_unmap(&u->q);
  free(u);
}

/* Set up a ring of sq_entries submissions and cq_entries completions (both powers of two) and map
 * its queues: 0, or -1 with errno set (whatever was set up stays in q, for ring_unmap). */
static int ring_map(struct ring *q, unsigned sq_entries, unsigned cq_entries) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_CQSIZE;
  p.cq_entries = cq_entries;
  q->fd = sys_setup(sq_entries, &p);
  if (q->fd < 0) return -1;
  if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
    errno = EINVAL;
    return -1;
  }
  size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  q->ring_len = sq_len > cq_len ? sq_len : cq_len;
  q->ring = mmap(NULL, q->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->fd, IORING_OFF_SQ_RING);
  if (q->ring == MAP_FAILED) {
    q->ring = NULL;
    return -1;
  }
  q->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
  q->sqes = mmap(NULL, q->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->fd, IORING_OFF_SQES);
  if (q->sqes == MAP_FAILED) {
    q->sqes = NULL;
    return -1;
  }
  char *r = q->ring;
  q->sq_head = (unsigned *)(r + p.sq_off.head);
  q->sq_tail = (unsigned *)(r + p.sq_off.tail);
  q->sq_mask = (unsigned *)(r + p.sq_off.ring_mask);
  q->sq_array = (unsigned *)(r + p.sq_off.array);
  q->cq_head = (unsigned *)(r + p.cq_off.head);
  q->cq_tail = (unsigned *)(r + p.cq_off.tail);
  q->cq_mask = (unsigned *)(r + p.cq_off.ring_mask);
  q->cqes = (struct io_uring_cqe *)(r + p.cq_off.cqes);
  return 0;
}

tap_uring_t *uring_open(int tap_fd, uint32_t nbufs, uint32_t buf_len) {
  if (nbufs == 0 || nbufs > 32768) {
    errno = EINVAL;
    return NULL;
  }
  tap_uring_t *u = calloc(1, sizeof *u);
  if (!u) return NULL;
  u->q.fd = -1;
  u->tap_fd = tap_fd;
  u->buf_len = buf_len;
  int err = 0;
  /* Every buffer can be out in a completion at once, plus the cancel's own: the CQ holds them all. */
  if (ring_map(&u->q, 4, pow2_at_least(nbufs + 8)) < 0) {
    err = errno;
    goto fail;
  }

  unsigned entries = pow2_at_least(nbufs);
  u->br_len = entries * sizeof(struct io_uring_buf);
  u->br = mmap(NULL, u->br_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (u->br == MAP_FAILED) {
    err = errno;
    u->br = NULL;
    goto fail;
  }
  u->br_mask = (uint16_t)(entries - 1);
  struct io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.ring_addr = (unsigned long)u->br;
  reg.ring_entries = entries;
  reg.bgid = BGID;
  if (sys_register(u->q.fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) {
    err = errno;
    goto fail;
  }
  return u;
fail:
  unmap_all(u);
  errno = err ? err : EINVAL;
  return NULL;
}

int uring_fd(const tap_uring_t *u) { return u->q.fd; }

void uring_give(tap_uring_t *u, uint16_t id, uint8_t *addr) {
  struct io_uring_buf *b = &u->br->bufs[u->br_tail & u->br_mask];
  b->addr = (unsigned long)addr;
  b->len = u->buf_len;
  b->bid = id;
  u->br_tail++;
}

void uring_publish(tap_uring_t *u) { __atomic_store_n(&u->br->tail, u->br_tail, __ATOMIC_RELEASE); }

/* Queue one SQE and submit it: 0 or -errno. */
static int submit(tap_uring_t *u, uint8_t opcode, uint64_t user_data, uint64_t addr) {
  unsigned tail = *u->q.sq_tail, i = tail & *u->q.sq_mask;
  struct io_uring_sqe *s = &u->q.sqes[i];
  memset(s, 0, sizeof *s);
  s->opcode = opcode;
  s->user_data = user_data;
  if (opcode == IORING_OP_READ_MULTISHOT) {
    s->fd = u->tap_fd;
    s->flags = IOSQE_BUFFER_SELECT;
    s->buf_group = BGID;
  } else {
    s->fd = -1;
    s->addr = addr; /* ASYNC_CANCEL: the user_data to cancel */
  }
  u->q.sq_array[i] = i;
  __atomic_store_n(u->q.sq_tail, tail + 1, __ATOMIC_RELEASE);
  int n;
  do n = sys_enter(u->q.fd, 1, 0, 0);
  while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : EAGAIN;
  if (n == 1) return 0;
  /* Not taken (EBUSY while completions overflowed, ...): take it back, or the next submission
   * would send it too (a second read armed). */
  if (__atomic_load_n(u->q.sq_head, __ATOMIC_ACQUIRE) == tail) __atomic_store_n(u->q.sq_tail, tail, __ATOMIC_RELEASE);
  return -err;
}

int uring_arm(tap_uring_t *u) {
  if (u->armed) return 0;
  int rc = submit(u, IORING_OP_READ_MULTISHOT, UD_READ, 0);
  if (rc == 0) u->armed = true;
  return rc;
}

bool uring_pending(const tap_uring_t *u) { return __atomic_load_n(u->q.cq_tail, __ATOMIC_ACQUIRE) != *u->q.cq_head; }

uint32_t uring_reap(tap_uring_t *u, uint32_t max, uint32_t *lens, uint16_t *ids, int *fatal) {
  unsigned head = *u->q.cq_head, tail = __atomic_load_n(u->q.cq_tail, __ATOMIC_ACQUIRE);
  uint32_t n = 0;
  for (; head != tail && n < max; head++) {
    const struct io_uring_cqe *c = &u->q.cqes[head & *u->q.cq_mask];
    if (c->user_data != UD_READ) continue;
    if (!(c->flags & IORING_CQE_F_MORE)) u->armed = false; /* the read has ended: arm it again */
    if (c->res >= 0 && (c->flags & IORING_CQE_F_BUFFER)) {
      lens[n] = (uint32_t)c->res;
      ids[n++] = (uint16_t)(c->flags >> IORING_CQE_BUFFER_SHIFT);
    } else if (c->res < 0 && c->res != -ENOBUFS && c->res != -ECANCELED && c->res != -EAGAIN && c->res != -EINTR) {
      /* ENOBUFS: every buffer is out (JS holds them): armed again once some come back. Anything
       * else (EBADFD: the device was deleted) ends reading. */
      *fatal = -c->res;
    }
  }
  __atomic_store_n(u->q.cq_head, head, __ATOMIC_RELEASE);
  return n;
}

bool uring_close(tap_uring_t *u) {
  /* The kernel writes into the buffers until the read's last completion (no F_MORE) is posted:
   * cancel it and wait for that, ~immediate (the cancel of a poll-armed read completes inline).
   * If it never came the buffers would have to stay allocated forever: bounded wait, then leak
   * the ring (its buffers are JS memory the caller then keeps). */
  bool done = !u->armed;
  if (!done) submit(u, IORING_OP_ASYNC_CANCEL, UD_CANCEL, UD_READ);
  for (int tries = 0; !done && tries < 200; tries++) {
    unsigned head = *u->q.cq_head, tail = __atomic_load_n(u->q.cq_tail, __ATOMIC_ACQUIRE);
    for (; head != tail; head++) {
      const struct io_uring_cqe *c = &u->q.cqes[head & *u->q.cq_mask];
      if (c->user_data == UD_READ && !(c->flags & IORING_CQE_F_MORE)) done = true;
    }
    __atomic_store_n(u->q.cq_head, head, __ATOMIC_RELEASE);
    if (done) break;
    struct pollfd pfd = {.fd = u->q.fd, .events = POLLIN, .revents = 0};
    poll(&pfd, 1, 10); /* a system call: the task work (the cancel) runs on its way */
  }
  if (!done) {
    fprintf(stderr, "paf_tap: the TAP's io_uring read did not end when cancelled; its buffers are kept\n");
    return false;
  }
  struct io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.bgid = BGID;
  sys_register(u->q.fd, IORING_UNREGISTER_PBUF_RING, &reg, 1);
  unmap_all(u);
  return true;
}

/*
 * The writer: a batch of frames in one io_uring_enter instead of a writev(2) each. A TAP takes one
 * frame per write and copies it before the write returns (tun_get_user), so a submitted write is
 * done when the kernel has issued it. Measured with a throwaway C program on a TAP (1400-byte UDP
 * frames to a socket in the namespace, 300,000 per run): 1.97-2.01 us of CPU per frame with
 * writev(2), 0.63 with 64 linked writes per io_uring_enter, 0.71 with 16, 1.07 with 4, 2.6 with
 * one (so one frame goes by writev: tap.c). The writes are linked (IOSQE_IO_LINK), so they happen
 * in order and one that fails ends the rest of the batch (-ECANCELED: not tried), and carry
 * RWF_NOWAIT, so a write that would have to wait fails with EAGAIN instead of being retried by the
 * kernel later, when the frame's memory is JavaScript's again; each call waits for every
 * completion of what it submitted before it returns.
 */
struct tap_uwriter {
  struct ring q;
  int tap_fd;
};

tap_uwriter_t *uwriter_open(int tap_fd) {
  tap_uwriter_t *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->q.fd = -1;
  w->tap_fd = tap_fd;
  if (ring_map(&w->q, UWRITER_MAX, 2 * UWRITER_MAX) < 0) {
    int err = errno;
    ring_unmap(&w->q);
    free(w);
    errno = err;
    return NULL;
  }
  return w;
}

int uwriter_write(tap_uwriter_t *w, const struct iovec *iov, uint32_t iovcnt, uint32_t n, int32_t *res) {
  struct ring *q = &w->q;
  if (n == 0) return 0;
  if (n > UWRITER_MAX) n = UWRITER_MAX;
  unsigned tail = *q->sq_tail;
  for (uint32_t i = 0; i < n; i++) {
    unsigned k = (tail + i) & *q->sq_mask;
    struct io_uring_sqe *s = &q->sqes[k];
    memset(s, 0, sizeof *s);
    s->opcode = IORING_OP_WRITEV;
    s->fd = w->tap_fd;
    s->addr = (unsigned long)&iov[(size_t)i * iovcnt];
    s->len = iovcnt;
    s->rw_flags = RWF_NOWAIT;
    s->flags = i + 1 < n ? IOSQE_IO_LINK : 0;
    s->user_data = i;
    q->sq_array[k] = k;
    res[i] = -ECANCELED;
  }
  __atomic_store_n(q->sq_tail, tail + n, __ATOMIC_RELEASE);
  int rc;
  do rc = sys_enter(q->fd, n, n, IORING_ENTER_GETEVENTS);
  while (rc < 0 && errno == EINTR && __atomic_load_n(q->sq_head, __ATOMIC_ACQUIRE) == tail);
  int err = rc < 0 ? errno : 0;
  /* What the kernel took (all, or none when it refused the call: EBUSY, ENOMEM). The rest is taken
   * back so that no later call submits it. */
  unsigned taken = __atomic_load_n(q->sq_head, __ATOMIC_ACQUIRE) - tail;
  if (taken < n) __atomic_store_n(q->sq_tail, tail + taken, __ATOMIC_RELEASE);
  /* Wait for every completion of what was taken: the frames' memory is the caller's again after. */
  unsigned seen = 0;
  while (seen < taken) {
    unsigned head = *q->cq_head, ctail = __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE);
    for (; head != ctail; head++, seen++) {
      const struct io_uring_cqe *c = &q->cqes[head & *q->cq_mask];
      if (c->user_data < n) res[c->user_data] = c->res;
    }
    __atomic_store_n(q->cq_head, head, __ATOMIC_RELEASE);
    if (seen < taken && sys_enter(q->fd, 0, taken - seen, IORING_ENTER_GETEVENTS) < 0 && errno != EINTR) {
      /* Never seen: the ring cannot wait. The writes are non-blocking and issued already; spin. */
      sched_yield();
    }
  }
  return taken > 0 ? (int)taken : -(err ? err : EAGAIN);
}

void uwriter_close(tap_uwriter_t *w) {
  if (!w) return;
  ring_unmap(&w->q);
  free(w);
}
