/*
 * exporter/negotiate.c - HTTP-facing text rules that need no server: the
 * Accept and Accept-Encoding negotiation and the Content-Type of each
 * format.  Separate from server.c so the unit tests reach them even in a
 * build without libmicrohttpd.  (The --metrics HOST:PORT address is parsed in net/.)
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

const char *qs_metrics_content_type(qs_metrics_format fmt)
{
    return fmt == QS_METRICS_OPENMETRICS
        ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
        : "text/plain; version=0.0.4; charset=utf-8";
}

/* q value of one media range's parameters (";q=0.5;version=..."). */
static double parse_q(const char *params, const char *end)
{
    double q = 1.0;
    for (const char *p = params; p && p < end; ) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
            p++;
        if (end - p > 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            char *stop;
            q = strtod(p + 2, &stop);
            if (stop == p + 2 || q < 0 || q > 1)
                q = 0;      /* malformed: ignore this range */
        }
        p = memchr(p, ';', (size_t)(end - p));
    }
    return q;
}

static bool type_is(const char *t, size_t n, const char *want)
{
    return n == strlen(want) && !strncasecmp(t, want, n);
}

/* Calls fn(type, n, q) for each element of an HTTP list header
 * ("a;q=0.5, b"), the type trimmed. */
static void each_element(const char *header, void (*fn)(void *, const char *, size_t, double),
                         void *opaque)
{
    for (const char *p = header; p && *p; ) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *semi = p;
        while (semi < end && *semi != ';')
            semi++;
        const char *tend = semi;
        while (tend > p && (tend[-1] == ' ' || tend[-1] == '\t'))
            tend--;
        fn(opaque, p, (size_t)(tend - p), semi < end ? parse_q(semi, end) : 1.0);
        p = *end ? end + 1 : end;
    }
}

typedef struct media_q {
    double om, text;
} media_q;

static void rank_media(void *opaque, const char *t, size_t n, double q)
{
    media_q *m = opaque;
    if (type_is(t, n, "application/openmetrics-text")) {
        if (q > m->om)
            m->om = q;
    } else if (type_is(t, n, "text/plain") || type_is(t, n, "text/*") ||
               type_is(t, n, "*/*")) {
        if (q > m->text)
            m->text = q;
    }
}

qs_metrics_format qs_metrics_negotiate(const char *accept)
{
    media_q m = { 0, 0 };
    each_element(accept, rank_media, &m);
    /* Explicitly asked for, and ranked at least as high as the text format
     * (a Prometheus server sends om;q=1 ... text/plain;q=0.5). */
    return (m.om > 0 && m.om >= m.text) ? QS_METRICS_OPENMETRICS
                                        : QS_METRICS_PROMETHEUS_TEXT;
}

typedef struct coding_q {
    double gzip, any;      /* -1: not mentioned */
} coding_q;

static void rank_coding(void *opaque, const char *t, size_t n, double q)
{
    coding_q *c = opaque;
    if (type_is(t, n, "gzip") || type_is(t, n, "x-gzip"))
        c->gzip = q > c->gzip ? q : c->gzip;
    else if (type_is(t, n, "*"))
        c->any = q > c->any ? q : c->any;
}

bool qs_metrics_accepts_gzip(const char *accept_encoding)
{
    coding_q c = { -1, -1 };
    each_element(accept_encoding, rank_coding, &c);
    return c.gzip > 0 || (c.gzip < 0 && c.any > 0);
}
