/*
 * qstatsd - the qstats daemon.  It wires libqstats together on one libuv
 * loop: the registry, the kvm provider fed by the built-in micro-VM (or by
 * fds handed over with add-stats-fd), the balloon device and its agent
 * channel, QMP and HMP listeners and the metrics endpoint.  All the logic
 * lives in the library; this file only parses options, creates the pieces
 * in dependency order and tears them down in reverse on SIGINT/SIGTERM/quit.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qs-balloon.h"
#include "qs-common.h"
#include "qs-core.h"
#include "qs-exporter.h"
#include "qs-hmp.h"
#include "qs-kvm.h"
#include "qs-microvm.h"
#include "qs-net.h"
#include "qs-qmp.h"
#include "qs-sched.h"

#define MAX_LISTENERS 16
#define DEFAULT_BALLOON_BYTES (256ull << 20)   /* reported when there is no VM */

typedef struct options {
    const char *qmp[MAX_LISTENERS];
    int nqmp;
    const char *hmp[MAX_LISTENERS];
    int nhmp;
    const char *balloon;
    const char *metrics;
    const char *metrics_select;
    const char *metrics_vcpus;
    const char *metrics_d3;
    const char *name;
    const char *recorded;
    unsigned vcpus;
    bool vcpus_given;
    bool no_vm;
    bool allow_remote;
    size_t max_reply_bytes;    /* 0: the library's defaults */
    size_t max_buffer_bytes;
    size_t max_sessions;
} options;

typedef struct qsd {
    uv_loop_t *loop;
    qs_registry *reg;
    qs_microvm *vm;
    qs_kvm_provider *kvm;
    qs_sched_provider *sched;
    qs_balloon *balloon;
    qs_hmp *hmp;
    qs_hmp_console *consoles[MAX_LISTENERS];
    int nconsoles;
    qs_qmp *qmp;
    qs_exporter *exporter;
    uv_signal_t sigint, sigterm;
    uv_poll_t sched_exits;     /* a vCPU thread exited: drop it at once */
    uv_idle_t stop;            /* shutdown runs from the loop, never mid-command */
    const char *created[2 * MAX_LISTENERS + 1];   /* unix sockets made so far */
    int ncreated;
    bool stopping;
    qs_ratelimit source_log;   /* a VMM handing over many bad fds cannot flood it */
} qsd;

static void usage(FILE *f)
{
    fputs("Usage: qstatsd [OPTIONS]\n"
          "Serve VM statistics over QMP, a human monitor and OpenMetrics.\n\n"
          "  --qmp unix:PATH|tcp:HOST:PORT  QMP listener (repeatable)\n"
          "  --hmp stdio|unix:PATH          human monitor (repeatable)\n"
          "  --vcpus N                      vCPUs of the built-in micro-VM (default 2)\n"
          "  --no-vm                        no built-in VM; KVM stats only from add-stats-fd\n"
          "  --recorded DIR                 no built-in VM; KVM stats from the recorded files\n"
          "                                 DIR/vm.bin, DIR/vcpu0.bin ... (read on every query)\n"
          "  --balloon unix:PATH|vsock:PORT balloon stats channel for a guest agent\n"
          "  --metrics HOST:PORT            OpenMetrics endpoint at /metrics (and a web page at /)\n"
          "  --metrics-select QUERY         default selection of /metrics, e.g.\n"
          "                                 provider=kvm&name=exits (as its query string)\n"
          "  --metrics-vcpus KIND=N,...     vCPUs shown one by one per kind of stat before\n"
          "                                 they are aggregated (counters, gauges, booleans,\n"
          "                                 histograms, all; N or all; default\n"
          "                                 scalars 1024, histograms 128)\n"
          "  --metrics-d3 FILE              d3.js (v3) for the web page's charts (default\n"
          "                                 " QS_D3_JS "; \"\": tables only)\n"
          "  --name NAME                    VM name (query-name, metrics label vm)\n"
          "  --allow-remote                 allow non-loopback TCP listeners\n"
          "  --max-reply-bytes N            ceiling of one reply, QMP, HMP or metrics\n"
          "                                 (default 16M; K, M and G suffixes)\n"
          "  --max-buffer-bytes N           QMP session buffers beyond 1M each (default 96M)\n"
          "  --max-sessions N               QMP sessions at once (default 64)\n"
          "  --help, --version\n", f);
}

/* Unix sockets this process created are removed again if start-up fails. */
static void note_socket(qsd *d, const char *spec)
{
    if (strncmp(spec, "unix:", 5) == 0 && d->ncreated < 2 * MAX_LISTENERS + 1)
        d->created[d->ncreated++] = spec + 5;
}

static void die(const qsd *d, const char *what, qs_error *err)
{
    fprintf(stderr, "qstatsd: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    qs_error_free(err);
    for (int i = 0; i < d->ncreated; i++)
        unlink(d->created[i]);
    exit(1);
}

static unsigned parse_vcpus(const char *s)
{
    char *end;
    unsigned long n = strtoul(s, &end, 10);
    if (*s < '1' || *s > '9' || *end || n > QS_MICROVM_MAX_VCPUS) {
        fprintf(stderr, "qstatsd: --vcpus expects a number from 1 to %d\n",
                QS_MICROVM_MAX_VCPUS);
        exit(1);
    }
    return (unsigned)n;
}

/* "N", "NK", "NM" or "NG" (powers of 1024), at least min. */
static size_t parse_size(const char *opt, const char *s, size_t min)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
    if (shift)
        end++;
    if (*s < '0' || *s > '9' || *end || errno || n > (SIZE_MAX >> shift) ||
        (n << shift) < min) {
        fprintf(stderr, "qstatsd: %s expects a number of at least %zu (K, M, G "
                "suffixes allowed)\n", opt, min);
        exit(1);
    }
    return (size_t)(n << shift);
}

static void parse_options(int argc, char **argv, options *o)
{
    enum { O_QMP = 256, O_HMP, O_VCPUS, O_NOVM, O_RECORDED, O_BALLOON, O_METRICS,
           O_METRICS_SELECT, O_METRICS_VCPUS, O_METRICS_D3,
           O_NAME, O_REMOTE, O_REPLY, O_BUFFER, O_SESSIONS, O_HELP, O_VERSION };
    static const struct option longopts[] = {
        { "qmp", required_argument, 0, O_QMP }, { "hmp", required_argument, 0, O_HMP },
        { "vcpus", required_argument, 0, O_VCPUS }, { "no-vm", no_argument, 0, O_NOVM },
        { "recorded", required_argument, 0, O_RECORDED },
        { "balloon", required_argument, 0, O_BALLOON },
        { "metrics", required_argument, 0, O_METRICS }, { "name", required_argument, 0, O_NAME },
        { "metrics-select", required_argument, 0, O_METRICS_SELECT },
        { "metrics-vcpus", required_argument, 0, O_METRICS_VCPUS },
        { "metrics-d3", required_argument, 0, O_METRICS_D3 },
        { "allow-remote", no_argument, 0, O_REMOTE },
        { "max-reply-bytes", required_argument, 0, O_REPLY },
        { "max-buffer-bytes", required_argument, 0, O_BUFFER },
        { "max-sessions", required_argument, 0, O_SESSIONS }, { "help", no_argument, 0, O_HELP },
        { "version", no_argument, 0, O_VERSION }, { 0, 0, 0, 0 },
    };
    int c;
    memset(o, 0, sizeof(*o));
    o->vcpus = 2;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_QMP: if (o->nqmp < MAX_LISTENERS) o->qmp[o->nqmp++] = optarg; break;
        case O_HMP: if (o->nhmp < MAX_LISTENERS) o->hmp[o->nhmp++] = optarg; break;
        case O_VCPUS: o->vcpus = parse_vcpus(optarg); o->vcpus_given = true; break;
        case O_NOVM: o->no_vm = true; break;
        case O_RECORDED: o->recorded = optarg; break;
        case O_BALLOON: o->balloon = optarg; break;
        case O_METRICS: o->metrics = optarg; break;
        case O_METRICS_SELECT: o->metrics_select = optarg; break;
        case O_METRICS_VCPUS: o->metrics_vcpus = optarg; break;
        case O_METRICS_D3: o->metrics_d3 = optarg; break;
        case O_NAME: o->name = optarg; break;
        case O_REMOTE: o->allow_remote = true; break;
        case O_REPLY: o->max_reply_bytes = parse_size("--max-reply-bytes", optarg, 4096); break;
        case O_BUFFER: o->max_buffer_bytes = parse_size("--max-buffer-bytes", optarg, 0); break;
        case O_SESSIONS: o->max_sessions = parse_size("--max-sessions", optarg, 1); break;
        case 'h': case O_HELP: usage(stdout); exit(0);
        case O_VERSION: printf("qstatsd %s\n", QS_VERSION_STRING); exit(0);
        default: usage(stderr); exit(1);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qstatsd: unexpected argument '%s'\n", argv[optind]);
        exit(1);
    }
    if (o->recorded && (o->vcpus_given || o->no_vm)) {
        fprintf(stderr, "qstatsd: --recorded replaces the built-in VM: it cannot be "
                "combined with %s\n", o->no_vm ? "--no-vm" : "--vcpus");
        exit(1);
    }
    if (!o->nqmp && !o->nhmp && !o->metrics)
        fputs("qstatsd: no --qmp, --hmp or --metrics given: nobody can ask for the "
              "statistics (see --help)\n", stderr);
}

/* A 1024-vCPU VM needs ~3 fds per vCPU; the usual soft limit is 1024. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The micro-VM's vCPU threads go to the sched provider as pidfds, exactly
 * as a foreign VMM's would; a kernel without thread pidfds (before 6.9)
 * only loses the sched stats, said once. */
static void add_vm_threads(qsd *d, unsigned vcpus)
{
    for (unsigned i = 0; i < vcpus; i++) {
        char path[QS_VCPU_PATH_MAX];
        qs_error *err = NULL;
        int fd = qs_sched_thread_pidfd(qs_microvm_vcpu_thread_id(d->vm, i), &err);
        if (fd < 0 || !qs_sched_provider_add_thread(d->sched, qs_vcpu_qom_path(i, path),
                                                    fd, &err)) {
            fprintf(stderr, "qstatsd: sched stats of the micro-VM unavailable: %s\n",
                    err->msg);
            qs_error_free(err);
            if (fd >= 0)
                close(fd);
            return;
        }
    }
}

/* The micro-VM's fds go to the kvm provider exactly as handed-over fds do. */
static void start_vm(qsd *d, unsigned vcpus)
{
    qs_error *err = NULL;
    d->vm = qs_microvm_new(vcpus, &err);
    if (!d->vm) {
        fprintf(stderr, "qstatsd: %s\n", err->msg);   /* "kvm provider unavailable: ..." */
        qs_error_free(err);
        return;
    }
    int fd = qs_microvm_vm_stats_fd(d->vm, &err);
    if (fd < 0 || !qs_kvm_provider_set_vm(d->kvm, fd, &err))
        die(d, "VM stats", err);
    for (unsigned i = 0; i < vcpus; i++) {
        char path[QS_VCPU_PATH_MAX];
        fd = qs_microvm_vcpu_stats_fd(d->vm, i, &err);
        if (fd < 0 || !qs_kvm_provider_add_vcpu(d->kvm, qs_vcpu_qom_path(i, path), fd, &err))
            die(d, "vCPU stats", err);
    }
    add_vm_threads(d, vcpus);
}

/* A recorded VM stands in for the micro-VM; a bad recording is fatal. */
static void start_recorded(qsd *d, const char *dir)
{
    qs_error *err = NULL;
    unsigned n;
    if (!qs_kvm_provider_add_recording(d->kvm, dir, &n, &err))
        die(d, "--recorded", err);
    fprintf(stderr, "qstatsd: recorded VM from %s: %u vCPUs (values change only "
            "when the files are rewritten)\n", dir, n);
}

static void print_log_line(void *opaque, const char *msg)
{
    fprintf(stderr, "qstatsd: %s\n", msg);
}

/* A source that starts or stops failing is worth one line to the operator
 * (the registry reports changes of state only), within the peer log budget:
 * the sources may be a VMM's fds. */
static void log_source_event(void *opaque, const qs_event *ev)
{
    qsd *d = opaque;
    if (ev->kind == QS_EVENT_SCHEMA_CHANGED)
        return;
    char *msg = qs_strdup_printf("%s stats of %s%s%s %s%s", ev->provider,
                                 qs_target_name(ev->target), ev->qom_path ? " " : "",
                                 ev->qom_path ? ev->qom_path : "",
                                 ev->kind == QS_EVENT_SOURCE_FAILED ? "fail to read (skipped): "
                                                                    : "read again",
                                 ev->kind == QS_EVENT_SOURCE_FAILED && ev->error ? ev->error
                                                                                 : "");
    qs_ratelimit_log(&d->source_log, uv_now(d->loop), msg, print_log_line, NULL);
    free(msg);
}

static void on_stop(uv_idle_t *h)
{
    qsd *d = h->data;
    uv_idle_stop(h);
    uv_close((uv_handle_t *)h, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sched_exits, NULL);
    qs_exporter_free(d->exporter);
    qs_qmp_free(d->qmp);
    qs_balloon_free(d->balloon);
    for (int i = 0; i < d->nconsoles; i++)
        qs_hmp_console_free(d->consoles[i]);
    d->exporter = NULL;
    d->qmp = NULL;
    d->balloon = NULL;
    d->nconsoles = 0;
}

static void on_sched_exit(uv_poll_t *h, int status, int events)
{
    qsd *d = h->data;
    qs_sched_provider_reap(d->sched);
}

static void request_stop(void *opaque)
{
    qsd *d = opaque;
    if (d->stopping)
        return;
    d->stopping = true;
    uv_idle_start(&d->stop, on_stop);
}

static void on_signal(uv_signal_t *h, int signum)
{
    request_stop(h->data);
}

static void start_servers(qsd *d, const options *o)
{
    qs_error *err = NULL;
    uint64_t mem = d->vm ? qs_microvm_mem_size(d->vm) : DEFAULT_BALLOON_BYTES;

    if (o->balloon) {
        d->balloon = qs_balloon_new(d->loop, d->reg, mem);
        if (!qs_balloon_listen(d->balloon, o->balloon, &err))
            die(d, "--balloon", err);
        note_socket(d, o->balloon);
    }
    d->hmp = qs_hmp_new(&(qs_hmp_config){ .reg = d->reg, .on_quit = request_stop,
                                          .opaque = d,
                                          .max_reply_bytes = o->max_reply_bytes });
    d->qmp = qs_qmp_new(d->loop, &(qs_qmp_config){
                            .reg = d->reg, .hmp = d->hmp, .name = o->name,
                            .on_quit = request_stop, .opaque = d,
                            .max_sessions = o->max_sessions,
                            .max_reply_bytes = o->max_reply_bytes,
                            .max_buffer_bytes = o->max_buffer_bytes }, &err);
    if (!d->qmp || !qs_balloon_add_commands(d->balloon, d->qmp, d->hmp, &err))
        die(d, "QMP", err);
    for (int i = 0; i < o->nqmp; i++) {
        if (!qs_qmp_listen(d->qmp, o->qmp[i], o->allow_remote, &err))
            die(d, "--qmp", err);
        note_socket(d, o->qmp[i]);
        if (strncmp(o->qmp[i], "unix:", 5) == 0)
            fprintf(stderr, "qstatsd: QMP on %s\n", o->qmp[i] + 5);
    }
    if (o->metrics) {
        d->exporter = qs_exporter_new(d->loop, &(qs_exporter_config){
                                          .reg = d->reg, .vm_name = o->name,
                                          .max_reply_bytes = o->max_reply_bytes,
                                          .select = o->metrics_select,
                                          .vcpu_detail = o->metrics_vcpus,
                                          .d3_js = o->metrics_d3 },
                                      o->metrics, o->allow_remote, &err);
        if (!d->exporter)
            die(d, "--metrics", err);
    }
    fprintf(stderr, "qstatsd: sched reads vCPU threads' switch counts from %s\n",
            strcmp(qs_sched_provider_source(d->sched), "taskstats") == 0 ? "taskstats" :
            "/proc/TID/status (taskstats, cheaper, needs CAP_NET_ADMIN)");
    /* Consoles last, so their first prompt follows the daemon's messages. */
    for (int i = 0; i < o->nhmp; i++) {
        d->consoles[d->nconsoles] = qs_hmp_console_new(d->loop, d->hmp, o->hmp[i], &err);
        if (!d->consoles[d->nconsoles++])
            die(d, "--hmp", err);
        note_socket(d, o->hmp[i]);
    }
}

int main(int argc, char **argv)
{
    options o;
    qsd d = { 0 };

    parse_options(argc, argv, &o);
    raise_fd_limit();
    /* libuv writes to HMP clients and balloon agents with write(2): a peer
     * that leaves before its output is sent must cost its connection (EPIPE),
     * not the daemon (SIGPIPE's default action).  QEMU ignores it too. */
    signal(SIGPIPE, SIG_IGN);
    /* The buffers of a large request are freed once it is served, but glibc
     * raises its mmap threshold to the size of each large block freed, so
     * the next ones come from the heap and stay resident (22 MiB after three
     * requests of 8, 6 and 4 MiB).  A fixed threshold at the size above which
     * qstats gives buffers back hands them back to the kernel. */
#ifdef M_MMAP_THRESHOLD
    mallopt(M_MMAP_THRESHOLD, QS_KEEP_BYTES);
#endif
    d.loop = uv_default_loop();
    /* Signals first: a SIGTERM that arrives while the VM starts must still
     * shut down cleanly (and unlink the sockets created meanwhile). */
    uv_idle_init(d.loop, &d.stop);
    d.stop.data = &d;
    uv_signal_init(d.loop, &d.sigint);
    uv_signal_init(d.loop, &d.sigterm);
    d.sigint.data = d.sigterm.data = &d;
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);

    d.reg = qs_registry_new();
    qs_registry_watch(d.reg, log_source_event, &d);
    d.kvm = qs_kvm_provider_new(d.reg);
    d.sched = qs_sched_provider_new(d.reg);
    uv_poll_init(d.loop, &d.sched_exits, qs_sched_provider_fd(d.sched));
    d.sched_exits.data = &d;
    uv_poll_start(&d.sched_exits, UV_READABLE, on_sched_exit);
    if (o.recorded)
        start_recorded(&d, o.recorded);
    else if (!o.no_vm)
        start_vm(&d, o.vcpus);
    start_servers(&d, &o);

    uv_run(d.loop, UV_RUN_DEFAULT);

    /* Every handle is closed; now the plain objects. */
    qs_hmp_free(d.hmp);
    qs_sched_provider_free(d.sched);
    qs_kvm_provider_free(d.kvm);
    qs_microvm_free(d.vm);
    qs_registry_free(d.reg);
    uv_loop_close(d.loop);
    return 0;
}
