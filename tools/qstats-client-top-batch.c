/*
 * qstats-client-top-batch.c - top without a terminal, for scripts and
 * for keeping a record: --once prints the table the screen would show
 * after one interval (so that rates exist), --log writes CSV, one row per
 * interval.  --log fixes its columns at the start, by (provider, target,
 * name) rather than by row, because the model learns the schemas again
 * when a provider comes or goes and its rows move.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qstats-client-top.h"

static void sleep_until(double deadline)
{
    struct timespec ts = { .tv_sec = (time_t)deadline,
                           .tv_nsec = (long)((deadline - floor(deadline)) * 1e9) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* The next sample, an interval after the current one; false after saying
 * why not. */
static bool sample_after_interval(qs_top *top)
{
    qs_error *err = NULL;
    if (top->model.has_current) {
        sleep_until(top->model.current.monotonic + top->interval);
    }
    if (!qs_top_model_sample(&top->model, top->qmp, &err)) {
        qs_client_report(err);
        return false;
    }
    return true;
}

/* ---- --once ---------------------------------------------------------------- */

int qs_top_run_once(qs_top *top)
{
    if (!sample_after_interval(top) || !sample_after_interval(top)) {
        return 1;
    }
    qs_top_shown_row *shown;
    size_t n = qs_top_shown_rows(top, &shown, true);
    qs_top_widths widths = qs_top_column_widths(top, shown, n);
    qs_buf out;
    qs_buf_init(&out);
    qs_top_render_header(top, &out);
    qs_buf_putc(&out, '\n');
    qs_top_render_titles(widths, &out);
    qs_buf_putc(&out, '\n');
    for (size_t i = 0; i < n; i++) {
        qs_top_render_row(top, &shown[i], widths, &out);
        qs_buf_putc(&out, '\n');
    }
    fwrite(out.data, 1, out.len, stdout);
    qs_buf_free(&out);
    free(shown);
    return 0;
}

/* ---- --log ------------------------------------------------------------------- */

typedef struct log_column {
    char *provider;
    qs_target target;
    char *name;
} log_column;

/* Appends the CSV value of a column: the rate of what counts, the value
 * of anything else; empty where there is none. */
static void append_log_value(const qs_top *top, const log_column *column, qs_buf *line,
                             bool *nonzero)
{
    long r = qs_top_model_find(&top->model, column->provider, column->target, column->name);
    qs_top_aggregate a = { 0 };
    if (r >= 0) {
        qs_top_model_aggregate(&top->model, (size_t)r, top->vcpu, &a);
    }
    bool counts = r >= 0 && qs_top_row_counts(&top->model.rows[r]);
    double v = counts ? a.rate : a.value;
    if (!a.present || (counts && !a.has_rate)) {
        qs_buf_puts(line, ",");
        return;
    }
    *nonzero |= v != 0;
    qs_buf_printf(line, v == floor(v) && fabs(v) < 1e15 ? ",%.0f" : ",%.3f", v);
}

/* Prints the CSV header and returns the columns it names. */
static size_t log_header(const qs_top *top, log_column **columns)
{
    qs_top_shown_row *shown;
    size_t n = qs_top_shown_rows(top, &shown, false);
    *columns = qs_calloc(n + 1, sizeof(**columns));
    printf("timestamp");
    for (size_t i = 0; i < n; i++) {
        const qs_top_row *r = &top->model.rows[shown[i].row];
        (*columns)[i] = (log_column){ qs_strdup(r->provider), r->target,
                                      qs_strdup(r->sv.name) };
        printf(",%s", r->column);
    }
    printf("\n");
    fflush(stdout);
    free(shown);
    return n;
}

static void log_columns_free(log_column *columns, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        free(columns[k].name);
        free(columns[k].provider);
    }
    free(columns);
}

static void print_log_line(const qs_top *top, const log_column *columns, size_t n,
                           qs_buf *line)
{
    bool nonzero = false;
    qs_buf_reset(line);
    qs_buf_printf(line, "%.3f", top->model.current.realtime);
    for (size_t k = 0; k < n; k++) {
        append_log_value(top, &columns[k], line, &nonzero);
    }
    if (nonzero || !top->skip_zero) {
        printf("%s\n", line->data);
        fflush(stdout);
    }
}

int qs_top_run_log(qs_top *top)
{
    if (!sample_after_interval(top)) {
        return 1;
    }
    log_column *columns;
    size_t ncolumns = log_header(top, &columns);
    qs_buf line;
    qs_buf_init(&line);
    int rc = 0;
    for (long i = 0; top->count < 0 || i < top->count; i++) {
        if (!sample_after_interval(top)) {
            rc = 1;
            break;
        }
        print_log_line(top, columns, ncolumns, &line);
    }
    log_columns_free(columns, ncolumns);
    qs_buf_free(&line);
    return rc;
}
