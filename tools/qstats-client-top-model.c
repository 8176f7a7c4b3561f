/*
 * qstats-client-top-model.c - the numbers behind `qstats top`: rows learnt
 * from query-stats-schemas, samples from query-stats, and the per-row
 * aggregates (sums over vCPUs, rates, histogram count/mean/percentiles).
 * No text and no terminal here: the table (qstats-client-top-table.c)
 * turns these numbers into the lines every mode prints.
 *
 * Mean and percentiles of a histogram are estimates from the bucket bounds
 * (core's, the same as HMP's and the metrics'): samples are placed at bucket
 * midpoints (the open last bucket at its lower bound) and percentiles are
 * interpolated linearly inside a bucket.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qs-common.h"
#include "qstats-client-top.h"

/* A bound on the buckets kept per histogram, so that a malformed reply
 * cannot make top allocate without limit. */
#define MAX_HIST_BUCKETS 4096

static void sample_free(qs_top_sample *s, size_t nrows)
{
    for (int t = 0; t < QS_TARGET__MAX; t++) {
        for (size_t i = 0; i < s->ninstances[t]; i++) {
            free(s->paths[t][i]);
        }
        free(s->paths[t]);
    }
    for (size_t r = 0; s->values && r < nrows; r++) {
        free(s->values[r]);
        free(s->reported[r]);
    }
    free(s->values);
    free(s->reported);
    memset(s, 0, sizeof(*s));
}

static void rows_free(qs_top_model *m)
{
    sample_free(&m->current, m->nrows);
    sample_free(&m->previous, m->nrows);
    m->has_current = m->has_previous = false;
    for (size_t r = 0; r < m->nrows; r++) {
        free((char *)m->rows[r].sv.name);
        free(m->rows[r].provider);
        free(m->rows[r].column);
    }
    free(m->rows);
    free(m->by_key);
    m->rows = NULL;
    m->by_key = NULL;
    m->nrows = 0;
}

void qs_top_model_destroy(qs_top_model *m)
{
    rows_free(m);
}

bool qs_top_row_counts(const qs_top_row *r)
{
    return r->sv.type == QS_TYPE_CUMULATIVE || qs_schema_is_histogram(&r->sv);
}

/* ---- rows ------------------------------------------------------------------ */

static int compare_key(const char *provider, qs_target target, const char *name,
                       const qs_top_row *r)
{
    int c = strcmp(provider, r->provider);
    if (c) {
        return c;
    }
    if (target != r->target) {
        return target < r->target ? -1 : 1;
    }
    return strcmp(name, r->sv.name);
}

static int compare_rows_by_key(const void *a, const void *b, void *opaque)
{
    const qs_top_row *rows = opaque;
    const qs_top_row *x = &rows[*(const size_t *)a];
    return compare_key(x->provider, x->target, x->sv.name, &rows[*(const size_t *)b]);
}

long qs_top_model_find(const qs_top_model *m, const char *provider, qs_target target,
                       const char *name)
{
    size_t lo = 0, hi = m->nrows;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = compare_key(provider, target, name, &m->rows[m->by_key[mid]]);
        if (c == 0) {
            return (long)m->by_key[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return -1;
}

/* The schema entry of a query-stats-schemas stat; false if it is not one. */
static bool parse_schema_value(json_t *stat, qs_schema_value *sv)
{
    const char *name = json_string_value(json_object_get(stat, "name"));
    int type = qs_stat_type_lookup(json_string_value(json_object_get(stat, "type")) ?: "");
    int unit = qs_unit_lookup(json_string_value(json_object_get(stat, "unit")) ?: "");
    if (!name || type < 0) {
        return false;
    }
    *sv = (qs_schema_value){
        .name = qs_strdup(name),
        .type = (qs_stat_type)type,
        .unit = unit >= 0 ? (qs_unit)unit : QS_UNIT_NONE,
        .base = (int8_t)json_integer_value(json_object_get(stat, "base")),
        .exponent = (int16_t)json_integer_value(json_object_get(stat, "exponent")),
        .bucket_size = (uint32_t)json_integer_value(json_object_get(stat, "bucket-size")),
    };
    sv->size = qs_schema_is_histogram(sv) ? 0 : 1;
    return true;
}

static void row_add(qs_top_model *m, const char *provider, qs_target target, json_t *stat)
{
    qs_top_row *r = &m->rows[m->nrows];
    if (parse_schema_value(stat, &r->sv)) {
        r->provider = qs_strdup(provider);
        r->target = target;
        m->nrows++;
    }
}

/* CSV columns: the bare name unless another row has the same name. */
static void name_columns(qs_top_model *m)
{
    for (size_t i = 0; i < m->nrows; i++) {
        qs_top_row *r = &m->rows[i];
        bool dup = false;
        for (size_t j = 0; j < m->nrows && !dup; j++) {
            dup = j != i && !strcmp(m->rows[j].sv.name, r->sv.name);
        }
        r->column = dup ? qs_strdup_printf("%s.%s.%s", r->provider,
                                           qs_target_name(r->target), r->sv.name)
                        : qs_strdup(r->sv.name);
    }
}

static void sort_by_key(qs_top_model *m)
{
    /* A duplicate (a provider registered twice) finds one row and leaves
     * the other empty, hence hidden. */
    m->by_key = qs_calloc(m->nrows + 1, sizeof(*m->by_key));
    for (size_t k = 0; k < m->nrows; k++) {
        m->by_key[k] = k;
    }
    qsort_r(m->by_key, m->nrows, sizeof(*m->by_key), compare_rows_by_key, m->rows);
}

bool qs_top_model_load(qs_top_model *m, qs_qmp_client *client, qs_error **errp)
{
    json_t *schemas = qs_qmp_client_call(client, "query-stats-schemas", NULL, errp);
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
        const char *provider = json_string_value(json_object_get(schema, "provider"));
        int t = qs_target_lookup(json_string_value(json_object_get(schema, "target")) ?: "");
        if (!provider || t < 0) {
            continue;
        }
        json_array_foreach(json_object_get(schema, "stats"), j, stat) {
            row_add(m, provider, (qs_target)t, stat);
        }
    }
    json_decref(schemas);
    sort_by_key(m);
    name_columns(m);
    return true;
}

/* ---- samples ----------------------------------------------------------------- */

static int compare_paths(const void *a, const void *b)
{
    return strverscmp(*(char *const *)a, *(char *const *)b);
}

static long instance_find(const qs_top_sample *s, qs_target target, const char *path)
{
    char *const *hit = s->ninstances[target]
        ? bsearch(&path, s->paths[target], s->ninstances[target], sizeof(char *), compare_paths)
        : NULL;
    return hit ? hit - s->paths[target] : -1;
}

/* The instances of every target, sorted; the VM's is "". */
static void collect_paths(qs_top_sample *s, json_t *results[QS_TARGET__MAX])
{
    for (int t = 0; t < QS_TARGET__MAX; t++) {
        size_t i, n = 0;
        json_t *result;
        s->paths[t] = qs_calloc(json_array_size(results[t]) + 1, sizeof(char *));
        json_array_foreach(results[t], i, result) {
            const char *path = json_string_value(json_object_get(result, "qom-path")) ?: "";
            bool seen = false;
            for (size_t k = 0; k < n && !seen; k++) {
                seen = !strcmp(s->paths[t][k], path);
            }
            if (!seen) {
                s->paths[t][n++] = qs_strdup(path);
            }
        }
        qsort(s->paths[t], n, sizeof(char *), compare_paths);
        s->ninstances[t] = n;
    }
}

/* Stores one stat value; returns false if no row describes it. */
static bool store_value(qs_top_model *m, qs_top_sample *s, const char *provider,
                        qs_target target, size_t instance, json_t *stat)
{
    long ri = qs_top_model_find(m, provider, target,
                                json_string_value(json_object_get(stat, "name")) ?: "");
    if (ri < 0) {
        return false;
    }
    qs_top_row *r = &m->rows[ri];
    json_t *value = json_object_get(stat, "value");
    size_t len = json_is_array(value) ? json_array_size(value) : 1;
    if (r->sv.size == 0) {
        r->sv.size = len < MAX_HIST_BUCKETS ? (len ? (uint32_t)len : 1) : MAX_HIST_BUCKETS;
    }
    if (!s->values[ri]) {
        s->values[ri] = qs_calloc(s->ninstances[target] * r->sv.size + 1, sizeof(uint64_t));
        s->reported[ri] = qs_calloc(s->ninstances[target] + 1, 1);
    }
    uint64_t *dst = s->values[ri] + instance * r->sv.size;
    if (json_is_array(value)) {
        for (size_t k = 0; k < len && k < r->sv.size; k++) {
            dst[k] = (uint64_t)json_integer_value(json_array_get(value, k));
        }
    } else {
        dst[0] = json_is_boolean(value) ? json_is_true(value)
                                        : (uint64_t)json_integer_value(value);
    }
    s->reported[ri][instance] = 1;
    return true;
}

/* Fills s from the query-stats results; returns the number of stats that
 * no schema row describes. */
static size_t parse_sample(qs_top_model *m, qs_top_sample *s,
                           json_t *results[QS_TARGET__MAX])
{
    size_t unknown = 0, i, j;
    json_t *result, *stat;
    collect_paths(s, results);
    s->values = qs_calloc(m->nrows + 1, sizeof(*s->values));
    s->reported = qs_calloc(m->nrows + 1, sizeof(*s->reported));
    for (int t = 0; t < QS_TARGET__MAX; t++) {
        json_array_foreach(results[t], i, result) {
            const char *provider = json_string_value(json_object_get(result, "provider"));
            const char *path = json_string_value(json_object_get(result, "qom-path")) ?: "";
            long instance = instance_find(s, (qs_target)t, path);
            json_array_foreach(json_object_get(result, "stats"), j, stat) {
                if (!provider || instance < 0 ||
                    !store_value(m, s, provider, (qs_target)t, (size_t)instance, stat)) {
                    unknown++;
                }
            }
        }
    }
    return unknown;
}

static void results_free(json_t *results[QS_TARGET__MAX])
{
    for (int t = 0; t < QS_TARGET__MAX; t++) {
        json_decref(results[t]);
        results[t] = NULL;
    }
}

/* One query-stats for each target that has rows. */
static bool query_all(const qs_top_model *m, qs_qmp_client *client, json_t *results[QS_TARGET__MAX],
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
        json_t *args = json_pack("{s:s}", "target", qs_target_name((qs_target)t));
        results[t] = qs_qmp_client_call(client, "query-stats", args, errp);
        if (!results[t]) {
            results_free(results);
            return false;
        }
    }
    return true;
}

static qs_top_sample sample_now(void)
{
    return (qs_top_sample){ .monotonic = qs_clock_seconds(CLOCK_MONOTONIC),
                            .realtime = qs_clock_seconds(CLOCK_REALTIME) };
}

bool qs_top_model_sample(qs_top_model *m, qs_qmp_client *client, qs_error **errp)
{
    json_t *results[QS_TARGET__MAX];
    if (!query_all(m, client, results, errp)) {
        return false;
    }
    qs_top_sample s = sample_now();
    if (parse_sample(m, &s, results) > 0) {
        /* A provider appeared (or changed its stats): learn the schemas
         * again; old samples do not fit the new rows. */
        sample_free(&s, m->nrows);
        if (!qs_top_model_load(m, client, errp)) {
            results_free(results);
            return false;
        }
        s = sample_now();
        parse_sample(m, &s, results);
    }
    results_free(results);
    sample_free(&m->previous, m->nrows);
    m->previous = m->current;
    m->has_previous = m->has_current;
    m->current = s;
    m->has_current = true;
    return true;
}

/* ---- aggregates ----------------------------------------------------------- */

/* The buckets' counts are estimated as samples at these bounds (raw units);
 * the open last bucket has no finite upper bound and counts at its lower. */
static double percentile(const qs_schema_value *sv, const double *buckets, double total,
                         double q)
{
    double target = q * total, below = 0;
    for (uint32_t j = 0; j < sv->size; j++) {
        if (buckets[j] > 0 && below + buckets[j] >= target) {
            double lo = qs_schema_bucket_lower(sv, j), hi = qs_schema_bucket_upper(sv, j);
            return isinf(hi) ? lo : lo + (hi - lo) * (target - below) / buckets[j];
        }
        below += buckets[j];
    }
    return 0;
}

static void distribution(const qs_schema_value *sv, const double *buckets,
                         qs_top_aggregate *out)
{
    double total = 0, sum = 0;
    for (uint32_t j = 0; j < sv->size; j++) {
        double lo = qs_schema_bucket_lower(sv, j), hi = qs_schema_bucket_upper(sv, j);
        total += buckets[j];
        sum += buckets[j] * (isinf(hi) ? lo : (lo + hi) / 2);
    }
    if (total <= 0) {
        return;
    }
    out->has_distribution = true;
    out->mean = sum / total;
    out->p50 = percentile(sv, buckets, total, 0.50);
    out->p99 = percentile(sv, buckets, total, 0.99);
}

/* The previous values of the current sample's instance k, or NULL. */
static const uint64_t *previous_values(const qs_top_model *m, size_t ri, size_t k)
{
    const qs_top_row *r = &m->rows[ri];
    const qs_top_sample *prev = &m->previous;
    if (!m->has_previous || !prev->values[ri]) {
        return NULL;
    }
    long there = instance_find(prev, r->target, m->current.paths[r->target][k]);
    if (there < 0 || !prev->reported[ri][there]) {
        return NULL;       /* the instance is new */
    }
    return prev->values[ri] + (size_t)there * r->sv.size;
}

/* Adds one instance's values (and their growth since prev, if any). */
static void accumulate(const qs_top_row *r, const uint64_t *cur, const uint64_t *prev,
                       double *sums, double *growth, qs_top_aggregate *out)
{
    out->ninstances++;
    if (r->sv.type == QS_TYPE_PEAK) {
        out->value = out->present && out->value > (double)cur[0] ? out->value : (double)cur[0];
    }
    out->present = true;
    out->ntrue += cur[0] != 0;
    for (size_t j = 0; j < r->sv.size; j++) {
        sums[j] += (double)cur[j];
        if (prev) {
            /* A counter that went backwards was reset: count from zero. */
            growth[j] += (double)(cur[j] >= prev[j] ? cur[j] - prev[j] : cur[j]);
        }
    }
}

/* The selected instances of the current sample: [*first, *end). */
static void selected_instances(const qs_top_model *m, const qs_top_row *r, long vcpu,
                               size_t *first, size_t *end)
{
    *first = 0;
    *end = m->current.ninstances[r->target];
    if (r->target == QS_TARGET_VCPU && vcpu >= 0) {
        *first = (size_t)vcpu < *end ? (size_t)vcpu : *end;
        *end = *first < *end ? *first + 1 : *end;
    }
}

static double sum_of(const double *v, size_t n)
{
    double total = 0;
    for (size_t j = 0; j < n; j++) {
        total += v[j];
    }
    return total;
}

void qs_top_model_aggregate(const qs_top_model *m, size_t ri, long vcpu,
                            qs_top_aggregate *out)
{
    const qs_top_row *r = &m->rows[ri];
    memset(out, 0, sizeof(*out));
    if (!m->has_current || !m->current.values[ri]) {
        return;
    }
    size_t first, end;
    selected_instances(m, r, vcpu, &first, &end);
    double *sums = qs_calloc(r->sv.size * 2, sizeof(double)), *growth = sums + r->sv.size;
    bool any_previous = false;
    for (size_t k = first; k < end; k++) {
        if (m->current.reported[ri][k]) {
            const uint64_t *prev = previous_values(m, ri, k);
            any_previous |= prev != NULL;
            accumulate(r, m->current.values[ri] + k * r->sv.size, prev, sums, growth, out);
        }
    }
    double dt = any_previous ? m->current.monotonic - m->previous.monotonic : 0;
    if (r->sv.type != QS_TYPE_PEAK) {
        out->value = r->sv.unit == QS_UNIT_BOOLEAN ? out->ntrue : sum_of(sums, r->sv.size);
    }
    if (qs_top_row_counts(r) && dt > 0) {
        out->has_rate = true;
        out->rate = sum_of(growth, r->sv.size) / dt;
    }
    if (qs_schema_is_histogram(&r->sv)) {
        distribution(&r->sv, out->has_rate ? growth : sums, out);
    }
    free(sums);
}
