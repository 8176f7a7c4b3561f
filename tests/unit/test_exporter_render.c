/*
 * test_exporter_render.c - pins the metrics mapping: bucket bounds of log2
 * and linear histograms, unit conversion, metric names, counter/gauge/
 * histogram mapping, label escaping and both exposition formats.  Data
 * flows through a real registry from hand-made providers registered here,
 * exactly as a scrape does (query schemas, query stats vm and vcpu, render).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "net/qs-net.h"

#include "exporter/internal.h"
#include "qs-exporter.h"

/* ---- a hand-made provider ---------------------------------------------- */

typedef struct fake_provider {
    const char *provider;
    const qs_schema_value *vm;
    size_t nvm;
    const uint64_t *vm_vals;             /* all values, schema order */
    const qs_schema_value *vcpu;
    size_t nvcpu;
    const char *paths[3];
    const uint64_t *vcpu_vals[3];
    size_t nvcpus;
} fake_provider;

static void add_object(qs_results *out, const fake_provider *f, const char *path,
                       const qs_schema_value *sv, size_t n, const uint64_t *vals,
                       const qs_strlist *names)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += sv[i].size;
    qs_results_begin(out, f->provider, path);
    size_t off = qs_results_reserve(out, total);
    memcpy(qs_results_values(out, off), vals, total * sizeof(*vals));
    for (size_t i = 0; i < n; off += sv[i].size, i++) {
        if (qs_strlist_match(names, sv[i].name))
            qs_results_add(out, &sv[i], off);
    }
    qs_results_end(out, true);
}

static bool fake_stats(void *opaque, qs_results *out, qs_target target,
                       const qs_strlist *names, const qs_strlist *targets,
                       qs_error **errp)
{
    const fake_provider *f = opaque;
    if (target == QS_TARGET_VM && f->nvm)
        add_object(out, f, NULL, f->vm, f->nvm, f->vm_vals, names);
    if (target == QS_TARGET_VCPU) {
        for (size_t i = 0; i < f->nvcpus; i++) {
            if (qs_strlist_match(targets, f->paths[i]))
                add_object(out, f, f->paths[i], f->vcpu, f->nvcpu,
                           f->vcpu_vals[i], names);
        }
    }
    return true;
}

static bool fake_schemas(void *opaque, qs_schemas *out, qs_error **errp)
{
    const fake_provider *f = opaque;
    if (f->nvm)
        qs_schemas_add(out, f->provider, QS_TARGET_VM, f->vm, f->nvm);
    if (f->nvcpu)
        qs_schemas_add(out, f->provider, QS_TARGET_VCPU, f->vcpu, f->nvcpu);
    return true;
}

/* ---- the data ------------------------------------------------------------ */

#define SV(n, t, u, b, e, bs, sz) { n, QS_TYPE_##t, QS_UNIT_##u, b, e, bs, sz, NULL }

static const qs_schema_value kvm_vm[] = {
    SV("pages_4k", INSTANT, NONE, 0, 0, 0, 1),
    SV("weird.name-x", INSTANT, NONE, 0, 0, 0, 1),
    SV("weird_name_x", INSTANT, NONE, 0, 0, 0, 1),     /* same metric name */
    SV("mem_total", CUMULATIVE, BYTES, 2, 10, 0, 1),   /* KiB, own _total */
    SV("max_mmu_rmap_size", PEAK, NONE, 0, 0, 0, 1),
};
static const uint64_t kvm_vm_vals[] = { 512, 1, 2, 3, 9 };

static const qs_schema_value kvm_vcpu[] = {
    /* a provider's description becomes the HELP text */
    { "exits", QS_TYPE_CUMULATIVE, QS_UNIT_NONE, 0, 0, 0, 1, "VM exits of this vCPU, all reasons." },
    SV("halt_wait_ns", CUMULATIVE, SECONDS, 10, -9, 0, 1),
    SV("halt_wait_hist", LOG2_HIST, SECONDS, 10, -9, 0, 5),
    SV("blocking", INSTANT, BOOLEAN, 0, 0, 0, 1),
    SV("lin_hist", LINEAR_HIST, NONE, 0, 0, 10, 4),
    SV("tsc_cycles", CUMULATIVE, CYCLES, 10, 3, 0, 1),
};
/* exits, halt_wait_ns, hist[5], blocking, lin[4], cycles */
static const uint64_t vcpu0_vals[] = { 42, 1500000000, 1, 2, 0, 3, 4, 7, 1, 1, 1, 1, 5 };
static const uint64_t vcpu1_vals[] = { 43, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 6 };

static const qs_schema_value balloon_vm[] = {
    SV("free-memory", INSTANT, BYTES, 0, 0, 0, 1),
    SV("last-update", INSTANT, SECONDS, 0, 0, 0, 1),
};
static const uint64_t balloon_vals[] = { 1048576, 1700000000 };

typedef struct fixture {
    qs_registry *reg;
    fake_provider kvm, balloon;
    char *text;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    fx->kvm = (fake_provider){
        .provider = "kvm", .vm = kvm_vm, .nvm = 5, .vm_vals = kvm_vm_vals,
        .vcpu = kvm_vcpu, .nvcpu = 6, .nvcpus = 2,
        .paths = { "/machine/unattached/device[0]", "/machine/unattached/device[1]" },
        .vcpu_vals = { vcpu0_vals, vcpu1_vals } };
    fx->balloon = (fake_provider){
        .provider = "balloon", .vm = balloon_vm, .nvm = 2,
        .vm_vals = balloon_vals };
    fx->reg = qs_registry_new();
    qs_registry_add(fx->reg, "kvm", fake_stats, fake_schemas, &fx->kvm, NULL);
    qs_registry_add(fx->reg, "balloon", fake_stats, fake_schemas, &fx->balloon, NULL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    qs_registry_free(fx->reg);
    free(fx->text);
    free(fx);
    return 0;
}

/* One scrape the way the server does it. */
static const char *scrape(fixture *fx, qs_metrics_format fmt, const char *vm,
                          double now)
{
    qs_schemas schemas;
    qs_results vmr, vcpur;
    qs_buf out;
    qs_schemas_init(&schemas);
    qs_results_init(&vmr);
    qs_results_init(&vcpur);
    qs_buf_init(&out);
    qs_filter f = { .target = QS_TARGET_VM };
    assert_true(qs_registry_query_schemas(fx->reg, NULL, &schemas, NULL));
    assert_true(qs_registry_query_stats(fx->reg, &f, &vmr, NULL));
    f.target = QS_TARGET_VCPU;
    assert_true(qs_registry_query_stats(fx->reg, &f, &vcpur, NULL));
    qs_metrics_render(&out, fmt, vm, &schemas, &vmr, &vcpur, now, NULL);
    qs_schemas_destroy(&schemas);
    qs_results_destroy(&vmr);
    qs_results_destroy(&vcpur);
    free(fx->text);
    fx->text = qs_buf_steal(&out);
    return fx->text;
}

/* Position of a whole line in text, or NULL. */
static const char *find_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return p;
    }
    return NULL;
}

#define assert_line(text, line) do {                                         \
        if (!find_line((text), (line)))                                      \
            fail_msg("missing line: %s\n--- in ---\n%s", (line), (text));    \
    } while (0)
#define assert_no_line(text, line) do {                                      \
        if (find_line((text), (line)))                                       \
            fail_msg("unexpected line: %s", (line));                         \
    } while (0)

static size_t count_substr(const char *text, const char *s)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, s)); p++)
        n++;
    return n;
}

/* ---- pure rules ------------------------------------------------------------ */

static void test_log2_bucket_bounds_follow_kvm_rule_in_seconds(void **state)
{
    qs_schema_value sv = SV("h", LOG2_HIST, SECONDS, 10, -9, 0, 32);
    /* bucket 0 is [0,1) ns, bucket i is [2^(i-1), 2^i) ns, last open */
    assert_true(qs_schema_value_scale(&sv, qs_schema_bucket_upper(&sv, 0)) == 1e-9);
    assert_true(qs_schema_value_scale(&sv, qs_schema_bucket_upper(&sv, 1)) == 2e-9);
    assert_true(qs_schema_value_scale(&sv, qs_schema_bucket_upper(&sv, 10)) == 1024e-9);
    assert_true(qs_schema_value_scale(&sv, qs_schema_bucket_upper(&sv, 30)) == 1073741824e-9);
    assert_true(qs_schema_value_scale(&sv, qs_schema_bucket_upper(&sv, 31)) > 1e308);   /* +Inf */
    qs_schema_value raw = SV("h", LOG2_HIST, NONE, 0, 0, 0, 4);
    assert_true(qs_schema_value_scale(&raw, qs_schema_bucket_upper(&raw, 0)) == 1);
    assert_true(qs_schema_value_scale(&raw, qs_schema_bucket_upper(&raw, 2)) == 4);
}

static void test_linear_bucket_bounds_follow_kvm_rule(void **state)
{
    qs_schema_value sv = SV("h", LINEAR_HIST, NONE, 0, 0, 5, 4);
    /* bucket i is [5*i, 5*(i+1)), last open */
    assert_true(qs_schema_value_scale(&sv, qs_schema_bucket_upper(&sv, 0)) == 5);
    assert_true(qs_schema_value_scale(&sv, qs_schema_bucket_upper(&sv, 2)) == 15);
    assert_true(qs_schema_value_scale(&sv, qs_schema_bucket_upper(&sv, 3)) > 1e308);
    qs_schema_value kib = SV("h", LINEAR_HIST, BYTES, 2, 10, 4, 3);
    assert_true(qs_schema_value_scale(&kib, qs_schema_bucket_upper(&kib, 0)) == 4096);
    assert_true(qs_schema_value_scale(&kib, qs_schema_bucket_upper(&kib, 1)) == 8192);
}

static void test_unit_scaling_uses_base_and_exponent(void **state)
{
    qs_schema_value ns = SV("x", CUMULATIVE, SECONDS, 10, -9, 0, 1);
    qs_schema_value mib = SV("x", INSTANT, BYTES, 2, 20, 0, 1);
    qs_schema_value us = SV("x", CUMULATIVE, SECONDS, 10, -6, 0, 1);
    qs_schema_value plain = SV("x", CUMULATIVE, NONE, 0, 0, 0, 1);
    assert_true(qs_schema_value_scale(&ns, 1500000000) == 1.5);
    assert_true(qs_schema_value_scale(&mib, 3) == 3145728);
    assert_true(qs_schema_value_scale(&us, 250000) == 0.25);
    assert_true(qs_schema_value_scale(&plain, 7) == 7);
}

static void test_numbers_print_shortest_and_canonical(void **state)
{
    qs_buf b;
    qs_buf_init(&b);
    qs_metrics_put_double(&b, 1e-9, false);
    qs_buf_putc(&b, ' ');
    qs_metrics_put_double(&b, 0.1, false);
    qs_buf_putc(&b, ' ');
    qs_metrics_put_double(&b, 1048576, false);
    qs_buf_putc(&b, ' ');
    qs_metrics_put_double(&b, 1048576, true);   /* OpenMetrics le form */
    qs_buf_putc(&b, ' ');
    qs_metrics_put_double(&b, 1.0 / 0.0, true);
    assert_string_equal(b.data, "1e-09 0.1 1048576 1048576.0 +Inf");
    qs_buf_free(&b);
}

static void name_of(qs_buf *b, const char *p, qs_target t, const char *stat,
                    qs_stat_type type, qs_unit unit)
{
    qs_schema_value sv = { stat, type, unit, 10, 0, 0, 1, NULL };
    qs_metrics_family_name(b, p, t, &sv);
}

static void test_names_sanitised_and_unit_suffix_replaced(void **state)
{
    qs_buf b;
    qs_buf_init(&b);
    name_of(&b, "kvm", QS_TARGET_VCPU, "halt_wait_ns", QS_TYPE_CUMULATIVE, QS_UNIT_SECONDS);
    assert_string_equal(b.data, "qstats_kvm_vcpu_halt_wait_seconds");
    name_of(&b, "kvm", QS_TARGET_VCPU, "halt_wait_hist", QS_TYPE_LOG2_HIST, QS_UNIT_SECONDS);
    assert_string_equal(b.data, "qstats_kvm_vcpu_halt_wait_hist_seconds");
    name_of(&b, "balloon", QS_TARGET_VM, "free-memory", QS_TYPE_INSTANT, QS_UNIT_BYTES);
    assert_string_equal(b.data, "qstats_balloon_vm_free_memory_bytes");
    name_of(&b, "kvm", QS_TARGET_VM, "cache_MB", QS_TYPE_INSTANT, QS_UNIT_BYTES);
    assert_string_equal(b.data, "qstats_kvm_vm_cache_bytes");
    name_of(&b, "kvm", QS_TARGET_VM, "tsc_cycles", QS_TYPE_CUMULATIVE, QS_UNIT_CYCLES);
    assert_string_equal(b.data, "qstats_kvm_vm_tsc_cycles");
    /* a unit-looking suffix stays when the schema gives no such unit */
    name_of(&b, "kvm", QS_TARGET_VM, "wait_ns", QS_TYPE_CUMULATIVE, QS_UNIT_NONE);
    assert_string_equal(b.data, "qstats_kvm_vm_wait_ns");
    name_of(&b, "kvm", QS_TARGET_VM, "a.b/c d\xc3\xa9", QS_TYPE_INSTANT, QS_UNIT_BOOLEAN);
    assert_string_equal(b.data, "qstats_kvm_vm_a_b_c_d__");
    name_of(&b, "kvm", QS_TARGET_VM, "exits_total", QS_TYPE_CUMULATIVE, QS_UNIT_NONE);
    assert_string_equal(b.data, "qstats_kvm_vm_exits");
    qs_buf_free(&b);
}

static void test_label_values_escaped(void **state)
{
    qs_buf b;
    qs_buf_init(&b);
    qs_metrics_put_label_value(&b, "a\"b\\c\nd");
    assert_string_equal(b.data, "a\\\"b\\\\c\\nd");
    qs_buf_free(&b);
}

static void test_accept_negotiation_like_client_libraries(void **state)
{
    const char *prom = "application/openmetrics-text;version=1.0.0,"
                       "application/openmetrics-text;version=0.0.1;q=0.75,"
                       "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_int_equal(qs_metrics_negotiate(prom), QS_METRICS_OPENMETRICS);
    assert_int_equal(qs_metrics_negotiate(NULL), QS_METRICS_PROMETHEUS_TEXT);
    assert_int_equal(qs_metrics_negotiate(""), QS_METRICS_PROMETHEUS_TEXT);
    assert_int_equal(qs_metrics_negotiate("*/*"), QS_METRICS_PROMETHEUS_TEXT);
    assert_int_equal(qs_metrics_negotiate("text/plain"), QS_METRICS_PROMETHEUS_TEXT);
    assert_int_equal(qs_metrics_negotiate("application/openmetrics-text"),
                     QS_METRICS_OPENMETRICS);
    assert_int_equal(qs_metrics_negotiate("application/openmetrics-text; q=0.2, text/plain"),
                     QS_METRICS_PROMETHEUS_TEXT);
    assert_int_equal(qs_metrics_negotiate("application/openmetrics-text;q=0"),
                     QS_METRICS_PROMETHEUS_TEXT);
    assert_string_equal(qs_metrics_content_type(QS_METRICS_PROMETHEUS_TEXT),
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(qs_metrics_content_type(QS_METRICS_OPENMETRICS),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

static void test_listen_address_parsing(void **state)
{
    char host[64];
    int port;
    qs_error *err = NULL;
    assert_true(qs_parse_host_port("127.0.0.1:9177", "metrics", host, sizeof(host), &port, NULL));
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9177);
    assert_true(qs_parse_host_port("[::1]:0", "metrics", host, sizeof(host), &port, NULL));
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_false(qs_parse_host_port("::1:80", "metrics", host, sizeof(host), &port, &err));
    assert_non_null(strstr(err->msg, "expected HOST:PORT"));
    qs_error_free(err);
    err = NULL;
    assert_false(qs_parse_host_port("localhost:http", "metrics", host, sizeof(host), &port, &err));
    assert_string_equal(err->msg, "Invalid port in metrics address 'localhost:http'");
    qs_error_free(err);
    assert_false(qs_parse_host_port("localhost:65536", "metrics", host, sizeof(host), &port, NULL));
    assert_false(qs_parse_host_port("9100", "metrics", host, sizeof(host), &port, NULL));
}

/* ---- rendering --------------------------------------------------------- */

static void test_text_format_counters_gauges_and_booleans(void **state)
{
    const char *t = scrape(*state, QS_METRICS_PROMETHEUS_TEXT, "t", 0);
    assert_line(t, "# TYPE qstats_kvm_vcpu_exits_total counter");
    assert_line(t, "# HELP qstats_kvm_vcpu_exits_total VM exits of this vCPU, all reasons.");
    assert_line(t, "qstats_kvm_vcpu_exits_total{vm=\"t\",vcpu=\"0\"} 42");
    assert_line(t, "qstats_kvm_vcpu_exits_total{vm=\"t\",vcpu=\"1\"} 43");
    assert_line(t, "# TYPE qstats_kvm_vcpu_halt_wait_seconds_total counter");
    assert_line(t, "qstats_kvm_vcpu_halt_wait_seconds_total{vm=\"t\",vcpu=\"0\"} 1.5");
    assert_line(t, "qstats_kvm_vcpu_halt_wait_seconds_total{vm=\"t\",vcpu=\"1\"} 1e-09");
    assert_line(t, "# TYPE qstats_kvm_vcpu_blocking gauge");
    assert_line(t, "qstats_kvm_vcpu_blocking{vm=\"t\",vcpu=\"0\"} 1");   /* 7 -> 1 */
    assert_line(t, "qstats_kvm_vcpu_blocking{vm=\"t\",vcpu=\"1\"} 0");
    assert_line(t, "# TYPE qstats_kvm_vm_pages_4k gauge");
    assert_line(t, "qstats_kvm_vm_pages_4k{vm=\"t\"} 512");
    assert_line(t, "# TYPE qstats_kvm_vm_max_mmu_rmap_size gauge");      /* peak */
    assert_line(t, "qstats_kvm_vm_mem_bytes_total{vm=\"t\"} 3072");       /* 3 KiB */
    assert_line(t, "qstats_kvm_vcpu_tsc_cycles_total{vm=\"t\",vcpu=\"0\"} 5000");
    assert_line(t, "qstats_balloon_vm_free_memory_bytes{vm=\"t\"} 1048576");
    /* unknown stats get a neutral help line; text format has no UNIT/EOF */
    assert_line(t, "# HELP qstats_kvm_vcpu_lin_hist Statistic lin_hist of provider kvm, target vcpu.");
    assert_null(strstr(t, "# UNIT"));
    assert_null(strstr(t, "# EOF"));
}

static void test_histogram_buckets_cumulative_with_sum_and_count(void **state)
{
    const char *t = scrape(*state, QS_METRICS_PROMETHEUS_TEXT, "t", 0);
    const char *f = "qstats_kvm_vcpu_halt_wait_hist_seconds";
    char line[256];
    static const char *const expect[] = {
        "_bucket{vm=\"t\",vcpu=\"0\",le=\"1e-09\"} 1",
        "_bucket{vm=\"t\",vcpu=\"0\",le=\"2e-09\"} 3",
        "_bucket{vm=\"t\",vcpu=\"0\",le=\"4e-09\"} 3",
        "_bucket{vm=\"t\",vcpu=\"0\",le=\"8e-09\"} 6",
        "_bucket{vm=\"t\",vcpu=\"0\",le=\"+Inf\"} 10",
        "_sum{vm=\"t\",vcpu=\"0\"} 1.5",       /* from halt_wait_ns */
        "_count{vm=\"t\",vcpu=\"0\"} 10",
    };
    const char *prev = t;
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        snprintf(line, sizeof(line), "%s%s", f, expect[i]);
        const char *at = find_line(t, line);
        if (!at)
            fail_msg("missing line: %s\n%s", line, t);
        assert_true(at > prev);   /* in this order */
        prev = at;
    }
    assert_line(t, "# TYPE qstats_kvm_vcpu_halt_wait_hist_seconds histogram");
    /* linear, unit-less: no matching cumulative stat, so no _sum */
    assert_line(t, "qstats_kvm_vcpu_lin_hist_bucket{vm=\"t\",vcpu=\"0\",le=\"10\"} 1");
    assert_line(t, "qstats_kvm_vcpu_lin_hist_bucket{vm=\"t\",vcpu=\"0\",le=\"30\"} 3");
    assert_line(t, "qstats_kvm_vcpu_lin_hist_bucket{vm=\"t\",vcpu=\"1\",le=\"+Inf\"} 2");
    assert_line(t, "qstats_kvm_vcpu_lin_hist_count{vm=\"t\",vcpu=\"1\"} 2");
    assert_null(strstr(t, "qstats_kvm_vcpu_lin_hist_sum"));
}

static void test_openmetrics_format_metadata_and_eof(void **state)
{
    const char *t = scrape(*state, QS_METRICS_OPENMETRICS, "t", 0);
    assert_line(t, "# TYPE qstats_kvm_vcpu_exits counter");
    assert_line(t, "# HELP qstats_kvm_vcpu_exits VM exits of this vCPU, all reasons.");
    assert_line(t, "qstats_kvm_vcpu_exits_total{vm=\"t\",vcpu=\"0\"} 42");
    assert_line(t, "# TYPE qstats_kvm_vcpu_halt_wait_seconds counter");
    assert_line(t, "# UNIT qstats_kvm_vcpu_halt_wait_seconds seconds");
    assert_line(t, "# UNIT qstats_kvm_vcpu_halt_wait_hist_seconds seconds");
    assert_line(t, "# UNIT qstats_balloon_vm_free_memory_bytes bytes");
    assert_no_line(t, "# UNIT qstats_kvm_vcpu_blocking ");
    /* canonical integral le values, and _count only alongside _sum */
    assert_line(t, "qstats_kvm_vcpu_lin_hist_bucket{vm=\"t\",vcpu=\"0\",le=\"10.0\"} 1");
    assert_null(strstr(t, "qstats_kvm_vcpu_lin_hist_count"));
    assert_line(t, "qstats_kvm_vcpu_halt_wait_hist_seconds_count{vm=\"t\",vcpu=\"0\"} 10");
    size_t n = strlen(t);
    assert_true(n > 6);
    assert_string_equal(t + n - 6, "# EOF\n");
    assert_int_equal(count_substr(t, "# EOF"), 1);
}

static void test_vm_label_escaped_and_default(void **state)
{
    const char *t = scrape(*state, QS_METRICS_PROMETHEUS_TEXT, "we\"ird\\vm\n", 0);
    assert_line(t, "qstats_kvm_vm_pages_4k{vm=\"we\\\"ird\\\\vm\\n\"} 512");
    t = scrape(*state, QS_METRICS_PROMETHEUS_TEXT, NULL, 0);
    assert_line(t, "qstats_kvm_vm_pages_4k{vm=\"qstats\"} 512");
}

static void test_odd_qom_path_becomes_escaped_vcpu_label(void **state)
{
    fixture *fx = *state;
    fx->kvm.paths[1] = "/odd/\"cpu\"";
    const char *t = scrape(fx, QS_METRICS_PROMETHEUS_TEXT, "t", 0);
    assert_line(t, "qstats_kvm_vcpu_exits_total{vm=\"t\",vcpu=\"/odd/\\\"cpu\\\"\"} 43");
}

static void test_colliding_names_expose_one_family(void **state)
{
    const char *t = scrape(*state, QS_METRICS_PROMETHEUS_TEXT, "t", 0);
    /* "weird.name-x" and "weird_name_x" both map to one name: first wins */
    assert_int_equal(count_substr(t, "# TYPE qstats_kvm_vm_weird_name_x "), 1);
    assert_line(t, "qstats_kvm_vm_weird_name_x{vm=\"t\"} 1");
    assert_no_line(t, "qstats_kvm_vm_weird_name_x{vm=\"t\"} 2");
}

static void test_provider_registered_twice_gives_no_duplicate_samples(void **state)
{
    fixture *fx = *state;
    qs_registry_add(fx->reg, "kvm", fake_stats, fake_schemas, &fx->kvm, NULL);
    const char *t = scrape(fx, QS_METRICS_PROMETHEUS_TEXT, "t", 0);
    assert_int_equal(count_substr(t, "qstats_kvm_vcpu_exits_total{vm=\"t\",vcpu=\"0\"}"), 1);
    assert_int_equal(count_substr(t, "qstats_kvm_vm_pages_4k{"), 1);
    assert_int_equal(count_substr(t, "# TYPE qstats_kvm_vcpu_exits_total"), 1);
}

static void test_last_update_age_gauge(void **state)
{
    const char *t = scrape(*state, QS_METRICS_PROMETHEUS_TEXT, "t", 1700000030.5);
    assert_line(t, "qstats_balloon_vm_last_update_seconds{vm=\"t\"} 1700000000");
    assert_line(t, "# TYPE qstats_balloon_vm_last_update_age_seconds gauge");
    assert_line(t, "qstats_balloon_vm_last_update_age_seconds{vm=\"t\"} 30.5");
    /* without a clock there is no age; a never-updated (0) value has none */
    t = scrape(*state, QS_METRICS_PROMETHEUS_TEXT, "t", 0);
    assert_null(strstr(t, "last_update_age"));
    fixture *fx = *state;
    static const uint64_t never[] = { 1, 0 };
    fx->balloon.vm_vals = never;
    t = scrape(fx, QS_METRICS_OPENMETRICS, "t", 1700000030.5);
    assert_null(strstr(t, "last_update_age"));
}

static void test_filtered_stat_and_missing_results_omit_family(void **state)
{
    fixture *fx = *state;
    fx->kvm.nvcpus = 0;     /* no vCPUs: no vCPU families at all */
    const char *t = scrape(fx, QS_METRICS_PROMETHEUS_TEXT, "t", 0);
    assert_null(strstr(t, "qstats_kvm_vcpu_"));
    assert_line(t, "qstats_kvm_vm_pages_4k{vm=\"t\"} 512");
}

/* Issue #10: a family-name check that compared each family with every one
 * taken before held one scrape of 65536 families for 54 s.  262144
 * distinct counters (two sample names each) must render in one linear pass;
 * a quadratic one would not finish within ctest's timeout. */
static void test_many_families_render_in_linear_time(void **state)
{
    enum { N = 262144, NAME = 16 };
    fixture *fx = *state;
    qs_schema_value *sv = calloc(N, sizeof(*sv));
    uint64_t *vals = calloc(N, sizeof(*vals));
    char *names = malloc((size_t)N * NAME);
    for (size_t i = 0; i < N; i++) {
        snprintf(names + i * NAME, NAME, "f%06zu", i);
        sv[i] = (qs_schema_value){ .name = names + i * NAME, .type = QS_TYPE_CUMULATIVE,
                                   .unit = QS_UNIT_NONE, .size = 1 };
        vals[i] = i;
    }
    fx->kvm.vm = sv;
    fx->kvm.nvm = N;
    fx->kvm.vm_vals = vals;
    fx->kvm.nvcpus = 0;
    const char *t = scrape(fx, QS_METRICS_PROMETHEUS_TEXT, "t", 0);
    /* Counted by hand: count_substr's strstr, under ASan, measures the
     * whole text at every call. */
    size_t types = 0;
    static const char type[] = "# TYPE qstats_kvm_vm_f";
    for (const char *p = t; *p; p++) {
        if (strncmp(p, type, sizeof(type) - 1) == 0)
            types++;
        while (*p && *p != '\n')
            p++;
        if (!*p)
            break;
    }
    assert_int_equal(types, N);
    assert_line(t, "qstats_kvm_vm_f000000_total{vm=\"t\"} 0");
    assert_line(t, "qstats_kvm_vm_f262143_total{vm=\"t\"} 262143");
    free(names);
    free(vals);
    free(sv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log2_bucket_bounds_follow_kvm_rule_in_seconds),
        cmocka_unit_test(test_linear_bucket_bounds_follow_kvm_rule),
        cmocka_unit_test(test_unit_scaling_uses_base_and_exponent),
        cmocka_unit_test(test_numbers_print_shortest_and_canonical),
        cmocka_unit_test(test_names_sanitised_and_unit_suffix_replaced),
        cmocka_unit_test(test_label_values_escaped),
        cmocka_unit_test(test_accept_negotiation_like_client_libraries),
        cmocka_unit_test(test_listen_address_parsing),
        cmocka_unit_test_setup_teardown(test_text_format_counters_gauges_and_booleans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_buckets_cumulative_with_sum_and_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openmetrics_format_metadata_and_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_label_escaped_and_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_qom_path_becomes_escaped_vcpu_label, setup, teardown),
        cmocka_unit_test_setup_teardown(test_colliding_names_expose_one_family, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_registered_twice_gives_no_duplicate_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_update_age_gauge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filtered_stat_and_missing_results_omit_family, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_families_render_in_linear_time, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
