/*
 * qs-sched.h - provider "sched": the host scheduler's view of each vCPU
 * thread, from /proc/PID/task/TID (schedstat, status, stat) or taskstats
 * (see qs_sched_provider_source): time on a CPU, time runnable but waiting
 * for one (the delay a guest feels as steal, the "CPU ready" of other
 * hypervisors), timeslices, context switches and the CPU it last ran on.  Target vcpu: one result per thread under its vCPU's
 * QOM path; target vm: the cumulative stats summed over the threads.
 *
 * Threads are given as thread pidfds (pidfd_open(tid, PIDFD_THREAD), Linux
 * 6.9+): the provider learns the thread from the pidfd itself, never from a
 * number, so a recycled TID can never be misattributed.  It keeps the /proc
 * files open and preads them per query; a thread that exits drops out (at
 * once for a loop that watches qs_sched_provider_fd).
 */
#ifndef QS_SCHED_H
#define QS_SCHED_H

#include "qs-core.h"

typedef struct qs_sched_provider qs_sched_provider;

/* Registers provider "sched", which also takes thread pidfds through
 * add-stats-fd {provider: "sched", target: "vcpu", qom-path, fdname}. */
QS_EXPORT qs_sched_provider *qs_sched_provider_new(qs_registry *reg);
QS_EXPORT void qs_sched_provider_free(qs_sched_provider *p);
/* Adds the vCPU thread behind pidfd at qom_path; takes pidfd on success
 * only.  Refused, with the reason: an fd that is not a pidfd, a process
 * pidfd (a thread pidfd is required), a thread that has exited or is not
 * visible in this PID namespace, one whose /proc files cannot be read, a
 * path already bound to a live thread (one that exited frees its path). */
QS_EXPORT bool qs_sched_provider_add_thread(qs_sched_provider *p, const char *qom_path,
                                            int pidfd, qs_error **errp);
QS_EXPORT bool qs_sched_provider_remove_thread(qs_sched_provider *p, const char *qom_path,
                                               qs_error **errp);
/* An fd that polls readable once a registered thread has exited (an epoll
 * set of the pidfds).  An event loop that watches it and then calls
 * qs_sched_provider_reap has an exited thread's files closed and its
 * schemas changed (QS_EVENT_SCHEMA_CHANGED) at once; without it, at the
 * next query that reads the threads. */
QS_EXPORT int qs_sched_provider_fd(const qs_sched_provider *p);
QS_EXPORT void qs_sched_provider_reap(qs_sched_provider *p);
/* Where the switch counts come from: "taskstats" (one netlink exchange for
 * up to 64 threads, where the kernel answers: CAP_NET_ADMIN) or "proc"
 * (/proc/TID/status, ~4x the cost for a thread that ran). */
QS_EXPORT const char *qs_sched_provider_source(const qs_sched_provider *p);
/* A pidfd for thread tid of this very process (the micro-VM's own vCPU
 * threads), or -1 with *errp (e.g. a kernel older than 6.9). */
QS_EXPORT int qs_sched_thread_pidfd(long tid, qs_error **errp);

#endif
