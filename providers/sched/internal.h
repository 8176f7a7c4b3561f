/* internal.h - (sched-internal) one thread's /proc files (thread.c) and the
 * batched taskstats reader (taskstats.c), shared with the provider
 * (sched.c) and the unit tests. */
#ifndef QS_SCHED_INTERNAL_H
#define QS_SCHED_INTERNAL_H

#include <stdint.h>
#include <sys/syscall.h>

#include "qs-sched.h"

/* The stats of a thread, in schema order. */
enum {
    QS_SCHED_RUN, QS_SCHED_WAIT, QS_SCHED_SLICES, QS_SCHED_VOLUNTARY,
    QS_SCHED_INVOLUNTARY, QS_SCHED_CPU, QS_SCHED_NSTATS
};
#define QS_SCHED_NSUMS QS_SCHED_CPU   /* target vm sums the cumulative ones */

typedef struct qs_sched_thread {
    int pidfd;
    long tid;
    int schedstat_fd, stat_fd, status_fd;
    uint64_t v[QS_SCHED_NSTATS];   /* as last read */
    bool have;                     /* v holds a full reading */
} qs_sched_thread;

/* What taskstats says of a thread; not valid when the kernel has no such
 * TID (the thread exited). */
typedef struct qs_sched_sample {
    bool valid;
    uint64_t run_ns, wait_ns, slices, voluntary, involuntary;
} qs_sched_sample;

/* Opens the thread a pidfd names (see thread.c); takes pidfd on success. */
bool qs_sched_thread_open(qs_sched_thread *t, int pidfd, qs_error **errp);
/* Closes the /proc files (not the pidfd). */
void qs_sched_thread_close(qs_sched_thread *t);
/* Refreshes v from /proc; false when the thread is gone. */
bool qs_sched_thread_read(qs_sched_thread *t);
/* Refreshes v from a taskstats sample (the CPU still from stat, if the
 * thread ran); false when the thread is gone. */
bool qs_sched_thread_take(qs_sched_thread *t, const qs_sched_sample *s);

typedef struct qs_taskstats qs_taskstats;
/* NULL when the kernel will not answer this process (see taskstats.c). */
qs_taskstats *qs_taskstats_open(void);
void qs_taskstats_close(qs_taskstats *ts);
/* out[i] for tids[i]; false when the exchange failed (nothing usable). */
bool qs_taskstats_read(qs_taskstats *ts, const long *tids, size_t n, qs_sched_sample *out);
/* One reply of n bytes, expected with sequence number seq for tid: *s valid
 * with the thread's numbers, or not valid for "no such thread" (ESRCH);
 * false for anything else, a malformed or unexpected reply included. */
bool qs_taskstats_parse(uint16_t family, const char *buf, size_t n, uint32_t seq, long tid,
                        qs_sched_sample *s);

#endif
