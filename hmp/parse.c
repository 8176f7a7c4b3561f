/*
 * parse.c - QEMU's HMP argument syntax (monitor/hmp.c): words and quoted
 * strings, the small integer expression language of 'i' arguments, and the
 * args_type strings ("target:s,names:s?,provider:s?") that describe each
 * command.  Error texts are QEMU's, because scripts and people match them.
 * Pure string handling; no registry, no I/O.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *skip_space(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* One escape of a quoted string; -1 for the ones QEMU refuses. */
static int unescape(char c)
{
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case '\\': case '\'': case '"': return c;
    default: return -1;
    }
}

static bool get_quoted(const char **pp, qs_buf *b)
{
    const char *p = *pp + 1;
    while (*p && *p != '"') {
        if (*p == '\\') {
            int c = unescape(p[1]);
            if (c < 0)
                return false;      /* QEMU prints the reason on its stdout only */
            qs_buf_putc(b, (char)c);
            p += 2;
        } else {
            qs_buf_putc(b, *p++);
        }
    }
    if (*p != '"')
        return false;              /* unterminated string */
    *pp = p + 1;
    return true;
}

bool qs_hmp_get_str(const char **pp, char **out)
{
    const char *p = skip_space(*pp);
    qs_buf b;

    *out = NULL;
    if (!*p) {
        *pp = p;
        return false;
    }
    qs_buf_init(&b);
    if (*p == '"') {
        if (!get_quoted(&p, &b)) {
            qs_buf_free(&b);
            return false;
        }
    } else {
        const char *start = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        qs_buf_append(&b, start, (size_t)(p - start));
    }
    *pp = p;
    *out = qs_buf_steal(&b);
    return true;
}

/* ---- expressions: sum > prod > logic > unary, as monitor/hmp.c ---------- */

/* Unary operators and parentheses recurse; a line of a million '(' must
 * not exhaust the stack (QEMU has no bound and crashes).  Real expressions
 * nest a few levels. */
#define MAX_EXPR_DEPTH 256

typedef struct expr {
    const char *p;
    qs_buf *err;
    bool failed;
    int depth;
} expr;

static void expr_error(expr *e, const char *msg, char c)
{
    if (e->failed)
        return;
    e->failed = true;
    if (c)
        qs_buf_printf(e->err, msg, c);
    else
        qs_buf_puts(e->err, msg);
    qs_buf_putc(e->err, '\n');
}

static void next(expr *e)
{
    if (*e->p) {
        e->p++;
        e->p = skip_space(e->p);
    }
}

static uint64_t expr_sum(expr *e);

static uint64_t expr_number(expr *e)
{
    char *end;
    errno = 0;
    uint64_t n = strtoull(e->p, &end, 0);
    if (errno == ERANGE)
        expr_error(e, "number too large", 0);
    if (end == e->p)
        expr_error(e, "invalid char '%c' in expression", *e->p);
    if (e->failed)
        return 0;
    e->p = skip_space(end);
    return n;
}

static uint64_t expr_char(expr *e)
{
    e->p++;
    if (!*e->p) {
        expr_error(e, "character constant expected", 0);
        return 0;
    }
    uint64_t n = (unsigned char)*e->p++;
    if (*e->p != '\'') {
        expr_error(e, "missing terminating ' character", 0);
        return 0;
    }
    next(e);
    return n;
}

static uint64_t expr_unary_op(expr *e);

static uint64_t expr_unary(expr *e)
{
    if (e->failed)
        return 0;
    if (e->depth >= MAX_EXPR_DEPTH) {
        expr_error(e, "expression nested too deeply", 0);
        return 0;
    }
    e->depth++;
    uint64_t n = expr_unary_op(e);
    e->depth--;
    return n;
}

static uint64_t expr_unary_op(expr *e)
{
    uint64_t n;
    switch (*e->p) {
    case '+':
        next(e);
        return expr_unary(e);
    case '-':
        next(e);
        return 0 - expr_unary(e);
    case '~':
        next(e);
        return ~expr_unary(e);
    case '(':
        next(e);
        n = expr_sum(e);
        if (*e->p != ')')
            expr_error(e, "')' expected", 0);
        next(e);
        return n;
    case '\'':
        return expr_char(e);
    case '\0':
        expr_error(e, "unexpected end of expression", 0);
        return 0;
    default:
        return expr_number(e);
    }
}

static uint64_t expr_logic(expr *e)
{
    uint64_t v = expr_unary(e);
    while (!e->failed && (*e->p == '&' || *e->p == '|' || *e->p == '^')) {
        char op = *e->p;
        next(e);
        uint64_t w = expr_unary(e);
        v = op == '&' ? v & w : op == '|' ? v | w : v ^ w;
    }
    return v;
}

/* Signed division without the INT64_MIN / -1 trap. */
static uint64_t divide(uint64_t a, uint64_t b, bool rem)
{
    int64_t x = (int64_t)a, y = (int64_t)b;
    if (y == -1)
        return rem ? 0 : 0 - a;
    return rem ? (uint64_t)(x % y) : (uint64_t)(x / y);
}

static uint64_t expr_prod(expr *e)
{
    uint64_t v = expr_logic(e);
    while (!e->failed && (*e->p == '*' || *e->p == '/' || *e->p == '%')) {
        char op = *e->p;
        next(e);
        uint64_t w = expr_logic(e);
        if (e->failed)
            break;
        if (op == '*') {
            v *= w;
        } else if (w == 0) {
            expr_error(e, "division by zero", 0);
        } else {
            v = divide(v, w, op == '%');
        }
    }
    return v;
}

static uint64_t expr_sum(expr *e)
{
    uint64_t v = expr_prod(e);
    while (!e->failed && (*e->p == '+' || *e->p == '-')) {
        char op = *e->p;
        next(e);
        uint64_t w = expr_prod(e);
        v = op == '+' ? v + w : v - w;
    }
    return v;
}

bool qs_hmp_get_expr(const char **pp, int64_t *val, qs_buf *err)
{
    expr e = { .p = skip_space(*pp), .err = err };
    uint64_t v = expr_sum(&e);
    *pp = e.p;
    if (e.failed)
        return false;
    *val = (int64_t)v;
    return true;
}

/* ---- args_type ------------------------------------------------------- */

static qs_hmp_arg *add_arg(qs_hmp_args *a, const char *key, size_t keylen)
{
    if (a->n == QS_HMP_MAX_ARGS)
        abort();                   /* a command table bug, not user input */
    qs_hmp_arg *arg = &a->v[a->n++];
    arg->key = strndup(key, keylen);
    return arg;
}

/* A run of consecutive flag specs ("all:-a,bounds:-b") accepts its flags
 * in any order and combined ("-ab"); QEMU's order-bound matching is a
 * subset of this. */
static bool parse_flags(const char *cmd, const char **specp, const char **pp,
                        qs_hmp_args *out, qs_buf *err)
{
    char flags[QS_HMP_MAX_ARGS];
    qs_hmp_arg *args[QS_HMP_MAX_ARGS];
    size_t n = 0;
    const char *s = *specp;

    for (;;) {
        const char *colon = strchr(s, ':');
        if (!colon || colon[1] != '-')
            break;
        args[n] = add_arg(out, s, (size_t)(colon - s));
        flags[n++] = colon[2];
        s = colon + 3;
        if (*s == ',')
            s++;
    }
    *specp = s;

    const char *p = skip_space(*pp);
    while (*p == '-') {
        for (p++; *p && !isspace((unsigned char)*p); p++) {
            size_t i = 0;
            while (i < n && flags[i] != *p)
                i++;
            if (i == n) {
                qs_buf_printf(err, "%s: unsupported option -%c\n", cmd, *p);
                return false;
            }
            args[i]->present = true;
        }
        p = skip_space(p);
    }
    *pp = p;
    return true;
}

static bool parse_one(const char *cmd, char type, bool optional, const char **pp,
                      qs_hmp_arg *arg, qs_buf *err)
{
    const char *p = skip_space(*pp);

    if (optional && !*p)
        return true;
    switch (type) {
    case 's':
        if (!qs_hmp_get_str(&p, &arg->str)) {
            qs_buf_printf(err, "%s: string expected\n", cmd);
            return false;
        }
        break;
    case 'S':
        if (!*p) {
            qs_buf_printf(err, "%s: string expected\n", cmd);
            return false;
        }
        arg->str = qs_strdup(p);
        p += strlen(p);
        break;
    case 'i':
        if (!qs_hmp_get_expr(&p, &arg->num, err))
            return false;
        if ((arg->num >> 32) & 0xffffffff) {
            qs_buf_printf(err, "'%s' has failed: integer is for 32-bit values\n", cmd);
            return false;
        }
        break;
    default:
        abort();                   /* a command table bug */
    }
    arg->present = true;
    *pp = p;
    return true;
}

bool qs_hmp_parse_args(const char *cmd, const char *spec, const char *p,
                       qs_hmp_args *out, qs_buf *err)
{
    memset(out, 0, sizeof(*out));
    while (spec && *spec) {
        const char *colon = strchr(spec, ':');
        if (!colon)
            abort();
        if (colon[1] == '-') {
            if (!parse_flags(cmd, &spec, &p, out, err))
                return false;
            continue;
        }
        qs_hmp_arg *arg = add_arg(out, spec, (size_t)(colon - spec));
        char type = colon[1];
        bool optional = colon[2] == '?';
        spec = colon + 2 + optional;
        if (*spec == ',')
            spec++;
        if (!parse_one(cmd, type, optional, &p, arg, err))
            return false;
    }
    p = skip_space(p);
    if (*p) {
        qs_buf_printf(err, "%s: extraneous characters at the end of line\n", cmd);
        return false;
    }
    return true;
}

void qs_hmp_args_free(qs_hmp_args *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free((char *)a->v[i].key);
        free(a->v[i].str);
    }
    a->n = 0;
}

static const qs_hmp_arg *find_arg(const qs_hmp_args *a, const char *key)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i].key, key) == 0)
            return a->v[i].present ? &a->v[i] : NULL;
    return NULL;
}

const char *qs_hmp_args_str(const qs_hmp_args *a, const char *key)
{
    const qs_hmp_arg *arg = find_arg(a, key);
    return arg ? arg->str : NULL;
}

bool qs_hmp_args_flag(const qs_hmp_args *a, const char *key)
{
    return find_arg(a, key) != NULL;
}

int64_t qs_hmp_args_int(const qs_hmp_args *a, const char *key)
{
    const qs_hmp_arg *arg = find_arg(a, key);
    return arg ? arg->num : 0;
}

char **qs_hmp_split_commas(const char *s, size_t *n)
{
    size_t count = *s ? 1 : 0;     /* g_strsplit("") gives no items */
    for (const char *c = s; *c; c++)
        count += *c == ',';
    char **v = qs_calloc(count + 1, sizeof(char *));
    for (size_t i = 0; i < count; i++) {
        size_t len = strcspn(s, ",");
        v[i] = strndup(s, len);
        s += len + (s[len] == ',');
    }
    *n = count;
    return v;
}

void qs_hmp_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}
