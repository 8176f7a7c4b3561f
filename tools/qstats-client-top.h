/*
 * qstats-client-top.h - the parts of `qstats top`, for its own files only
 * (the rest of the client sees qs_top_new/run/free in qstats-client.h):
 *
 *   qstats-client-top.c        options, and the state every mode shares
 *   qstats-client-top-model.c  the numbers: rows, samples, aggregates
 *   qstats-client-top-table.c  the numbers as text: which rows, in what
 *                              order, each value in its unit
 *   qstats-client-top-live.c   the live terminal view
 *   qstats-client-top-batch.c  --once and --log
 *
 * Every mode reads one model through one table, so the live screen, the
 * --once snapshot and the --log columns cannot tell different stories.
 */
#ifndef QSTATS_CLIENT_TOP_H
#define QSTATS_CLIENT_TOP_H

#include <regex.h>
#include <time.h>

#include "qstats-client.h"

/* ---- the model (qstats-client-top-model.c) ---------------------------------
 * Rows come from query-stats-schemas (one per provider/target/stat); a
 * sample is one query-stats per target, stored densely per row and per
 * instance (vCPU, or the VM), instances sorted by qom-path in version
 * order.  Aggregates are computed from the last two samples for any vCPU
 * selection, so switching the selection needs no new sample. */

typedef struct qs_top_row {
    /* The stat's schema entry, as core describes it, so that core's rules
     * (scale, bucket bounds, unit steps) apply to it directly.  sv.name is
     * the row's own; sv.size is the values per instance, learnt from the
     * samples for histograms (0 until the first one). */
    qs_schema_value sv;
    char *provider;
    qs_target target;
    char *column;              /* CSV column: the name, qualified if ambiguous */
} qs_top_row;

typedef struct qs_top_sample {
    double monotonic, realtime;          /* when it was taken, in seconds */
    char **paths[QS_TARGET__MAX];        /* the instances' qom-paths; the VM's is "" */
    size_t ninstances[QS_TARGET__MAX];
    uint64_t **values;                   /* per row: ninstances * sv.size values */
    unsigned char **reported;            /* per row: which instances had it */
} qs_top_sample;

typedef struct qs_top_model {
    qs_top_row *rows;
    size_t nrows;
    size_t *by_key;            /* row indexes sorted by (provider, target, name) */
    qs_top_sample current, previous;
    bool has_current, has_previous;
} qs_top_model;

/* One row summed over the selected instances. */
typedef struct qs_top_aggregate {
    bool present;              /* some selected instance has the stat */
    double value;              /* raw units: sum (peak: max), trues, or count */
    bool has_rate;
    double rate;               /* per second; histograms: samples per second */
    unsigned ntrue, ninstances;          /* booleans */
    bool has_distribution;     /* histograms: mean/p50/p99 below are valid */
    double mean, p50, p99;     /* raw units */
} qs_top_aggregate;

/* A zeroed model is empty; load fills it. */
void qs_top_model_destroy(qs_top_model *model);
bool qs_top_model_load(qs_top_model *model, qs_qmp_client *client, qs_error **errp);
/* Takes a new sample (the current one becomes the previous one). */
bool qs_top_model_sample(qs_top_model *model, qs_qmp_client *client, qs_error **errp);
/* Row index of (provider, target, name), or -1. */
long qs_top_model_find(const qs_top_model *model, const char *provider, qs_target target,
                       const char *name);
/* vcpu < 0: every instance; otherwise the vcpu-th vCPU (vcpu rows only). */
void qs_top_model_aggregate(const qs_top_model *model, size_t row, long vcpu,
                            qs_top_aggregate *out);
/* Whether a row counts things (cumulative, histograms): it has a rate. */
bool qs_top_row_counts(const qs_top_row *row);
/* The clock samples are stamped with, in seconds. */

/* ---- the state every mode shares (qstats-client-top.c) -------------------- */

typedef enum qs_top_sort { QS_TOP_SORT_RATE, QS_TOP_SORT_TOTAL, QS_TOP_SORT_NAME,
                           QS_TOP_SORT__MAX } qs_top_sort;
typedef enum qs_top_mode { QS_TOP_LIVE, QS_TOP_ONCE, QS_TOP_LOG } qs_top_mode;

struct qs_top {
    /* chosen by the options; the live view's keys change them too */
    double interval;
    qs_top_sort sort;
    char *filter_text;         /* NULL: no filter */
    regex_t filter;
    char *provider;            /* NULL: all */
    long vcpu;                 /* -1: all */
    bool skip_zero;
    qs_top_mode mode;
    long count;                /* --log intervals; -1: forever */
    /* learnt from the daemon */
    qs_qmp_client *qmp;
    qs_top_model model;
    char *vm_label;
};

const char *qs_top_sort_name(qs_top_sort sort);
/* Both set the option from text typed on the command line or at a prompt;
 * false with the reason in err (and the option unchanged) when it is bad. */
bool qs_top_set_filter(qs_top *top, const char *text, char *err, size_t errlen);
bool qs_top_set_interval(qs_top *top, const char *text, char *err, size_t errlen);

/* ---- the table (qstats-client-top-table.c) -------------------------------- */

typedef struct qs_top_shown_row {
    size_t row;
    qs_top_aggregate aggregate;
} qs_top_shown_row;

/* The rows that pass the provider and name filters, aggregated for the
 * vCPU selection, in *out (malloc'd); returns their number.  For the
 * screen (and --once) they are sorted and -z drops the all-zero ones;
 * --log keeps schema order and every row, so that its columns stay put. */
size_t qs_top_shown_rows(const qs_top *top, qs_top_shown_row **out, bool for_screen);
/* Column widths that fit these rows: their stat names and their
 * "provider/target" (a VMM's own provider, "virtio-net/vm", is longer than
 * "kvm/vcpu"), within limits. */
typedef struct qs_top_widths {
    int name, where;
} qs_top_widths;
qs_top_widths qs_top_column_widths(const qs_top *top, const qs_top_shown_row *shown, size_t n);
void qs_top_render_header(const qs_top *top, qs_buf *out);
void qs_top_render_titles(qs_top_widths widths, qs_buf *out);
void qs_top_render_row(const qs_top *top, const qs_top_shown_row *shown,
                       qs_top_widths widths, qs_buf *out);

/* ---- the modes ---------------------------------------------------------- */

int qs_top_run_live(qs_top *top);          /* qstats-client-top-live.c */
int qs_top_run_once(qs_top *top);          /* qstats-client-top-batch.c */
int qs_top_run_log(qs_top *top);

#endif
