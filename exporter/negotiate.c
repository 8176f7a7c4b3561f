/*
 * exporter/negotiate.c - HTTP-facing text rules that need no server: the
 * Accept header negotiation and the Content-Type of each format.  Separate
 * from server.c so the unit tests reach them even in a build without
 * libmicrohttpd.  (The --metrics HOST:PORT address is parsed in net/.)
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

qs_metrics_format qs_metrics_negotiate(const char *accept)
{
    double q_om = 0, q_text = 0;
    for (const char *p = accept; p && *p; ) {
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
        size_t n = (size_t)(tend - p);
        double q = semi < end ? parse_q(semi, end) : 1.0;
        if (type_is(p, n, "application/openmetrics-text")) {
            if (q > q_om)
                q_om = q;
        } else if (type_is(p, n, "text/plain") || type_is(p, n, "text/*") ||
                   type_is(p, n, "*/*")) {
            if (q > q_text)
                q_text = q;
        }
        p = *end ? end + 1 : end;
    }
    /* Explicitly asked for, and ranked at least as high as the text format
     * (a Prometheus server sends om;q=1 ... text/plain;q=0.5). */
    return (q_om > 0 && q_om >= q_text) ? QS_METRICS_OPENMETRICS
                                        : QS_METRICS_PROMETHEUS_TEXT;
}
