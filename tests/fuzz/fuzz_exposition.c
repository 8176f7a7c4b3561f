/*
 * fuzz_exposition.c - see fuzz_exposition.h.  Written from the two format
 * specifications (Prometheus text 0.0.4, OpenMetrics 1.0), not from the
 * renderer, so that the two cannot share a mistake.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qs-common.h"
#include "fuzz_exposition.h"

typedef enum kind { K_NONE, K_COUNTER, K_GAUGE, K_HISTOGRAM } kind;

typedef struct reader {
    qs_metrics_format fmt;
    qs_strset families;       /* declared with TYPE */
    qs_strset series;         /* "name{labels}" seen */
    qs_buf family;            /* the family in hand (from HELP) */
    kind k;
    bool typed;
    /* the histogram series in hand */
    qs_buf hist_labels;       /* its labels without le */
    double last_le;
    uint64_t last_count;
    bool saw_inf;
    qs_buf scratch;
} reader;

/* The offset of the first byte that is not valid UTF-8, or n. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n)
            return i;
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += len;
    }
    return n;
}

static bool name_char(char c, bool first)
{
    return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (!first && c >= '0' && c <= '9');
}

/* Reads a metric name at *p; its length, 0 if none. */
static size_t read_name(const char *p, const char *end)
{
    size_t n = 0;
    while (p + n < end && name_char(p[n], n == 0))
        n++;
    return n;
}

static bool is_number(const char *s, size_t n)
{
    if ((n == 4 && (!memcmp(s, "+Inf", 4) || !memcmp(s, "-Inf", 4))) ||
        (n == 3 && !memcmp(s, "NaN", 3)))
        return true;
    char tmp[64];
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (strpbrk(tmp, "xXpPnNiI"))       /* no hex floats, no words */
        return false;
    char *stop;
    strtod(tmp, &stop);
    return *stop == 0;
}

static double number(const char *s, size_t n)
{
    char tmp[64];
    if (n >= sizeof(tmp))
        n = sizeof(tmp) - 1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (!strcmp(tmp, "+Inf"))
        return 1.0 / 0.0;
    return strtod(tmp, NULL);
}

/* "# HELP name text": the text's escapes. */
static const char *check_help_text(const reader *r, const char *p, const char *end)
{
    for (; p < end; p++) {
        if (*p != '\\')
            continue;
        p++;
        if (p == end || !(*p == '\\' || *p == 'n' || (*p == '"' && r->fmt == QS_METRICS_OPENMETRICS)))
            return "HELP text has an illegal escape";
    }
    return NULL;
}

static const char *metadata(reader *r, const char *p, const char *end)
{
    if (end - p == 5 && !memcmp(p, "# EOF", 5))
        return r->fmt == QS_METRICS_OPENMETRICS ? NULL : "# EOF in the text format";
    const char *what = p + 2;
    if (end - p < 8 || what[4] != ' ')
        return "a comment line that is not HELP, TYPE or UNIT";
    const char *name = what + 5;
    size_t n = read_name(name, end);
    if (!n || name + n == end || name[n] != ' ')
        return "metadata without a valid metric name";
    const char *rest = name + n + 1;
    if (!memcmp(what, "HELP", 4)) {
        if (r->hist_labels.len && !r->saw_inf)
            return "a histogram series without a +Inf bucket";
        qs_buf_reset(&r->hist_labels);
        qs_buf_reset(&r->family);
        qs_buf_append(&r->family, name, n);
        r->typed = false;
        r->k = K_NONE;
        return check_help_text(r, rest, end);
    }
    if (!r->family.len || n != r->family.len || memcmp(name, r->family.data, n))
        return "TYPE or UNIT of another family than its HELP";
    if (!memcmp(what, "TYPE", 4)) {
        size_t tl = (size_t)(end - rest);
        if (r->typed)
            return "a family typed twice";
        r->k = (tl == 7 && !memcmp(rest, "counter", 7)) ? K_COUNTER
             : (tl == 5 && !memcmp(rest, "gauge", 5)) ? K_GAUGE
             : (tl == 9 && !memcmp(rest, "histogram", 9)) ? K_HISTOGRAM : K_NONE;
        if (r->k == K_NONE)
            return "an unknown metric type";
        if (!qs_strset_add(&r->families, r->family.data))
            return "a family declared twice";
        r->typed = true;
        return NULL;
    }
    if (!memcmp(what, "UNIT", 4)) {
        size_t ul = (size_t)(end - rest);
        if (r->fmt != QS_METRICS_OPENMETRICS)
            return "UNIT in the text format";
        if (!ul || n < ul + 1 || name[n - ul - 1] != '_' || memcmp(name + n - ul, rest, ul))
            return "a UNIT that is not the family name's suffix";
        return NULL;
    }
    return "a comment line that is not HELP, TYPE or UNIT";
}

/* Whether sample name s (n bytes) belongs to the family in hand; *sfx is
 * then its suffix ("", "_total", "_bucket", ...). */
static bool belongs(const reader *r, const char *s, size_t n, const char **sfx)
{
    static const char *const counter_om[] = { "_total", NULL };
    static const char *const plain[] = { "", NULL };
    static const char *const hist[] = { "_bucket", "_sum", "_count", NULL };
    const char *const *list = r->k == K_HISTOGRAM ? hist
                            : (r->k == K_COUNTER && r->fmt == QS_METRICS_OPENMETRICS) ? counter_om
                            : plain;
    size_t fl = r->family.len;
    if (r->k == K_COUNTER && r->fmt == QS_METRICS_PROMETHEUS_TEXT &&
        (fl < 6 || memcmp(r->family.data + fl - 6, "_total", 6)))
        return false;       /* the renderer's text counters are named ..._total */
    for (size_t i = 0; list[i]; i++) {
        size_t sl = strlen(list[i]);
        if (n == fl + sl && !memcmp(s, r->family.data, fl) && !memcmp(s + fl, list[i], sl)) {
            *sfx = list[i];
            return true;
        }
    }
    return false;
}

/* Parses "{a="x",b="y"}" at *pp; the labels other than le go to `others`
 * (as written), le's value to *le. */
static const char *labels(const char **pp, const char *end, qs_buf *others,
                          const char **le, size_t *le_len)
{
    const char *p = *pp;
    *le = NULL;
    if (p == end || *p != '{')
        return NULL;
    p++;
    qs_strset seen;
    qs_strset_init(&seen);
    const char *why = NULL;
    while (!why && p < end && *p != '}') {
        size_t n = 0;
        while (p + n < end && (p[n] == '_' || (p[n] >= 'a' && p[n] <= 'z') ||
                               (p[n] >= 'A' && p[n] <= 'Z') || (n && p[n] >= '0' && p[n] <= '9')))
            n++;
        if (!n || p + n + 1 >= end || p[n] != '=' || p[n + 1] != '"') {
            why = "a malformed label";
            break;
        }
        char *lname = strndup(p, n);
        if (!qs_strset_add(&seen, lname))
            why = "a label given twice";
        bool is_le = !strcmp(lname, "le");
        free(lname);
        const char *v = p + n + 2, *q = v;
        while (q < end && *q != '"') {
            if (*q == '\\') {
                q++;
                if (q == end || !(*q == '\\' || *q == '"' || *q == 'n'))
                    why = "a label value with an illegal escape";
            }
            q++;
        }
        if (q >= end) {
            why = "an unterminated label value";
            break;
        }
        if (is_le) {
            *le = v;
            *le_len = (size_t)(q - v);
        } else {
            if (others->len)
                qs_buf_putc(others, ',');
            qs_buf_append(others, p, (size_t)(q + 1 - p));
        }
        p = q + 1;
        if (p < end && *p == ',')
            p++;
    }
    qs_strset_free(&seen);
    if (!why && (p == end || *p != '}'))
        why = "an unterminated label set";
    *pp = p + 1;
    return why;
}

static const char *histogram_sample(reader *r, const char *sfx, const char *series,
                                    const char *le, size_t le_len, const char *value,
                                    size_t vlen)
{
    bool same = r->hist_labels.len && !strcmp(r->hist_labels.data, series);
    if (!strcmp(sfx, "_bucket")) {
        if (!le || !is_number(le, le_len) || !is_number(value, vlen))
            return "a bucket without a numeric le or count";
        double b = number(le, le_len);
        uint64_t count = strtoull(value, NULL, 10);
        if (!same) {
            if (r->hist_labels.len && !r->saw_inf)
                return "a histogram series without a +Inf bucket";
            qs_buf_reset(&r->hist_labels);
            qs_buf_puts(&r->hist_labels, series);
            r->saw_inf = false;
        } else if (r->saw_inf || !(b > r->last_le) || count < r->last_count) {
            return "histogram buckets that do not grow";
        }
        r->last_le = b;
        r->last_count = count;
        r->saw_inf = le_len == 4 && !memcmp(le, "+Inf", 4);
        return NULL;
    }
    if (le)
        return "le on a histogram's _sum or _count";
    if (!same || !r->saw_inf)
        return "_sum or _count before the series' buckets";
    if (!strcmp(sfx, "_count") && strtoull(value, NULL, 10) != r->last_count)
        return "_count is not the +Inf bucket";
    return NULL;
}

static const char *sample(reader *r, const char *p, const char *end)
{
    size_t n = read_name(p, end);
    const char *sfx;
    if (!n)
        return "a sample without a valid metric name";
    if (!r->typed || !belongs(r, p, n, &sfx))
        return "a sample outside its family";
    const char *q = p + n;
    qs_buf *others = &r->scratch;
    qs_buf_reset(others);
    const char *le = NULL;
    size_t le_len = 0;
    const char *why = labels(&q, end, others, &le, &le_len);
    if (why)
        return why;
    if (q >= end || *q != ' ')
        return "a sample without a value";
    const char *value = q + 1;
    size_t vlen = (size_t)(end - value);
    if (!is_number(value, vlen))
        return "a sample whose value is not a number";
    char *key = qs_strdup_printf("%.*s{%s,le=%.*s}", (int)n, p, others->data ? others->data : "",
                                 (int)le_len, le ? le : "");
    bool fresh = qs_strset_add(&r->series, key);
    free(key);
    if (!fresh)
        return "a series given twice";
    if (r->k == K_HISTOGRAM)
        return histogram_sample(r, sfx, others->data ? others->data : "", le, le_len,
                                value, vlen);
    return le ? "le on a sample that is not a bucket" : NULL;
}

const char *fuzz_exposition_error(const char *text, size_t len, qs_metrics_format fmt,
                                  size_t *line)
{
    reader r = { .fmt = fmt };
    const char *why = NULL;
    size_t no = 0;
    bool eof = false;

    size_t valid = utf8_valid_prefix((const unsigned char *)text, len);
    if (valid < len) {
        why = "not valid UTF-8";
        no = 1;
        for (size_t i = 0; i < valid; i++)
            no += text[i] == '\n';
    } else if (len && text[len - 1] != '\n')
        why = "the last line is not terminated";
    qs_strset_init(&r.families);
    qs_strset_init(&r.series);
    qs_buf_init(&r.family);
    qs_buf_init(&r.hist_labels);
    qs_buf_init(&r.scratch);
    for (const char *p = text; !why && p < text + len;) {
        no++;
        const char *end = memchr(p, '\n', (size_t)(text + len - p));
        if (eof)
            why = "text after # EOF";
        else if (end - p >= 2 && p[0] == '#' && p[1] == ' ')
            why = metadata(&r, p, end);
        else
            why = sample(&r, p, end);
        eof = end - p == 5 && !memcmp(p, "# EOF", 5);
        p = end + 1;
    }
    if (!why && r.hist_labels.len && !r.saw_inf)
        why = "a histogram series without a +Inf bucket";
    if (!why && fmt == QS_METRICS_OPENMETRICS && !eof)
        why = "OpenMetrics without # EOF at the end";
    qs_strset_free(&r.families);
    qs_strset_free(&r.series);
    qs_buf_free(&r.family);
    qs_buf_free(&r.hist_labels);
    qs_buf_free(&r.scratch);
    if (line)
        *line = no;
    return why;
}
