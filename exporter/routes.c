/*
 * exporter/routes.c - one HTTP request, from its raw URI to its response,
 * on the loop thread (server.c hands MHD's callbacks here).
 *
 *   /metrics          the exposition (Prometheus text or OpenMetrics), of
 *                     the view the query string selects (request.c), or
 *                     the daemon's default view
 *   /api/v1/schemas   JSON (api.c), same selection
 *   /api/v1/stats
 *   /, /app.js ...    the web page's files (assets.c, from web/)
 *   /javascript/d3/d3.min.js   its chart library, when qstatsd could read it
 *
 * Every response is read-only data and says so to browsers: a strict
 * Content-Security-Policy, nosniff, and no caching of live numbers.  Bodies
 * go out gzip'd when the client accepts it (Prometheus always does), with
 * Vary: Accept-Encoding; HEAD gets the headers of GET (MHD).  Bodies are
 * built under the reply budget (--max-reply-bytes), compressed or not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "internal.h"

#ifdef QS_HAVE_MHD

#define CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
#define TEXT "text/plain; charset=utf-8"
#define JSON "application/json"

typedef struct response {
    unsigned status;
    const char *type;
    const void *body;
    size_t len;
    bool compressible;        /* gzip when the client accepts it */
    bool cacheable;           /* static files; live numbers are not */
    const char *allow;        /* 405 */
} response;

/* gzip of in into e->gz, under the reply budget; false: send it plain. */
static bool gzip_body(qs_exporter *e, const void *in, size_t len)
{
    z_stream zs = { 0 };
    if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return false;
    size_t bound = deflateBound(&zs, len);
    qs_buf_reset(&e->gz);
    e->gz.limit = e->reply_max;
    bool ok = bound <= e->reply_max && qs_buf_reserve(&e->gz, bound);
    if (ok) {
        zs.next_in = (Bytef *)in;
        zs.avail_in = (uInt)len;
        zs.next_out = (Bytef *)e->gz.data;
        zs.avail_out = (uInt)bound;
        ok = deflate(&zs, Z_FINISH) == Z_STREAM_END;
        e->gz.len = ok ? zs.total_out : 0;
    }
    deflateEnd(&zs);
    return ok;
}

static enum MHD_Result send_response(qs_exporter *e, struct MHD_Connection *conn,
                                     const response *r)
{
    const char *coding = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_ACCEPT_ENCODING);
    bool gz = r->compressible && qs_metrics_accepts_gzip(coding) &&
              gzip_body(e, r->body, r->len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        gz ? e->gz.len : r->len, (void *)(gz ? e->gz.data : r->body), MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->type);
    MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                            r->cacheable ? "max-age=3600" : "no-store");
    if (r->compressible)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    if (gz)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    if (r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_text(qs_exporter *e, struct MHD_Connection *conn,
                                 unsigned status, const char *text)
{
    return send_response(e, conn, &(response){ .status = status, .type = TEXT,
                                               .body = text, .len = strlen(text) });
}

/* A one-line text answer: msg and a line end. */
static enum MHD_Result send_line(qs_exporter *e, struct MHD_Connection *conn,
                                 unsigned status, const char *msg)
{
    char *text = qs_strdup_printf("%s\n", msg);
    enum MHD_Result r = send_text(e, conn, status, text);
    free(text);
    return r;
}

static enum MHD_Result send_json_error(qs_exporter *e, struct MHD_Connection *conn,
                                       unsigned status, const char *msg)
{
    qs_metrics_api_error(&e->body, msg);
    return send_response(e, conn, &(response){ .status = status, .type = JSON,
                                               .body = e->body.data, .len = e->body.len });
}

/* ---- the view a request asks for ---------------------------------------- */

typedef struct request_view {
    qs_metrics_query query;   /* the request's own parameters, if any */
    qs_metrics_lists lists;
    qs_metrics_view view;
    qs_metrics_health health;
} request_view;

static bool view_of(qs_exporter *e, const char *raw_uri, request_view *rv, qs_error **errp)
{
    const char *q = raw_uri ? strchr(raw_uri, '?') : NULL;
    if (!qs_metrics_parse_query(q ? q + 1 : NULL, &rv->query, errp))
        return false;
    bool own = rv->query.providers.given || rv->query.targets.given || rv->query.names.given;
    rv->view = e->default_view;
    qs_metrics_select(&rv->view, own ? &rv->query : &e->default_query, &rv->lists);
    return true;
}

/* ---- routes ------------------------------------------------------------------ */

static enum MHD_Result serve_metrics(qs_exporter *e, struct MHD_Connection *conn,
                                     request_view *rv)
{
    const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_ACCEPT);
    qs_metrics_format fmt = qs_metrics_negotiate(accept);
    const qs_source_failure *failing;
    rv->health = (qs_metrics_health){
        .version = QS_VERSION_STRING, .started = qs_clock_seconds(CLOCK_MONOTONIC),
        .vcpus = qs_registry_vcpu_count(e->reg),
        .scrapes = ++e->scrapes };
    rv->view.health = &rv->health;
    qs_error *err = NULL;
    if (!qs_metrics_gather(e->reg, &rv->view, &e->data, &err)) {
        char *msg = qs_strdup_printf("qstats: %s\n", err->msg);
        enum MHD_Result r = send_text(e, conn, MHD_HTTP_INTERNAL_SERVER_ERROR, msg);
        free(msg);
        qs_error_free(err);
        return r;
    }
    /* After the gather: the reads of this very scrape find a source failing
     * or recovered, and its samples already lack or have it again. */
    rv->health.sources_failing = qs_registry_failing_sources(e->reg, &failing);
    qs_buf_reset(&e->body);
    e->body.limit = e->reply_max;
    qs_metrics_render(&e->body, fmt, e->vm_name, &e->data.schemas, &e->data.vm,
                      &e->data.vcpu, qs_clock_seconds(CLOCK_REALTIME), &rv->view);
    if (e->body.overflow) {
        char msg[128];
        snprintf(msg, sizeof(msg), "qstats: the exposition would exceed %zu bytes "
                 "(qstats' reply limit)\n", e->reply_max);
        return send_text(e, conn, MHD_HTTP_INTERNAL_SERVER_ERROR, msg);
    }
    return send_response(e, conn, &(response){
        .status = MHD_HTTP_OK, .type = qs_metrics_content_type(fmt), .body = e->body.data,
        .len = e->body.len, .compressible = true });
}

static enum MHD_Result serve_api(qs_exporter *e, struct MHD_Connection *conn,
                                 request_view *rv, bool stats)
{
    qs_error *err = NULL;
    if (!qs_metrics_gather(e->reg, &rv->view, &e->data, &err)) {
        enum MHD_Result r = send_json_error(e, conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                            err->msg);
        qs_error_free(err);
        return r;
    }
    qs_buf_reset(&e->body);
    e->body.limit = e->reply_max;
    if (stats)
        qs_metrics_api_stats(&e->body, &e->data);
    else
        qs_metrics_api_schemas(&e->body, e->reg, e->vm_name, &e->data, &rv->view);
    if (e->body.overflow) {
        char msg[96];
        snprintf(msg, sizeof(msg), "the reply would exceed %zu bytes (qstats' reply limit)",
                 e->reply_max);
        e->body.limit = 0;
        return send_json_error(e, conn, MHD_HTTP_INTERNAL_SERVER_ERROR, msg);
    }
    return send_response(e, conn, &(response){
        .status = MHD_HTTP_OK, .type = JSON, .body = e->body.data, .len = e->body.len,
        .compressible = true });
}

static enum MHD_Result route(qs_exporter *e, struct MHD_Connection *conn, const char *url,
                             const char *raw_uri)
{
    bool api = !strncmp(url, "/api/", 5);
    const qs_asset *asset = qs_exporter_find_asset(url);
    if (!asset && e->d3.data && !strcmp(url, e->d3.path))
        asset = &e->d3;
    if (strcmp(url, "/metrics") && strcmp(url, "/api/v1/stats") &&
        strcmp(url, "/api/v1/schemas") && !asset)
        return api ? send_json_error(e, conn, MHD_HTTP_NOT_FOUND, "no such API path")
                   : send_text(e, conn, MHD_HTTP_NOT_FOUND,
                               "Not found: metrics are served at /metrics\n");
    if (asset)
        return send_response(e, conn, &(response){
            .status = MHD_HTTP_OK, .type = asset->content_type, .body = asset->data,
            .len = asset->len, .compressible = true, .cacheable = true });
    request_view rv = { 0 };
    qs_error *err = NULL;
    enum MHD_Result r;
    if (!view_of(e, raw_uri, &rv, &err))
        r = api ? send_json_error(e, conn, MHD_HTTP_BAD_REQUEST, err->msg)
                : send_line(e, conn, MHD_HTTP_BAD_REQUEST, err->msg);
    else if (!api)
        r = serve_metrics(e, conn, &rv);
    else
        r = serve_api(e, conn, &rv, !strcmp(url, "/api/v1/stats"));
    qs_error_free(err);
    qs_metrics_query_free(&rv.query);
    qs_metrics_data_release(&e->data);
    qs_buf_reset(&e->body);
    qs_buf_trim(&e->body, QS_KEEP_BYTES);
    qs_buf_reset(&e->gz);
    qs_buf_trim(&e->gz, QS_KEEP_BYTES);
    return r;
}

enum MHD_Result qs_exporter_on_request(void *cls, struct MHD_Connection *conn,
                                       const char *url, const char *method,
                                       const char *version, const char *upload_data,
                                       size_t *upload_data_size, void **con_cls)
{
    qs_exporter *e = cls;
    static const char read_only[] = "Method not allowed: this server only reads\n";
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return send_response(e, conn, &(response){
            .status = MHD_HTTP_METHOD_NOT_ALLOWED, .type = TEXT, .body = read_only,
            .len = sizeof(read_only) - 1, .allow = "GET, HEAD" });
    return route(e, conn, url, *con_cls);
}

/* The raw URI, before MHD decodes its query string: kept for the request. */
void *qs_exporter_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    return qs_strdup(uri ? uri : "");
}

void qs_exporter_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    free(*con_cls);
    *con_cls = NULL;
}

#endif
