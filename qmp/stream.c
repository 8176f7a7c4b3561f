/*
 * stream.c - splits the QMP byte stream into JSON texts the way QEMU's
 * json-streamer does: a text ends when its brackets balance (outside
 * strings); a top-level scalar or stray character is a text of its own.
 * QEMU also accepts 'single-quoted' strings; they are rewritten to double
 * quotes here so that jansson, which does the actual parsing, sees
 * standard JSON.  Texts over QEMU's limits (size, token count, depth)
 * are reported once and skipped to their end, so one bad request costs
 * only its own reply.
 */
#include <string.h>

#include "internal.h"

void qs_json_splitter_init(qs_json_splitter *sp)
{
    memset(sp, 0, sizeof(*sp));
    qs_buf_init(&sp->acc);
}

void qs_json_splitter_free(qs_json_splitter *sp)
{
    qs_buf_free(&sp->acc);
}

static void end_text(qs_json_splitter *sp, qs_json_text_fn fn, void *opaque)
{
    if (!sp->overflow)
        fn(opaque, sp->acc.data ? sp->acc.data : "", sp->acc.len, NULL);
    qs_buf_reset(&sp->acc);
    qs_buf_trim(&sp->acc, QS_KEEP_BYTES);
    sp->overflow = false;
    sp->in_token = false;
    sp->in_scalar = false;
    sp->tokens = 0;
    sp->depth = 0;
}

static void reject_text(qs_json_splitter *sp, const char *error, qs_json_text_fn fn,
                        void *opaque)
{
    if (!sp->overflow)
        fn(opaque, NULL, 0, error);
    sp->overflow = true;
    qs_buf_free(&sp->acc);
}

/* The text's buffer may also have a ceiling (acc.limit: the session's
 * share of the daemon's buffers); past it the splitter stops for good and
 * the session is dropped (over_budget), as no reply could be given. */
static void take_char(qs_json_splitter *sp, char c, qs_json_text_fn fn, void *opaque)
{
    if (sp->overflow || sp->over_budget)
        return;
    if (sp->acc.len >= QS_QMP_MAX_INPUT)
        reject_text(sp, "JSON token size limit exceeded", fn, opaque);
    else if (qs_buf_putc(&sp->acc, c), sp->acc.overflow)
        sp->over_budget = true;
}

/* Inside a string: copies c, translating a single-quoted string into a
 * double-quoted one. */
static void string_char(qs_json_splitter *sp, char c, qs_json_text_fn fn, void *opaque)
{
    if (sp->escape) {
        sp->escape = false;
        if (c == '\'') {
            /* QEMU takes \' in either kind of string; JSON has no such
             * escape, so drop the backslash: \' is just '. */
            if (!sp->overflow)
                sp->acc.len--;
            take_char(sp, '\'', fn, opaque);
        } else {
            take_char(sp, c, fn, opaque);
        }
        return;
    }
    if (c == '\\') {
        sp->escape = true;
        take_char(sp, c, fn, opaque);
    } else if (c == sp->quote) {
        sp->quote = 0;
        take_char(sp, '"', fn, opaque);
    } else if (c == '"') {            /* a bare " inside 'single quotes' */
        take_char(sp, '\\', fn, opaque);
        take_char(sp, '"', fn, opaque);
    } else {
        take_char(sp, c, fn, opaque);
    }
}

static bool is_delim(char c)
{
    return strchr(" \t\r\n{}[],:\"'", c) != NULL;
}

static void top_level_char(qs_json_splitter *sp, char c, qs_json_text_fn fn, void *opaque)
{
    if (sp->in_token) {
        if (!is_delim(c)) {
            take_char(sp, c, fn, opaque);
            return;
        }
        end_text(sp, fn, opaque);
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
        return;
    if (c == '{' || c == '[') {
        take_char(sp, c, fn, opaque);
        sp->depth = 1;
        sp->tokens = 1;
    } else if (c == '"' || c == '\'') {
        sp->quote = c;
        take_char(sp, '"', fn, opaque);
    } else if (strchr("}],:", c)) {
        take_char(sp, c, fn, opaque);
        end_text(sp, fn, opaque);
    } else {
        sp->in_token = true;
        take_char(sp, c, fn, opaque);
    }
}

/* Counts the JSON tokens of a value, as QEMU's streamer limits them: a
 * string, number or keyword is one token, and so is each of {}[],:.  A
 * scalar's characters run until the next delimiter.  Returns true when c
 * starts a token. */
static bool starts_token(qs_json_splitter *sp, char c)
{
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        sp->in_scalar = false;
        return false;
    }
    if (is_delim(c)) {
        sp->in_scalar = false;
        return true;
    }
    if (sp->in_scalar)
        return false;
    sp->in_scalar = true;
    return true;
}

/* One character outside strings inside a value (depth > 0).  As QEMU,
 * the limits are checked before a token is taken, the one that would
 * complete the value included. */
static void nested_char(qs_json_splitter *sp, char c, qs_json_text_fn fn, void *opaque)
{
    if (starts_token(sp, c) && ++sp->tokens > QS_QMP_MAX_TOKENS)
        reject_text(sp, "JSON token count limit exceeded", fn, opaque);
    if (c == '"' || c == '\'') {
        sp->quote = c;
        take_char(sp, '"', fn, opaque);
        return;
    }
    take_char(sp, c, fn, opaque);
    if (c == '{' || c == '[') {
        if (++sp->depth > QS_QMP_MAX_DEPTH)
            reject_text(sp, "JSON nesting depth limit exceeded", fn, opaque);
    } else if (c == '}' || c == ']') {
        if (--sp->depth == 0)
            end_text(sp, fn, opaque);
    }
}

size_t qs_json_splitter_feed(qs_json_splitter *sp, const char *data, size_t len,
                             qs_json_text_fn fn, void *opaque)
{
    sp->paused = false;
    for (size_t i = 0; i < len; i++) {
        if (sp->paused || sp->over_budget)
            return i;
        char c = data[i];
        if (sp->quote) {
            string_char(sp, c, fn, opaque);
            if (!sp->quote && sp->depth == 0)
                end_text(sp, fn, opaque);       /* a top-level string */
            continue;
        }
        if (sp->depth == 0) {
            top_level_char(sp, c, fn, opaque);
            continue;
        }
        nested_char(sp, c, fn, opaque);
    }
    return len;
}
