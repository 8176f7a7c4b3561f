/*
 * exporter/internal.h - what the exporter's files share and its unit tests
 * reach (not part of the public API in qs-exporter.h): the renderer's text
 * rules, the request parser, the gathered data, the JSON API, the assets
 * and the server's state.
 */
#ifndef QS_EXPORTER_INTERNAL_H
#define QS_EXPORTER_INTERNAL_H

#include "qs-common.h"
#include "qs-exporter.h"

/* Base-unit word for a schema unit ("seconds", "bytes", "cycles") or NULL
 * for unit-less and boolean stats. */
const char *qs_metrics_unit_word(qs_unit u);

/* Stem of a stat name (see qs-exporter.h): sanitised, own unit suffix
 * removed when the stat has a unit of that kind, "_total" removed from
 * counters, "_hist" removed when strip_hist (for _sum matching). */
void qs_metrics_stem(qs_buf *out, const qs_schema_value *sv, bool strip_hist);

/* Full family name: qstats_<provider>_<target>_<stem>[_<unit>]. */
void qs_metrics_family_name(qs_buf *out, const char *provider, qs_target t,
                            const qs_schema_value *sv);

/* Shortest text that reads back as the same double; "+Inf", "-Inf", "NaN".
 * om_label: OpenMetrics canonical label form (integral values get ".0"). */
void qs_metrics_put_double(qs_buf *out, double v, bool om_label);

/* Label value escaping (backslash, double quote, newline); invalid UTF-8
 * becomes U+FFFD. */
void qs_metrics_put_label_value(qs_buf *out, const char *s);

/* Copies the character at *s (a byte >= 0x80 first) and steps over it:
 * itself when it is valid UTF-8, else U+FFFD.  Prometheus refuses a whole
 * scrape over one HELP text or label value that is not UTF-8, and stat
 * names come from stats files. */
void qs_metrics_put_non_ascii(qs_buf *out, const char **s);

/* ---- what a request asks for (request.c) ------------------------------- */

typedef struct qs_metrics_list {
    char **v;
    size_t n;
    bool given;             /* the key appeared (even with no value) */
} qs_metrics_list;

typedef struct qs_metrics_query {
    qs_metrics_list providers, targets, names;
} qs_metrics_query;

/* Parses "provider=P&target=T&name=N..." (NULL or "": nothing given). */
bool qs_metrics_parse_query(const char *query, qs_metrics_query *q, qs_error **errp);
void qs_metrics_query_free(qs_metrics_query *q);
/* "counters=N,gauges=N,booleans=N,histograms=N,all=N" (N a number, or
 * "all" for no aggregation) into view->per_vcpu_max. */
bool qs_metrics_parse_vcpu_detail(const char *spec, qs_metrics_view *view, qs_error **errp);

/* strlist views of a query's lists, kept in *lists: NULL for a list not
 * given, so that the view selects everything there. */
typedef struct qs_metrics_lists {
    qs_strlist providers, targets, names;
} qs_metrics_lists;
void qs_metrics_select(qs_metrics_view *view, const qs_metrics_query *q,
                       qs_metrics_lists *lists);

/* ---- gathering (scrape.c) -------------------------------------------- */

/* What one request gathered: schemas, and results of both targets, with
 * only what the view selects asked of the registry. */
typedef struct qs_metrics_data {
    qs_schemas schemas;
    qs_results vm, vcpu;
} qs_metrics_data;

void qs_metrics_data_init(qs_metrics_data *d, size_t budget);
/* Empties it and gives back what a large request needed. */
void qs_metrics_data_release(qs_metrics_data *d);
void qs_metrics_data_destroy(qs_metrics_data *d);
bool qs_metrics_gather(qs_registry *reg, const qs_metrics_view *view, qs_metrics_data *d,
                       qs_error **errp);

/* ---- the JSON API (api.c) ---------------------------------------------- */

void qs_metrics_api_schemas(qs_buf *out, qs_registry *reg, const char *vm_name,
                            const qs_metrics_data *d, const qs_metrics_view *view);
void qs_metrics_api_stats(qs_buf *out, const qs_metrics_data *d);
/* {"error": msg} (replacing out's contents). */
void qs_metrics_api_error(qs_buf *out, const char *msg);

/* ---- files of the web page (assets.c; web/embed.cmake generates the table) */

typedef struct qs_asset {
    const char *path;           /* "/", "/app.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} qs_asset;
/* The page's own files (compiled in), by URL path; NULL if none. */
const qs_asset *qs_exporter_find_asset(const char *path);

/* Where the page loads d3.js from: Debian's libjs-d3 file, at the path the
 * javascript-common convention gives /usr/share/javascript on a web server. */
#define QS_D3_URL "/javascript/d3/d3.min.js"
/* The file read when the configuration names none (QS_D3_JS at build time). */
const char *qs_exporter_default_d3(void);
/* Reads d3.js (at most 8 MiB) into *out, served at QS_D3_URL; out->data
 * is the caller's to free. */
bool qs_exporter_load_d3(qs_asset *out, const char *file, qs_error **errp);

/* ---- the server (server.c: connections; routes.c: requests) ------------ */

#ifdef QS_HAVE_MHD
#include <microhttpd.h>
#include "qs-net.h"

struct qs_exporter {
    uv_loop_t *loop;
    qs_registry *reg;
    char *vm_name;
    struct MHD_Daemon *mhd;
    qs_acceptor *acceptor;
    uv_poll_t poll;
    uv_timer_t timer;
    int open_handles;         /* freed when the last close callback ran */
    size_t reply_max;
    qs_ratelimit log_limit;
    qs_metrics_query default_query;   /* --metrics-select */
    qs_metrics_view default_view;     /* --metrics-vcpus */
    uint64_t scrapes;
    qs_asset d3;              /* data NULL: charts unavailable, tables only */
    /* Reused across requests: steady state allocates nothing per stat. */
    qs_metrics_data data;
    qs_buf body, gz;
};

/* MHD callbacks (routes.c). */
enum MHD_Result qs_exporter_on_request(void *cls, struct MHD_Connection *conn,
                                       const char *url, const char *method,
                                       const char *version, const char *upload_data,
                                       size_t *upload_data_size, void **con_cls);
void *qs_exporter_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
void qs_exporter_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe);
#endif

#endif
