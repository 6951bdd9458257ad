/* The kernel-side per-source rate limit of a TAP (srcfilter.c). */
#ifndef PAF_SRCFILTER_H
#define PAF_SRCFILTER_H
#include <stddef.h>
#include <stdint.h>

#define SRCFILTER_MAX_RATE 10000000
#define SRCFILTER_MAX_BURST 10000000

/* Attach (replacing any) a filter letting each source `rate` frames per second with `burst` saved
 * up, tracking at most `max_sources`. 0 and *counter_fd (for srcfilter_drops) on success; -1 with
 * errno and a message in err otherwise. */
int srcfilter_attach(int tapfd, uint32_t rate, uint32_t burst, uint32_t max_sources, int *counter_fd, char *err, size_t errlen);
/* Remove the TAP's filter (none attached is not an error). */
int srcfilter_detach(int tapfd);
/* Frames the filter dropped so far. */
int srcfilter_drops(int counter_fd, uint64_t *out);
#endif
