/*
 * paf_tap: the one piece of paf that JavaScript cannot do itself — open a Linux TAP device and
 * move frames between it and memory JS owns. Batching policy, queues, the virtio-net header's
 * meaning and all protocols live in TypeScript (stack/netif/tap.ts); this file stays dumb.
 *
 *   open(name, { vnetHdr, multiQueue, netns, up, offload, rxQueue }) -> { fd, name, rxQueue }
 *     offload: TUN_F_* flags for TUNSETOFFLOAD (non-zero needs vnetHdr): what the kernel may hand us
 *     unfinished (partial checksums, TSO super-frames); 0 by default. Set on every open, 0 too.
 *     rxQueue: frames the kernel may hold for us to read (the device's txqueuelen, which sizes the
 *     tun driver's ring): raised to it when shorter (never lowered); result rxQueue: the length
 *     now (it stays shorter when raising it was refused: EPERM for a user's persistent TAP).
 *   startReading(fd, slots[], frameSize, maxFrames, lengths, onBatch[, timing[, ids]]) -> handle
 *       onBatch(count, error?) — count frames are in slots[ids[i]] (Buffers of frameSize bytes or
 *       more; without ids slots[i]), lengths[i] bytes each; with ids and at least 2 x maxFrames
 *       slots the frames are read by io_uring where the kernel can (uring.c), else by read(2);
 *       error (an Error with .code) is passed once if the device died; reading has then stopped.
 *       timing (a Float64Array): timing[0] is set to the ms the last onBatch took with what ran
 *       after it before control came back here (nextTicks, microtasks): the batch's whole cost.
 *   setSlot(handle, i, buffer) -> bool   read into buffer instead of slots[i] from now on (the
 *       receiver kept slots[i]'s frame; with io_uring only a slot of the last batch)
 *   stopReading(handle)
 *   setReading(handle, on)  pause (false) or resume (true) reading; frames wait in the kernel's queue
 *       (with io_uring up to the free slots' worth are read meanwhile and wait in completions)
 *   pending(handle) -> bool  frames wait to be handed up (completions or the kernel's queue)
 *   readerMode(handle) -> "io_uring" | "read";  uringSupported() -> bool
 *   setRef(handle, ref)     whether the poll keeps the event loop (the process) alive; default true
 *   writeFrames(fd, frames[], start, vnetHdrLen, out: Uint32Array(3)[, hdrs[, writer]]) -> frames consumed
 *   openWriter(fd) -> writer | null   io_uring for writeFrames (uring.c): a batch per system call
 *   closeWriter(writer)    free it (before close(fd))
 *   close(fd)
 *   readable(fd) -> bool   frames wait in the kernel's queue (a poll that does not wait)
 *   setOffload(fd, flags) -> 0 or errno   TUNSETOFFLOAD again (probing a feature: EINVAL if unknown)
 *   setMallocTrim(bytes) -> applied   glibc's M_TRIM_THRESHOLD (see there)
 *   setSourceFilter(fd, rate, burst, maxSources) -> counterFd   the kernel's per-source limit
 *       (srcfilter.c), replacing any; clearSourceFilter(fd) removes it (open() does, always);
 *       sourceFilterDrops(counterFd) -> frames it dropped
 *
 * Reading uses libuv's uv_poll (level triggered) on the non-blocking fd (read(2)) or on the
 * io_uring's fd (readable while completions wait): one readiness callback takes at most one batch
 * and calls JS once, so the JS call is paid per batch, not per frame, and a flood cannot starve
 * timers and writes (what is left wakes the poll again next loop turn). Nothing is allocated per
 * frame: the slots, lengths and ids are JS memory, reused (a slot whose frame the receiver kept
 * is replaced by JS, setSlot). With io_uring a batch's slots go back to the kernel only once the
 * batch is over and reading is on (JS pauses reading while frames of a batch wait for the
 * receiver's next turn), so a frame stays as read until then, as with read(2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#ifdef __GLIBC__
#include <malloc.h>
#include <poll.h>
#endif
#include <node_api.h>
#include "srcfilter.h"
#include "uring.h"
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#define CHECK(call)                                                     \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error(env, "EINTERNAL", "paf_tap: N-API call failed"); \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

/* The virtio_net_hdr without mergeable rx buffers (TUNSETVNETHDRSZ 10). */
#define VNET_HDR_LEN 10

static const char *errno_code(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case EEXIST: return "EEXIST";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EBADFD: return "EBADFD";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    case EMSGSIZE: return "EMSGSIZE";
    case EFAULT: return "EFAULT";
    default: return "EIO";
  }
}

/* An Error whose .code is the errno name, .errno the negative errno (as Node's system errors),
 * and whose message says what failed and, when we know, what to do about it. */
static napi_value errno_error(napi_env env, int err, const char *what, const char *hint) {
  char msg[768];
  snprintf(msg, sizeof msg, "%s: %s (%s)%s%s", what, strerror(err), errno_code(err), hint ? ". " : "",
           hint ? hint : "");
  napi_value e, m, c, n;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, errno_code(err), NAPI_AUTO_LENGTH, &c);
  napi_create_error(env, c, m, &e);
  napi_set_named_property(env, e, "code", c);
  napi_create_int32(env, -err, &n);
  napi_set_named_property(env, e, "errno", n);
  return e;
}

static napi_value throw_errno(napi_env env, int err, const char *what, const char *hint) {
  napi_throw(env, errno_error(env, err, what, hint));
  return NULL;
}

static bool opt_bool(napi_env env, napi_value obj, const char *key) {
  napi_value v, vb;
  bool b = false;
  if (napi_get_named_property(env, obj, key, &v) == napi_ok && napi_coerce_to_bool(env, v, &vb) == napi_ok)
    napi_get_value_bool(env, vb, &b);
  return b;
}

static const char *HINT_PERM =
    "run as root (CAP_NET_ADMIN), or create a persistent TAP owned by your user: "
    "sudo ip tuntap add NAME mode tap user $USER";

/* The kernel queues frames for us in the tun driver's ring, as long as the device's txqueuelen
 * (1000 by default) and drops beyond it (the TAP's "TX dropped" in ip -s link). A burst of a few
 * hundred new connections overflows 1000 while the stack is busy (h2load -c400: 2,655 frames
 * dropped, then retransmission timeouts), so open() raises it to *rxq when shorter; *rxq becomes
 * the length in force (0 if it cannot be read). Not fatal: raising it needs CAP_NET_ADMIN. */
static void raise_queue(const char ifname[IFNAMSIZ], unsigned *rxq) {
  unsigned want = *rxq;
  *rxq = 0;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return;
  struct ifreq r;
  memset(&r, 0, sizeof r);
  memcpy(r.ifr_name, ifname, IFNAMSIZ);
  if (ioctl(s, SIOCGIFTXQLEN, &r) == 0) {
    *rxq = (unsigned)r.ifr_qlen;
    if (want > *rxq) {
      r.ifr_qlen = (int)want;
      if (ioctl(s, SIOCSIFTXQLEN, &r) == 0) *rxq = want;
    }
  }
  close(s);
}

/* Everything open() does while (possibly) inside the target namespace. Returns the fd, or -1
 * with *err, *what and *hint set; it never touches JS, so the caller restores the namespace
 * before throwing. */
static int open_tap(const char *name, bool vnet, bool mq, bool up, unsigned offload, unsigned *rxq, char ifname[IFNAMSIZ],
                    int *err, const char **what, const char **hint) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    *what = "cannot open /dev/net/tun";
    *hint = *err == ENOENT || *err == ENODEV || *err == ENXIO
                ? "load the tun module (modprobe tun), or run the container with /dev/net/tun "
                  "(docker run --device /dev/net/tun --cap-add NET_ADMIN)"
                : "/dev/net/tun must be readable and writable by this user (it is normally mode 0666: "
                  "sudo chmod 0666 /dev/net/tun), or run as root";
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0) | (mq ? IFF_MULTI_QUEUE : 0);
  memcpy(ifr.ifr_name, name, strlen(name)); /* the caller checked strlen(name) < IFNAMSIZ */
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    *err = errno;
    *what = "cannot create or attach the TAP";
    if (*err == EBUSY)
      *hint = "it is in use by another process (or another open of this one); close that first, "
              "or create the TAP with multi_queue and open it with multiQueue: true";
    else if (*err == EPERM || *err == EACCES)
      *hint = HINT_PERM;
    else if (*err == EINVAL)
      *hint = "a device of that name exists and is not a TAP, or it was created with a different "
              "multi_queue setting, or the name is not a valid interface name";
    close(fd);
    return -1;
  }
  memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
  ifname[IFNAMSIZ - 1] = 0;
  if (vnet) {
    int hdrsz = VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0) {
      *err = errno;
      *what = "cannot set up the virtio-net header (TUNSETVNETHDRSZ) on";
      close(fd);
      return -1;
    }
  }
  /* Always, with or without the vnet header: with TUNSETOFFLOAD(0) the kernel completes checksums
   * and segments before handing us a frame; the caller may allow partial checksums (TUN_F_CSUM)
   * and TSO super-frames. The setting belongs to the device and outlives this fd: a persistent
   * TAP last opened with offloads would otherwise keep handing us unchecksummed datagrams, which
   * without a vnet header nothing marks as such. */
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)offload) < 0) {
    *err = errno;
    *what = "cannot set the offloads (TUNSETOFFLOAD) on";
    close(fd);
    return -1;
  }
  /* A persistent TAP keeps the source filter its last user attached (setSourceFilter): start
   * without one. Kernels without TUNSETFILTEREBPF (before 4.16) have none to remove. */
  srcfilter_detach(fd);
  raise_queue(ifname, rxq);
  if (up) {
    /* SIOCSIFFLAGS needs CAP_NET_ADMIN; a user attaching to a persistent TAP that is already up
     * must not fail, so only set the flag when it is missing. The socket is made here, inside the
     * namespace, because interface ioctls act on the socket's namespace. */
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq r2;
    memset(&r2, 0, sizeof r2);
    memcpy(r2.ifr_name, ifname, IFNAMSIZ);
    bool ok = s >= 0 && ioctl(s, SIOCGIFFLAGS, &r2) == 0;
    if (ok && !(r2.ifr_flags & IFF_UP)) {
      r2.ifr_flags |= IFF_UP;
      ok = ioctl(s, SIOCSIFFLAGS, &r2) == 0;
    }
    if (!ok) {
      *err = errno;
      *what = "cannot bring up the TAP";
      *hint = *err == EPERM || *err == EACCES ? "run as root, or bring it up once as root: sudo ip link set NAME up" : NULL;
      if (s >= 0) close(s);
      close(fd);
      return -1;
    }
    close(s);
  }
  return fd;
}

/* open(name, { vnetHdr?, multiQueue?, netns?, up? }) -> { fd, name } */
static napi_value tap_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ + 8] = {0};
  size_t len = 0;
  napi_valuetype t;
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_string) {
    napi_throw_type_error(env, "EINVAL", "open: the TAP name must be a string");
    return NULL;
  }
  CHECK(napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len));
  if (len == 0 || len >= IFNAMSIZ || strchr(name, '/') || strchr(name, ' ')) {
    char what[128];
    snprintf(what, sizeof what, "invalid TAP name \"%s%s\"", name, len >= IFNAMSIZ ? "..." : "");
    return throw_errno(env, EINVAL, what, "an interface name has 1 to 15 characters, no '/' and no spaces");
  }
  bool vnet = false, mq = false, up = false;
  unsigned offload = 0, rxq = 0;
  char nspath[1024] = {0};
  if (argc >= 2 && napi_typeof(env, argv[1], &t) == napi_ok && t == napi_object) {
    vnet = opt_bool(env, argv[1], "vnetHdr");
    napi_value ov;
    uint32_t o32 = 0;
    if (napi_get_named_property(env, argv[1], "offload", &ov) == napi_ok && napi_get_value_uint32(env, ov, &o32) == napi_ok)
      offload = o32;
    mq = opt_bool(env, argv[1], "multiQueue");
    up = opt_bool(env, argv[1], "up");
    uint32_t q32 = 0;
    if (napi_get_named_property(env, argv[1], "rxQueue", &ov) == napi_ok && napi_get_value_uint32(env, ov, &q32) == napi_ok)
      rxq = q32;
    napi_value v;
    if (napi_get_named_property(env, argv[1], "netns", &v) == napi_ok && napi_typeof(env, v, &t) == napi_ok &&
        t == napi_string)
      CHECK(napi_get_value_string_utf8(env, v, nspath, sizeof nspath, &len));
  }

  /* Enter the target namespace on this thread only, for the open+ioctls, then come back: the
   * device is created there while the process (and libuv's worker threads) stay where they are.
   * A TAP fd keeps working from any namespace once opened. */
  int origns = -1;
  if (nspath[0]) {
    origns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (origns < 0) return throw_errno(env, errno, "cannot open /proc/thread-self/ns/net", "is /proc mounted?");
    int targetns = open(nspath, O_RDONLY | O_CLOEXEC);
    if (targetns < 0) {
      int err = errno;
      close(origns);
      char what[1100], hint[1100];
      const char *base = strrchr(nspath, '/');
      snprintf(what, sizeof what, "cannot open network namespace %s", nspath);
      snprintf(hint, sizeof hint, "create it first: ip netns add %s", base ? base + 1 : nspath);
      return throw_errno(env, err, what, err == ENOENT ? hint : NULL);
    }
    int rc = setns(targetns, CLONE_NEWNET);
    int err = errno;
    close(targetns);
    if (rc < 0) {
      close(origns);
      return throw_errno(env, err, "cannot enter the TAP's network namespace (setns)",
                         err == EPERM ? "entering a namespace needs CAP_SYS_ADMIN: run as root, or open the TAP "
                                        "without netns from a process already inside it (ip netns exec NAME ...)"
                                      : NULL);
    }
  }

  char ifname[IFNAMSIZ] = {0};
  int err = 0;
  const char *what = NULL, *hint = NULL;
  int fd = open_tap(name, vnet, mq, up, offload, &rxq, ifname, &err, &what, &hint);

  if (origns >= 0) {
    /* Carrying on in the wrong namespace would silently put every later socket of this thread
     * (the main JS thread) there: better to stop the process. */
    if (setns(origns, CLONE_NEWNET) < 0)
      napi_fatal_error("paf_tap", NAPI_AUTO_LENGTH, "cannot return to the original network namespace",
                       NAPI_AUTO_LENGTH);
    close(origns);
  }
  if (fd < 0) {
    char w[256];
    snprintf(w, sizeof w, "%s %s", what, name);
    char h[512];
    /* Show the real name in hints that give a command. */
    const char *at = hint ? strstr(hint, "NAME") : NULL;
    if (at) {
      snprintf(h, sizeof h, "%.*s%s%s", (int)(at - hint), hint, name, at + 4);
      hint = h;
    }
    return throw_errno(env, err, w, hint);
  }
  napi_value res, jfd, jname;
  CHECK(napi_create_object(env, &res));
  CHECK(napi_create_int32(env, fd, &jfd));
  CHECK(napi_create_string_utf8(env, ifname, NAPI_AUTO_LENGTH, &jname));
  CHECK(napi_set_named_property(env, res, "fd", jfd));
  CHECK(napi_set_named_property(env, res, "name", jname));
  napi_value jq;
  CHECK(napi_create_uint32(env, rxq, &jq));
  CHECK(napi_set_named_property(env, res, "rxQueue", jq));
  return res;
}

/* In single mode (see reader_t), one wakeup in this many reads the queue to its end. */
#define SINGLE_PROBE 4

typedef struct reader {
  uv_poll_t poll; /* on the TAP's fd (read(2)) or the ring's (io_uring) */
  napi_env env;
  int fd;
  /* Where frames are read: nslots buffers of frame_size bytes, JS memory, each held by
   * slot_ref[id]; frame n of a batch is in slot[ids[n]]. setSlot swaps one (the receiver kept
   * the frame it held). read(2): nslots == max_frames and ids[n] == n. io_uring: more slots
   * than a batch, so the kernel has free ones to read into while JS holds a batch. */
  uint8_t **slot;
  napi_ref *slot_ref;
  size_t frame_size;
  uint32_t max_frames, nslots;
  uint16_t *ids; /* NULL: the caller did not ask (read(2) only) */
  napi_ref ids_ref;
  tap_uring_t *uring; /* NULL: read(2) */
  /* io_uring: the ids of the last batch, out of the kernel's ring until given back. That waits
   * until reading is on again after the batch (JS turns it off while frames of a batch wait for
   * the receiver's next turn, so those stay where they are). */
  uint16_t *held;
  uint32_t nheld;
  /* io_uring: slots neither in the kernel's ring nor held, a stack (the last given back on top),
   * and how many the kernel has (in its ring, or read into and not reaped yet). The kernel takes
   * slots in the order given, so every slot in its ring is touched once per round: it gets only
   * about 1 MiB of the frames seen lately (avg_len), the most recently used
   * first, so the frames land in memory the caches still hold. Given all 128 slots of 64 KiB, a
   * Reno sender into paf moved 24-35 Gbit/s against 30-40 with read(2); with 32 slots 29-45.
   * Small frames touch little of a slot, so they get up to the whole batch's worth: a fixed 1 MiB
   * of 64 KiB slots cut a flood of 1400-byte datagrams into batches of 15, a re-arm each. */
  uint16_t *free_ids;
  uint32_t nfree, in_kernel, avg_len;
  bool reading;    /* setReading's last word (on at start) */
  int poll_events; /* what the poll watches now (UV_READABLE, ...; 0: stopped), see poll_set */
  int arm_failed; /* io_uring: the last try to arm the read failed with this errno (retried) */
  uint32_t arm_retries; /* tries in a row that failed; ARM_RETRIES_MAX of them end reading */
  /* Wakeups that found one frame and an empty queue (request and answer, one at a time) make the
   * reader take one frame per wakeup without the read(2) that only says EAGAIN: `single`, with
   * every SINGLE_PROBE-th wakeup reading on to EAGAIN, so a burst ends it (see on_readable). */
  bool single;
  uint32_t unprobed;
  uint32_t *lengths;
  napi_ref lengths_ref, cb_ref, timing_ref;
  double *timing; /* NULL, or where the last callback's duration (ms) goes */
  napi_async_context actx;
  bool in_callback; /* JS may call stopReading from inside onBatch */
  bool stopped;     /* stopReading was called: release once the callback has returned */
  bool released;
} reader_t;

/* Let go of the slots' buffers (the references taken so far; the rest are NULL). */
static void reader_drop_slots(napi_env env, reader_t *r) {
  for (uint32_t i = 0; i < r->nslots; i++)
    if (r->slot_ref[i]) napi_delete_reference(env, r->slot_ref[i]);
}

static void reader_free(reader_t *r) {
  free(r->slot);
  free(r->slot_ref);
  free(r->held);
  free(r->free_ids);
  free(r);
}

/* io_uring: end the read and free the ring. False if the kernel may still write into the slots
 * (never seen; uring_close says so on stderr): then they must never be released. */
static bool reader_end_uring(reader_t *r) {
  if (!r->uring) return true;
  bool ok = uring_close(r->uring);
  r->uring = NULL;
  return ok;
}

static void on_poll_closed(uv_handle_t *h) { reader_free(h->data); }

/* The environment is going away (the process exits, or a worker ends) with the reader still
 * open, e.g. unref'd: stop polling now. Node runs the loop again while it tears down, and a frame
 * arriving then would call into JavaScript that no longer exists (a SIGSEGV at exit, under
 * traffic, in 56 of 60 exits before this hook). The JS references die with the environment. */
static void reader_env_cleanup(void *arg) {
  reader_t *r = arg;
  if (r->released) return;
  r->released = true;
  r->stopped = true;
  uv_poll_stop(&r->poll);
  reader_end_uring(r);
  uv_close((uv_handle_t *)&r->poll, on_poll_closed);
}

/* Drop the JS references and close the poll; libuv's close callback frees the struct. */
static void reader_release(reader_t *r) {
  if (r->released) return;
  r->released = true;
  napi_env env = r->env;
  napi_remove_env_cleanup_hook(env, reader_env_cleanup, r);
  uv_poll_stop(&r->poll);
  if (reader_end_uring(r)) reader_drop_slots(env, r);
  napi_delete_reference(env, r->lengths_ref);
  if (r->ids_ref) napi_delete_reference(env, r->ids_ref);
  napi_delete_reference(env, r->cb_ref);
  if (r->timing_ref) napi_delete_reference(env, r->timing_ref);
  napi_async_destroy(env, r->actx);
  uv_close((uv_handle_t *)&r->poll, on_poll_closed);
}

static void on_readable(uv_poll_t *p, int status, int events);

/* Start, change or stop the poll, only when that changes what it watches: uv_poll_start on a
 * started poll costs epoll_ctl calls (libuv takes it off and adds it again), which io_uring's
 * reader would otherwise pay after every batch. */
static void poll_set(reader_t *r, int events) {
  if (events == r->poll_events) return;
  r->poll_events = events;
  if (events) uv_poll_start(&r->poll, events, on_readable);
  else uv_poll_stop(&r->poll);
}

/* Errors of io_uring_enter that pass (the completion queue is full until reaped, memory). */
static bool transient(int err) { return err == EAGAIN || err == EBUSY || err == ENOMEM || err == EINTR; }

/* Loop turns in a row an io_uring read may fail to be armed (EBUSY, ENOMEM) before reading ends. */
#define ARM_RETRIES_MAX 10000

/* About this much of the frames seen lately is in the kernel's ring (see free_ids). */
#define RING_BYTES (1u << 20)

/* io_uring: put the last batch's slots on the free stack, give the kernel's ring slots from its
 * top up to about RING_BYTES of recent frames (at least 8 slots, at most what leaves a whole
 * batch to JS), and arm the read if it ended (every slot was out, or it was just
 * started); arm_failed says if that failed. */
static void uring_top_up(reader_t *r) {
  /* The batch's slots go on the free stack, the first frame's last (the most recently read on top). */
  for (uint32_t k = r->nheld; k-- > 0;) r->free_ids[r->nfree++] = r->held[k];
  r->nheld = 0;
  uint32_t given = 0;
  uint32_t depth = RING_BYTES / (r->avg_len > 64 ? r->avg_len : 64), most = r->nslots - r->max_frames;
  depth = depth < 8 ? 8 : depth > most ? most : depth;
  while (r->in_kernel < depth && r->nfree > 0) {
    uint16_t id = r->free_ids[--r->nfree];
    uring_give(r->uring, id, r->slot[id]);
    r->in_kernel++;
    given++;
  }
  if (given) uring_publish(r->uring);
  int rc = uring_arm(r->uring);
  r->arm_failed = rc < 0 ? -rc : 0;
  r->arm_retries = rc < 0 ? r->arm_retries + 1 : 0;
}

/* The same with reading on: the poll goes on too. An arm that failed is tried again on the next
 * loop turn (the ring's fd polls writable at once), or ends reading (not transient: on_readable). */
static void uring_refill(reader_t *r) {
  uring_top_up(r);
  poll_set(r, r->arm_failed ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

/* Read at most one batch with read(2) into slots 0..n-1. */
static uint32_t read_batch(reader_t *r, int *fatal) {
  uint32_t n = 0;
  /* At most one batch: uv_poll is level triggered, so what is left wakes us again after the loop
   * has run timers, immediates and the writes they queue. That is also why a wakeup may stop
   * after one frame without asking for more (single): a frame left waiting wakes us at once. */
  uint32_t limit = r->single ? 1 : r->max_frames;
  bool drained = false;
  while (!*fatal && n < limit) {
    ssize_t got = read(r->fd, r->slot[n], r->frame_size);
    if (got >= 0) {
      r->lengths[n++] = (uint32_t)got;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      drained = true;
      break;
    } else {
      /* EBADFD: the device was deleted under us. A level-triggered poll would spin on the error,
       * so stop and tell JS. */
      *fatal = errno;
    }
  }
  if (drained && n > 0) {
    r->single = n == 1;
    r->unprobed = 0;
  } else if (r->single && ++r->unprobed >= SINGLE_PROBE) {
    r->single = false; /* the next wakeup reads on to EAGAIN */
    r->unprobed = 0;
  }
  return n;
}

static void on_readable(uv_poll_t *p, int status, int events) {
  reader_t *r = (reader_t *)p->data;
  if (r->stopped) return;
  uint32_t n = 0;
  int fatal = status < 0 ? -status : 0;
  if (!r->uring) {
    n = read_batch(r, &fatal);
  } else {
    /* A transient failure is retried every loop turn, but not forever (a busy loop). */
    if (!fatal && r->arm_failed && (!transient(r->arm_failed) || r->arm_retries >= ARM_RETRIES_MAX)) fatal = r->arm_failed;
    /* At most one batch here too; completions left keep the ring's fd readable. */
    if (!fatal) n = uring_reap(r->uring, r->max_frames, r->lengths, r->ids, &fatal);
    r->in_kernel -= n < r->in_kernel ? n : r->in_kernel;
    if (n > 0) {
      uint64_t sum = 0;
      for (uint32_t k = 0; k < n; k++) sum += r->lengths[k];
      r->avg_len = (uint32_t)((r->avg_len * 3 + sum / n) / 4); /* the last few batches' frames */
    }
    for (uint32_t k = 0; k < n && r->nheld < r->nslots; k++) r->held[r->nheld++] = r->ids[k];
    if (n == 0 && !fatal) {
      uring_refill(r); /* the read ended (ENOBUFS, or an arm to retry): arm it again */
      return;
    }
  }
  if (n == 0 && !fatal) return;
  if (fatal) {
    poll_set(r, 0);
    r->reading = false;
  }

  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[2], result;
  napi_get_reference_value(env, r->cb_ref, &cb);
  napi_get_global(env, &recv); /* make_callback wants an object as `this` */
  napi_create_uint32(env, n, &argv[0]);
  size_t argc = 1;
  if (fatal) {
    argv[1] = errno_error(env, fatal, "reading from the TAP failed", "the device was probably deleted; open it again");
    argc = 2;
  }
  r->in_callback = true;
  /* make_callback (not call_function): async hooks see the I/O, and microtasks run when it
   * returns, so frames the receivers queued are flushed once per batch. */
  uint64_t t0 = uv_hrtime();
  napi_status st = napi_make_callback(env, r->actx, recv, cb, argc, argv, &result);
  if (r->timing) r->timing[0] = (double)(uv_hrtime() - t0) / 1e6;
  r->in_callback = false;
  if (st == napi_pending_exception) {
    /* Nothing above us can catch it: report it like any exception thrown in an I/O callback. */
    napi_value ex;
    if (napi_get_and_clear_last_exception(env, &ex) == napi_ok) napi_fatal_exception(env, ex);
  }
  napi_close_handle_scope(env, scope);
  if (r->stopped) reader_release(r);
  else if (r->uring && r->reading && !fatal) uring_refill(r);
}

/* Make slot i of r read into `buf` (a Buffer of at least frame_size bytes), holding it until it is
 * replaced or the reader released. False (nothing changed) if it is not such a Buffer. */
static bool reader_set_slot(napi_env env, reader_t *r, uint32_t i, napi_value buf) {
  void *data;
  size_t len;
  bool is_buffer = false;
  if (i >= r->nslots || napi_is_buffer(env, buf, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, buf, &data, &len) != napi_ok || len < r->frame_size)
    return false;
  napi_ref ref;
  if (napi_create_reference(env, buf, 1, &ref) != napi_ok) return false;
  if (r->slot_ref[i]) napi_delete_reference(env, r->slot_ref[i]);
  r->slot_ref[i] = ref;
  r->slot[i] = data;
  return true;
}

/* startReading(fd, slots, frameSize, maxFrames, lengths, onBatch[, timing[, ids]]) -> handle;
 * slots: an array of Buffers of at least frameSize bytes each, where frames are read: maxFrames,
 * or with ids (a Uint16Array of maxFrames) at least twice that, and then io_uring reads them
 * where the kernel can (readerMode says which). */
static napi_value tap_start_reading(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t frame_size, max_frames, nslots = 0;
  bool is_array = false;
  napi_valuetype t;
  if (argc < 6 || napi_typeof(env, argv[5], &t) != napi_ok || t != napi_function || napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, "EINVAL", "startReading(fd, slots[], frameSize, maxFrames, lengths, onBatch)");
    return NULL;
  }
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_array_length(env, argv[1], &nslots));
  CHECK(napi_get_value_uint32(env, argv[2], &frame_size));
  CHECK(napi_get_value_uint32(env, argv[3], &max_frames));
  napi_typedarray_type tt;
  size_t lens_len, off;
  void *lens;
  napi_value ab;
  CHECK(napi_get_typedarray_info(env, argv[4], &tt, &lens_len, &lens, &ab, &off));
  if (tt != napi_uint32_array || frame_size == 0 || max_frames == 0 || lens_len < max_frames || nslots < max_frames) {
    napi_throw_range_error(env, "EINVAL", "startReading: fewer slots or lengths than frames in a batch");
    return NULL;
  }
  uint16_t *ids = NULL;
  if (argc >= 8) {
    napi_valuetype it;
    napi_typedarray_type tt3;
    size_t ilen, ioff;
    void *idata;
    napi_value iab;
    if (napi_typeof(env, argv[7], &it) == napi_ok && it == napi_object &&
        napi_get_typedarray_info(env, argv[7], &tt3, &ilen, &idata, &iab, &ioff) == napi_ok && tt3 == napi_uint16_array &&
        ilen >= max_frames)
      ids = idata;
  }
  /* io_uring wants room to read while JS holds a batch; else the first maxFrames slots serve. */
  if (!ids || nslots < 2 * (uint64_t)max_frames || nslots > 32768 || !uring_supported()) nslots = max_frames;
  reader_t *r = calloc(1, sizeof *r);
  if (r) {
    r->slot = calloc(nslots, sizeof *r->slot);
    r->slot_ref = calloc(nslots, sizeof *r->slot_ref);
    r->held = calloc(nslots, sizeof *r->held);
    r->free_ids = calloc(nslots, sizeof *r->free_ids);
  }
  if (!r || !r->slot || !r->slot_ref || !r->held || !r->free_ids) {
    if (r) reader_free(r);
    return throw_errno(env, ENOMEM, "startReading", NULL);
  }
  r->env = env;
  r->fd = fd;
  r->frame_size = frame_size;
  r->max_frames = max_frames;
  r->nslots = nslots;
  r->lengths = lens;
  r->ids = ids;
  /* The slots and lengths are written by C until stopReading: keep them alive until then. */
  for (uint32_t i = 0; i < nslots; i++) {
    napi_value b;
    if (napi_get_element(env, argv[1], i, &b) != napi_ok || !reader_set_slot(env, r, i, b)) {
      reader_drop_slots(env, r);
      reader_free(r);
      napi_throw_range_error(env, "EINVAL", "startReading: each slot must be a Buffer of at least frameSize bytes");
      return NULL;
    }
  }
  if (argc >= 7) {
    napi_typedarray_type tt2;
    size_t tlen, toff;
    void *tdata;
    napi_value tab;
    if (napi_get_typedarray_info(env, argv[6], &tt2, &tlen, &tdata, &tab, &toff) == napi_ok && tt2 == napi_float64_array && tlen >= 1) {
      r->timing = tdata;
      napi_create_reference(env, argv[6], 1, &r->timing_ref);
    }
  }
  /* Frame n of a batch is in slot ids[n]: with read(2) always slot n. */
  if (ids)
    for (uint32_t i = 0; i < max_frames; i++) ids[i] = (uint16_t)i;
  if (nslots > max_frames) {
    r->uring = uring_open(fd, nslots, (uint32_t)frame_size);
    r->avg_len = (uint32_t)frame_size; /* until frames are seen, as if they filled the slots */
    for (uint32_t i = nslots; i-- > 0;) r->free_ids[r->nfree++] = (uint16_t)i;
    if (r->uring) {
      uring_top_up(r); /* gives the ring its slots and arms the read */
      if (r->arm_failed) reader_end_uring(r); /* read(2) then */
    }
  }
  uv_loop_t *loop;
  int rc = 0;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || (rc = uv_poll_init(loop, &r->poll, r->uring ? uring_fd(r->uring) : fd)) != 0) {
    bool safe = reader_end_uring(r);
    if (safe) reader_drop_slots(env, r);
    if (r->timing_ref) napi_delete_reference(env, r->timing_ref);
    reader_free(r);
    return throw_errno(env, rc ? -rc : EINVAL, "startReading: cannot poll the TAP fd", "was it closed?");
  }
  r->poll.data = r;
  r->reading = true;
  napi_create_reference(env, argv[4], 1, &r->lengths_ref);
  if (ids) napi_create_reference(env, argv[7], 1, &r->ids_ref);
  napi_create_reference(env, argv[5], 1, &r->cb_ref);
  napi_value name, resource;
  napi_create_string_utf8(env, "PAF_TAP", NAPI_AUTO_LENGTH, &name);
  napi_create_object(env, &resource);
  napi_async_init(env, resource, name, &r->actx);
  poll_set(r, UV_READABLE);
  napi_add_env_cleanup_hook(env, reader_env_cleanup, r);
  napi_value handle;
  CHECK(napi_create_external(env, r, NULL, NULL, &handle));
  return handle;
}

/* setSlot(handle, index, buffer) -> bool: frame `index` of later batches is read into `buffer` (at
 * least frameSize bytes) instead: the receiver keeps the one it was read into. Between batches
 * only (JS runs between reads). False, nothing changed, if the reader is stopped or the arguments
 * are not an index below maxFrames and such a Buffer. */
/* io_uring: whether slot id is out of the kernel's ring (in the last batch), so may be swapped. */
static bool slot_held(const reader_t *r, uint32_t id) {
  if (!r->uring) return true;
  for (uint32_t k = 0; k < r->nheld; k++)
    if (r->held[k] == id) return true;
  return false;
}

static napi_value tap_set_slot(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  reader_t *r = NULL;
  uint32_t i = 0;
  bool ok = argc >= 3 && napi_get_value_external(env, argv[0], (void **)&r) == napi_ok && r && !r->stopped &&
            napi_get_value_uint32(env, argv[1], &i) == napi_ok && slot_held(r, i) && reader_set_slot(env, r, i, argv[2]);
  napi_value res;
  CHECK(napi_get_boolean(env, ok, &res));
  return res;
}

/* stopReading(handle): idempotent, safe from inside onBatch. Must precede close(fd). */
static napi_value tap_stop_reading(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  reader_t *r;
  CHECK(napi_get_value_external(env, argv[0], (void **)&r));
  if (!r || r->stopped) return NULL;
  r->stopped = true;
  poll_set(r, 0); /* now, before the fd is closed: epoll must not watch a recycled fd */
  if (!r->in_callback) reader_release(r);
  return NULL;
}

/* The (handle, boolean) arguments of setReading and setRef; NULL if the reader is stopped. */
static reader_t *reader_and_flag(napi_env env, napi_callback_info info, bool *flag) {
  size_t argc = 2;
  napi_value argv[2];
  reader_t *r;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_external(env, argv[0], (void **)&r) != napi_ok || napi_get_value_bool(env, argv[1], flag) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "expected (handle, boolean)");
    return NULL;
  }
  return r && !r->stopped ? r : NULL;
}

/* setReading(handle, on): stop or restart the poll (the scheduler holds back a stack over its share;
 * what arrives meanwhile waits in the TAP's kernel queue, and beyond its length the kernel drops). */
static napi_value tap_set_reading(napi_env env, napi_callback_info info) {
  bool on;
  reader_t *r = reader_and_flag(env, info, &on);
  if (!r) return NULL;
  r->reading = on;
  /* io_uring: not from inside onBatch (a receiver pausing and resuming while the batch is handed
   * up): the batch's slots must not go back to the kernel before it ends; on_readable gives them
   * back and starts the poll when onBatch returns with reading on. */
  if (on && r->uring) {
    if (!r->in_callback) uring_refill(r);
  } else if (on) poll_set(r, UV_READABLE);
  else poll_set(r, 0);
  return NULL;
}

/* setRef(handle, ref): like a socket's ref()/unref(): an unref'd poll lets the process exit. */
static napi_value tap_set_ref(napi_env env, napi_callback_info info) {
  bool ref;
  reader_t *r = reader_and_flag(env, info, &ref);
  if (r && ref) uv_ref((uv_handle_t *)&r->poll);
  else if (r) uv_unref((uv_handle_t *)&r->poll);
  return NULL;
}

/* A writer (openWriter): a TAP's io_uring for writes, NULL once closed or given up. */
typedef struct writer {
  tap_uwriter_t *w;
} writer_t;

static void writer_finalize(napi_env env, void *data, void *hint) {
  writer_t *wr = data;
  uwriter_close(wr->w);
  free(wr);
}

/* openWriter(fd) -> handle, or null if io_uring cannot write here (writeFrames then uses writev). */
static napi_value tap_open_writer(napi_env env, napi_callback_info info) {
  int32_t fd;
  size_t argc = 1;
  napi_value argv[1], res;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "openWriter(fd)");
    return NULL;
  }
  writer_t *wr = NULL;
  if (uring_supported() && (wr = calloc(1, sizeof *wr)) && (wr->w = uwriter_open(fd))) {
    CHECK(napi_create_external(env, wr, writer_finalize, NULL, &res));
    return res;
  }
  free(wr);
  CHECK(napi_get_null(env, &res));
  return res;
}

/* The writer handle in argv[k], NULL if it is not one (or closed). */
static writer_t *writer_at(napi_env env, size_t argc, napi_value *argv, size_t k) {
  napi_valuetype t;
  writer_t *wr = NULL;
  if (argc > k && napi_typeof(env, argv[k], &t) == napi_ok && t == napi_external) napi_get_value_external(env, argv[k], (void **)&wr);
  return wr && wr->w ? wr : NULL;
}

/* closeWriter(handle): free its ring now (before the TAP's fd is closed). */
static napi_value tap_close_writer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  writer_t *wr = writer_at(env, argc, argv, 0);
  if (wr) {
    uwriter_close(wr->w);
    wr->w = NULL;
  }
  return NULL;
}

/* frames[i]'s bytes; false (a TypeError thrown) if it is not a Uint8Array. */
static bool frame_at(napi_env env, napi_value frames, uint32_t i, void **data, size_t *len) {
  napi_value el;
  napi_typedarray_type tt;
  napi_value ab;
  size_t off;
  if (napi_get_element(env, frames, i, &el) != napi_ok || napi_get_typedarray_info(env, el, &tt, len, data, &ab, &off) != napi_ok ||
      tt != napi_uint8_array) {
    napi_throw_type_error(env, "EINVAL", "writeFrames: every frame must be a Uint8Array or Buffer");
    return false;
  }
  return true;
}

/* writeFrames(fd, frames[], start, vnetHdrLen, out[, hdrs[, writer]]) -> frames consumed (written
 * or refused). A TAP takes exactly one frame per write. Stops at EAGAIN so JS keeps the rest and
 * retries; a frame the kernel refuses (EINVAL: too short; EBADFD: device gone) is consumed and
 * counted in out[0], with its errno in out[1]; out[2] is the bytes of frames written (without
 * header). With vnetHdrLen > 0 a virtio-net header goes first, via writev, so the frame is not
 * copied: frame i's is hdrs[i*vnetHdrLen ...] when hdrs (a Uint8Array) is given, else a zeroed
 * one ("no offload needed"). With a writer (openWriter), two or more frames go through io_uring,
 * up to UWRITER_MAX per system call, in order; a lone frame by writev (cheaper alone). */
static napi_value tap_write_frames(napi_env env, napi_callback_info info) {
  static const uint8_t zero_hdr[VNET_HDR_LEN + 2] = {0};
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t start, n, hdr;
  bool is_array = false;
  napi_typedarray_type tt;
  size_t out_len, off;
  uint32_t *out;
  napi_value ab;
  if (argc < 5 || napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_typedarray_info(env, argv[4], &tt, &out_len, (void **)&out, &ab, &off) != napi_ok ||
      tt != napi_uint32_array || out_len < 3) {
    napi_throw_type_error(env, "EINVAL", "writeFrames(fd, frames[], start, vnetHdrLen, out: Uint32Array(3))");
    return NULL;
  }
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_array_length(env, argv[1], &n));
  CHECK(napi_get_value_uint32(env, argv[2], &start));
  CHECK(napi_get_value_uint32(env, argv[3], &hdr));
  if (hdr > sizeof zero_hdr) hdr = sizeof zero_hdr;
  const uint8_t *hdrs = NULL;
  size_t hdrs_len = 0;
  if (argc >= 6 && hdr > 0) {
    napi_valuetype ht;
    void *hd;
    if (napi_typeof(env, argv[5], &ht) == napi_ok && ht == napi_object &&
        napi_get_typedarray_info(env, argv[5], &tt, &hdrs_len, &hd, &ab, &off) == napi_ok && tt == napi_uint8_array)
      hdrs = hd;
  }
  writer_t *wr = writer_at(env, argc, argv, 6);
  out[0] = out[1] = out[2] = 0;
  uint32_t i = start, iovcnt = hdr ? 2 : 1;
  struct iovec iov[2 * UWRITER_MAX];
  int32_t res[UWRITER_MAX];
  size_t lens[UWRITER_MAX];
  while (i < n) {
    uint32_t m = n - i < UWRITER_MAX ? n - i : UWRITER_MAX;
    if (wr && m >= 2) {
      for (uint32_t k = 0; k < m; k++) {
        void *data;
        if (!frame_at(env, argv[1], i + k, &data, &lens[k])) return NULL;
        const uint8_t *h = hdrs && (size_t)(i + k + 1) * hdr <= hdrs_len ? hdrs + (size_t)(i + k) * hdr : zero_hdr;
        struct iovec *v = &iov[(size_t)k * iovcnt];
        if (hdr) *v++ = (struct iovec){(void *)h, hdr};
        *v = (struct iovec){data, lens[k]};
      }
      int taken = uwriter_write(wr->w, iov, iovcnt, m, res);
      if (taken < 0) {
        wr = NULL; /* the ring took nothing (EBUSY, ENOMEM): writev for the rest of this call */
        continue;
      }
      for (uint32_t k = 0; k < (uint32_t)taken; k++) {
        int32_t r = res[k];
        if (r >= 0) {
          out[2] += (uint32_t)lens[k];
          i++;
          continue;
        }
        if (r == -EAGAIN) goto done;
        if (r == -EOPNOTSUPP) {
          /* No RWF_NOWAIT for this file (never seen on a TAP): writev from now on. */
          uwriter_close(wr->w);
          wr->w = NULL;
          wr = NULL;
        } else if (r != -ECANCELED) {
          out[0]++;
          out[1] = (uint32_t)-r;
          i++;
        }
        break; /* the rest of the batch was cancelled: submit it again */
      }
      continue;
    }
    void *data;
    size_t len;
    if (!frame_at(env, argv[1], i, &data, &len)) return NULL;
    const uint8_t *h = hdrs && (size_t)(i + 1) * hdr <= hdrs_len ? hdrs + (size_t)i * hdr : zero_hdr;
    struct iovec one[2] = {{(void *)h, hdr}, {data, len}};
    ssize_t w;
    do {
      w = hdr ? writev(fd, one, 2) : write(fd, data, len);
    } while (w < 0 && errno == EINTR);
    if (w >= 0) {
      out[2] += (uint32_t)len;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else {
      out[0]++;
      out[1] = (uint32_t)errno;
    }
    i++;
  }
done:;
  napi_value result;
  CHECK(napi_create_uint32(env, i - start, &result));
  return result;
}

/* The one int32 argument (an fd) of close, clearSourceFilter and sourceFilterDrops; false (a
 * TypeError thrown) if it is missing or not a number. */
static bool fd_arg(napi_env env, napi_callback_info info, int32_t *fd) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], fd) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "expected a file descriptor");
    return false;
  }
  return true;
}

/* close(fd): call stopReading first, or libuv would poll a closed (and soon reused) fd. */
static napi_value tap_close(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, &fd)) return NULL;
  /* EINTR on close still releases the fd on Linux: never retry it. */
  if (fd >= 0 && close(fd) < 0 && errno != EINTR) return throw_errno(env, errno, "close TAP fd", NULL);
  return NULL;
}

static bool fd_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
  int n;
  do n = poll(&p, 1, 0);
  while (n < 0 && errno == EINTR);
  return n > 0 && (p.revents & POLLIN);
}

/* readable(fd) -> whether frames wait in the kernel's queue (poll with no wait). */
static napi_value tap_readable(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, &fd)) return NULL;
  napi_value res;
  CHECK(napi_get_boolean(env, fd_readable(fd), &res));
  return res;
}

/* The one argument (a reader handle) of readerMode and pending; NULL if stopped or not one. */
static reader_t *reader_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  reader_t *r = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], (void **)&r) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "expected a reader handle");
    return NULL;
  }
  return r && !r->stopped ? r : NULL;
}

/* pending(handle) -> frames wait to be handed up: read by io_uring and not taken yet, or in the
 * TAP's queue. False once stopped. */
static napi_value tap_pending(napi_env env, napi_callback_info info) {
  reader_t *r = reader_arg(env, info);
  napi_value res;
  CHECK(napi_get_boolean(env, r && ((r->uring && uring_pending(r->uring)) || fd_readable(r->fd)), &res));
  return res;
}

/* readerMode(handle) -> "io_uring" or "read" (read(2), a system call per frame). */
static napi_value tap_reader_mode(napi_env env, napi_callback_info info) {
  reader_t *r = reader_arg(env, info);
  napi_value res;
  CHECK(napi_create_string_utf8(env, r && r->uring ? "io_uring" : "read", NAPI_AUTO_LENGTH, &res));
  return res;
}

/* uringSupported() -> whether startReading can use io_uring here (Linux 6.7+, io_uring allowed). */
static napi_value tap_uring_supported(napi_env env, napi_callback_info info) {
  napi_value res;
  CHECK(napi_get_boolean(env, uring_supported(), &res));
  return res;
}

/* setOffload(fd, flags) -> 0 or errno: TUNSETOFFLOAD on an open TAP. The kernel refuses flags it
 * does not know with EINVAL, which is how a feature is probed (tun.c says so): tap.ts tries the
 * UDP segmentation flags (Linux 6.2+) and sets back those it wants. */
static napi_value tap_set_offload(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t flags;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_uint32(env, argv[1], &flags) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "setOffload(fd, flags): two integers");
    return NULL;
  }
  int err = ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0 ? errno : 0;
  napi_value res;
  CHECK(napi_create_int32(env, err, &res));
  return res;
}

/* setMallocTrim(bytes) -> applied: glibc's M_TRIM_THRESHOLD (free memory at the top of the heap
 * beyond which free() returns it to the kernel). Received data is copied into a new 64 KB buffer
 * per segment; with the default (128 KiB, adjusted upwards only by mmap'd frees) every garbage
 * collection handed the freed buffers back to the kernel and the next ones came back as fresh,
 * faulted-in pages. False where the C library has no such knob (not glibc). */
static napi_value tap_set_malloc_trim(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t bytes = 0;
  if (argc < 1 || napi_get_value_int64(env, argv[0], &bytes) != napi_ok || bytes < 0 || bytes > INT32_MAX) {
    napi_throw_range_error(env, "EINVAL", "setMallocTrim(bytes): 0..2^31-1");
    return NULL;
  }
  bool ok = false;
#ifdef __GLIBC__
  ok = mallopt(M_TRIM_THRESHOLD, (int)bytes) == 1;
#endif
  napi_value res;
  CHECK(napi_get_boolean(env, ok, &res));
  return res;
}

/* setSourceFilter(fd, rate, burst, maxSources) -> counterFd: the kernel drops frames of a source
 * (address + protocol) past `rate` per second (srcfilter.c). Throws with the errno's code and
 * the reason (the verifier's words if it refused the program). */
static napi_value tap_set_source_filter(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t rate, burst, sources;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_uint32(env, argv[1], &rate) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &burst) != napi_ok || napi_get_value_uint32(env, argv[3], &sources) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "setSourceFilter(fd, rate, burst, maxSources)");
    return NULL;
  }
  int counter = -1;
  char err[1024] = {0};
  if (srcfilter_attach(fd, rate, burst, sources, &counter, err, sizeof err) < 0) {
    int e = errno;
    return throw_errno(env, e, err,
                       e == EPERM || e == EACCES ? "a kernel filter needs CAP_BPF and CAP_NET_ADMIN (root); the stack then limits sources itself" : NULL);
  }
  napi_value res;
  CHECK(napi_create_int32(env, counter, &res));
  return res;
}

/* clearSourceFilter(fd): the TAP's kernel filter removed. */
static napi_value tap_clear_source_filter(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, &fd)) return NULL;
  if (srcfilter_detach(fd) < 0) return throw_errno(env, errno, "cannot remove the TAP's source filter (TUNSETFILTEREBPF)", NULL);
  return NULL;
}

/* sourceFilterDrops(counterFd) -> frames the kernel filter dropped. */
static napi_value tap_source_filter_drops(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, &fd)) return NULL;
  uint64_t n = 0;
  if (srcfilter_drops(fd, &n) < 0) return throw_errno(env, errno, "cannot read the source filter's counter (bpf)", NULL);
  napi_value res;
  CHECK(napi_create_double(env, (double)n, &res));
  return res;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, tap_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"startReading", NULL, tap_start_reading, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setSlot", NULL, tap_set_slot, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stopReading", NULL, tap_stop_reading, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setReading", NULL, tap_set_reading, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setRef", NULL, tap_set_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeFrames", NULL, tap_write_frames, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openWriter", NULL, tap_open_writer, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeWriter", NULL, tap_close_writer, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, tap_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readable", NULL, tap_readable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pending", NULL, tap_pending, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readerMode", NULL, tap_reader_mode, NULL, NULL, NULL, napi_enumerable, NULL},
      {"uringSupported", NULL, tap_uring_supported, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setOffload", NULL, tap_set_offload, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setMallocTrim", NULL, tap_set_malloc_trim, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setSourceFilter", NULL, tap_set_source_filter, NULL, NULL, NULL, napi_enumerable, NULL},
      {"clearSourceFilter", NULL, tap_clear_source_filter, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sourceFilterDrops", NULL, tap_source_filter_drops, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
