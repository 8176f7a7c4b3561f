/*
 * exporter/render.c - qs_metrics_render: walks the schemas (which define
 * the metric families) and the query-stats results (which give one sample
 * per VM or vCPU) and writes Prometheus text 0.0.4 or OpenMetrics 1.0.
 *
 * Both formats need all samples of a family together, so the outer loop is
 * over schema entries and the inner loop over results.  A result's stats
 * are normally in schema order, so stat j of the schema is looked up at
 * position j of each result first (O(1)), by name otherwise.  Everything a
 * family needs that does not depend on the sample (name, bucket labels) is
 * computed once per family, which keeps a 1024-vCPU scrape cheap.
 *
 * A view selects families (provider, target, stat name) and, per kind of
 * stat, how many vCPUs are shown one by one: past that, a family gets one
 * sample aggregated over the vCPUs (aggregate_values), which is what keeps
 * the series of a 1024-vCPU VM in check.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define NO_BUCKET SIZE_MAX

typedef enum fam_kind { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM } fam_kind;

/* One selected result (a VM or a vCPU) of the schema being rendered. */
typedef struct sel_result {
    const qs_result *res;
    size_t labels_off;      /* 'vm="x",vcpu="3"' in ctx.labels */
} sel_result;

typedef struct render_ctx {
    qs_buf *out;
    qs_metrics_format fmt;
    const char *vm;
    double now;
    const qs_metrics_view *view;
    size_t samples;              /* written so far */
    uint64_t *agg;               /* aggregated values of the current family */
    size_t cap_agg;
    sel_result vm_only;          /* labels of an aggregated sample: vm="x" */
    bool aggregated;             /* the current family is aggregated */
    const qs_results *results;   /* of the schema being rendered */
    sel_result *sel;
    size_t nsel, cap_sel;
    qs_buf labels;               /* NUL-separated label texts of sel */
    qs_strset taken;             /* sample names already exposed */
    qs_strset sums;              /* this schema's possible histogram sums */
    qs_buf fam;                  /* current family name */
    qs_buf help;                 /* current help text */
    qs_buf scratch;
    qs_buf le;                   /* NUL-separated le texts of a histogram */
    size_t *le_off;              /* per bucket: offset in le, or NO_BUCKET */
    size_t cap_le;
    bool started;                /* current family's metadata written */
} render_ctx;

/* ---- exposed names: a family is skipped when it would collide -------- */

static const char *const kind_suffixes[][4] = {
    [FAM_COUNTER] = { "", "_total", NULL },
    [FAM_GAUGE] = { "", NULL },
    [FAM_HISTOGRAM] = { "", "_bucket", "_sum", "_count" },
};

/* Reserves every sample name the family would use; false if one is taken. */
static bool claim_family(render_ctx *c, fam_kind kind)
{
    const char *const *sfx = kind_suffixes[kind];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 4 && sfx[i]; i++) {
            qs_buf_reset(&c->scratch);
            qs_buf_printf(&c->scratch, "%s%s", c->fam.data, sfx[i]);
            if (pass == 0 && qs_strset_contains(&c->taken, c->scratch.data))
                return false;
            if (pass == 1)
                qs_strset_add(&c->taken, c->scratch.data);
        }
    }
    return true;
}

/* ---- metadata ---------------------------------------------------------- */

static void put_help_text(render_ctx *c, const char *s)
{
    while (*s) {
        if ((unsigned char)*s >= 0x80) {
            qs_metrics_put_non_ascii(c->out, &s);    /* a stat's name may be anything */
            continue;
        }
        if (*s == '\\')
            qs_buf_puts(c->out, "\\\\");
        else if (*s == '\n')
            qs_buf_puts(c->out, "\\n");
        else if (*s == '"' && c->fmt == QS_METRICS_OPENMETRICS)
            qs_buf_puts(c->out, "\\\"");
        else
            qs_buf_putc(c->out, *s);
        s++;
    }
}

static void put_meta(render_ctx *c, const char *what, const char *name_sfx)
{
    qs_buf_printf(c->out, "# %s %s%s ", what, c->fam.data, name_sfx);
}

/* Writes HELP/TYPE(/UNIT) before the family's first sample.  In the 0.0.4
 * text format a counter's family name is its sample name (with _total);
 * in OpenMetrics it is the bare name and UNIT must be its suffix. */
static void start_family(render_ctx *c, fam_kind kind, const char *unit)
{
    static const char *const type_names[] = { "counter", "gauge", "histogram" };
    bool om = c->fmt == QS_METRICS_OPENMETRICS;
    const char *sfx = (!om && kind == FAM_COUNTER) ? "_total" : "";
    put_meta(c, "HELP", sfx);
    put_help_text(c, c->help.data);
    qs_buf_putc(c->out, '\n');
    put_meta(c, "TYPE", sfx);
    qs_buf_printf(c->out, "%s\n", type_names[kind]);
    if (om && unit) {
        put_meta(c, "UNIT", "");
        qs_buf_printf(c->out, "%s\n", unit);
    }
}

/* true when the sample may be written (metadata written on first use). */
static bool begin_sample(render_ctx *c, fam_kind kind, const char *unit)
{
    if (!c->started) {
        if (!claim_family(c, kind))
            return false;
        start_family(c, kind, unit);
        c->started = true;
    }
    return true;
}

/* The provider's description of the stat, or a neutral generated line. */
static void set_help(render_ctx *c, const char *provider, qs_target t,
                     const qs_schema_value *sv)
{
    qs_buf_reset(&c->help);
    if (sv->description)
        qs_buf_puts(&c->help, sv->description);
    else
        qs_buf_printf(&c->help, "Statistic %s of provider %s, target %s.",
                      sv->name, provider, qs_target_name(t));
}

/* ---- samples ----------------------------------------------------------- */

static void put_sample_start(render_ctx *c, const sel_result *s, const char *sfx)
{
    c->samples++;
    qs_buf_puts(c->out, c->fam.data);
    qs_buf_puts(c->out, sfx);
    qs_buf_putc(c->out, '{');
    qs_buf_puts(c->out, c->labels.data + s->labels_off);
}

static void put_value(render_ctx *c, const qs_schema_value *sv, uint64_t raw)
{
    if (sv->unit == QS_UNIT_BOOLEAN)
        qs_buf_putc(c->out, raw ? '1' : '0');
    else if (sv->exponent == 0)
        qs_buf_put_u64(c->out, raw);            /* exact, no float detour */
    else
        qs_metrics_put_double(c->out, qs_schema_value_scale(sv, (double)raw), false);
}

/* Values of schema entry sv (index j in its schema) in result r, or NULL. */
static const uint64_t *find_values(const render_ctx *c, const qs_result *r,
                                   const qs_schema_value *sv, size_t j)
{
    const qs_stat *st = c->results->stats + r->first;
    const qs_stat *hit = NULL;
    if (j < r->count && (st[j].desc == sv || !strcmp(st[j].desc->name, sv->name))) {
        hit = &st[j];
    } else {
        for (size_t i = 0; i < r->count && !hit; i++) {
            if (!strcmp(st[i].desc->name, sv->name))
                hit = &st[i];
        }
    }
    if (!hit || (hit->desc != sv && !qs_schema_value_equal(hit->desc, sv)))
        return NULL;
    return qs_results_values(c->results, hit->off);
}

/* ---- aggregation over vCPUs ------------------------------------------- */

static qs_metrics_kind kind_of(const qs_schema_value *sv)
{
    if (qs_schema_is_histogram(sv))
        return QS_METRICS_HISTOGRAMS;
    if (sv->unit == QS_UNIT_BOOLEAN)
        return QS_METRICS_BOOLEANS;
    return sv->type == QS_TYPE_CUMULATIVE ? QS_METRICS_COUNTERS : QS_METRICS_GAUGES;
}

static bool aggregate_family(const render_ctx *c, const qs_schema *s,
                             const qs_schema_value *sv)
{
    return s->target == QS_TARGET_VCPU && c->view &&
           c->nsel > c->view->per_vcpu_max[kind_of(sv)];
}

/* The values of sv over every selected vCPU into c->agg (sv->size words):
 * sums, the maximum for peaks, the number of trues for booleans.  NULL
 * when no vCPU has the stat. */
static const uint64_t *aggregate_values(render_ctx *c, const qs_schema_value *sv, size_t j)
{
    if (c->cap_agg < sv->size) {
        c->cap_agg = sv->size;
        c->agg = qs_realloc(c->agg, c->cap_agg * sizeof(*c->agg));
    }
    memset(c->agg, 0, sv->size * sizeof(*c->agg));
    bool any = false;
    for (size_t k = 0; k < c->nsel; k++) {
        const uint64_t *v = find_values(c, c->sel[k].res, sv, j);
        for (size_t i = 0; v && i < sv->size; i++) {
            if (sv->unit == QS_UNIT_BOOLEAN)
                c->agg[i] += v[i] != 0;
            else if (sv->type == QS_TYPE_PEAK)
                c->agg[i] = v[i] > c->agg[i] ? v[i] : c->agg[i];
            else
                c->agg[i] += v[i];
        }
        any = any || v;
    }
    return any ? c->agg : NULL;
}

static void render_scalar(render_ctx *c, const qs_schema *s, size_t j)
{
    const qs_schema_value *sv = &s->stats[j];
    fam_kind kind = sv->type == QS_TYPE_CUMULATIVE ? FAM_COUNTER : FAM_GAUGE;
    const char *unit = qs_metrics_unit_word(sv->unit);
    if (c->aggregated) {
        const uint64_t *v = aggregate_values(c, sv, j);
        if (!v || !begin_sample(c, kind, unit))
            return;
        put_sample_start(c, &c->vm_only, kind == FAM_COUNTER ? "_total" : "");
        qs_buf_puts(c->out, "} ");
        if (sv->unit == QS_UNIT_BOOLEAN)
            qs_buf_put_u64(c->out, v[0]);          /* a count of vCPUs */
        else
            put_value(c, sv, v[0]);
        qs_buf_putc(c->out, '\n');
        return;
    }
    for (size_t k = 0; k < c->nsel; k++) {
        const uint64_t *v = find_values(c, c->sel[k].res, sv, j);
        if (!v || !begin_sample(c, kind, unit))
            continue;
        put_sample_start(c, &c->sel[k], kind == FAM_COUNTER ? "_total" : "");
        qs_buf_puts(c->out, "} ");
        put_value(c, sv, v[0]);
        qs_buf_putc(c->out, '\n');
    }
}

/* ---- histograms -------------------------------------------------------- */

/* le label texts for buckets 0..size-2; a bound that does not grow (an
 * underflowed scale, bucket_size 0, 2^i beyond double range) gets no line
 * of its own: its count simply flows into the next cumulative bucket. */
static void prepare_buckets(render_ctx *c, const qs_schema_value *sv)
{
    if (c->cap_le < sv->size) {
        c->cap_le = sv->size;
        c->le_off = qs_realloc(c->le_off, c->cap_le * sizeof(*c->le_off));
    }
    qs_buf_reset(&c->le);
    double prev = -1.0 / 0.0;
    for (size_t i = 0; i + 1 < sv->size; i++) {
        double b = qs_schema_value_scale(sv, qs_schema_bucket_upper(sv, i));
        c->le_off[i] = NO_BUCKET;
        if (b > prev && b < 1.0 / 0.0) {
            c->le_off[i] = c->le.len;
            qs_metrics_put_double(&c->le, b, c->fmt == QS_METRICS_OPENMETRICS);
            qs_buf_putc(&c->le, 0);
            prev = b;
        }
    }
}

static void put_bucket(render_ctx *c, const sel_result *s, const char *le,
                       uint64_t cum)
{
    put_sample_start(c, s, "_bucket");
    qs_buf_puts(c->out, ",le=\"");
    qs_buf_puts(c->out, le);
    qs_buf_puts(c->out, "\"} ");
    qs_buf_put_u64(c->out, cum);
    qs_buf_putc(c->out, '\n');
}

/* The cumulative stats that may be a histogram's sum, by stem and unit:
 * built once per schema, so that finding each histogram's sum is a lookup
 * rather than a scan of the schema. */
static void index_sum_stats(render_ctx *c, const qs_schema *s)
{
    qs_strset_clear(&c->sums);
    for (size_t i = 0; i < s->n; i++) {
        const qs_schema_value *cand = &s->stats[i];
        if (cand->type != QS_TYPE_CUMULATIVE || cand->size != 1)
            continue;
        qs_metrics_stem(&c->scratch, cand, true);
        qs_buf_printf(&c->scratch, "/%d", (int)cand->unit);
        qs_strset_put(&c->sums, c->scratch.data, i);     /* the first one wins */
    }
}

/* Index of the cumulative stat that is this histogram's sum, or -1. */
static long find_sum_stat(render_ctx *c, const qs_schema_value *hist)
{
    size_t i;
    qs_metrics_stem(&c->scratch, hist, true);
    qs_buf_printf(&c->scratch, "/%d", (int)hist->unit);
    return qs_strset_get(&c->sums, c->scratch.data, &i) ? (long)i : -1;
}

/* The buckets of a crafted stats file may sum past 2^64: saturating keeps
 * the counts cumulative, as both formats require. */
static uint64_t add_saturating(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

static void render_hist_sample(render_ctx *c, const sel_result *s,
                               const qs_schema_value *sv, const uint64_t *v,
                               const qs_schema_value *sum_sv,
                               const uint64_t *sum)
{
    uint64_t cum = 0;
    for (size_t i = 0; i + 1 < sv->size; i++) {
        cum = add_saturating(cum, v[i]);
        if (c->le_off[i] != NO_BUCKET)
            put_bucket(c, s, c->le.data + c->le_off[i], cum);
    }
    cum = add_saturating(cum, v[sv->size - 1]);
    put_bucket(c, s, "+Inf", cum);
    if (sum) {
        put_sample_start(c, s, "_sum");
        qs_buf_puts(c->out, "} ");
        put_value(c, sum_sv, sum[0]);
        qs_buf_putc(c->out, '\n');
    }
    /* OpenMetrics allows _count only together with _sum. */
    if (sum || c->fmt == QS_METRICS_PROMETHEUS_TEXT) {
        put_sample_start(c, s, "_count");
        qs_buf_puts(c->out, "} ");
        qs_buf_put_u64(c->out, cum);
        qs_buf_putc(c->out, '\n');
    }
}

static void render_histogram(render_ctx *c, const qs_schema *s, size_t j)
{
    const qs_schema_value *sv = &s->stats[j];
    if (sv->size == 0)
        return;
    prepare_buckets(c, sv);
    long sum_idx = find_sum_stat(c, sv);
    const qs_schema_value *sum_sv = sum_idx >= 0 ? &s->stats[sum_idx] : NULL;
    const char *unit = qs_metrics_unit_word(sv->unit);
    if (c->aggregated) {
        uint64_t sum = 0;
        const uint64_t *sum_v = sum_sv ? aggregate_values(c, sum_sv, (size_t)sum_idx) : NULL;
        if (sum_v)
            sum = sum_v[0];
        const uint64_t *v = aggregate_values(c, sv, j);
        if (v && begin_sample(c, FAM_HISTOGRAM, unit))
            render_hist_sample(c, &c->vm_only, sv, v, sum_sv, sum_v ? &sum : NULL);
        return;
    }
    for (size_t k = 0; k < c->nsel; k++) {
        const uint64_t *v = find_values(c, c->sel[k].res, sv, j);
        if (!v || !begin_sample(c, FAM_HISTOGRAM, unit))
            continue;
        const uint64_t *sum = sum_sv ?
            find_values(c, c->sel[k].res, sum_sv, (size_t)sum_idx) : NULL;
        render_hist_sample(c, &c->sel[k], sv, v, sum_sv, sum);
    }
}

/* ---- the last-update age gauge ----------------------------------------- */

static bool is_last_update(const qs_schema_value *sv)
{
    return (!strcmp(sv->name, "last-update") || !strcmp(sv->name, "last_update")) &&
           sv->unit == QS_UNIT_SECONDS && sv->size == 1 &&
           sv->type == QS_TYPE_INSTANT;
}

/* Guest numbers can be arbitrarily old (the agent may be gone); exposing
 * now - last-update lets an alert catch that without clock arithmetic in
 * PromQL against a host timestamp. */
static void render_age(render_ctx *c, const qs_schema *s, size_t j)
{
    const qs_schema_value *sv = &s->stats[j];
    if (c->now <= 0)
        return;
    qs_metrics_stem(&c->scratch, sv, false);
    qs_buf_reset(&c->fam);
    qs_buf_printf(&c->fam, "qstats_%s_%s_%s_age_seconds",
                  s->provider, qs_target_name(s->target),
                  c->scratch.data);
    qs_buf_reset(&c->help);
    qs_buf_printf(&c->help, "Seconds since %s (large: the numbers are stale).",
                  sv->name);
    c->started = false;
    for (size_t k = 0; k < c->nsel; k++) {
        const uint64_t *v = find_values(c, c->sel[k].res, sv, j);
        if (!v || v[0] == 0 || !begin_sample(c, FAM_GAUGE, "seconds"))
            continue;
        double age = c->now - qs_schema_value_scale(sv, (double)v[0]);
        put_sample_start(c, &c->sel[k], "");
        qs_buf_puts(c->out, "} ");
        qs_metrics_put_double(c->out, age > 0 ? age : 0, false);
        qs_buf_putc(c->out, '\n');
    }
}

/* ---- results of one schema --------------------------------------------- */

static void put_vcpu_label(qs_buf *b, const char *path)
{
    /* "/machine/unattached/device[12]" -> "12"; anything else verbatim. */
    const char *open = path ? strrchr(path, '[') : NULL;
    size_t n = open ? strspn(open + 1, "0123456789") : 0;
    if (n > 0 && !strcmp(open + 1 + n, "]"))
        qs_buf_append(b, open + 1, n);
    else
        qs_metrics_put_label_value(b, path ? path : "");
}

static int cmp_path(const void *a, const void *b)
{
    const sel_result *x = a, *y = b;
    const char *px = x->res->qom_path, *py = y->res->qom_path;
    int r = (px && py) ? strcmp(px, py) : (px != NULL) - (py != NULL);
    return r ? r : (x->res < y->res ? -1 : x->res > y->res);
}

static int cmp_order(const void *a, const void *b)
{
    const sel_result *x = a, *y = b;
    return x->res < y->res ? -1 : x->res > y->res;
}

/* A provider registered twice answers twice; two samples with one label
 * set would make the whole scrape invalid, so keep the first of each. */
static void dedupe_selection(render_ctx *c)
{
    if (c->nsel < 2)
        return;
    qsort(c->sel, c->nsel, sizeof(*c->sel), cmp_path);
    size_t n = 1;
    for (size_t i = 1; i < c->nsel; i++) {
        const char *a = c->sel[i].res->qom_path, *b = c->sel[n - 1].res->qom_path;
        bool same = (!a && !b) || (a && b && !strcmp(a, b));
        if (!same)
            c->sel[n++] = c->sel[i];
    }
    c->nsel = n;
    qsort(c->sel, c->nsel, sizeof(*c->sel), cmp_order);
}

static void select_results(render_ctx *c, const qs_schema *s,
                           const qs_results *r)
{
    c->nsel = 0;
    c->results = r;
    for (size_t i = 0; r && i < r->nres; i++) {
        if (strcmp(r->res[i].provider, s->provider) != 0)
            continue;
        if (c->nsel == c->cap_sel) {
            c->cap_sel = c->cap_sel ? 2 * c->cap_sel : 16;
            c->sel = qs_realloc(c->sel, c->cap_sel * sizeof(*c->sel));
        }
        c->sel[c->nsel++].res = &r->res[i];
    }
    dedupe_selection(c);
    qs_buf_reset(&c->labels);
    qs_buf_puts(&c->labels, "vm=\"");
    qs_metrics_put_label_value(&c->labels, c->vm);
    qs_buf_putc(&c->labels, '"');
    qs_buf_putc(&c->labels, 0);
    c->vm_only.labels_off = 0;
    for (size_t k = 0; k < c->nsel; k++) {
        c->sel[k].labels_off = c->labels.len;
        qs_buf_puts(&c->labels, "vm=\"");
        qs_metrics_put_label_value(&c->labels, c->vm);
        qs_buf_putc(&c->labels, '"');
        if (s->target == QS_TARGET_VCPU) {
            qs_buf_puts(&c->labels, ",vcpu=\"");
            put_vcpu_label(&c->labels, c->sel[k].res->qom_path);
            qs_buf_putc(&c->labels, '"');
        }
        qs_buf_putc(&c->labels, 0);
    }
}

static bool selected(const qs_strlist *l, const char *s)
{
    return qs_strlist_match(l, s);
}

/* What an aggregated family's HELP adds: how its vCPUs were combined. */
static const char *aggregate_rule(const qs_schema_value *sv)
{
    if (sv->unit == QS_UNIT_BOOLEAN)
        return " Aggregated: the number of vCPUs for which it is true.";
    if (sv->type == QS_TYPE_PEAK)
        return " Aggregated: the maximum over the VM's vCPUs.";
    return " Aggregated: summed over the VM's vCPUs.";
}

static void render_schema(render_ctx *c, const qs_schema *s, const qs_results *r)
{
    const qs_metrics_view *v = c->view;
    if (v && (!selected(v->providers, s->provider) ||
              !selected(v->targets, qs_target_name(s->target))))
        return;
    select_results(c, s, r);
    if (c->nsel == 0)
        return;
    index_sum_stats(c, s);
    for (size_t j = 0; j < s->n; j++) {
        const qs_schema_value *sv = &s->stats[j];
        bool hist = qs_schema_is_histogram(sv);
        if (!hist && sv->size != 1)
            continue;       /* a scalar type with several values has no mapping */
        if (v && !selected(v->names, sv->name))
            continue;
        qs_metrics_family_name(&c->fam, s->provider, s->target, sv);
        set_help(c, s->provider, s->target, sv);
        c->aggregated = aggregate_family(c, s, sv);
        if (c->aggregated)
            qs_buf_puts(&c->help, aggregate_rule(sv));
        c->started = false;
        if (hist)
            render_histogram(c, s, j);
        else
            render_scalar(c, s, j);
        if (is_last_update(sv))
            render_age(c, s, j);
    }
}

/* ---- the exporter's own health ------------------------------------------ */

static void health_sample(render_ctx *c, const char *name, fam_kind kind, const char *unit,
                          const char *help, const char *labels, double v)
{
    qs_buf_reset(&c->fam);
    qs_buf_puts(&c->fam, name);
    qs_buf_reset(&c->help);
    qs_buf_puts(&c->help, help);
    c->started = false;
    if (!begin_sample(c, kind, unit))
        return;
    c->samples++;
    qs_buf_printf(c->out, "%s%s{%s} ", name, kind == FAM_COUNTER ? "_total" : "", labels);
    qs_metrics_put_double(c->out, v, false);
    qs_buf_putc(c->out, '\n');
}

static void render_health(render_ctx *c, const qs_metrics_health *h)
{
    qs_buf version, vm;             /* labels: not in scratch, which claims use */
    qs_buf_init(&version);
    qs_buf_init(&vm);
    qs_buf_puts(&vm, "vm=\"");
    qs_metrics_put_label_value(&vm, c->vm);
    qs_buf_putc(&vm, '"');
    qs_buf_printf(&version, "%s,version=\"", vm.data);
    qs_metrics_put_label_value(&version, h->version);
    qs_buf_putc(&version, '"');
    health_sample(c, "qstats_build_info", FAM_GAUGE, NULL,
                  "qstats' version: always 1.", version.data, 1);
    health_sample(c, "qstats_exporter_scrapes", FAM_COUNTER, NULL,
                  "Scrapes of the metrics endpoint.", vm.data, (double)h->scrapes);
    health_sample(c, "qstats_exporter_sources_failing", FAM_GAUGE, NULL,
                  "Statistics sources whose reads fail now (see QMP query-stats-failures).",
                  vm.data, (double)h->sources_failing);
    health_sample(c, "qstats_vm_vcpus", FAM_GAUGE, NULL,
                  "vCPUs of the VM (also those whose families are aggregated).", vm.data,
                  (double)h->vcpus);
    health_sample(c, "qstats_exporter_samples", FAM_GAUGE, NULL,
                  "Samples in this exposition, these included.", vm.data,
                  (double)c->samples + 2);
    health_sample(c, "qstats_exporter_scrape_duration_seconds", FAM_GAUGE, "seconds",
                  "Time this scrape took to gather and render.", vm.data,
                  qs_clock_seconds(CLOCK_MONOTONIC) - h->started);
    qs_buf_free(&version);
    qs_buf_free(&vm);
}

void qs_metrics_view_init(qs_metrics_view *v)
{
    memset(v, 0, sizeof(*v));
    v->per_vcpu_max[QS_METRICS_COUNTERS] = QS_METRICS_PER_VCPU_SCALARS;
    v->per_vcpu_max[QS_METRICS_GAUGES] = QS_METRICS_PER_VCPU_SCALARS;
    v->per_vcpu_max[QS_METRICS_BOOLEANS] = QS_METRICS_PER_VCPU_SCALARS;
    v->per_vcpu_max[QS_METRICS_HISTOGRAMS] = QS_METRICS_PER_VCPU_HISTOGRAMS;
}

size_t qs_metrics_render(qs_buf *out, qs_metrics_format fmt, const char *vm_name,
                         const qs_schemas *schemas, const qs_results *vm_results,
                         const qs_results *vcpu_results, double now,
                         const qs_metrics_view *view)
{
    render_ctx c = { .out = out, .fmt = fmt, .now = now, .view = view,
                     .vm = vm_name ? vm_name : QS_METRICS_DEFAULT_VM };
    qs_buf_init(&c.labels);
    qs_strset_init(&c.taken);
    qs_strset_init(&c.sums);
    qs_buf_init(&c.fam);
    qs_buf_init(&c.help);
    qs_buf_init(&c.scratch);
    qs_buf_init(&c.le);
    for (size_t i = 0; schemas && i < schemas->n; i++) {
        const qs_schema *s = &schemas->v[i];
        /* a provider registered twice has two schemas: the first wins */
        if (qs_schemas_find(schemas, s->provider, s->target) != s)
            continue;
        if (s->target == QS_TARGET_VM)
            render_schema(&c, s, vm_results);
        else if (s->target == QS_TARGET_VCPU)
            render_schema(&c, s, vcpu_results);
    }
    if (view && view->health)
        render_health(&c, view->health);
    if (fmt == QS_METRICS_OPENMETRICS)
        qs_buf_puts(out, "# EOF\n");
    free(c.sel);
    free(c.le_off);
    free(c.agg);
    qs_buf_free(&c.labels);
    qs_strset_free(&c.taken);
    qs_strset_free(&c.sums);
    qs_buf_free(&c.fam);
    qs_buf_free(&c.help);
    qs_buf_free(&c.scratch);
    qs_buf_free(&c.le);
    return c.samples;
}
