/*
 * exporter/names.c - the small, pure rules of the metrics mapping: metric
 * names from stat names and units, unit scaling, histogram bucket bounds
 * and number/label text.  Kept apart from render.c so that the unit tests
 * can pin each rule on its own (see the naming summary in qs-exporter.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char *qs_metrics_unit_word(qs_unit u)
{
    switch (u) {
    case QS_UNIT_SECONDS: return "seconds";
    case QS_UNIT_BYTES:   return "bytes";
    case QS_UNIT_CYCLES:  return "cycles";
    default:              return NULL;
    }
}

/* Suffixes of a stat's own name that spell a unit; removed (and replaced
 * by the base unit) only when the schema says the stat has that unit, so
 * that a unit-less "foo_s" keeps its name. */
static const char *const seconds_suffixes[] = {
    "_ns", "_nsec", "_us", "_usec", "_ms", "_msec", "_s", "_sec", "_secs",
    "_seconds", NULL };
static const char *const bytes_suffixes[] = {
    "_b", "_bytes", "_kb", "_kib", "_mb", "_mib", "_gb", "_gib", NULL };
static const char *const cycles_suffixes[] = { "_cycles", NULL };

static const char *const *unit_suffixes(qs_unit u)
{
    switch (u) {
    case QS_UNIT_SECONDS: return seconds_suffixes;
    case QS_UNIT_BYTES:   return bytes_suffixes;
    case QS_UNIT_CYCLES:  return cycles_suffixes;
    default:              return NULL;
    }
}

/* Drops suffix from the end of b (case-insensitive: kernel names are lower
 * case, but a provider might say "_MB") when something remains before it. */
static bool strip_suffix(qs_buf *b, const char *suffix)
{
    size_t n = strlen(suffix);
    if (b->len <= n || strncasecmp(b->data + b->len - n, suffix, n))
        return false;
    b->len -= n;
    b->data[b->len] = 0;
    return true;
}

static bool is_hist(qs_stat_type t)
{
    return t == QS_TYPE_LINEAR_HIST || t == QS_TYPE_LOG2_HIST;
}

void qs_metrics_stem(qs_buf *out, const qs_schema_value *sv, bool strip_hist)
{
    qs_buf_reset(out);
    for (const char *p = sv->name; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_';
        qs_buf_putc(out, ok ? c : '_');
    }
    if (out->len == 0)
        qs_buf_putc(out, '_');
    if (sv->type == QS_TYPE_CUMULATIVE)
        strip_suffix(out, "_total");
    if (strip_hist && is_hist(sv->type))
        (void)(strip_suffix(out, "_hist") || strip_suffix(out, "_histogram"));
    const char *const *sfx = unit_suffixes(sv->unit);
    for (; sfx && *sfx; sfx++) {
        if (strip_suffix(out, *sfx))
            break;
    }
}

void qs_metrics_family_name(qs_buf *out, const char *provider, qs_target t,
                            const qs_schema_value *sv)
{
    qs_buf stem;
    qs_buf_init(&stem);
    qs_metrics_stem(&stem, sv, false);
    qs_buf_reset(out);
    qs_buf_printf(out, "qstats_%s_%s_%s", provider,
                  qs_target_name(t), stem.data);
    qs_buf_free(&stem);
    /* provider/target names are QAPI enums ("kvm", "vcpu") but sanitise
     * anyway: the whole name must match [a-zA-Z_][a-zA-Z0-9_]*. */
    for (size_t i = 0; i < out->len; i++) {
        char c = out->data[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_'))
            out->data[i] = '_';
    }
    const char *unit = qs_metrics_unit_word(sv->unit);
    if (unit)
        qs_buf_printf(out, "_%s", unit);
}

void qs_metrics_put_double(qs_buf *out, double v, bool om_label)
{
    if (v != v) {
        qs_buf_puts(out, "NaN");
        return;
    }
    if (v > 1.7976931348623157e308 || v < -1.7976931348623157e308) {
        qs_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    qs_buf_puts(out, tmp);
    if (om_label && !strpbrk(tmp, ".e"))
        qs_buf_puts(out, ".0");
}

void qs_metrics_put_non_ascii(qs_buf *out, const char **s)
{
    static const char replacement[] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *)*s;
    unsigned cp = qs_utf8_next(&p);
    size_t n = (size_t)((const char *)p - *s);
    if (cp == 0xFFFD && !(n == 3 && memcmp(*s, replacement, 3) == 0))
        qs_buf_append(out, replacement, 3);
    else
        qs_buf_append(out, *s, n);
    *s = (const char *)p;
}

void qs_metrics_put_label_value(qs_buf *out, const char *s)
{
    while (*s) {
        switch (*s) {
        case '\\': qs_buf_puts(out, "\\\\"); s++; break;
        case '"':  qs_buf_puts(out, "\\\""); s++; break;
        case '\n': qs_buf_puts(out, "\\n"); s++; break;
        default:
            if ((unsigned char)*s >= 0x80)
                qs_metrics_put_non_ascii(out, &s);
            else
                qs_buf_putc(out, *s++);
        }
    }
}
