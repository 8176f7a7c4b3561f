/*
 * fuzz_hmp_line.c - libFuzzer target for the human monitor's parsers: the
 * word and quoted-string reader (qs_hmp_get_str), the expression evaluator
 * of 'i' arguments (qs_hmp_get_expr), the args_type matcher
 * (qs_hmp_parse_args) run against the real commands' args_type strings,
 * and whole command lines through qs_hmp_execute on a monitor of the fuzz
 * world (the recorded VM with its 2 vCPUs, a balloon; `info balloon`
 * added by its module).  A line reaches them from any HMP console client
 * and from QMP's human-monitor-command.
 *
 * Input: byte 0 picks the mode (bits 0-1) and, for lines, the monitor's
 * reply ceiling (bits 2-3: the default, 2, 8 or 64 KiB, so that the "would
 * exceed" path runs too); byte 1 picks the command whose args_type is
 * used; the rest, up to a NUL, is the text.  In line mode it is split at
 * '\n' into lines run in turn on one monitor (so `cpu 1` affects the
 * `info stats vcpu` after it).
 *
 * Oracles beyond the sanitizers:
 *   words        a word read unquoted is the exact text consumed, without
 *                whitespace; a quoted one, quoted again, reads back the
 *                same; only an empty text or a quote can fail.
 *   expressions  a success leaves no message and agrees with the same
 *                prefix wrapped: (E) = v, -(E) = -v, ~(E) = ~v,
 *                0+(E)*1 = v, and v's decimal reads back as v; a failure
 *                is exactly one message line.
 *   args         a success leaves no message and has every mandatory
 *                argument, 'i' values in 0..2^32-1, 'S' non-empty; a
 *                failure says why in lines.
 *   lines        output is "\r\n"-terminated lines (every '\n' preceded
 *                by '\r') and stays within twice the ceiling (each "\n"
 *                leaves as "\r\n") plus the refusal line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmp/internal.h"
#include "fuzz_world.h"

#define MAX_TEXT 4096
#define MAX_LINES 16

static uv_loop_t *loop;
/* A world kept for its command tables (the args_type strings); lines get
 * a world of their own, since qom-set changes it. */
static fuzz_world tables;

static void fail(const char *what, const char *text)
{
    fprintf(stderr, "fuzz_hmp_line: %s\n  text: \"%s\"\n", what, text);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    loop = qs_calloc(1, sizeof(*loop));
    uv_loop_init(loop);
    fuzz_world_init(&tables, loop, false, 0);
    return 0;
}

/* ---- words ------------------------------------------------------------ */

static void put_quoted(qs_buf *b, const char *s)
{
    qs_buf_putc(b, '"');
    for (; *s; s++) {
        switch (*s) {
        case '\\': qs_buf_puts(b, "\\\\"); break;
        case '"': qs_buf_puts(b, "\\\""); break;
        case '\n': qs_buf_puts(b, "\\n"); break;
        case '\r': qs_buf_puts(b, "\\r"); break;
        default: qs_buf_putc(b, *s);
        }
    }
    qs_buf_putc(b, '"');
}

static bool is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static void fuzz_words(const char *text)
{
    const char *p = text;
    char *w;
    for (int n = 0; n < 64; n++) {
        const char *start = p;
        while (is_space(*start))
            start++;
        if (!qs_hmp_get_str(&p, &w)) {
            if (w)
                fail("a failed read left a word", text);
            if (*start && *start != '"')
                fail("an unquoted word failed to read", text);
            return;
        }
        if (p <= start || !w)
            fail("a word was read from nothing", text);
        if (*start != '"') {
            if (strlen(w) != (size_t)(p - start) || memcmp(w, start, strlen(w)))
                fail("an unquoted word is not the text consumed", text);
            for (const char *c = w; *c; c++)
                if (is_space(*c))
                    fail("an unquoted word holds whitespace", text);
        } else {
            if (p[-1] != '"' || p - start < 2)
                fail("a quoted word did not end at its closing quote", text);
            qs_buf q;
            qs_buf_init(&q);
            put_quoted(&q, w);
            const char *qp = q.data;
            char *again;
            if (!qs_hmp_get_str(&qp, &again) || *qp || strcmp(again, w))
                fail("a quoted word does not read back after quoting", text);
            free(again);
            qs_buf_free(&q);
        }
        free(w);
    }
}

/* ---- expressions ------------------------------------------------------ */

typedef struct eval {
    bool ok;
    int64_t v;
    size_t used;
    qs_buf err;
} eval;

static void evaluate(eval *e, const char *text)
{
    const char *p = text;
    qs_buf_init(&e->err);
    e->v = 0;
    e->ok = qs_hmp_get_expr(&p, &e->v, &e->err);
    e->used = (size_t)(p - text);
    if (p < text || e->used > strlen(text))
        fail("the evaluator went outside its text", text);
}

static bool nested_too_deeply(const eval *e)
{
    return !e->ok && e->err.data && strstr(e->err.data, "nested too deeply");
}

/* text holds prefix + E + suffix and must evaluate completely to want. */
static void expect_value(const char *prefix, const char *expr, size_t len,
                         const char *suffix, uint64_t want, const char *orig)
{
    char *text = qs_strdup_printf("%s%.*s%s", prefix, (int)len, expr, suffix);
    eval e;
    evaluate(&e, text);
    if (!nested_too_deeply(&e) &&
        (!e.ok || (uint64_t)e.v != want || text[e.used] != '\0'))
        fail("an expression and its wrapped form disagree", orig);
    qs_buf_free(&e.err);
    free(text);
}

static void fuzz_expr(const char *text)
{
    eval e;
    evaluate(&e, text);
    if (!e.ok) {
        const char *nl = e.err.data ? strchr(e.err.data, '\n') : NULL;
        if (!nl || nl[1] || nl == e.err.data)
            fail("a failed expression did not give exactly one message line", text);
        qs_buf_free(&e.err);
        return;
    }
    if (e.err.len)
        fail("a successful expression left a message", text);
    uint64_t v = (uint64_t)e.v;
    expect_value("(", text, e.used, ")", v, text);
    expect_value("-(", text, e.used, ")", 0 - v, text);
    expect_value("~(", text, e.used, ")", ~v, text);
    expect_value("0+(", text, e.used, ")*1", v, text);
    char num[32];
    snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    expect_value("", num, strlen(num), "", v, text);
    qs_buf_free(&e.err);
}

/* ---- args_type -------------------------------------------------------- */

static const qs_hmp_command *pick_command(uint8_t which)
{
    size_t n = tables.hmp->top.n + tables.hmp->info.n;
    size_t i = which % n;
    return i < tables.hmp->top.n ? &tables.hmp->top.v[i].cmd
                                 : &tables.hmp->info.v[i - tables.hmp->top.n].cmd;
}

static void check_args(const qs_hmp_command *c, const qs_hmp_args *a, const char *text)
{
    size_t items = 0;
    for (const char *s = c->args; *s; items++) {
        const char *colon = strchr(s, ':');
        size_t end = strcspn(s, ",");
        char type = colon[1];
        bool optional = colon[2] == '?';
        if (items >= a->n || strncmp(a->v[items].key, s, (size_t)(colon - s)) ||
            a->v[items].key[colon - s])
            fail("the parsed arguments do not follow the args_type", text);
        const qs_hmp_arg *arg = &a->v[items];
        if (type != '-' && !optional && !arg->present)
            fail("a mandatory argument is missing after a successful parse", text);
        if (type == 'i' && arg->present && (arg->num < 0 || arg->num > (int64_t)UINT32_MAX))
            fail("an 'i' argument is outside 32 bits", text);
        if ((type == 's' || type == 'S') && arg->present != (arg->str != NULL))
            fail("a string argument's presence and value disagree", text);
        if (type == 'S' && arg->present && !arg->str[0])
            fail("a rest-of-line argument is empty", text);
        s += end + (s[end] == ',');
    }
    if (items != a->n)
        fail("more arguments than the args_type has", text);
}

static void fuzz_args(const qs_hmp_command *c, const char *text)
{
    qs_hmp_args a;
    qs_buf err;
    qs_buf_init(&err);
    bool ok = qs_hmp_parse_args(c->name, c->args, text, &a, &err);
    if (ok) {
        if (err.len)
            fail("a successful parse left a message", text);
        check_args(c, &a, text);
    } else if (!err.len || err.data[err.len - 1] != '\n') {
        fail("a failed parse did not say why in lines", text);
    }
    qs_hmp_args_free(&a);
    qs_buf_free(&err);
}

/* ---- whole lines ------------------------------------------------------ */

static void check_output(const qs_buf *out, size_t limit, const char *line)
{
    for (size_t i = 0; i < out->len; i++)
        if (out->data[i] == '\n' && (i == 0 || out->data[i - 1] != '\r'))
            fail("an output line does not end in \\r\\n", line);
    if (out->len && (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2)))
        fail("the output does not end with a line end", line);
    if (out->len > 2 * limit + 128)
        fail("the output passed the monitor's reply ceiling", line);
}

static void fuzz_lines(const char *text, size_t limit)
{
    fuzz_world w;
    fuzz_world_init(&w, loop, false, limit);
    qs_hmp_monitor *m = qs_hmp_monitor_new(w.hmp);
    char *copy = qs_strdup(text);
    char *save = NULL;
    int n = 0;
    for (char *line = strtok_r(copy, "\n", &save); line && n < MAX_LINES;
         line = strtok_r(NULL, "\n", &save), n++) {
        qs_buf out;
        qs_buf_init(&out);
        qs_hmp_execute(m, line, &out);
        check_output(&out, limit ? limit : QS_REPLY_MAX_DEFAULT, line);
        qs_buf_free(&out);
    }
    free(copy);
    qs_hmp_monitor_free(m);
    fuzz_world_destroy(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[] = { 0, 2048, 8192, 65536 };
    if (size < 2 || size - 2 > MAX_TEXT)
        return 0;
    char *text = qs_malloc(size - 1);
    memcpy(text, data + 2, size - 2);
    text[size - 2] = '\0';

    switch (data[0] & 3) {
    case 0: fuzz_words(text); break;
    case 1: fuzz_expr(text); break;
    case 2: fuzz_args(pick_command(data[1]), text); break;
    case 3: fuzz_lines(text, limits[(data[0] >> 2) & 3]); break;
    }
    free(text);
    return 0;
}
