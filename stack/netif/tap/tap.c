/*
 * paf_tap: the one piece of paf that JavaScript cannot do itself — open a Linux TAP device and
 * move frames between it and a reusable buffer. Everything else (batching policy, queues,
 * protocol) lives in TypeScript (stack/netif/tap.ts).
 *
 *   open(name, vnetHdr, multiQueue, netnsPath, up) -> [fd, ifname]
 *   startReading(fd, slab, frameSize, maxFrames, lengths, onBatch) -> handle
 *   stopReading(handle)
 *   writeFrames(fd, frames[], start, vnetHdrLen) -> number written (stops at EAGAIN)
 *   close(fd)
 *
 * Reading uses libuv's uv_poll (level triggered) on the non-blocking fd: one readiness callback
 * reads up to maxFrames frames into the slab and calls onBatch(count) once, so the cost of the
 * JS call is paid per batch, not per frame.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <node_api.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#define CHECK(call)                                                    \
  do {                                                                 \
    if ((call) != napi_ok) {                                           \
      napi_throw_error(env, "EINTERNAL", "paf_tap: N-API call failed"); \
      return NULL;                                                     \
    }                                                                  \
  } while (0)

/* Throw an Error whose .code is the errno name and whose message says what to do. */
static napi_value throw_errno(napi_env env, int err, const char *what, const char *hint) {
  char msg[512];
  const char *code = "EIO";
  switch (err) {
    case ENOENT: code = "ENOENT"; break;
    case EPERM: code = "EPERM"; break;
    case EACCES: code = "EACCES"; break;
    case EBUSY: code = "EBUSY"; break;
    case EINVAL: code = "EINVAL"; break;
    case ENODEV: code = "ENODEV"; break;
    case EEXIST: code = "EEXIST"; break;
    case EAGAIN: code = "EAGAIN"; break;
    case EBADF: code = "EBADF"; break;
    case ENOBUFS: code = "ENOBUFS"; break;
    case EMSGSIZE: code = "EMSGSIZE"; break;
    case EIO: code = "EIO"; break;
    default: break;
  }
  snprintf(msg, sizeof msg, "%s: %s%s%s", what, strerror(err), hint ? ". " : "", hint ? hint : "");
  napi_value e, m, c;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c);
  napi_create_error(env, c, m, &e);
  napi_set_named_property(env, e, "code", c);
  napi_value errnov;
  napi_create_int32(env, -err, &errnov);
  napi_set_named_property(env, e, "errno", errnov);
  napi_throw(env, e);
  return NULL;
}

static int get_bool(napi_env env, napi_value v) {
  bool b = false;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) == napi_ok && t == napi_boolean) napi_get_value_bool(env, v, &b);
  return b;
}

/* open(name, vnetHdr, multiQueue, netnsPath|null, up) */
static napi_value tap_open(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[64] = {0};
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "TAP name must be a string");
    return NULL;
  }
  if (len == 0 || len >= IFNAMSIZ) {
    char m[128];
    snprintf(m, sizeof m, "invalid TAP name \"%s\": 1 to %d characters", name, IFNAMSIZ - 1);
    napi_value e, mm, c;
    napi_create_string_utf8(env, m, NAPI_AUTO_LENGTH, &mm);
    napi_create_string_utf8(env, "EINVAL", NAPI_AUTO_LENGTH, &c);
    napi_create_error(env, c, mm, &e);
    napi_set_named_property(env, e, "code", c);
    napi_throw(env, e);
    return NULL;
  }
  int vnet = get_bool(env, argv[1]);
  int mq = get_bool(env, argv[2]);
  int up = get_bool(env, argv[4]);
  char nspath[4096] = {0};
  napi_valuetype t;
  napi_typeof(env, argv[3], &t);
  if (t == napi_string) napi_get_value_string_utf8(env, argv[3], nspath, sizeof nspath, &len);

  /* Enter the target namespace on this thread only for the open+ioctl, then come back: the
   * device is created there, while the process (and its other threads) stay where they are. */
  int origns = -1, targetns = -1;
  if (nspath[0]) {
    origns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (origns < 0) return throw_errno(env, errno, "cannot open /proc/thread-self/ns/net", NULL);
    targetns = open(nspath, O_RDONLY | O_CLOEXEC);
    if (targetns < 0) {
      int err = errno;
      close(origns);
      return throw_errno(env, err, nspath, "is the namespace created (ip netns add NAME)?");
    }
    if (setns(targetns, CLONE_NEWNET) < 0) {
      int err = errno;
      close(origns);
      close(targetns);
      return throw_errno(env, err, "setns into the TAP's namespace", "needs CAP_SYS_ADMIN (root)");
    }
    close(targetns);
  }

  int fd = -1, err = 0;
  const char *what = NULL, *hint = NULL;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
    what = "cannot open /dev/net/tun";
    hint = err == ENOENT ? "load the tun module (modprobe tun) or give the container /dev/net/tun"
                         : "run as root, or use a persistent TAP owned by your user: sudo ip tuntap add NAME mode tap user $USER";
    goto out;
  }
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0) | (mq ? IFF_MULTI_QUEUE : 0);
  memcpy(ifr.ifr_name, name, strlen(name)); /* length checked above: < IFNAMSIZ */
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    err = errno;
    what = "cannot attach TAP";
    if (err == EBUSY) hint = "the TAP is in use by another process (or was created with other flags)";
    else if (err == EPERM || err == EACCES) hint = "run as root, or create a persistent TAP owned by your user: sudo ip tuntap add NAME mode tap user $USER";
    else if (err == EINVAL) hint = "the name is taken by a device that is not a TAP, or the flags are not supported";
    close(fd);
    fd = -1;
    goto out;
  }
  if (vnet) {
    int hdrsz = 10; /* struct virtio_net_hdr, no mergeable rx buffers */
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0 || ioctl(fd, TUNSETOFFLOAD, 0) < 0) {
      err = errno;
      what = "cannot set up the virtio-net header";
      close(fd);
      fd = -1;
      goto out;
    }
  }
  if (up) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s >= 0) {
      struct ifreq r2;
      memset(&r2, 0, sizeof r2);
      memcpy(r2.ifr_name, ifr.ifr_name, IFNAMSIZ);
      if (ioctl(s, SIOCGIFFLAGS, &r2) == 0) {
        r2.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &r2) < 0) { err = errno; what = "cannot bring the TAP up"; }
      }
      close(s);
      if (err) { close(fd); fd = -1; goto out; }
    }
  }
out:
  if (origns >= 0) {
    setns(origns, CLONE_NEWNET);
    close(origns);
  }
  if (fd < 0) {
    char w[256];
    snprintf(w, sizeof w, "%s %s", what ? what : "TAP", name);
    return throw_errno(env, err ? err : EIO, w, hint);
  }
  napi_value res, jfd, jname;
  CHECK(napi_create_array_with_length(env, 2, &res));
  CHECK(napi_create_int32(env, fd, &jfd));
  CHECK(napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &jname));
  napi_set_element(env, res, 0, jfd);
  napi_set_element(env, res, 1, jname);
  return res;
}

typedef struct reader {
  uv_poll_t poll;
  napi_env env;
  int fd;
  uint8_t *slab;
  size_t frame_size;
  uint32_t max_frames;
  uint32_t *lengths;
  napi_ref slab_ref, lengths_ref, cb_ref;
  napi_async_context actx;
  int stopped;
} reader_t;

static void on_poll_closed(uv_handle_t *h) {
  reader_t *r = (reader_t *)h->data;
  free(r);
}

static void on_readable(uv_poll_t *p, int status, int events) {
  reader_t *r = (reader_t *)p->data;
  if (r->stopped) return;
  uint32_t n = 0;
  /* Drain up to one batch; uv_poll is level triggered, so whatever is left wakes us again
   * after the event loop has run timers and writes. */
  while (n < r->max_frames) {
    ssize_t got = read(r->fd, r->slab + (size_t)n * r->frame_size, r->frame_size);
    if (got < 0) {
      if (errno == EINTR) continue;
      break; /* EAGAIN: nothing more for now; other errors surface as EOF-like silence */
    }
    r->lengths[n++] = (uint32_t)got;
  }
  if (n == 0 && status == 0) return;
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, argv[1], result;
  napi_get_reference_value(env, r->cb_ref, &cb);
  napi_get_global(env, &recv); /* make_callback needs an object receiver */
  napi_create_uint32(env, n, &argv[0]);
  napi_make_callback(env, r->actx, recv, cb, 1, argv, &result);
  napi_close_handle_scope(env, scope);
}

/* startReading(fd, slab, frameSize, maxFrames, lengths, onBatch) */
static napi_value tap_start_reading(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t frame_size, max_frames;
  void *slab;
  size_t slab_len;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_buffer_info(env, argv[1], &slab, &slab_len));
  CHECK(napi_get_value_uint32(env, argv[2], &frame_size));
  CHECK(napi_get_value_uint32(env, argv[3], &max_frames));
  napi_typedarray_type tt;
  size_t lens_len;
  void *lens;
  napi_value ab;
  size_t off;
  CHECK(napi_get_typedarray_info(env, argv[4], &tt, &lens_len, &lens, &ab, &off));
  if (tt != napi_uint32_array || lens_len < max_frames || slab_len < (size_t)frame_size * max_frames) {
    napi_throw_range_error(env, "EINVAL", "startReading: slab or lengths too small for the batch");
    return NULL;
  }
  reader_t *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, ENOMEM, "startReading", NULL);
  r->env = env;
  r->fd = fd;
  r->slab = slab;
  r->frame_size = frame_size;
  r->max_frames = max_frames;
  r->lengths = lens;
  napi_create_reference(env, argv[1], 1, &r->slab_ref);
  napi_create_reference(env, argv[4], 1, &r->lengths_ref);
  napi_create_reference(env, argv[5], 1, &r->cb_ref);
  napi_value name;
  napi_create_string_utf8(env, "paf:tap", NAPI_AUTO_LENGTH, &name);
  napi_value resource;
  napi_create_object(env, &resource);
  CHECK(napi_async_init(env, resource, name, &r->actx));
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, (struct uv_loop_s **)&loop));
  int rc = uv_poll_init(loop, &r->poll, fd);
  if (rc != 0) {
    free(r);
    return throw_errno(env, -rc, "uv_poll_init on the TAP fd", NULL);
  }
  r->poll.data = r;
  uv_poll_start(&r->poll, UV_READABLE, on_readable);
  napi_value handle;
  CHECK(napi_create_external(env, r, NULL, NULL, &handle));
  return handle;
}

static napi_value tap_stop_reading(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  reader_t *r;
  CHECK(napi_get_value_external(env, argv[0], (void **)&r));
  if (!r || r->stopped) return NULL;
  r->stopped = 1;
  uv_poll_stop(&r->poll);
  napi_delete_reference(env, r->slab_ref);
  napi_delete_reference(env, r->lengths_ref);
  napi_delete_reference(env, r->cb_ref);
  napi_async_destroy(env, r->actx);
  uv_close((uv_handle_t *)&r->poll, on_poll_closed);
  return NULL;
}

/* writeFrames(fd, frames[], start, vnetHdrLen) -> written. A TAP takes one frame per write. */
static napi_value tap_write_frames(napi_env env, napi_callback_info info) {
  static const uint8_t zero_hdr[16] = {0};
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t start, n, hdr;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_array_length(env, argv[1], &n));
  CHECK(napi_get_value_uint32(env, argv[2], &start));
  CHECK(napi_get_value_uint32(env, argv[3], &hdr));
  if (hdr > sizeof zero_hdr) hdr = sizeof zero_hdr;
  uint32_t i = start;
  for (; i < n; i++) {
    napi_value el;
    napi_get_element(env, argv[1], i, &el);
    napi_typedarray_type tt;
    size_t len, off;
    void *data;
    napi_value ab;
    if (napi_get_typedarray_info(env, el, &tt, &len, &data, &ab, &off) != napi_ok) continue;
    struct iovec iov[2] = {{(void *)zero_hdr, hdr}, {data, len}};
    ssize_t w;
    do {
      w = hdr ? writev(fd, iov, 2) : write(fd, data, len);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
      if (errno == EAGAIN) break;
      /* A frame the kernel refuses (EINVAL for a bad size, EIO when down) is dropped, not retried. */
      continue;
    }
  }
  napi_value res;
  CHECK(napi_create_uint32(env, i - start, &res));
  return res;
}

static napi_value tap_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  if (fd >= 0) close(fd);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, tap_open, NULL, NULL, NULL, napi_default, NULL},
      {"startReading", NULL, tap_start_reading, NULL, NULL, NULL, napi_default, NULL},
      {"stopReading", NULL, tap_stop_reading, NULL, NULL, NULL, napi_default, NULL},
      {"writeFrames", NULL, tap_write_frames, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, tap_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
