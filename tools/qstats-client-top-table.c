/*
 * qstats-client-top-table.c - the model's numbers as top's table: which
 * rows are shown (provider and name filters, -z), in what order, and each
 * value as people read it (in the steps of its unit, rates per second,
 * booleans as yes/no or "trues/instances").  The live screen and --once
 * print these lines unchanged, so a snapshot reads like the screen.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qstats-client-top.h"

#define MIN_NAME_WIDTH 20
#define MIN_WHERE_WIDTH 12
#define MAX_COLUMN_WIDTH 40

/* ---- which rows, in what order ----------------------------------------------- */

static int compare_shown_rows(const void *a, const void *b, void *opaque)
{
    const qs_top *top = opaque;
    const qs_top_shown_row *x = a, *y = b;
    const qs_top_aggregate *ax = &x->aggregate, *ay = &y->aggregate;
    if (top->sort == QS_TOP_SORT_RATE && ax->has_rate != ay->has_rate) {
        return ax->has_rate ? -1 : 1;
    }
    double kx = top->sort == QS_TOP_SORT_RATE ? ax->rate : ax->value;
    double ky = top->sort == QS_TOP_SORT_RATE ? ay->rate : ay->value;
    if (top->sort != QS_TOP_SORT_NAME && kx != ky) {
        return kx > ky ? -1 : 1;
    }
    int c = strcmp(top->model.rows[x->row].sv.name, top->model.rows[y->row].sv.name);
    return c ? c : (x->row < y->row ? -1 : x->row > y->row);
}

static bool passes_filters(const qs_top *top, const qs_top_row *r)
{
    return (!top->provider || !strcmp(r->provider, top->provider)) &&
           (!top->filter_text || regexec(&top->filter, r->sv.name, 0, NULL, 0) == 0);
}

size_t qs_top_shown_rows(const qs_top *top, qs_top_shown_row **out, bool for_screen)
{
    qs_top_shown_row *shown = qs_calloc(top->model.nrows + 1, sizeof(*shown));
    size_t n = 0;
    for (size_t r = 0; r < top->model.nrows; r++) {
        if (!passes_filters(top, &top->model.rows[r])) {
            continue;
        }
        qs_top_aggregate *a = &shown[n].aggregate;
        qs_top_model_aggregate(&top->model, r, top->vcpu, a);
        bool zero = a->value == 0 && (!a->has_rate || a->rate == 0);
        if (a->present && !(for_screen && top->skip_zero && zero)) {
            shown[n++].row = r;
        }
    }
    if (for_screen) {
        qsort_r(shown, n, sizeof(*shown), compare_shown_rows, (void *)top);
    }
    *out = shown;
    return n;
}

/* ---- numbers as people read them ------------------------------------------- */

/* Unit-less counts read with SI prefixes; that is top's alone (HMP and the
 * metrics print counts whole), so it is not one of core's unit steps. */
static const qs_unit_step count_steps[] = {
    { 1, "" }, { 1e3, "k" }, { 1e6, "M" }, { 1e9, "G" }, { 1e12, "T" }, { 1e15, "P" },
    { 1e18, "E" }, { 0, NULL }
};

static const qs_unit_step *count_step_for(double v)
{
    const qs_unit_step *step = count_steps;
    while (step[1].suffix && fabs(v) >= step[1].factor) {
        step++;
    }
    return step;
}

/* v in the given step, 3 significant digits.  Top's own rule on top of the
 * step's choice: a value that would print as 1000 of a step moves to the
 * next one ("1 us", not "1e+03 ns"); only the largest step prints more. */
static void format_in_step(char *buf, size_t len, double v, const qs_unit_step *step,
                           const char *separator, const char *per)
{
    double x = v / step->factor;
    if (fabs(x) >= 999.5 && step[1].suffix) {
        step++;
        x = v / step->factor;
    }
    if (fabs(x) >= 999.5) {
        snprintf(buf, len, "%.0f%s%s%s", x, separator, step->suffix, per);
    } else {
        snprintf(buf, len, "%.3g%s%s%s", x, separator, step->suffix, per);
    }
}

/* A raw value of the stat, scaled to its unit: "12.3 ms", "1.5 GiB", "1234",
 * "1.2M"; rates get "/s" (unit-less ones are plain numbers per second). */
static void format_value(char *buf, size_t len, const qs_schema_value *sv, double raw,
                         bool rate)
{
    double v = qs_schema_value_scale(sv, raw);
    const qs_unit_step *step = qs_unit_step_for(sv->unit, v);
    if (v == 0) {
        snprintf(buf, len, "0");
    } else if (step) {
        format_in_step(buf, len, v, step, " ", rate ? "/s" : "");
    } else if (rate && fabs(v) < 1000) {
        snprintf(buf, len, "%.1f", v);
    } else if (!rate && fabs(v) < 1e12 && v == floor(v)) {
        snprintf(buf, len, "%.0f", v);
    } else {
        format_in_step(buf, len, v, count_step_for(v), "", "");
    }
}

/* Histogram sample counts are plain counts, whatever the buckets' unit. */
static void format_count(char *buf, size_t len, double v, bool rate)
{
    static const qs_schema_value count = { .unit = QS_UNIT_NONE };
    format_value(buf, len, &count, v, rate);
}

/* ---- lines --------------------------------------------------------------------- */

/* The histogram summary column. */
static void format_distribution(char *buf, size_t len, const qs_top_row *r,
                                const qs_top_aggregate *a)
{
    char mean[32], p50[32], p99[32];
    if (!a->has_distribution) {
        snprintf(buf, len, "-");
        return;
    }
    format_value(mean, sizeof(mean), &r->sv, a->mean, false);
    format_value(p50, sizeof(p50), &r->sv, a->p50, false);
    format_value(p99, sizeof(p99), &r->sv, a->p99, false);
    snprintf(buf, len, "mean %s  p50 %s  p99 %s", mean, p50, p99);
}

/* VALUE/TOTAL: booleans as yes/no (or trues/instances), histograms as
 * their sample count, everything else in its unit. */
static void format_total(char *buf, size_t len, const qs_top_row *r, const qs_top_aggregate *a)
{
    if (r->sv.unit == QS_UNIT_BOOLEAN && a->ninstances > 1) {
        snprintf(buf, len, "%u/%u", a->ntrue, a->ninstances);
    } else if (r->sv.unit == QS_UNIT_BOOLEAN) {
        snprintf(buf, len, "%s", a->ntrue ? "yes" : "no");
    } else if (qs_schema_is_histogram(&r->sv)) {
        format_count(buf, len, a->value, false);
    } else {
        format_value(buf, len, &r->sv, a->value, false);
    }
}

/* RATE/s: "-" for what counts but has no rate yet, nothing for values. */
static void format_rate(char *buf, size_t len, const qs_top_row *r, const qs_top_aggregate *a)
{
    if (!a->has_rate) {
        snprintf(buf, len, "%s", qs_top_row_counts(r) ? "-" : "");
    } else if (qs_schema_is_histogram(&r->sv)) {
        format_count(buf, len, a->rate, true);
    } else {
        format_value(buf, len, &r->sv, a->rate, true);
    }
}

void qs_top_render_row(const qs_top *top, const qs_top_shown_row *shown,
                       qs_top_widths widths, qs_buf *out)
{
    const qs_top_row *r = &top->model.rows[shown->row];
    const qs_top_aggregate *a = &shown->aggregate;
    char total[48], rate[48], distribution[160] = "", where[48];
    format_total(total, sizeof(total), r, a);
    format_rate(rate, sizeof(rate), r, a);
    if (qs_schema_is_histogram(&r->sv)) {
        format_distribution(distribution, sizeof(distribution), r, a);
    }
    snprintf(where, sizeof(where), "%s/%s", r->provider, qs_target_name(r->target));
    qs_buf_printf(out, "%-*.*s %-*.*s %14s %14s  %s", widths.name, widths.name, r->sv.name,
                  widths.where, widths.where, where, total, rate, distribution);
}

static int clamp_width(size_t width)
{
    return (int)(width > MAX_COLUMN_WIDTH ? MAX_COLUMN_WIDTH : width);
}

qs_top_widths qs_top_column_widths(const qs_top *top, const qs_top_shown_row *shown, size_t n)
{
    size_t name = MIN_NAME_WIDTH, where = MIN_WHERE_WIDTH;
    for (size_t i = 0; i < n; i++) {
        const qs_top_row *r = &top->model.rows[shown[i].row];
        size_t name_len = strlen(r->sv.name);
        size_t where_len = strlen(r->provider) + 1 + strlen(qs_target_name(r->target));
        name = name_len > name ? name_len : name;
        where = where_len > where ? where_len : where;
    }
    return (qs_top_widths){ clamp_width(name), clamp_width(where) };
}

void qs_top_render_header(const qs_top *top, qs_buf *out)
{
    char vcpu[64];
    size_t nvcpus = top->model.current.ninstances[QS_TARGET_VCPU];
    if (top->vcpu < 0) {
        snprintf(vcpu, sizeof(vcpu), "all of %zu", nvcpus);
    } else {
        snprintf(vcpu, sizeof(vcpu), "%ld of %zu", top->vcpu, nvcpus);
    }
    qs_buf_printf(out, "qstats top - vm: %s  interval: %gs  sort: %s  filter: %s  vcpu: %s"
                  "  provider: %s", top->vm_label, top->interval, qs_top_sort_name(top->sort),
                  top->filter_text ? top->filter_text : "none", vcpu,
                  top->provider ? top->provider : "all");
}

void qs_top_render_titles(qs_top_widths widths, qs_buf *out)
{
    qs_buf_printf(out, "%-*s %-*s %14s %14s  %s", widths.name, "NAME", widths.where, "WHERE",
                  "VALUE/TOTAL", "RATE/s", "HISTOGRAM (last interval)");
}
