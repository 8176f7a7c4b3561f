/*
 * exporter/request.c - what a scrape asks for: the query string of
 * /metrics and /api/v1/... (`provider=P&target=T&name=N`, each repeatable),
 * parsed from the raw request URI (libmicrohttpd would decode escapes
 * before we could refuse a bad one).  A typo (`names=`) or a broken
 * percent-escape (`%zz`) is refused with a one-line reason; values are
 * kept as given, so an unknown provider or stat simply selects nothing.
 * Pure: no I/O, so the fuzzer and the unit tests call it directly.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_QUERY_BYTES 8192     /* a selection, not a payload */

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) (%XX and '+') into a new string; NULL when an escape is
 * broken or decodes to NUL. */
static char *decode(const char *s, size_t n)
{
    char *out = qs_malloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] != '%') {
            *o++ = s[i];
        } else {
            int hi = i + 2 < n ? hex(s[i + 1]) : -1;
            int lo = i + 2 < n ? hex(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                goto bad;
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        }
    }
    *o = 0;
    return out;
bad:
    free(out);
    return NULL;
}

static void add(qs_metrics_list *l, char *value)
{
    l->v = qs_realloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = value;
    l->given = true;
}

static qs_metrics_list *list_for(qs_metrics_query *q, const char *key)
{
    if (!strcmp(key, "provider"))
        return &q->providers;
    if (!strcmp(key, "target"))
        return &q->targets;
    if (!strcmp(key, "name"))
        return &q->names;
    return NULL;
}

/* One "key=value" (or a bare "key": an empty value). */
static bool parse_pair(qs_metrics_query *q, const char *s, size_t n, qs_error **errp)
{
    const char *eq = memchr(s, '=', n);
    size_t klen = eq ? (size_t)(eq - s) : n;
    char *key = decode(s, klen);
    char *value = eq ? decode(eq + 1, n - klen - 1) : qs_strdup("");
    qs_metrics_list *l = key ? list_for(q, key) : NULL;
    bool ok = key && value && l;
    if (!key || !value)
        qs_error_setg(errp, "invalid percent-escape in the query string");
    else if (!l)
        qs_error_setg(errp, "unknown parameter '%s' (provider, target and name select "
                      "what is shown)", key);
    else
        add(l, value);
    free(key);
    if (!ok)
        free(value);
    return ok;
}

bool qs_metrics_parse_query(const char *query, qs_metrics_query *q, qs_error **errp)
{
    memset(q, 0, sizeof(*q));
    if (!query || !*query)
        return true;
    if (strlen(query) > MAX_QUERY_BYTES) {
        qs_error_setg(errp, "the query string is longer than %d bytes", MAX_QUERY_BYTES);
        return false;
    }
    for (const char *s = query; *s;) {
        size_t n = strcspn(s, "&");
        if (n && !parse_pair(q, s, n, errp)) {
            qs_metrics_query_free(q);
            return false;
        }
        s += n + (s[n] == '&');
    }
    return true;
}

void qs_metrics_query_free(qs_metrics_query *q)
{
    qs_metrics_list *lists[] = { &q->providers, &q->targets, &q->names };
    for (size_t i = 0; i < 3; i++) {
        for (size_t k = 0; k < lists[i]->n; k++)
            free(lists[i]->v[k]);
        free(lists[i]->v);
    }
    memset(q, 0, sizeof(*q));
}


static const char *const kind_words[QS_METRICS_NKINDS] = {
    [QS_METRICS_COUNTERS] = "counters", [QS_METRICS_GAUGES] = "gauges",
    [QS_METRICS_BOOLEANS] = "booleans", [QS_METRICS_HISTOGRAMS] = "histograms",
};

/* One "KIND=N" of a vCPU detail spec. */
static bool parse_detail(const char *s, size_t n, qs_metrics_view *view, qs_error **errp)
{
    const char *eq = memchr(s, '=', n);
    size_t klen = eq ? (size_t)(eq - s) : n;
    char value[24] = "";
    unsigned long v = 0;
    char *end = value;
    if (eq && n - klen - 1 < sizeof(value)) {
        memcpy(value, eq + 1, n - klen - 1);
        value[n - klen - 1] = 0;
        v = strcmp(value, "all") ? strtoul(value, &end, 10) : UINT_MAX;
        if (!strcmp(value, "all"))
            end = value + 3;
    }
    bool digits = value[0] >= '0' && value[0] <= '9';   /* strtoul takes " +5" */
    if (!eq || !(digits || !strcmp(value, "all")) || *end || v > UINT_MAX) {
        qs_error_setg(errp, "invalid vCPU detail '%.*s': expected KIND=N or KIND=all",
                      (int)n, s);
        return false;
    }
    bool any = false;
    for (int k = 0; k < QS_METRICS_NKINDS; k++) {
        if ((klen == 3 && !strncmp(s, "all", 3)) ||
            (klen == strlen(kind_words[k]) && !strncmp(s, kind_words[k], klen))) {
            view->per_vcpu_max[k] = (unsigned)v;
            any = true;
        }
    }
    if (!any)
        qs_error_setg(errp, "unknown kind '%.*s' (counters, gauges, booleans, histograms "
                      "or all)", (int)klen, s);
    return any;
}

bool qs_metrics_parse_vcpu_detail(const char *spec, qs_metrics_view *view, qs_error **errp)
{
    for (const char *s = spec; s && *s;) {
        size_t n = strcspn(s, ",");
        if (!parse_detail(s, n, view, errp))
            return false;
        s += n + (s[n] == ',');
    }
    return true;
}

static const qs_strlist *as_strlist(const qs_metrics_list *l, qs_strlist *store)
{
    if (!l->given)
        return NULL;
    *store = (qs_strlist){ .n = l->n, .v = (const char *const *)l->v };
    return store;
}

void qs_metrics_select(qs_metrics_view *view, const qs_metrics_query *q,
                       qs_metrics_lists *lists)
{
    view->providers = as_strlist(&q->providers, &lists->providers);
    view->targets = as_strlist(&q->targets, &lists->targets);
    view->names = as_strlist(&q->names, &lists->names);
}
