/* internal.h - (sched-internal) one thread's /proc files (thread.c), shared
 * with the provider (sched.c) and the unit tests. */
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

/* Opens the thread a pidfd names (see thread.c); takes pidfd on success. */
bool qs_sched_thread_open(qs_sched_thread *t, int pidfd, qs_error **errp);
/* Closes the /proc files (not the pidfd). */
void qs_sched_thread_close(qs_sched_thread *t);
/* Refreshes v; false when the thread is gone. */
bool qs_sched_thread_read(qs_sched_thread *t);

#endif
