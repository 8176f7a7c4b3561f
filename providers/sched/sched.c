/*
 * sched.c - provider "sched": vCPU threads (thread.c reads each one, from
 * taskstats in batches where taskstats.c can, else from /proc) turned into
 * registry results.  Target vcpu: one result per thread under its vCPU's
 * QOM path, stats in schema order; target vm: the cumulative stats summed
 * over the threads.  A thread that exits is dropped at the next query that
 * notices (its pidfd and files closed), without an error; an epoll set of
 * the pidfds says which exited, since a taskstats reply names only a TID.
 * The threads come from the micro-VM (qstatsd) or as pidfds over QMP
 * (add-stats-fd {provider: "sched"}), the fd handlers below.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "qs-common.h"
#include "internal.h"

#define NS(nm, ty, text) { .name = nm, .type = ty, .unit = QS_UNIT_SECONDS, .base = 10, \
                           .exponent = -9, .size = 1, .description = text }
#define COUNT(nm, ty, text) { .name = nm, .type = ty, .size = 1, .description = text }

/* The vCPU schema; the VM's is its first QS_SCHED_NSUMS entries. */
static const qs_schema_value schema[QS_SCHED_NSTATS] = {
    NS("run_ns", QS_TYPE_CUMULATIVE, "Time the vCPU thread ran on a host CPU."),
    NS("wait_ns", QS_TYPE_CUMULATIVE, "Time the vCPU thread was ready to run but "
       "waited for a host CPU (steal, as the guest feels it)."),
    COUNT("timeslices", QS_TYPE_CUMULATIVE, "Times the vCPU thread was put on a host CPU."),
    COUNT("voluntary_switches", QS_TYPE_CUMULATIVE, "Times the vCPU thread gave up its "
          "CPU (to sleep or wait)."),
    COUNT("involuntary_switches", QS_TYPE_CUMULATIVE, "Times the vCPU thread was "
          "preempted while it could have run."),
    COUNT("last_cpu", QS_TYPE_INSTANT, "The host CPU the vCPU thread last ran on."),
};

typedef struct sched_vcpu {
    char *qom_path;
    qs_sched_thread thread;
    bool exited;             /* its pidfd said so */
} sched_vcpu;

struct qs_sched_provider {
    qs_registry *reg;
    qs_provider_entry *entry;
    sched_vcpu **vcpus;      /* natural order of path */
    size_t n, cap;
    qs_taskstats *ts;        /* NULL: read /proc */
    int epfd;                /* the pidfds, readable once their thread exits */
    size_t *pick;            /* a query's threads: their index, TID, sample */
    long *tids;
    qs_sched_sample *samples;
};

static void vcpu_free(qs_sched_provider *p, sched_vcpu *v)
{
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, v->thread.pidfd, NULL);
    qs_registry_vcpu_set_thread(p->reg, v->qom_path, 0);
    qs_registry_vcpu_unref(p->reg, v->qom_path);
    qs_sched_thread_close(&v->thread);
    close(v->thread.pidfd);
    free(v->qom_path);
    free(v);
}

static void drop(qs_sched_provider *p, size_t i)
{
    vcpu_free(p, p->vcpus[i]);
    memmove(&p->vcpus[i], &p->vcpus[i + 1], (p->n - i - 1) * sizeof(*p->vcpus));
    p->n--;
    qs_registry_schema_changed(p->reg, "sched", QS_TARGET_VCPU);
    if (!p->n)
        qs_registry_schema_changed(p->reg, "sched", QS_TARGET_VM);
}

/* Marks the threads whose pidfd says they exited.  Asked after a taskstats
 * read: a thread alive now was alive throughout, so no other task can have
 * held its TID meanwhile. */
static void mark_exited(qs_sched_provider *p)
{
    struct epoll_event ev[64];
    int n;
    while ((n = epoll_wait(p->epfd, ev, 64, 0)) > 0)
        for (int i = 0; i < n; i++) {
            sched_vcpu *v = ev[i].data.ptr;
            v->exited = true;
            epoll_ctl(p->epfd, EPOLL_CTL_DEL, v->thread.pidfd, NULL);
        }
}

/* The threads a query asks for, in p->pick (indices) and p->tids. */
static size_t pick(qs_sched_provider *p, const qs_strlist *targets)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        if (qs_strlist_match(targets, p->vcpus[i]->qom_path)) {
            p->pick[n] = i;
            p->tids[n++] = p->vcpus[i]->thread.tid;
        }
    return n;
}

static void drop_exited(qs_sched_provider *p)
{
    for (size_t i = p->n; i-- > 0;)
        if (p->vcpus[i]->exited)
            drop(p, i);
}

/* One pass over the threads a query asks for, from taskstats in batches
 * where it answers (for good to /proc the first time it fails), else from
 * /proc; a thread gone is dropped (from the last, so indices hold). */
static void refresh(qs_sched_provider *p, const qs_strlist *targets)
{
    size_t n = pick(p, targets);
    if (p->ts && !qs_taskstats_read(p->ts, p->tids, n, p->samples)) {
        qs_taskstats_close(p->ts);
        p->ts = NULL;
    }
    mark_exited(p);
    while (n--) {
        sched_vcpu *v = p->vcpus[p->pick[n]];
        bool live = !v->exited && (p->ts ? qs_sched_thread_take(&v->thread, &p->samples[n])
                                         : qs_sched_thread_read(&v->thread));
        if (!live)
            drop(p, p->pick[n]);
    }
    drop_exited(p);
}

int qs_sched_provider_fd(const qs_sched_provider *p)
{
    return p->epfd;
}

void qs_sched_provider_reap(qs_sched_provider *p)
{
    mark_exited(p);
    drop_exited(p);
}

static void add_values(qs_results *out, const char *path, const qs_strlist *names,
                       const uint64_t *v, size_t n)
{
    size_t base = qs_results_reserve(out, n);
    if (base == QS_RESULTS_FULL)
        return;
    memcpy(qs_results_values(out, base), v, n * sizeof(*v));
    qs_results_begin(out, "sched", path);
    for (size_t i = 0; i < n; i++)
        if (qs_strlist_match(names, schema[i].name))
            qs_results_add(out, &schema[i], base + i);
    qs_results_end(out, true);
}

static bool sched_stats(void *opaque, qs_results *out, qs_target target,
                        const qs_strlist *names, const qs_strlist *targets, qs_error **errp)
{
    qs_sched_provider *p = opaque;
    if (target == QS_TARGET_VCPU) {
        refresh(p, targets);
        for (size_t i = 0; i < p->n; i++)
            if (qs_strlist_match(targets, p->vcpus[i]->qom_path))
                add_values(out, p->vcpus[i]->qom_path, names, p->vcpus[i]->thread.v,
                           QS_SCHED_NSTATS);
    } else if (target == QS_TARGET_VM) {
        refresh(p, NULL);
        uint64_t sum[QS_SCHED_NSUMS] = { 0 };
        for (size_t i = 0; i < p->n; i++)
            for (size_t k = 0; k < QS_SCHED_NSUMS; k++)
                sum[k] += p->vcpus[i]->thread.v[k];
        if (p->n)
            add_values(out, NULL, names, sum, QS_SCHED_NSUMS);
    }
    return true;
}

static bool sched_schemas(void *opaque, qs_schemas *out, qs_error **errp)
{
    qs_sched_provider *p = opaque;
    if (p->n) {
        qs_schemas_add(out, "sched", QS_TARGET_VM, schema, QS_SCHED_NSUMS);
        qs_schemas_add(out, "sched", QS_TARGET_VCPU, schema, QS_SCHED_NSTATS);
    }
    return true;
}

/* ---- threads ------------------------------------------------------------- */

static ssize_t find(const qs_sched_provider *p, const char *qom_path)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->vcpus[i]->qom_path, qom_path) == 0)
            return (ssize_t)i;
    return -1;
}

static void grow(qs_sched_provider *p)
{
    p->cap = p->cap ? 2 * p->cap : 8;
    p->vcpus = qs_realloc(p->vcpus, p->cap * sizeof(*p->vcpus));
    p->pick = qs_realloc(p->pick, p->cap * sizeof(*p->pick));
    p->tids = qs_realloc(p->tids, p->cap * sizeof(*p->tids));
    p->samples = qs_realloc(p->samples, p->cap * sizeof(*p->samples));
}

bool qs_sched_provider_add_thread(qs_sched_provider *p, const char *qom_path, int pidfd,
                                  qs_error **errp)
{
    ssize_t bound = find(p, qom_path);
    /* A thread that exited since the last query no longer holds its path:
     * a VMM that replaces a vCPU thread hands the new one over at once. */
    if (bound >= 0 && !qs_sched_thread_read(&p->vcpus[bound]->thread)) {
        drop(p, (size_t)bound);
        bound = -1;
    }
    if (bound >= 0) {
        qs_error_setg(errp, "A thread is already registered at '%s'", qom_path);
        return false;
    }
    sched_vcpu *v = qs_calloc(1, sizeof(*v));
    if (!qs_sched_thread_open(&v->thread, pidfd, errp)) {
        free(v);
        return false;
    }
    v->qom_path = qs_strdup(qom_path);
    if (p->n == p->cap)
        grow(p);
    size_t at = p->n;
    while (at > 0 && strverscmp(p->vcpus[at - 1]->qom_path, qom_path) > 0)
        at--;
    memmove(&p->vcpus[at + 1], &p->vcpus[at], (p->n - at) * sizeof(*p->vcpus));
    p->vcpus[at] = v;
    p->n++;
    epoll_ctl(p->epfd, EPOLL_CTL_ADD, pidfd,
              &(struct epoll_event){ .events = EPOLLIN, .data.ptr = v });
    qs_registry_vcpu_ref(p->reg, qom_path);
    qs_registry_vcpu_set_thread(p->reg, qom_path, v->thread.tid);
    if (p->n == 1)
        qs_registry_schema_changed(p->reg, "sched", QS_TARGET_VM);
    qs_registry_schema_changed(p->reg, "sched", QS_TARGET_VCPU);
    return true;
}

bool qs_sched_provider_remove_thread(qs_sched_provider *p, const char *qom_path,
                                     qs_error **errp)
{
    ssize_t i = find(p, qom_path);
    if (i < 0) {
        qs_error_setg(errp, "No thread registered for vCPU '%s'", qom_path);
        return false;
    }
    drop(p, (size_t)i);
    return true;
}

/* add-stats-fd / remove-stats-fd with provider "sched". */
static bool sched_add_fd(void *opaque, qs_target target, const char *qom_path, int fd,
                         qs_error **errp)
{
    if (target != QS_TARGET_VCPU) {
        qs_error_setg(errp, "Provider 'sched' takes vCPU threads: use target 'vcpu'");
        return false;
    }
    return qs_sched_provider_add_thread(opaque, qom_path, fd, errp);
}

static bool sched_remove_fd(void *opaque, qs_target target, const char *qom_path,
                            qs_error **errp)
{
    if (target != QS_TARGET_VCPU) {
        qs_error_setg(errp, "Provider 'sched' takes vCPU threads: use target 'vcpu'");
        return false;
    }
    return qs_sched_provider_remove_thread(opaque, qom_path, errp);
}

const char *qs_sched_provider_source(const qs_sched_provider *p)
{
    return p->ts ? "taskstats" : "proc";
}

qs_sched_provider *qs_sched_provider_new(qs_registry *reg)
{
    qs_sched_provider *p = qs_calloc(1, sizeof(*p));
    p->reg = reg;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->ts = p->epfd >= 0 ? qs_taskstats_open() : NULL;   /* unsafe without the pidfds */
    p->entry = qs_registry_add(reg, "sched", sched_stats, sched_schemas, p, NULL);
    qs_provider_set_fd_handlers(p->entry, sched_add_fd, sched_remove_fd);
    return p;
}

void qs_sched_provider_free(qs_sched_provider *p)
{
    if (!p)
        return;
    qs_registry_remove(p->reg, p->entry);
    for (size_t i = 0; i < p->n; i++)
        vcpu_free(p, p->vcpus[i]);
    qs_taskstats_close(p->ts);
    close(p->epfd);
    free(p->vcpus);
    free(p->pick);
    free(p->tids);
    free(p->samples);
    free(p);
}
