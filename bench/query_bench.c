/*
 * query_bench.c - micro-benchmark of the query-stats hot path, without
 * sockets, so that the numbers are the daemon's own cost.
 *
 * For each vCPU count it builds the registry with the kvm provider fed by
 * a real micro-VM, or by the recorded VM's binary-stats files in
 * tests/fixtures/recorded-linux-6.18 opened once per vCPU (--source
 * fixtures: deterministic, valgrind-friendly, and what runs where /dev/kvm
 * is missing; the default "auto" takes the micro-VM when one can be made
 * and says which it took), then times two layers:
 *   registry  qs_registry_query_stats, target vcpu, into a reused
 *             qs_results: one pread per vCPU fd plus the filter walk;
 *   request   one whole QMP request through qs_qmp_session_handle_text on
 *             a socket-less session: jansson parse, envelope, validation,
 *             the query and the JSON encoding of the reply (the encoder is
 *             private to qmp/commands.c, so it is reached this way).
 * and counts heap allocations per query after warm-up.  The counting works
 * by defining malloc/calloc/realloc/free in this executable: glibc lets a
 * program replace them, and the definitions here forward to __libc_* and
 * bump a counter, so allocations made inside libqstats.so and jansson are
 * seen too.  That replacement cannot coexist with AddressSanitizer, so a
 * QS_SANITIZE build reports allocations as "n/a".
 *
 * Usage: query_bench [--source auto|microvm|fixtures] [--vcpus 64,1024]
 *                    [--iters N] [--only registry|request|request-vcpu] [--json FILE]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "qmp/internal.h"
#include "qs-kvm.h"
#include "qs-microvm.h"

#ifndef QS_FIXTURES_DIR
#define QS_FIXTURES_DIR "tests/fixtures"
#endif

/* ---- allocation counting ------------------------------------------------ */

#ifndef QS_BENCH_NO_ALLOC_COUNT
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

/* The one piece of process-global state: malloc has no context pointer. */
static atomic_ulong alloc_count;

void *malloc(size_t n)
{
    atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
    return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

static long allocs_now(void)
{
    return (long)atomic_load_explicit(&alloc_count, memory_order_relaxed);
}
#else
static long allocs_now(void)
{
    return -1;
}
#endif

/* ---- setup -------------------------------------------------------------- */

typedef struct bench_env {
    unsigned nvcpus;
    qs_microvm *vm;
    qs_registry *reg;
    qs_kvm_provider *kvm;
    uv_loop_t loop;
    qs_qmp *qmp;
    qs_qmp_session session;
} bench_env;

static void die(const char *what, qs_error *err)
{
    fprintf(stderr, "query_bench: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

static int open_fixture(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", QS_FIXTURES_DIR, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die(path, NULL);
    return fd;
}

/* Same QOM paths as qstatsd, so request texts are interchangeable; vCPU i
 * reads the recording's vcpu(i mod 2), as scripts/recording.py make lays
 * out an N-vCPU recording. */
static void add_vcpus(bench_env *e, bool fixtures)
{
    qs_error *err = NULL;
    int fd = fixtures ? open_fixture("recorded-linux-6.18/vm.bin")
                      : qs_microvm_vm_stats_fd(e->vm, &err);
    if (fd < 0 || !qs_kvm_provider_set_vm(e->kvm, fd, &err))
        die("VM stats fd", err);
    for (unsigned i = 0; i < e->nvcpus; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/machine/unattached/device[%u]", i);
        fd = fixtures ? open_fixture(i % 2 ? "recorded-linux-6.18/vcpu1.bin"
                                           : "recorded-linux-6.18/vcpu0.bin")
                      : qs_microvm_vcpu_stats_fd(e->vm, i, &err);
        if (fd < 0 || !qs_kvm_provider_add_vcpu(e->kvm, path, fd, &err))
            die("vCPU stats fd", err);
    }
}

static void env_init(bench_env *e, unsigned nvcpus, bool fixtures)
{
    qs_error *err = NULL;
    memset(e, 0, sizeof(*e));
    e->nvcpus = nvcpus;
    if (!fixtures && !(e->vm = qs_microvm_new(nvcpus, &err)))
        die("micro-VM", err);
    e->reg = qs_registry_new();
    e->kvm = qs_kvm_provider_new(e->reg);
    add_vcpus(e, fixtures);
    uv_loop_init(&e->loop);
    e->qmp = qs_qmp_new(&e->loop, &(qs_qmp_config){ .reg = e->reg }, &err);
    if (!e->qmp)
        die("QMP", err);
    /* A session without a socket: replies accumulate in out. */
    e->session.server = e->qmp;
    e->session.fd = -1;
    e->session.is_unix = true;
    e->session.negotiated = true;
    qs_buf_init(&e->session.out);
}

static void env_destroy(bench_env *e)
{
    qs_buf_free(&e->session.out);
    qs_qmp_free(e->qmp);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    uv_loop_close(&e->loop);
    qs_kvm_provider_free(e->kvm);
    qs_registry_free(e->reg);
    qs_microvm_free(e->vm);
}

/* ---- measurement ---------------------------------------------------------- */

typedef struct measure {
    const char *layer, *what;
    unsigned nvcpus;
    unsigned iters;
    size_t nstats;         /* stats in one answer */
    size_t reply_bytes;    /* request layer only */
    double median_ns, p99_ns, mean_ns;
    long allocs;           /* over all timed iterations; -1 unknown */
} measure;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void summarize(measure *m, uint64_t *t, unsigned n)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < n; i++)
        sum += t[i];
    qsort(t, n, sizeof(*t), cmp_u64);
    m->median_ns = (double)t[n / 2];
    m->p99_ns = (double)t[(size_t)n * 99 / 100];
    m->mean_ns = (double)sum / n;
}

static size_t count_stats(const qs_results *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nres; i++)
        n += r->res[i].count;
    return n;
}

/* The registry alone: what the kvm provider and the filter cost. */
static void bench_registry(bench_env *e, unsigned iters, measure *m)
{
    qs_results r;
    qs_filter f = { .target = QS_TARGET_VCPU };
    qs_error *err = NULL;
    uint64_t *t = qs_calloc(iters, sizeof(*t));
    unsigned warm = iters / 10 + 5;

    qs_results_init(&r);
    for (unsigned i = 0; i < warm + iters; i++) {
        if (i == warm)
            m->allocs = allocs_now();
        uint64_t t0 = now_ns();
        qs_results_reset(&r);
        if (!qs_registry_query_stats(e->reg, &f, &r, &err))
            die("query-stats", err);
        if (i >= warm)
            t[i - warm] = now_ns() - t0;
    }
    m->allocs = m->allocs < 0 ? -1 : allocs_now() - m->allocs;
    m->nstats = count_stats(&r);
    if (r.nres != e->nvcpus)
        fprintf(stderr, "query_bench: expected %u results, got %zu\n", e->nvcpus, r.nres);
    summarize(m, t, iters);
    qs_results_destroy(&r);
    free(t);
}

/* A whole QMP request, text in, reply line out. */
static void bench_request(bench_env *e, const char *text, unsigned iters, measure *m)
{
    qs_qmp_session *s = &e->session;
    uint64_t *t = qs_calloc(iters, sizeof(*t));
    unsigned warm = iters / 10 + 5;
    size_t len = strlen(text);

    for (unsigned i = 0; i < warm + iters; i++) {
        if (i == warm)
            m->allocs = allocs_now();
        qs_buf_reset(&s->out);
        uint64_t t0 = now_ns();
        qs_qmp_session_handle_text(s, text, len, NULL);
        if (i >= warm)
            t[i - warm] = now_ns() - t0;
    }
    m->allocs = m->allocs < 0 ? -1 : allocs_now() - m->allocs;
    m->reply_bytes = s->out.len;
    if (strncmp(s->out.data, "{\"return\"", 9) != 0)
        fprintf(stderr, "query_bench: unexpected reply: %.200s\n", s->out.data);
    m->nstats = e->qmp->results.nres ? count_stats(&e->qmp->results) : 0;
    summarize(m, t, iters);
    free(t);
}

/* ---- output ---------------------------------------------------------------- */

static void print_row(const measure *m)
{
    char allocs[32] = "n/a";
    if (m->allocs >= 0)
        snprintf(allocs, sizeof(allocs), "%.2f", (double)m->allocs / m->iters);
    printf("%-8s %-18s %6u %7zu %11.1f %10.1f %9.1f %9.2f %10s %9zu\n",
           m->layer, m->what, m->nvcpus, m->nstats, m->median_ns / 1000,
           m->p99_ns / 1000, m->mean_ns / 1000,
           m->nstats ? m->median_ns / m->nstats : 0.0, allocs, m->reply_bytes);
}

static void json_row(FILE *f, const measure *m, const char *source, bool first)
{
    fprintf(f, "%s\n  {\"source\": \"%s\", \"layer\": \"%s\", \"what\": \"%s\", "
            "\"vcpus\": %u, \"iters\": %u, \"stats\": %zu, \"median_us\": %.3f, "
            "\"p99_us\": %.3f, \"mean_us\": %.3f, \"ns_per_stat\": %.2f, "
            "\"allocs_per_query\": %.3f, \"reply_bytes\": %zu}",
            first ? "" : ",", source, m->layer, m->what, m->nvcpus,
            m->iters, m->nstats, m->median_ns / 1000, m->p99_ns / 1000,
            m->mean_ns / 1000, m->nstats ? m->median_ns / m->nstats : 0.0,
            m->allocs >= 0 ? (double)m->allocs / m->iters : -1.0, m->reply_bytes);
}

/* A 1024-vCPU micro-VM needs ~3 fds per vCPU; the usual soft limit is 1024. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

typedef enum { SOURCE_AUTO, SOURCE_MICROVM, SOURCE_FIXTURES } source_kind;

typedef struct options {
    source_kind source;
    unsigned vcpus[16];
    int nvcpus;
    unsigned iters;        /* 0: chosen per vCPU count */
    const char *only;
    const char *json;
} options;

static void parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--source") && v && (!strcmp(v, "auto") || !strcmp(v, "microvm") ||
                                             !strcmp(v, "fixtures"))) {
            o->source = !strcmp(v, "auto") ? SOURCE_AUTO
                        : !strcmp(v, "microvm") ? SOURCE_MICROVM : SOURCE_FIXTURES;
            i++;
        } else if (!strcmp(a, "--vcpus") && v) {
            for (char *p = (char *)v; *p && o->nvcpus < 16; p += *p == ',')
                o->vcpus[o->nvcpus++] = (unsigned)strtoul(p, &p, 10);
            i++;
        } else if (!strcmp(a, "--iters") && v) {
            o->iters = (unsigned)strtoul(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--only") && v) {
            o->only = v;
            i++;
        } else if (!strcmp(a, "--json") && v) {
            o->json = v;
            i++;
        } else {
            fprintf(stderr, "usage: query_bench [--source auto|microvm|fixtures] "
                    "[--vcpus 64,1024] [--iters N] [--only registry|request|request-vcpu] [--json FILE]\n");
            exit(2);
        }
    }
    if (!o->nvcpus) {
        o->vcpus[0] = 64;
        o->vcpus[1] = 1024;
        o->nvcpus = 2;
    }
}

static const struct { const char *what, *text; } requests[] = {
    { "query-stats vcpu", "{\"execute\": \"query-stats\", \"arguments\": {\"target\": \"vcpu\"}}" },
    { "query-stats vm", "{\"execute\": \"query-stats\", \"arguments\": {\"target\": \"vm\"}}" },
    { "query-stats-schemas", "{\"execute\": \"query-stats-schemas\"}" },
    { "query-name", "{\"execute\": \"query-name\"}" },
};

/* auto: the micro-VM if this machine can make one (a 1-vCPU VM is tried),
 * the recorded VM's files otherwise; the first output line says which. */
static bool choose_fixtures(source_kind source)
{
    qs_error *err = NULL;
    qs_microvm *vm;

    if (source == SOURCE_FIXTURES) {
        printf("# vCPU stats: recorded VM files (%s/recorded-linux-6.18), as asked\n",
               QS_FIXTURES_DIR);
        return true;
    }
    if (source == SOURCE_MICROVM) {
        printf("# vCPU stats: micro-VM (KVM)\n");
        return false;
    }
    if ((vm = qs_microvm_new(1, &err))) {
        qs_microvm_free(vm);
        printf("# vCPU stats: micro-VM (KVM usable)\n");
        return false;
    }
    printf("# vCPU stats: recorded VM files (%s/recorded-linux-6.18): no micro-VM here (%s)\n",
           QS_FIXTURES_DIR, err ? err->msg : "unknown reason");
    qs_error_free(err);
    return true;
}

int main(int argc, char **argv)
{
    options o;
    measure all[16 * 8];
    int nm = 0;

    parse_options(argc, argv, &o);
    raise_fd_limit();
    bool fixtures = choose_fixtures(o.source);
    const char *source = fixtures ? "fixtures" : "microvm";
    printf("%-8s %-18s %6s %7s %11s %10s %9s %9s %10s %9s\n", "layer", "query", "vcpus",
           "stats", "median_us", "p99_us", "mean_us", "ns/stat", "allocs/q", "bytes");
    for (int k = 0; k < o.nvcpus; k++) {
        bench_env e;
        unsigned n = o.vcpus[k];
        unsigned iters = o.iters ? o.iters : n >= 512 ? 500 : 2000;

        env_init(&e, n, fixtures);
        if (!o.only || !strcmp(o.only, "registry")) {
            measure *m = &all[nm++];
            *m = (measure){ .layer = "registry", .what = "query-stats vcpu",
                            .nvcpus = n, .iters = iters };
            bench_registry(&e, iters, m);
            print_row(m);
        }
        /* "request-vcpu": the vcpu request alone (for callgrind). */
        size_t nreq = !o.only || !strcmp(o.only, "request") ? sizeof(requests) / sizeof(requests[0])
                      : !strcmp(o.only, "request-vcpu") ? 1 : 0;
        for (size_t r = 0; r < nreq; r++) {
            measure *m = &all[nm++];
            *m = (measure){ .layer = "request", .what = requests[r].what,
                            .nvcpus = n, .iters = iters };
            bench_request(&e, requests[r].text, iters, m);
            if (strcmp(requests[r].what, "query-stats vcpu") &&
                strcmp(requests[r].what, "query-stats vm"))
                m->nstats = 0;
            print_row(m);
        }
        env_destroy(&e);
    }
    if (o.json) {
        FILE *f = fopen(o.json, "w");
        if (!f)
            die(o.json, NULL);
        fprintf(f, "[");
        for (int i = 0; i < nm; i++)
            json_row(f, &all[i], source, i == 0);
        fprintf(f, "\n]\n");
        fclose(f);
    }
    return 0;
}
