/*
 * qstats-client-topstats.c - the numbers behind `qstats top`: rows learnt
 * from query-stats-schemas, samples from query-stats, and the per-row
 * aggregates (sums over vCPUs, rates, histogram count/mean/percentiles)
 * with unit-aware formatting.  No terminal code here, so the batch modes
 * (--once, --log) and the live screen show the same numbers.
 *
 * Histogram bucket bounds follow the KVM binary stats rules: log2 bucket 1
 * is [0,1), bucket N is [2^(N-2), 2^(N-1)); linear bucket N is
 * [size*(N-1), size*N); the last bucket is open.  Mean and percentiles are
 * estimates: samples are placed at bucket midpoints (the open bucket at its
 * lower bound) and percentiles are interpolated linearly inside a bucket.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qstats-client.h"

#define MAX_HIST_BUCKETS 4096

void qs_top_model_init(qs_top_model *m)
{
    memset(m, 0, sizeof(*m));
}

static void sample_free(qs_top_sample *s, size_t nrows)
{
    for (int t = 0; t < QS_TARGET__MAX; t++) {
        for (size_t i = 0; i < s->ninst[t]; i++) {
            free(s->paths[t][i]);
        }
        free(s->paths[t]);
    }
    for (size_t r = 0; s->v && r < nrows; r++) {
        free(s->v[r]);
        free(s->have[r]);
    }
    free(s->v);
    free(s->have);
    memset(s, 0, sizeof(*s));
}

static void rows_free(qs_top_model *m)
{
    sample_free(&m->cur, m->nrows);
    sample_free(&m->prev, m->nrows);
    m->have_cur = m->have_prev = false;
    for (size_t r = 0; r < m->nrows; r++) {
        free(m->rows[r].name);
        free(m->rows[r].provider);
        free(m->rows[r].column);
    }
    free(m->rows);
    free(m->index);
    m->rows = NULL;
    m->index = NULL;
    m->nrows = 0;
}

void qs_top_model_destroy(qs_top_model *m)
{
    rows_free(m);
}

bool qs_top_is_hist(qs_stat_type t)
{
    return t == QS_TYPE_LOG2_HIST || t == QS_TYPE_LINEAR_HIST;
}

static int key_cmp(const char *p, qs_target t, const char *name, const qs_top_row *r)
{
    int c = strcmp(p, r->provider);
    if (c) {
        return c;
    }
    if (t != r->target) {
        return t < r->target ? -1 : 1;
    }
    return strcmp(name, r->name);
}

static int index_cmp(const void *a, const void *b, void *opaque)
{
    const qs_top_row *rows = opaque;
    const qs_top_row *x = &rows[*(const size_t *)a];
    return key_cmp(x->provider, x->target, x->name, &rows[*(const size_t *)b]);
}

static long row_find(const qs_top_model *m, const char *p, qs_target t, const char *name)
{
    size_t lo = 0, hi = m->nrows;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = key_cmp(p, t, name, &m->rows[m->index[mid]]);
        if (c == 0) {
            return (long)m->index[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return -1;
}

long qs_top_model_find(const qs_top_model *m, const char *p, qs_target t,
                       const char *name)
{
    return row_find(m, p, t, name);
}

static void row_add(qs_top_model *m, const char *p, qs_target t, json_t *stat)
{
    const char *name = json_string_value(json_object_get(stat, "name"));
    int type = qs_stat_type_lookup(json_string_value(json_object_get(stat, "type")) ?: "");
    const char *unit = json_string_value(json_object_get(stat, "unit"));
    if (!name || type < 0) {
        return;
    }
    qs_top_row *r = &m->rows[m->nrows++];
    memset(r, 0, sizeof(*r));
    r->name = qs_strdup(name);
    r->provider = qs_strdup(p);
    r->target = t;
    r->type = (qs_stat_type)type;
    r->unit = unit && qs_unit_lookup(unit) >= 0 ? (qs_unit)qs_unit_lookup(unit) : QS_UNIT_NONE;
    r->base = (int)json_integer_value(json_object_get(stat, "base"));
    r->exponent = (int)json_integer_value(json_object_get(stat, "exponent"));
    r->bucket_size = (unsigned)json_integer_value(json_object_get(stat, "bucket-size"));
    r->width = qs_top_is_hist(r->type) ? 0 : 1;
}

/* CSV columns: the bare name unless another row has the same name. */
static void name_columns(qs_top_model *m)
{
    for (size_t i = 0; i < m->nrows; i++) {
        qs_top_row *r = &m->rows[i];
        bool dup = false;
        for (size_t j = 0; j < m->nrows && !dup; j++) {
            dup = j != i && !strcmp(m->rows[j].name, r->name);
        }
        r->column = dup ? qs_strdup_printf("%s.%s.%s", r->provider,
                                           qs_target_name(r->target), r->name)
                        : qs_strdup(r->name);
    }
}

bool qs_top_model_load(qs_top_model *m, qs_qmpc *c, qs_error **errp)
{
    json_t *schemas = qs_qmpc_call(c, "query-stats-schemas", NULL, errp);
    if (!schemas) {
        return false;
    }
    rows_free(m);
    size_t i, j, total = 0;
    json_t *schema, *stat;
    json_array_foreach(schemas, i, schema) {
        total += json_array_size(json_object_get(schema, "stats"));
    }
    m->rows = qs_calloc(total + 1, sizeof(*m->rows));
    json_array_foreach(schemas, i, schema) {
        const char *p = json_string_value(json_object_get(schema, "provider"));
        int t = qs_target_lookup(json_string_value(json_object_get(schema, "target")) ?: "");
        if (!p || t < 0) {
            continue;
        }
        json_array_foreach(json_object_get(schema, "stats"), j, stat) {
            row_add(m, p, (qs_target)t, stat);
        }
    }
    /* A duplicate (a provider registered twice) finds one row and leaves
     * the other empty, hence hidden. */
    m->index = qs_calloc(m->nrows + 1, sizeof(*m->index));
    for (size_t k = 0; k < m->nrows; k++) {
        m->index[k] = k;
    }
    qsort_r(m->index, m->nrows, sizeof(*m->index), index_cmp, m->rows);
    json_decref(schemas);
    name_columns(m);
    m->generation++;
    return true;
}

static int path_cmp(const void *a, const void *b)
{
    return strverscmp(*(char *const *)a, *(char *const *)b);
}

static long inst_find(const qs_top_sample *s, qs_target t, const char *path)
{
    char *const *hit = s->ninst[t] ? bsearch(&path, s->paths[t], s->ninst[t],
                                             sizeof(char *), path_cmp) : NULL;
    return hit ? hit - s->paths[t] : -1;
}

/* The instances of every target, sorted; the VM's is "". */
static void collect_paths(qs_top_sample *s, json_t *results[QS_TARGET__MAX])
{
    for (int t = 0; t < QS_TARGET__MAX; t++) {
        size_t i, n = 0;
        json_t *res;
        s->paths[t] = qs_calloc(json_array_size(results[t]) + 1, sizeof(char *));
        json_array_foreach(results[t], i, res) {
            const char *path = json_string_value(json_object_get(res, "qom-path")) ?: "";
            bool seen = false;
            for (size_t k = 0; k < n && !seen; k++) {
                seen = !strcmp(s->paths[t][k], path);
            }
            if (!seen) {
                s->paths[t][n++] = qs_strdup(path);
            }
        }
        qsort(s->paths[t], n, sizeof(char *), path_cmp);
        s->ninst[t] = n;
    }
}

/* Stores one stat value; returns false if no row describes it. */
static bool store_value(qs_top_model *m, qs_top_sample *s, const char *p, qs_target t,
                        size_t inst, json_t *stat)
{
    long ri = row_find(m, p, t, json_string_value(json_object_get(stat, "name")) ?: "");
    if (ri < 0) {
        return false;
    }
    qs_top_row *r = &m->rows[ri];
    json_t *val = json_object_get(stat, "value");
    size_t len = json_is_array(val) ? json_array_size(val) : 1;
    if (r->width == 0) {
        r->width = len < MAX_HIST_BUCKETS ? (len ? len : 1) : MAX_HIST_BUCKETS;
    }
    if (!s->v[ri]) {
        s->v[ri] = qs_calloc(s->ninst[t] * r->width + 1, sizeof(uint64_t));
        s->have[ri] = qs_calloc(s->ninst[t] + 1, 1);
    }
    uint64_t *dst = s->v[ri] + inst * r->width;
    if (json_is_array(val)) {
        for (size_t k = 0; k < len && k < r->width; k++) {
            dst[k] = (uint64_t)json_integer_value(json_array_get(val, k));
        }
    } else {
        dst[0] = json_is_boolean(val) ? json_is_true(val) : (uint64_t)json_integer_value(val);
    }
    s->have[ri][inst] = 1;
    return true;
}

/* Fills s from the query-stats results; returns the number of stats that
 * no schema row describes. */
static size_t parse_sample(qs_top_model *m, qs_top_sample *s, json_t *results[QS_TARGET__MAX])
{
    size_t unknown = 0, i, j;
    json_t *res, *stat;
    collect_paths(s, results);
    s->v = qs_calloc(m->nrows + 1, sizeof(*s->v));
    s->have = qs_calloc(m->nrows + 1, sizeof(*s->have));
    for (int t = 0; t < QS_TARGET__MAX; t++) {
        json_array_foreach(results[t], i, res) {
            const char *p = json_string_value(json_object_get(res, "provider"));
            const char *path = json_string_value(json_object_get(res, "qom-path")) ?: "";
            long inst = inst_find(s, (qs_target)t, path);
            json_array_foreach(json_object_get(res, "stats"), j, stat) {
                if (!p || inst < 0 ||
                    !store_value(m, s, p, (qs_target)t, (size_t)inst, stat)) {
                    unknown++;
                }
            }
        }
    }
    return unknown;
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool query_all(const qs_top_model *m, qs_qmpc *c, json_t *results[QS_TARGET__MAX],
                      qs_error **errp)
{
    bool wanted[QS_TARGET__MAX] = { false };
    for (size_t r = 0; r < m->nrows; r++) {
        wanted[m->rows[r].target] = true;
    }
    for (int t = 0; t < QS_TARGET__MAX; t++) {
        results[t] = NULL;
    }
    for (int t = 0; t < QS_TARGET__MAX; t++) {
        if (!wanted[t]) {
            continue;
        }
        results[t] = qs_qmpc_call(c, "query-stats",
                                  json_pack("{s:s}", "target", qs_target_name((qs_target)t)), errp);
        if (!results[t]) {
            for (int k = 0; k < t; k++) {
                json_decref(results[k]);
            }
            return false;
        }
    }
    return true;
}

bool qs_top_model_sample(qs_top_model *m, qs_qmpc *c, qs_error **errp)
{
    json_t *results[QS_TARGET__MAX];
    if (!query_all(m, c, results, errp)) {
        return false;
    }
    qs_top_sample s = { .mono = clock_s(CLOCK_MONOTONIC), .wall = clock_s(CLOCK_REALTIME) };
    if (parse_sample(m, &s, results) > 0) {
        /* A provider appeared (or changed its stats): learn the schemas
         * again; old samples do not fit the new rows. */
        sample_free(&s, m->nrows);
        if (!qs_top_model_load(m, c, errp)) {
            for (int t = 0; t < QS_TARGET__MAX; t++) {
                json_decref(results[t]);
            }
            return false;
        }
        s = (qs_top_sample){ .mono = clock_s(CLOCK_MONOTONIC), .wall = clock_s(CLOCK_REALTIME) };
        parse_sample(m, &s, results);
    }
    for (int t = 0; t < QS_TARGET__MAX; t++) {
        json_decref(results[t]);
    }
    sample_free(&m->prev, m->nrows);
    m->prev = m->cur;
    m->have_prev = m->have_cur;
    m->cur = s;
    m->have_cur = true;
    return true;
}

/* ---- aggregates ----------------------------------------------------------- */

/* The row as a schema entry of n buckets, for the core's bucket rules. */
static qs_schema_value row_schema(const qs_top_row *r, size_t n)
{
    return (qs_schema_value){ .name = r->name, .type = r->type, .unit = r->unit,
                              .base = (int8_t)r->base, .exponent = (int16_t)r->exponent,
                              .bucket_size = r->bucket_size, .size = (uint32_t)n };
}

/* Bounds of bucket j of n, in raw units; *open for the last bucket. */
static void bucket_bounds(const qs_top_row *r, size_t j, size_t n, double *lo, double *hi,
                          bool *open)
{
    qs_schema_value sv = row_schema(r, n);
    *lo = qs_schema_bucket_lower(&sv, (uint32_t)j);
    *hi = qs_schema_bucket_lower(&sv, (uint32_t)j + 1);   /* finite even for the last */
    *open = j + 1 == n;
}

static double percentile(const qs_top_row *r, const double *b, size_t n, double total, double q)
{
    double target = q * total, cum = 0, lo, hi;
    bool open;
    for (size_t j = 0; j < n; j++) {
        if (b[j] > 0 && cum + b[j] >= target) {
            bucket_bounds(r, j, n, &lo, &hi, &open);
            return open ? lo : lo + (hi - lo) * (target - cum) / b[j];
        }
        cum += b[j];
    }
    return 0;
}

static void distribution(const qs_top_row *r, const double *b, size_t n, qs_top_agg *out)
{
    double total = 0, sum = 0, lo, hi;
    bool open;
    for (size_t j = 0; j < n; j++) {
        bucket_bounds(r, j, n, &lo, &hi, &open);
        total += b[j];
        sum += b[j] * (open ? lo : (lo + hi) / 2);
    }
    if (total <= 0) {
        return;
    }
    out->has_dist = true;
    out->mean = sum / total;
    out->p50 = percentile(r, b, n, total, 0.50);
    out->p99 = percentile(r, b, n, total, 0.99);
}

/* The previous values of instance k of cur, or NULL. */
static const uint64_t *prev_values(const qs_top_model *m, size_t ri, size_t k)
{
    const qs_top_row *r = &m->rows[ri];
    if (!m->have_prev || !m->prev.v[ri]) {
        return NULL;
    }
    long pk = inst_find(&m->prev, r->target, m->cur.paths[r->target][k]);
    return pk >= 0 && m->prev.have[ri][pk] ? m->prev.v[ri] + (size_t)pk * r->width : NULL;
}

static void accumulate(const qs_top_row *r, const uint64_t *cv, const uint64_t *pv,
                       double *curb, double *delta, qs_top_agg *out)
{
    out->ninst++;
    if (r->type == QS_TYPE_PEAK) {
        out->value = out->present && out->value > (double)cv[0] ? out->value : (double)cv[0];
    }
    out->present = true;
    out->ntrue += cv[0] != 0;
    for (size_t j = 0; j < r->width; j++) {
        curb[j] += (double)cv[j];
        if (pv) {
            /* A counter that went backwards was reset: count from zero. */
            delta[j] += (double)(cv[j] >= pv[j] ? cv[j] - pv[j] : cv[j]);
        }
    }
}

void qs_top_model_agg(const qs_top_model *m, size_t ri, long vcpu, qs_top_agg *out)
{
    const qs_top_row *r = &m->rows[ri];
    memset(out, 0, sizeof(*out));
    if (!m->have_cur || !m->cur.v[ri]) {
        return;
    }
    size_t first = 0, end = m->cur.ninst[r->target];
    if (r->target == QS_TARGET_VCPU && vcpu >= 0) {
        first = (size_t)vcpu < end ? (size_t)vcpu : end;
        end = first < end ? first + 1 : end;
    }
    double *curb = qs_calloc(r->width * 2, sizeof(double)), *delta = curb + r->width;
    bool any_prev = false;
    for (size_t k = first; k < end; k++) {
        if (m->cur.have[ri][k]) {
            const uint64_t *pv = prev_values(m, ri, k);
            any_prev |= pv != NULL;
            accumulate(r, m->cur.v[ri] + k * r->width, pv, curb, delta, out);
        }
    }
    double dt = any_prev ? m->cur.mono - m->prev.mono : 0;
    double total = 0, dtotal = 0;
    for (size_t j = 0; j < r->width; j++) {
        total += curb[j];
        dtotal += delta[j];
    }
    if (r->type != QS_TYPE_PEAK) {
        out->value = r->unit == QS_UNIT_BOOLEAN ? out->ntrue : total;
    }
    bool counts = r->type == QS_TYPE_CUMULATIVE || qs_top_is_hist(r->type);
    if (counts && dt > 0) {
        out->has_rate = true;
        out->rate = dtotal / dt;
    }
    if (qs_top_is_hist(r->type)) {
        distribution(r, out->has_rate ? delta : curb, r->width, out);
    }
    free(curb);
}

/* ---- formatting ------------------------------------------------------------ */

typedef struct step {
    double factor;
    const char *suffix;
} step;

static const step seconds_steps[] = {
    { 1e-9, "ns" }, { 1e-6, "us" }, { 1e-3, "ms" }, { 1, "s" }, { 0, NULL }
};
static const step bytes_steps[] = {
    { 1, "B" }, { 1024.0, "KiB" }, { 1048576.0, "MiB" }, { 1073741824.0, "GiB" },
    { 1099511627776.0, "TiB" }, { 1125899906842624.0, "PiB" },
    { 1152921504606846976.0, "EiB" }, { 0, NULL }
};
static const step cycles_steps[] = {
    { 1, "cycles" }, { 1e3, "Kcycles" }, { 1e6, "Mcycles" }, { 1e9, "Gcycles" },
    { 1e12, "Tcycles" }, { 1e15, "Pcycles" }, { 0, NULL }
};
static const step count_steps[] = {
    { 1, "" }, { 1e3, "k" }, { 1e6, "M" }, { 1e9, "G" }, { 1e12, "T" }, { 1e15, "P" },
    { 1e18, "E" }, { 0, NULL }
};

static void format_steps(char *buf, size_t len, double v, const step *st, const char *sep,
                         const char *per)
{
    size_t i = 0;
    while (st[i + 1].suffix && fabs(v) >= st[i + 1].factor) {
        i++;
    }
    double x = v / st[i].factor;
    if (fabs(x) >= 999.5 && st[i + 1].suffix) {
        x = v / st[++i].factor;
    }
    if (fabs(x) >= 999.5) {
        snprintf(buf, len, "%.0f%s%s%s", x, sep, st[i].suffix, per);
    } else {
        snprintf(buf, len, "%.3g%s%s%s", x, sep, st[i].suffix, per);
    }
}

void qs_top_format(char *buf, size_t len, const qs_top_row *r, double raw, bool rate)
{
    qs_schema_value sv = row_schema(r, r->width);
    double v = r->base ? qs_schema_value_scale(&sv, raw) : raw;
    const char *per = rate ? "/s" : "";
    if (v == 0) {
        snprintf(buf, len, "0");
    } else if (r->unit == QS_UNIT_SECONDS) {
        format_steps(buf, len, v, seconds_steps, " ", per);
    } else if (r->unit == QS_UNIT_BYTES) {
        format_steps(buf, len, v, bytes_steps, " ", per);
    } else if (r->unit == QS_UNIT_CYCLES) {
        format_steps(buf, len, v, cycles_steps, " ", per);
    } else if (rate && fabs(v) < 1000) {
        snprintf(buf, len, "%.1f", v);
    } else if (!rate && fabs(v) < 1e12 && v == floor(v)) {
        snprintf(buf, len, "%.0f", v);
    } else {
        format_steps(buf, len, v, count_steps, "", "");
    }
}
