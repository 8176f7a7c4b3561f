/*
 * qstats-client-qmp.client - a small blocking QMP client for the qstats program.
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

#define REPLY_TIMEOUT_S 30
#define ID_KEY "id"

struct qs_qmp_client {
    int fd;
    char *spec;
    qs_buf in;            /* received bytes not yet consumed */
    json_int_t next_id;
    bool lost;
};

static void mark_lost(qs_qmp_client *client, qs_error **errp)
{
    client->lost = true;
    qs_error_setg(errp, QS_QMP_CLIENT_LOST_MSG);
}

/* Takes the first line (without its "\r\n") out of `in`, malloc'd; NULL
 * while no whole line has arrived (nothing before `scanned` ends one). */
static char *take_line(qs_buf *in, size_t scanned)
{
    char *newline = in->len > scanned ? memchr(in->data + scanned, '\n', in->len - scanned)
                                      : NULL;
    if (!newline) {
        return NULL;
    }
    size_t n = (size_t)(newline - in->data);
    char *line = qs_malloc(n + 1);
    memcpy(line, in->data, n);
    line[n] = '\0';
    if (n && line[n - 1] == '\r') {
        line[n - 1] = '\0';
    }
    memmove(in->data, newline + 1, in->len - n - 1);
    in->len -= n + 1;
    return line;
}

/* Reads until a whole line has arrived and returns it. */
static char *read_line(qs_qmp_client *client, qs_error **errp)
{
    qs_buf *in = &client->in;
    size_t scanned = 0;
    char *line;
    while (!(line = take_line(in, scanned))) {
        scanned = in->len;
        qs_buf_reserve(in, 65536);
        ssize_t got = read(client->fd, in->data + in->len, in->cap - in->len - 1);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            client->lost = true;
            qs_error_setg(errp, "no answer from qstatsd within %d s", REPLY_TIMEOUT_S);
            return NULL;
        }
        if (got <= 0) {
            mark_lost(client, errp);
            return NULL;
        }
        in->len += (size_t)got;
    }
    return line;
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
static json_t *read_reply_text(qs_qmp_client *client, char **text, qs_error **errp)
{
    for (;;) {
        char *line = read_line(client, errp);
        if (!line) {
            return NULL;
        }
        json_error_t jerr;
        json_t *msg = qs_client_parse_json(line, JSON_DECODE_ANY, &jerr);
        if (!msg || !json_is_object(msg)) {
            free(line);
            json_decref(msg);
            client->lost = true;
            qs_error_setg(errp, "invalid message from %s", client->spec);
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

static json_t *read_reply(qs_qmp_client *client, qs_error **errp)
{
    return read_reply_text(client, NULL, errp);
}

static bool send_all(qs_qmp_client *client, const char *data, size_t len, qs_error **errp)
{
    while (len) {
        ssize_t sent = send(client->fd, data, len, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR) {
            continue;
        }
        if (sent <= 0) {
            mark_lost(client, errp);
            return false;
        }
        data += sent;
        len -= (size_t)sent;
    }
    return true;
}

/* Sends req as one line; false (and the connection lost) if it cannot. */
static bool send_request(qs_qmp_client *client, const json_t *req, qs_error **errp)
{
    if (client->lost) {
        mark_lost(client, errp);
        return false;
    }
    char *text = json_dumps(req, JSON_COMPACT | JSON_ENCODE_ANY);
    bool ok = text && send_all(client, text, strlen(text), errp);
    free(text);
    return ok;
}

/* The reply with this id, skipping replies to others; with no id (the
 * request was not an object, so its reply cannot carry one) the first. */
static json_t *read_reply_to(qs_qmp_client *client, const json_t *want_id, qs_error **errp)
{
    for (;;) {
        json_t *reply = read_reply(client, errp);
        if (!reply) {
            return NULL;
        }
        json_t *id = json_object_get(reply, ID_KEY);
        if (!want_id || (id && json_equal(id, want_id))) {
            return reply;
        }
        json_decref(reply);
    }
}

json_t *qs_qmp_client_request(qs_qmp_client *client, json_t *req, qs_error **errp)
{
    bool our_id = json_is_object(req) && !json_object_get(req, ID_KEY);
    if (our_id) {
        json_object_set_new(req, ID_KEY, json_integer(client->next_id++));
    }
    const json_t *want_id = json_is_object(req) ? json_object_get(req, ID_KEY) : NULL;
    json_t *reply = send_request(client, req, errp) ? read_reply_to(client, want_id, errp)
                                                    : NULL;
    if (our_id) {
        /* The caller sees neither request nor reply with an id it did not give. */
        json_object_del(req, ID_KEY);
        if (reply) {
            json_object_del(reply, ID_KEY);
        }
    }
    return reply;
}

json_t *qs_qmp_client_request_text(qs_qmp_client *client, const json_t *req, char **text,
                                   qs_error **errp)
{
    return send_request(client, req, errp) ? read_reply_text(client, text, errp) : NULL;
}

json_t *qs_qmp_client_call(qs_qmp_client *client, const char *cmd, json_t *args, qs_error **errp)
{
    json_t *req = json_pack("{s:s}", "execute", cmd);
    if (args) {
        json_object_set_new(req, "arguments", args);
    }
    json_t *reply = qs_qmp_client_request(client, req, errp);
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

static bool handshake(qs_qmp_client *client, qs_error **errp)
{
    json_t *greeting = read_reply(client, errp);
    if (!greeting) {
        return false;
    }
    bool is_qmp = json_object_get(greeting, "QMP") != NULL;
    json_decref(greeting);
    if (!is_qmp) {
        qs_error_setg(errp, "%s is not a QMP server", client->spec);
        return false;
    }
    json_t *ret = qs_qmp_client_call(client, "qmp_capabilities", NULL, errp);
    json_decref(ret);
    return ret != NULL;
}

qs_qmp_client *qs_qmp_client_connect(const char *spec, qs_error **errp)
{
    int fd = qs_connect(spec, errp);
    if (fd < 0) {
        return NULL;
    }
    struct timeval tv = { .tv_sec = REPLY_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    qs_qmp_client *client = qs_calloc(1, sizeof(*client));
    client->fd = fd;
    client->spec = qs_strdup(spec);
    client->next_id = 1;
    qs_buf_init(&client->in);
    if (!handshake(client, errp)) {
        qs_qmp_client_close(client);
        return NULL;
    }
    return client;
}

void qs_qmp_client_close(qs_qmp_client *client)
{
    if (!client) {
        return;
    }
    close(client->fd);
    qs_buf_free(&client->in);
    free(client->spec);
    free(client);
}

const char *qs_qmp_client_spec(const qs_qmp_client *client)
{
    return client->spec;
}

bool qs_qmp_client_lost(const qs_qmp_client *client)
{
    return client->lost;
}

char *qs_client_hmp(qs_qmp_client *client, const char *line, long cpu, qs_error **errp)
{
    json_t *args = json_pack("{s:s}", "command-line", line);
    if (cpu >= 0) {
        json_object_set_new(args, "cpu-index", json_integer(cpu));
    }
    json_t *ret = qs_qmp_client_call(client, "human-monitor-command", args, errp);
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
