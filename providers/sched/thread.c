/*
 * thread.c - one vCPU thread as the scheduler sees it, read from /proc.
 *
 * Opening: a thread pidfd names the thread; /proc/self/fdinfo/FD says its
 * TID in our PID namespace ("Pid:", -1 once it exited, 0 if it is not
 * visible here).  The files are opened by that TID and the pidfd is then
 * asked again: the thread cannot have exited and had its TID reused in
 * between if the pidfd still names the same, live TID.
 *
 *     /proc/TID/task/TID/schedstat   "run_ns wait_ns timeslices\n"   (1 us)
 *     /proc/TID/task/TID/stat        field 39: the CPU it last ran on (5 us)
 *     /proc/TID/task/TID/status      voluntary_ctxt_switches,
 *                                    nonvoluntary_ctxt_switches     (12 us)
 *
 * Reading: schedstat on every query.  A thread is switched out (a context
 * switch, a possible change of CPU) only after it ran, and every run
 * changes run_ns or the timeslice count; so when both are as last read,
 * the switches and the CPU are too, and the two costly files are not read
 * again.  Idle vCPU threads, most of a large VM, then cost one small read.
 *
 * Or, where taskstats answers (taskstats.c, a privileged daemon), a
 * sample of it replaces schedstat and status (qs_sched_thread_take), and
 * only stat is read, for a thread that ran.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qs-common.h"
#include "internal.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL          /* linux/pidfd.h, Linux 6.9 */
#endif

/* The TID a pidfd names in our PID namespace: >0, 0 (not visible here),
 * -1 (exited); -2 if fd is not a pidfd. */
static long pidfd_tid(int fd)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0)
        return -2;
    ssize_t n = read(f, buf, sizeof(buf) - 1);
    close(f);
    buf[n > 0 ? n : 0] = 0;
    char *pid = strstr(buf, "\nPid:\t");
    return pid ? strtol(pid + 6, NULL, 10) : -2;
}

static int open_proc(long tid, const char *name, qs_error **errp)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%ld/task/%ld/%s", tid, tid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        qs_error_setg(errp, "Cannot read the thread's statistics: %s: %s", path,
                      strerror(errno));
    return fd;
}

static bool check_pidfd(int pidfd, long *tid, qs_error **errp)
{
    int flags = fcntl(pidfd, F_GETFL);
    *tid = flags < 0 ? -2 : pidfd_tid(pidfd);
    if (*tid == -2)
        qs_error_setg(errp, "The file descriptor is not a pidfd");
    else if (!(flags & PIDFD_THREAD))
        qs_error_setg(errp, "The pidfd names a process; a vCPU needs a thread pidfd "
                      "(pidfd_open(tid, PIDFD_THREAD))");
    else if (*tid == -1)
        qs_error_setg(errp, "The thread has exited");
    else if (*tid == 0)
        qs_error_setg(errp, "The thread is not visible in qstatsd's PID namespace");
    return *tid > 0 && (flags & PIDFD_THREAD);
}

bool qs_sched_thread_open(qs_sched_thread *t, int pidfd, qs_error **errp)
{
    long tid;
    memset(t, 0, sizeof(*t));
    t->schedstat_fd = t->stat_fd = t->status_fd = -1;
    if (!check_pidfd(pidfd, &tid, errp))
        return false;
    if ((t->schedstat_fd = open_proc(tid, "schedstat", errp)) < 0 ||
        (t->stat_fd = open_proc(tid, "stat", errp)) < 0 ||
        (t->status_fd = open_proc(tid, "status", errp)) < 0 ||
        !qs_sched_thread_read(t)) {
        qs_sched_thread_close(t);
        qs_error_setg(errp, "Cannot read the thread's statistics");
        return false;
    }
    if (pidfd_tid(pidfd) != tid) {          /* it exited meanwhile */
        qs_sched_thread_close(t);
        qs_error_setg(errp, "The thread has exited");
        return false;
    }
    t->pidfd = pidfd;
    t->tid = tid;
    return true;
}

void qs_sched_thread_close(qs_sched_thread *t)
{
    int *fds[] = { &t->schedstat_fd, &t->stat_fd, &t->status_fd };
    for (size_t i = 0; i < 3; i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}

/* The whole of a small /proc file, NUL-terminated; false when the thread
 * is gone (ESRCH) or the read fails. */
static bool read_file(int fd, char *buf, size_t len)
{
    ssize_t n = pread(fd, buf, len - 1, 0);
    if (n <= 0)
        return false;
    buf[n] = 0;
    return true;
}

static uint64_t field_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

/* Field 39 of stat (processor); the comm in field 2 may hold anything,
 * so the count starts after its closing parenthesis. */
static uint64_t stat_cpu(const char *text)
{
    const char *p = strrchr(text, ')');
    for (int field = 2; p && field < 39; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* A thread is switched out, and may change CPU, only after it ran. */
static bool ran_since(const qs_sched_thread *t, uint64_t run, uint64_t slices)
{
    return !t->have || run != t->v[QS_SCHED_RUN] || slices != t->v[QS_SCHED_SLICES];
}

static bool read_cpu(qs_sched_thread *t)
{
    char buf[4096];
    if (!read_file(t->stat_fd, buf, sizeof(buf)))
        return false;
    t->v[QS_SCHED_CPU] = stat_cpu(buf);
    t->have = true;
    return true;
}

bool qs_sched_thread_read(qs_sched_thread *t)
{
    char buf[4096];   /* status: 1.4 KiB here, more with wide CPU and node masks */
    uint64_t run, wait, slices;
    if (!read_file(t->schedstat_fd, buf, sizeof(buf)) ||
        sscanf(buf, "%" SCNu64 " %" SCNu64 " %" SCNu64, &run, &wait, &slices) != 3)
        return false;
    bool ran = ran_since(t, run, slices);
    t->v[QS_SCHED_RUN] = run;
    t->v[QS_SCHED_WAIT] = wait;
    t->v[QS_SCHED_SLICES] = slices;
    if (!ran)
        return true;
    if (!read_file(t->status_fd, buf, sizeof(buf)))
        return false;
    t->v[QS_SCHED_VOLUNTARY] = field_after(buf, "\nvoluntary_ctxt_switches:");
    t->v[QS_SCHED_INVOLUNTARY] = field_after(buf, "\nnonvoluntary_ctxt_switches:");
    return read_cpu(t);
}

bool qs_sched_thread_take(qs_sched_thread *t, const qs_sched_sample *s)
{
    if (!s->valid)
        return false;
    bool ran = ran_since(t, s->run_ns, s->slices);
    /* The same scheduler fields schedstat and status print, unformatted. */
    t->v[QS_SCHED_RUN] = s->run_ns;
    t->v[QS_SCHED_WAIT] = s->wait_ns;
    t->v[QS_SCHED_SLICES] = s->slices;
    t->v[QS_SCHED_VOLUNTARY] = s->voluntary;
    t->v[QS_SCHED_INVOLUNTARY] = s->involuntary;
    return !ran || read_cpu(t);
}

int qs_sched_thread_pidfd(long tid, qs_error **errp)
{
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)tid, PIDFD_THREAD);
    if (fd < 0)
        qs_error_setg(errp, "pidfd_open of thread %ld: %s (thread pidfds need Linux 6.9)",
                      tid, strerror(errno));
    else
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}
