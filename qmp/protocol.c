/*
 * protocol.c - one QMP request from text to reply: JSON parsing (jansson),
 * the request envelope checks, capabilities negotiation, schema validation
 * and dispatch, with QEMU's error texts (qemu-reference.md §6).  Replies are
 * written straight into the session's output buffer: a handler's return
 * value is encoded in place, and on error the partial output is cut back
 * and replaced by the error object.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

static void put_error(qs_buf *out, const qs_error *err)
{
    qs_buf_puts(out, "\"error\": {\"class\": ");
    qs_json_put_string(out, qs_error_class_name(err->cls));
    qs_buf_puts(out, ", \"desc\": ");
    qs_json_put_string(out, err->msg);
    qs_buf_putc(out, '}');
}

static void put_qobject(qs_buf *out, const json_t *v);

static void put_qdict(qs_buf *out, const json_t *obj)
{
    size_t n = json_object_size(obj), k = 0;
    const char **keys = qs_calloc(n ? n : 1, sizeof(*keys));
    size_t *order = qs_calloc(n ? n : 1, sizeof(*order));
    const char *key;
    json_t *val;

    json_object_foreach((json_t *)obj, key, val)
        keys[k++] = key;
    qs_qapi_qdict_order(keys, n, order);
    qs_buf_putc(out, '{');
    for (k = 0; k < n; k++) {
        qs_buf_puts(out, k ? ", " : "");
        qs_json_put_string(out, keys[order[k]]);
        qs_buf_puts(out, ": ");
        put_qobject(out, json_object_get(obj, keys[order[k]]));
    }
    qs_buf_putc(out, '}');
    free(keys);
    free(order);
}

/* A request value echoed back (the id) as QEMU writes the QObject it
 * parsed: object members in QDict order, reals as "%.17g" (1e3 is 1000). */
static void put_qobject(qs_buf *out, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        put_qdict(out, v);
        break;
    case JSON_ARRAY:
        qs_buf_putc(out, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            qs_buf_puts(out, i ? ", " : "");
            put_qobject(out, json_array_get(v, i));
        }
        qs_buf_putc(out, ']');
        break;
    case JSON_STRING:
        qs_json_put_string(out, json_string_value(v));
        break;
    case JSON_INTEGER:
        qs_buf_put_i64(out, json_integer_value(v));
        break;
    case JSON_REAL:
        qs_buf_printf(out, "%.17g", json_real_value(v));
        break;
    default:
        qs_buf_puts(out, json_is_true(v) ? "true" : json_is_false(v) ? "false" : "null");
        break;
    }
}

/* QEMU's reply is a QDict too: "return" comes before "id", "id" before
 * "error". */
static void put_id_and_end(qs_buf *out, const json_t *id)
{
    if (id) {
        qs_buf_puts(out, ", \"id\": ");
        put_qobject(out, id);
    }
    qs_buf_puts(out, "}\r\n");
}

/* An error reply: there QEMU's QDict puts "id" before "error". */
static void reply_error(qs_qmp_session *s, const json_t *id, qs_error *err)
{
    if (id) {
        qs_buf_puts(&s->out, "{\"id\": ");
        put_qobject(&s->out, id);
        qs_buf_puts(&s->out, ", ");
    } else {
        qs_buf_putc(&s->out, '{');
    }
    put_error(&s->out, err);
    qs_buf_puts(&s->out, "}\r\n");
    qs_error_free(err);
}

static bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_json_keyword(const char *w, size_t n)
{
    return (n == 4 && (!memcmp(w, "true", 4) || !memcmp(w, "null", 4))) ||
           (n == 5 && !memcmp(w, "false", 5));
}

/* Where the run of lower-case letters ending at pos starts, if QEMU's lexer
 * would start a token there; SIZE_MAX if not. */
static size_t word_before(const char *text, size_t len, size_t pos)
{
    size_t b = pos;

    if (pos > len)
        return SIZE_MAX;
    while (b > 0 && is_lower(text[b - 1]))
        b--;
    return b == pos || (b > 0 && !strchr(" \t\r\n[{,:", text[b - 1])) ? SIZE_MAX : b;
}

/* QEMU's lexer reads a run of lower-case letters where a value or key
 * starts as a keyword, and its parser names the one that is not true, false
 * or null.  jansson stops just after such a word, saying "invalid token near
 * '<word>'" or "string or '}' expected near '<word>'" (the word cut short,
 * or no "near" at all, when it is long).  Finds where the word starts. */
static bool bad_keyword(const char *text, size_t len, const json_error_t *jerr, size_t *start)
{
    static const char *const leads[] = { "invalid token near '", "string or '}' expected near '" };
    size_t b = word_before(text, len, (size_t)jerr->position), n = 0;
    const char *tok = NULL;

    if (b == SIZE_MAX)
        return false;
    *start = b;
    if (strcmp(jerr->text, "invalid token") == 0)
        return true;
    for (size_t i = 0; i < 2 && !tok; i++)
        if (strncmp(jerr->text, leads[i], strlen(leads[i])) == 0)
            tok = jerr->text + strlen(leads[i]);
    if (!tok)
        return false;
    while (is_lower(tok[n]))
        n++;
    if (n == 0 || n > (size_t)jerr->position - b || (tok[n] && tok[n] != '\'') ||
        memcmp(text + b, tok, n) != 0)
        return false;
    return !(tok[n] == '\'' && is_json_keyword(tok, n));
}

/* Whether QEMU's lexer takes c as the start of a token (not a stray). */
static bool starts_value(char c)
{
    return is_lower(c) || (c >= '0' && c <= '9') || (c && strchr("\"'[{-", c));
}

/* QEMU's parser says why a text is not JSON in a few fixed phrases. */
static void reply_parse_error(qs_qmp_session *s, const char *text, size_t len,
                              const json_error_t *jerr)
{
    qs_error *err = NULL;
    size_t kw;

    if (strstr(jerr->text, "duplicate"))
        qs_error_setg(&err, "JSON parse error, duplicate key");
    else if (strstr(jerr->text, "':' expected"))
        qs_error_setg(&err, "JSON parse error, missing : in object pair");
    else if (strncmp(jerr->text, "'}' expected near '", 19) == 0 && starts_value(jerr->text[19]))
        qs_error_setg(&err, "JSON parse error, expected separator in dict");
    else if (strncmp(jerr->text, "']' expected near '", 19) == 0 && starts_value(jerr->text[19]))
        qs_error_setg(&err, "JSON parse error, expected separator in list");
    else if (len && strchr("tfn", text[0]) && !memchr(text, '{', len) && !memchr(text, '[', len))
        qs_error_setg(&err, "JSON parse error, invalid keyword '%.*s'", (int)(len > 64 ? 64 : len), text);
    else if (bad_keyword(text, len, jerr, &kw))
        qs_error_setg(&err, "JSON parse error, invalid keyword '%.*s'",
                      (int)((size_t)jerr->position - kw), text + kw);
    else if (strncmp(jerr->text, "string or '}' expected near '", 29) == 0 &&
             starts_value(jerr->text[29]))
        qs_error_setg(&err, "JSON parse error, key is not a string in object");
    else
        qs_error_setg(&err, "JSON parse error, expecting value");
    reply_error(s, NULL, err);
}

/* One envelope member, as QEMU's qmp_dispatch_check_obj judges it.  OOB is
 * never negotiated here, so "exec-oob" is an unexpected member like any
 * other (QEMU without OOB says the same). */
static bool check_member(const char *key, const json_t *val, const char **exec,
                         qs_error **errp)
{
    if (strcmp(key, "execute") == 0) {
        if (!json_is_string(val)) {
            qs_error_setg(errp, "QMP input member 'execute' must be a string");
            return false;
        }
        *exec = json_string_value(val);
        return true;
    }
    if (strcmp(key, "arguments") == 0 && !json_is_object(val)) {
        qs_error_setg(errp, "QMP input member 'arguments' must be an object");
        return false;
    }
    if (strcmp(key, "arguments") && strcmp(key, "id")) {
        qs_error_setg(errp, "QMP input member '%s' is unexpected", key);
        return false;
    }
    return true;
}

/* The request envelope: members visited in QEMU's QDict order, so that a
 * request with several faults gets the error QEMU reports first. */
static const char *check_envelope(const json_t *req, qs_error **errp)
{
    size_t n = json_object_size(req), k = 0;
    const char **keys = qs_calloc(n ? n : 1, sizeof(*keys));
    size_t *order = qs_calloc(n ? n : 1, sizeof(*order));
    const char *key, *exec = NULL;
    json_t *val;
    bool ok = true;

    json_object_foreach((json_t *)req, key, val)
        keys[k++] = key;
    qs_qapi_qdict_order(keys, n, order);
    for (k = 0; ok && k < n; k++)
        ok = check_member(keys[order[k]], json_object_get(req, keys[order[k]]), &exec, errp);
    free(keys);
    free(order);
    if (ok && !exec)
        qs_error_setg(errp, "QMP input lacks member 'execute'");
    return ok ? exec : NULL;
}

static bool dispatch(qs_qmp_session *s, const char *name, const json_t *args,
                     qs_error **errp)
{
    qs_qmp *q = s->server;
    const qs_qmp_command *cmd = qs_qmp_find_command(q, name);

    if (!cmd || (!s->negotiated && strcmp(name, "qmp_capabilities") != 0)) {
        qs_error_set(errp, QS_ERR_COMMAND_NOT_FOUND, !s->negotiated
                     ? "Expecting capabilities negotiation with 'qmp_capabilities'"
                     : "The command %s has not been found", name);
        return false;
    }
    qs_qmp_sync_providers(q);
    if (!qs_qapi_validate(cmd->type, args, errp))
        return false;

    /* The reply is built in place under its ceiling: past it, nothing
     * more is allocated and the request fails instead. */
    size_t mark = s->out.len;
    qs_jw w;
    s->out.limit = mark + q->reply_max;
    qs_buf_puts(&s->out, "{\"return\": ");
    qs_jw_init(&w, &s->out);
    bool ok = cmd->session_fn ? cmd->session_fn(s, args, &w, errp)
                              : cmd->fn(cmd->opaque, (const qs_qmp_args *)args, &w, errp);
    bool over = s->out.overflow;
    s->out.limit = 0;
    s->out.overflow = false;
    if (ok && over) {
        qs_error_setg(errp, "The reply to %s would exceed %zu bytes (qstats' reply limit); "
                      "ask for less", name, q->reply_max);
        ok = false;
    }
    if (!ok) {
        s->out.len = mark;
        if (s->out.data)
            s->out.data[mark] = 0;
        return false;
    }
    return true;
}

static void handle_request(qs_qmp_session *s, const json_t *req)
{
    qs_error *err = NULL;
    const json_t *id = json_is_object(req) ? json_object_get(req, "id") : NULL;
    const char *name;

    if (!json_is_object(req)) {
        qs_error_setg(&err, "QMP input must be a JSON object");
        reply_error(s, NULL, err);
        return;
    }
    name = check_envelope(req, &err);
    if (!name) {
        reply_error(s, id, err);
        return;
    }
    json_t *empty = NULL;
    const json_t *args = json_object_get(req, "arguments");
    if (!args)
        args = empty = json_object();
    if (dispatch(s, name, args, &err))
        put_id_and_end(&s->out, id);
    else
        reply_error(s, id, err);
    json_decref(empty);
}

void qs_qmp_session_handle_text(qs_qmp_session *s, const char *text, size_t len,
                                const char *error)
{
    json_error_t jerr;
    if (error) {
        qs_error *err = NULL;
        qs_error_setg(&err, "%s", error);
        reply_error(s, NULL, err);
        return;
    }
    json_t *req = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    /* jansson has no integers above INT64_MAX; QEMU parses them and then
     * refuses them for every int field.  Reading the numbers as reals gives
     * the same "expected: integer" answer from the validator or setter. */
    if (!req && strstr(jerr.text, "too big"))
        req = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY |
                         JSON_DECODE_INT_AS_REAL, &jerr);
    if (!req)
        reply_parse_error(s, text, len, &jerr);
    else
        handle_request(s, req);
    json_decref(req);
}

void qs_qmp_send_greeting(qs_qmp_session *s)
{
    qs_buf_printf(&s->out, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": %d, \"minor\": %d, "
                  "\"major\": %d}, \"package\": \"qstats %s\"}, \"capabilities\": []}}\r\n",
                  QS_VERSION_MICRO, QS_VERSION_MINOR, QS_VERSION_MAJOR, QS_VERSION_STRING);
}
