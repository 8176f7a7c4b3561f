/*
 * qstats-client-qmp.c - a small blocking QMP client for the qstats program.
 *
 * The client needs one request in flight at a time, so a blocking socket
 * and a line buffer are enough: QMP replies are one JSON object per line
 * ("\r\n").  Requests carry a numeric id of ours so that a reply is matched
 * to its request; events in between are skipped.  A receive timeout keeps
 * a hung daemon from hanging the client forever.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "qs-net.h"
#include "qstats-client.h"

#define QMPC_TIMEOUT_S 30
#define QMPC_ID_KEY "id"

struct qs_qmpc {
    int fd;
    char *spec;
    qs_buf in;            /* received bytes not yet consumed */
    json_int_t next_id;
    bool lost;
};

static void mark_lost(qs_qmpc *c, qs_error **errp)
{
    c->lost = true;
    qs_error_setg(errp, QS_QMPC_LOST_MSG);
}

/* Reads one line (without its "\r\n") into a malloc'd string. */
static char *read_line(qs_qmpc *c, qs_error **errp)
{
    size_t scanned = 0;
    for (;;) {
        char *nl = c->in.len > scanned ? memchr(c->in.data + scanned, '\n',
                                                 c->in.len - scanned) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - c->in.data);
            char *line = qs_malloc(n + 1);
            memcpy(line, c->in.data, n);
            line[n] = '\0';
            if (n && line[n - 1] == '\r') {
                line[n - 1] = '\0';
            }
            memmove(c->in.data, nl + 1, c->in.len - n - 1);
            c->in.len -= n + 1;
            return line;
        }
        scanned = c->in.len;
        qs_buf_reserve(&c->in, 65536);
        ssize_t r = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->lost = true;
            qs_error_setg(errp, "no answer from qstatsd within %d s", QMPC_TIMEOUT_S);
            return NULL;
        }
        if (r <= 0) {
            mark_lost(c, errp);
            return NULL;
        }
        c->in.len += (size_t)r;
    }
}

json_t *qs_client_parse_json(const char *text, size_t flags, json_error_t *jerr)
{
    json_t *v = json_loads(text, flags, jerr);
    /* QMP carries u64 values up to 18446744073709551615 (the balloon's
     * "unset"), which jansson reads only as reals. */
    if (!v && strstr(jerr->text, "too big")) {
        v = json_loads(text, flags | JSON_DECODE_INT_AS_REAL, jerr);
    }
    return v;
}

/* The next message that is not an event; *text (if asked) gets its line. */
static json_t *read_reply_text(qs_qmpc *c, char **text, qs_error **errp)
{
    for (;;) {
        char *line = read_line(c, errp);
        if (!line) {
            return NULL;
        }
        json_error_t jerr;
        json_t *msg = qs_client_parse_json(line, JSON_DECODE_ANY, &jerr);
        if (!msg || !json_is_object(msg)) {
            free(line);
            json_decref(msg);
            c->lost = true;
            qs_error_setg(errp, "invalid message from %s", c->spec);
            return NULL;
        }
        if (!json_object_get(msg, "event")) {
            if (text) {
                *text = line;
            } else {
                free(line);
            }
            return msg;
        }
        free(line);
        json_decref(msg);
    }
}

static json_t *read_reply(qs_qmpc *c, qs_error **errp)
{
    return read_reply_text(c, NULL, errp);
}

static bool send_all(qs_qmpc *c, const char *data, size_t len, qs_error **errp)
{
    while (len) {
        ssize_t w = send(c->fd, data, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            mark_lost(c, errp);
            return false;
        }
        data += w;
        len -= (size_t)w;
    }
    return true;
}

json_t *qs_qmpc_request(qs_qmpc *c, json_t *req, qs_error **errp)
{
    if (c->lost) {
        mark_lost(c, errp);
        return NULL;
    }
    json_t *want_id = NULL;
    bool ours = false;
    if (json_is_object(req)) {
        want_id = json_object_get(req, QMPC_ID_KEY);
        if (!want_id) {
            json_object_set_new(req, QMPC_ID_KEY, json_integer(c->next_id++));
            want_id = json_object_get(req, QMPC_ID_KEY);
            ours = true;
        }
    }
    char *text = json_dumps(req, JSON_COMPACT | JSON_ENCODE_ANY);
    bool ok = text && send_all(c, text, strlen(text), errp);
    free(text);
    while (ok) {
        json_t *reply = read_reply(c, errp);
        if (!reply) {
            break;
        }
        json_t *id = json_object_get(reply, QMPC_ID_KEY);
        /* Replies to non-objects (and parse errors) carry no id. */
        if (!want_id || (id && json_equal(id, want_id))) {
            if (ours) {
                json_object_del(reply, QMPC_ID_KEY);
                json_object_del(req, QMPC_ID_KEY);
            }
            return reply;
        }
        json_decref(reply);
    }
    if (ours) {
        json_object_del(req, QMPC_ID_KEY);
    }
    return NULL;
}

json_t *qs_qmpc_request_text(qs_qmpc *c, const json_t *req, char **text, qs_error **errp)
{
    if (c->lost) {
        mark_lost(c, errp);
        return NULL;
    }
    char *out = json_dumps(req, JSON_COMPACT | JSON_ENCODE_ANY);
    bool ok = out && send_all(c, out, strlen(out), errp);
    free(out);
    return ok ? read_reply_text(c, text, errp) : NULL;
}

json_t *qs_qmpc_call(qs_qmpc *c, const char *cmd, json_t *args, qs_error **errp)
{
    json_t *req = json_pack("{s:s}", "execute", cmd);
    if (args) {
        json_object_set_new(req, "arguments", args);
    }
    json_t *reply = qs_qmpc_request(c, req, errp);
    json_decref(req);
    if (!reply) {
        return NULL;
    }
    json_t *ret = json_object_get(reply, "return");
    if (ret) {
        json_incref(ret);
    } else {
        const char *desc = json_string_value(
            json_object_get(json_object_get(reply, "error"), "desc"));
        qs_error_setg(errp, "%s", desc ? desc : "malformed QMP reply");
    }
    json_decref(reply);
    return ret;
}

static bool handshake(qs_qmpc *c, qs_error **errp)
{
    json_t *greeting = read_reply(c, errp);
    if (!greeting) {
        return false;
    }
    bool is_qmp = json_object_get(greeting, "QMP") != NULL;
    json_decref(greeting);
    if (!is_qmp) {
        qs_error_setg(errp, "%s is not a QMP server", c->spec);
        return false;
    }
    json_t *ret = qs_qmpc_call(c, "qmp_capabilities", NULL, errp);
    json_decref(ret);
    return ret != NULL;
}

qs_qmpc *qs_qmpc_connect(const char *spec, qs_error **errp)
{
    int fd = qs_connect(spec, errp);
    if (fd < 0) {
        return NULL;
    }
    struct timeval tv = { .tv_sec = QMPC_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    qs_qmpc *c = qs_calloc(1, sizeof(*c));
    c->fd = fd;
    c->spec = qs_strdup(spec);
    c->next_id = 1;
    qs_buf_init(&c->in);
    if (!handshake(c, errp)) {
        qs_qmpc_close(c);
        return NULL;
    }
    return c;
}

void qs_qmpc_close(qs_qmpc *c)
{
    if (!c) {
        return;
    }
    close(c->fd);
    qs_buf_free(&c->in);
    free(c->spec);
    free(c);
}

const char *qs_qmpc_spec(const qs_qmpc *c)
{
    return c->spec;
}

bool qs_qmpc_lost(const qs_qmpc *c)
{
    return c->lost;
}

char *qs_client_hmp(qs_qmpc *c, const char *line, long cpu, qs_error **errp)
{
    json_t *args = json_pack("{s:s}", "command-line", line);
    if (cpu >= 0) {
        json_object_set_new(args, "cpu-index", json_integer(cpu));
    }
    json_t *ret = qs_qmpc_call(c, "human-monitor-command", args, errp);
    if (!ret) {
        return NULL;
    }
    const char *text = json_string_value(ret);
    qs_buf out;
    qs_buf_init(&out);
    for (const char *p = text ? text : ""; *p; p++) {
        if (!(p[0] == '\r' && p[1] == '\n')) {
            qs_buf_putc(&out, *p);
        }
    }
    json_decref(ret);
    return qs_buf_steal(&out);
}
