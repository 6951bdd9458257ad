/*
 * Reading a TAP through io_uring: one multishot read (Linux 6.7+) keeps taking frames into a ring
 * of provided buffers and posts one completion per frame, so a batch of frames costs no system
 * call per frame (read(2) costs one each, ~1 us on this kind of VM; see uring.c). Writing: a
 * batch of frames per io_uring_enter, where writev(2) costs a system call per frame.
 */
#ifndef PAF_TAP_URING_H
#define PAF_TAP_URING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct tap_uring tap_uring_t;

/* Whether this kernel can: io_uring allowed and IORING_OP_READ_MULTISHOT known. Probed once. */
bool uring_supported(void);

/* A ring reading tap_fd into buffers of buf_len bytes with ids below nbufs, none given yet
 * (uring_give). NULL with errno set if it cannot be set up. */
tap_uring_t *uring_open(int tap_fd, uint32_t nbufs, uint32_t buf_len);

/* The ring's fd: readable (poll) when completions wait. */
int uring_fd(const tap_uring_t *u);

/* Give buffer `id` (now at addr) back to the kernel; uring_publish makes the given ones visible. */
void uring_give(tap_uring_t *u, uint16_t id, uint8_t *addr);
void uring_publish(tap_uring_t *u);

/* Submit the multishot read unless one is armed: 0, or -errno. */
int uring_arm(tap_uring_t *u);

/* Take at most max frames: lens[i] bytes in buffer ids[i]; returns how many. *fatal is set to
 * the errno that ended reading for good (the device is gone), else left alone. */
uint32_t uring_reap(tap_uring_t *u, uint32_t max, uint32_t *lens, uint16_t *ids, int *fatal);

/* Completions wait to be reaped. */
bool uring_pending(const tap_uring_t *u);

/* Cancel the read and wait until the kernel no longer uses the buffers, then free everything:
 * true, the buffers may be released. False (never seen): the read did not end, and the ring and
 * the buffers must be kept. */
bool uring_close(tap_uring_t *u);

/* Writing frames to a TAP, a batch per io_uring_enter (see uring.c). */
typedef struct tap_uwriter tap_uwriter_t;

/* Frames one uwriter_write takes at most. */
#define UWRITER_MAX 64

/* A writer for tap_fd; NULL with errno set if it cannot be set up. */
tap_uwriter_t *uwriter_open(int tap_fd);

/* Write frames 0..n-1 (at most UWRITER_MAX), frame i from iov[i*iovcnt ...], in order, and wait
 * until the kernel is done with all of them. res[i]: the bytes written, or -errno: -EAGAIN (the
 * TAP would block), -ECANCELED (not tried: an earlier frame of the batch failed), or the
 * kernel's refusal. Returns how many were submitted (n), or -errno if the kernel took none. */
int uwriter_write(tap_uwriter_t *w, const struct iovec *iov, uint32_t iovcnt, uint32_t n, int32_t *res);

void uwriter_close(tap_uwriter_t *w);

#endif
