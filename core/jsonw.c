/*
 * jsonw.c - a streaming JSON text writer.  jansson cannot hold integers
 * above INT64_MAX (KVM counters, the balloon's "unset" 18446744073709551615)
 * and is slow for the large query-stats replies, so every reply that carries
 * statistics is written with this instead.  Output follows QEMU's compact
 * style: ", " and ": " separators, ASCII only (\uXXXX escapes).  Also the
 * one re-indenter of JSON text (qs_json_reindent), for the monitors' and
 * the client's pretty output.
 */
#include <string.h>

#include "qs-common.h"

void qs_jw_init(qs_jw *w, qs_buf *b)
{
    memset(w, 0, sizeof(*w));
    w->b = b;
    w->first[0] = true;
}

/* Separator before a value (or key) at the current level. */
static void before_value(qs_jw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth])
        qs_buf_append(w->b, ", ", 2);
    w->first[w->depth] = false;
}

static void open_level(qs_jw *w, char c)
{
    before_value(w);
    qs_buf_putc(w->b, c);
    if (w->depth + 1 < QS_JW_MAX_DEPTH)
        w->depth++;
    w->first[w->depth] = true;
}

static void close_level(qs_jw *w, char c)
{
    qs_buf_putc(w->b, c);
    if (w->depth > 0)
        w->depth--;
}

void qs_jw_begin_object(qs_jw *w) { open_level(w, '{'); }
void qs_jw_end_object(qs_jw *w) { close_level(w, '}'); }
void qs_jw_begin_array(qs_jw *w) { open_level(w, '['); }
void qs_jw_end_array(qs_jw *w) { close_level(w, ']'); }

void qs_jw_key(qs_jw *w, const char *key)
{
    before_value(w);
    qs_json_put_string(w->b, key);
    qs_buf_append(w->b, ": ", 2);
    w->after_key = true;
}

void qs_jw_str(qs_jw *w, const char *s) { before_value(w); qs_json_put_string(w->b, s); }
void qs_jw_u64(qs_jw *w, uint64_t v) { before_value(w); qs_buf_put_u64(w->b, v); }
void qs_jw_i64(qs_jw *w, int64_t v) { before_value(w); qs_buf_put_i64(w->b, v); }
void qs_jw_bool(qs_jw *w, bool v) { before_value(w); qs_buf_puts(w->b, v ? "true" : "false"); }
void qs_jw_null(qs_jw *w) { before_value(w); qs_buf_append(w->b, "null", 4); }
void qs_jw_raw(qs_jw *w, const char *json, size_t len) { before_value(w); qs_buf_append(w->b, json, len); }

/* As QEMU's JSON writer does, anything that is not a valid Unicode scalar
 * value becomes U+FFFD: a reply must never carry a lone surrogate escape
 * that strict JSON parsers refuse. */
unsigned qs_utf8_next(const unsigned char **p)
{
    static const unsigned min_of[4] = { 0, 0x80, 0x800, 0x10000 };
    const unsigned char *s = *p;
    unsigned c = s[0], n = 0, cp;
    if (c < 0x80) { *p = s + 1; return c; }
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else { *p = s + 1; return 0xFFFD; }
    for (unsigned i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80) { *p = s + i; return 0xFFFD; }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *p = s + n + 1;
    bool bad = cp < min_of[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
               (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
    return bad ? 0xFFFD : cp;
}

/* Upper-case hex digits, as QEMU writes them (\u00E9). */
static void put_u16_escape(qs_buf *b, unsigned v)
{
    static const char hex[] = "0123456789ABCDEF";
    char e[6] = { '\\', 'u', hex[(v >> 12) & 15], hex[(v >> 8) & 15],
                  hex[(v >> 4) & 15], hex[v & 15] };
    qs_buf_append(b, e, 6);
}

void qs_json_put_string(qs_buf *b, const char *str)
{
    const unsigned char *p = (const unsigned char *)str;
    const unsigned char *q = p;
    while (*q >= 0x20 && *q < 0x7F && *q != '"' && *q != '\\')
        q++;
    if (!*q) {                       /* the common case: nothing to escape */
        size_t n = (size_t)(q - p);
        if (!qs_buf_reserve(b, n + 2))
            return;                  /* past the ceiling: overflow is set */
        b->data[b->len] = '"';
        memcpy(b->data + b->len + 1, p, n);
        b->data[b->len + 1 + n] = '"';
        b->len += n + 2;
        b->data[b->len] = 0;
        return;
    }
    qs_buf_putc(b, '"');
    while (*p) {
        const unsigned char *run = p;
        while (*p >= 0x20 && *p < 0x7F && *p != '"' && *p != '\\')
            p++;
        qs_buf_append(b, run, (size_t)(p - run));
        if (!*p)
            break;
        unsigned c = qs_utf8_next(&p);
        switch (c) {
        case '"': qs_buf_append(b, "\\\"", 2); break;
        case '\\': qs_buf_append(b, "\\\\", 2); break;
        case '\b': qs_buf_append(b, "\\b", 2); break;
        case '\f': qs_buf_append(b, "\\f", 2); break;
        case '\n': qs_buf_append(b, "\\n", 2); break;
        case '\r': qs_buf_append(b, "\\r", 2); break;
        case '\t': qs_buf_append(b, "\\t", 2); break;
        default:
            if (c >= 0x10000) {
                c -= 0x10000;
                put_u16_escape(b, 0xD800 | (c >> 10));
                put_u16_escape(b, 0xDC00 | (c & 0x3FF));
            } else {
                put_u16_escape(b, c);
            }
        }
    }
    qs_buf_putc(b, '"');
}

/* ---- re-indenting JSON text --------------------------------------------- */

static void newline(qs_buf *out, int depth, int indent)
{
    qs_buf_putc(out, '\n');
    for (int i = 0; i < depth * indent; i++)
        qs_buf_putc(out, ' ');
}

/* Copies one JSON string token starting at s[*i] == '"'. */
static void copy_string(qs_buf *out, const char *s, size_t len, size_t *i)
{
    size_t start = (*i)++;
    while (*i < len && s[*i] != '"')
        *i += s[*i] == '\\' ? 2 : 1;
    if (*i < len)
        (*i)++;
    qs_buf_append(out, s + start, (*i > len ? len : *i) - start);
}

/* Whether the container opened at s[i] is empty: "{}" or "[ ]". */
static bool empty_container(const char *s, size_t len, size_t i)
{
    char close = s[i] == '{' ? '}' : ']';
    for (i++; i < len && strchr(" \t\r\n", s[i]); i++)
        ;
    return i < len && s[i] == close;
}

void qs_json_reindent(qs_buf *out, const char *s, size_t len, int indent, bool empty_inline)
{
    int depth = 0;
    bool fresh = false;       /* just opened a container: next value goes on a new line */

    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (strchr(" \t\r\n", c)) {
            i++;
        } else if (c == '}' || c == ']') {
            newline(out, --depth, indent);
            qs_buf_putc(out, c);
            fresh = false;
            i++;
        } else if ((c == '{' || c == '[') && empty_inline && empty_container(s, len, i)) {
            if (fresh)
                newline(out, depth, indent);
            qs_buf_putc(out, c);
            qs_buf_putc(out, c == '{' ? '}' : ']');
            fresh = false;
            for (i++; s[i] != '}' && s[i] != ']'; i++)
                ;
            i++;
        } else {
            if (fresh)
                newline(out, depth, indent);
            fresh = false;
            if (c == '"') {
                copy_string(out, s, len, &i);
            } else if (c == '{' || c == '[') {
                qs_buf_putc(out, c);
                depth++;
                fresh = true;
                i++;
            } else if (c == ',') {
                qs_buf_putc(out, ',');
                newline(out, depth, indent);
                i++;
            } else if (c == ':') {
                qs_buf_puts(out, ": ");
                i++;
            } else {
                size_t start = i;
                while (i < len && !strchr(" \t\r\n,:]}", s[i]))
                    i++;
                qs_buf_append(out, s + start, i - start);
            }
        }
    }
}
