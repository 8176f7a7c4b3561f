/*
 * protocol.c - one QMP request from text to reply: JSON parsing (jansson),
 * the request envelope checks, capabilities negotiation, schema validation
 * and dispatch, with QEMU's error texts (docs/qemu-behaviour.md#qmp-protocol
 * and the sections after it).  Replies are
 * written straight into the session's output buffer: a handler's return
 * value is encoded in place, and on error the partial output is cut back
 * and replaced by the error object.
 */
#include <string.h>

#include "internal.h"

#define DUMP_FLAGS (JSON_ENCODE_ANY | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER)

static void put_id(qs_buf *out, const json_t *id)
{
    char *s = json_dumps(id, DUMP_FLAGS);
    qs_buf_puts(out, "\"id\": ");
    qs_buf_puts(out, s ? s : "null");
    free(s);
}

/* Ends a success reply: QEMU's QDict puts "id" after "return". */
static void put_id_and_end(qs_buf *out, const json_t *id)
{
    if (id) {
        qs_buf_puts(out, ", ");
        put_id(out, id);
    }
    qs_buf_puts(out, "}\r\n");
}

/* An error reply: there QEMU's QDict puts "id" before "error". */
static void reply_error(qs_qmp_session *s, const json_t *id, qs_error *err)
{
    qs_buf_putc(&s->out, '{');
    if (id) {
        put_id(&s->out, id);
        qs_buf_puts(&s->out, ", ");
    }
    qs_buf_puts(&s->out, "\"error\": {\"class\": ");
    qs_json_put_string(&s->out, qs_error_class_name(err->cls));
    qs_buf_puts(&s->out, ", \"desc\": ");
    qs_json_put_string(&s->out, err->msg);
    qs_buf_puts(&s->out, "}}\r\n");
    qs_error_free(err);
}

/* QEMU's parser says why a text is not JSON in a few fixed phrases. */
static void reply_parse_error(qs_qmp_session *s, const char *text, size_t len,
                              const json_error_t *jerr)
{
    qs_error *err = NULL;
    if (strstr(jerr->text, "duplicate"))
        qs_error_setg(&err, "JSON parse error, duplicate key");
    else if (strstr(jerr->text, "':' expected"))
        qs_error_setg(&err, "JSON parse error, missing : in object pair");
    else if (len && strchr("tfn", text[0]) && !memchr(text, '{', len) && !memchr(text, '[', len))
        qs_error_setg(&err, "JSON parse error, invalid keyword '%.*s'", (int)(len > 64 ? 64 : len), text);
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

    size_t mark = s->out.len;
    qs_jw w;
    qs_buf_puts(&s->out, "{\"return\": ");
    qs_jw_init(&w, &s->out);
    bool ok = cmd->session_fn ? cmd->session_fn(s, args, &w, errp)
                              : cmd->fn(cmd->opaque, (const qs_qmp_args *)args, &w, errp);
    if (!ok) {
        s->out.len = mark;
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
