/*
 * qs-exporter.h - the metrics endpoint: a Prometheus/OpenMetrics view of
 * whatever the registry's providers describe in their schemas.
 *
 *   qs_metrics_render   pure function: schemas + query-stats results ->
 *                       exposition text (Prometheus text 0.0.4 or
 *                       OpenMetrics 1.0).  No I/O, no clock: unit tests and
 *                       benchmarks call it directly.
 *   qs_exporter         HTTP server (libmicrohttpd) on the caller's libuv
 *                       loop serving GET/HEAD /metrics, the JSON API and
 *                       the web page; each request queries the registry on
 *                       the loop thread and renders.
 *
 * Metric naming (the rules the README documents):
 *   family  = qstats_<provider>_<target>_<stem>[_<unit>]
 *   stem    = the stat name with every character outside [a-zA-Z0-9_]
 *             turned into '_', then, if the stat has a unit, a suffix of
 *             its own name that spells a unit of the same kind (_ns, _us,
 *             _ms, _s, _sec, _seconds / _b, _bytes, _kb, _kib, _mb, _mib,
 *             _gb, _gib / _cycles) removed; a counter's own "_total"
 *             suffix is removed too.
 *   unit    = "seconds", "bytes" or "cycles" (cycles stay cycles; boolean
 *             and unit-less stats get no suffix).  Values and histogram
 *             bounds are multiplied by base^exponent, so "halt_wait_ns"
 *             (10^-9 s) becomes qstats_kvm_vcpu_halt_wait_seconds_total.
 *   cumulative -> counter (sample name family + "_total")
 *   instant, peak -> gauge; boolean unit -> gauge 0/1
 *   linear/log2 histogram -> histogram; bucket upper bounds from the KVM
 *             rules (log2: 1, 2, 4, ... 2^(size-2); linear: bucket_size *
 *             1 .. size-1), then +Inf; _count always in the text format;
 *             _sum (and, in OpenMetrics, _count) when the same schema has
 *             a cumulative stat of the same unit whose stem equals the
 *             histogram's stem minus "_hist" (halt_wait_hist + halt_wait_ns).
 *   a seconds-valued instant stat named "last-update" also yields
 *             <family minus _seconds>_age_seconds = now - value (clamped at
 *             0; absent while the value is 0, i.e. never updated).
 *   labels  = vm (the configured name) and, for target vcpu, vcpu (the N of
 *             a qom-path ending in "[N]", else the whole path).
 * A family whose name is already taken in the same scrape is skipped, so
 * the exposition stays valid whatever a kernel reports.
 */
#ifndef QS_EXPORTER_H
#define QS_EXPORTER_H

#include <stdbool.h>
#include <uv.h>

#include "qs-core.h"

typedef enum qs_metrics_format {
    QS_METRICS_PROMETHEUS_TEXT,   /* text/plain; version=0.0.4 */
    QS_METRICS_OPENMETRICS,       /* application/openmetrics-text; version=1.0.0 */
} qs_metrics_format;

/* Default value of the vm label when no name is configured. */
#define QS_METRICS_DEFAULT_VM "qstats"

/* What one exposition shows.
 *   selection  families whose provider, target and stat name are in the
 *              lists (AND across the three, OR within one; NULL: all);
 *   vCPUs      per kind of stat, the most vCPUs shown one by one: a VM with
 *              more gets one sample per family, without the vcpu label and
 *              under the same name and unit -- counters and histograms
 *              summed, peaks their maximum, instants summed, booleans the
 *              number of vCPUs for which they are true (UINT_MAX: always
 *              per vCPU, 0: always aggregated). */
typedef enum qs_metrics_kind {
    QS_METRICS_COUNTERS,        /* cumulative */
    QS_METRICS_GAUGES,          /* instant and peak */
    QS_METRICS_BOOLEANS,
    QS_METRICS_HISTOGRAMS,
    QS_METRICS_NKINDS
} qs_metrics_kind;

/* The defaults: every vCPU of a VM up to 1024 vCPUs for scalar stats and
 * up to 128 for histograms (a 64-vCPU VM keeps its full detail; 1024 vCPUs
 * stay under 60000 samples). */
#define QS_METRICS_PER_VCPU_SCALARS 1024u
#define QS_METRICS_PER_VCPU_HISTOGRAMS 128u

/* The exporter's own health, appended when given (the exporter's
 * conventions: build info, scrape duration, failing sources, samples), and
 * the VM's vCPU count, which a family aggregated over vCPUs no longer
 * tells (qstats_vm_vcpus). */
typedef struct qs_metrics_health {
    const char *version;
    double started;             /* CLOCK_MONOTONIC seconds when the scrape began */
    size_t sources_failing;
    size_t vcpus;               /* the VM's vCPUs: how many an aggregate covers */
    uint64_t scrapes;           /* counted so far, this one included */
} qs_metrics_health;

typedef struct qs_metrics_view {
    const qs_strlist *providers, *targets, *names;
    unsigned per_vcpu_max[QS_METRICS_NKINDS];
    const qs_metrics_health *health;
} qs_metrics_view;

/* Sets the default view: everything, the default vCPU detail, no health. */
QS_EXPORT void qs_metrics_view_init(qs_metrics_view *v);

/* Appends the exposition of the given schemas and results to out, as view
 * says (NULL: everything, every vCPU); returns the number of samples.
 * vm_results / vcpu_results are query-stats answers for target vm / vcpu
 * (either may be NULL).  now is the wall clock in Unix seconds, used only
 * for the last-update age gauge (<= 0: no age gauge).  vm_name NULL means
 * QS_METRICS_DEFAULT_VM. */
QS_EXPORT size_t qs_metrics_render(qs_buf *out, qs_metrics_format fmt, const char *vm_name,
                                   const qs_schemas *schemas, const qs_results *vm_results,
                                   const qs_results *vcpu_results, double now,
                                   const qs_metrics_view *view);
/* Whether an Accept-Encoding header accepts gzip (a Prometheus server
 * sends "gzip" with every scrape); NULL or unparsable: no. */
QS_EXPORT bool qs_metrics_accepts_gzip(const char *accept_encoding);

/* The Content-Type header value for a format. */
QS_EXPORT const char *qs_metrics_content_type(qs_metrics_format fmt);

/* Picks the format for an HTTP Accept header the way Prometheus client
 * libraries do: OpenMetrics when the header ranks application/openmetrics-
 * text at least as high as the text format, otherwise (also for NULL or
 * unparsable headers) the Prometheus text format. */
QS_EXPORT qs_metrics_format qs_metrics_negotiate(const char *accept);

typedef struct qs_exporter qs_exporter;

typedef struct qs_exporter_config {
    qs_registry *reg;
    const char *vm_name;   /* label vm; NULL: QS_METRICS_DEFAULT_VM (copied) */
    /* Bytes of one exposition and of the results behind it (0:
     * QS_REPLY_MAX_DEFAULT); a larger scrape answers 500, saying why. */
    size_t max_reply_bytes;
    /* The default view of /metrics (a scrape's own parameters replace it):
     * a selection in query-string form ("provider=kvm&name=exits"), and the
     * vCPU detail per kind ("histograms=0,counters=all"); NULL: everything,
     * QS_METRICS_PER_VCPU_* detail. */
    const char *select;
    const char *vcpu_detail;
    /* d3.js (v3) for the web page's charts, read once here: NULL: the path
     * set at build time (Debian's libjs-d3, /usr/share/javascript/d3/
     * d3.min.js); "": none.  Without it (or if it cannot be read, which is
     * said on stderr) the page shows its numbers as tables only. */
    const char *d3_js;
} qs_exporter_config;

/* Listens on "HOST:PORT" ("[::1]:PORT" for IPv6; port 0 picks a free one)
 * and serves GET/HEAD on loop: /metrics, /api/v1/schemas, /api/v1/stats
 * and the web page at /, each with the provider/target/name query string,
 * gzip'd when the client accepts it; other paths answer 404, other
 * methods 405.  A host that is not loopback is refused unless allow_remote.
 * Returns NULL with *errp set on failure. */
QS_EXPORT qs_exporter *qs_exporter_new(uv_loop_t *loop, const qs_exporter_config *cfg,
                                       const char *listen, bool allow_remote,
                                       qs_error **errp);
/* The bound TCP port (useful with port 0). */
QS_EXPORT int qs_exporter_port(const qs_exporter *e);
/* Stops serving and frees; may be called from the loop thread while the
 * loop is running (handles are closed asynchronously; the memory is freed
 * from their close callbacks). */
QS_EXPORT void qs_exporter_free(qs_exporter *e);

#endif
