/*
 * server.c - QMP transport: listening sockets (unix, tcp) and client
 * sessions on the caller's libuv loop.  Sockets are plain non-blocking fds
 * watched with uv_poll rather than uv_stream, because getfd needs the
 * SCM_RIGHTS data of the very message that carries the command, for any
 * kind of fd (stats fds are anonymous inodes, which uv_pipe cannot accept).
 * A session that stops reading its replies is paused, then dropped if its
 * backlog keeps growing: one bad client never stalls the others.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

static void session_update_poll(qs_qmp_session *s);

qs_qmp *qs_qmp_new(uv_loop_t *loop, const qs_qmp_config *cfg, qs_error **errp)
{
    qs_qapi *qapi = qs_qapi_load_builtin(errp);
    if (!qapi)
        return NULL;
    qs_qmp *q = qs_calloc(1, sizeof(*q));
    q->loop = loop;
    q->cfg = *cfg;
    q->qapi = qapi;
    q->max_sessions = cfg->max_sessions ? cfg->max_sessions : QS_QMP_DEFAULT_SESSIONS;
    q->reply_max = cfg->max_reply_bytes ? cfg->max_reply_bytes : QS_REPLY_MAX_DEFAULT;
    q->pool = cfg->max_buffer_bytes ? cfg->max_buffer_bytes : QS_QMP_POOL_DEFAULT;
    q->negotiation_timeout_ms = cfg->negotiation_timeout_ms ? cfg->negotiation_timeout_ms
                                                            : QS_QMP_NEGOTIATION_MS;
    snprintf(q->refusal, sizeof(q->refusal), "{\"error\": {\"class\": \"GenericError\", "
             "\"desc\": \"Too many QMP sessions (limit %zu)\"}}\r\n", q->max_sessions);
    snprintf(q->refused_log, sizeof(q->refused_log), "refusing a QMP connection: %zu "
             "sessions open (the limit)", q->max_sessions);
    qs_results_init(&q->results);
    q->results.limit = q->reply_max;    /* after init, which zeroes it */
    qs_schemas_init(&q->schemas);
    if (!qs_qmp_add_builtin_commands(q, errp)) {
        qs_qmp_commands_free(q);
        qs_qapi_free(qapi);
        free(q);
        return NULL;
    }
    qs_qmp_events_start(q);
    return q;
}

/* ---- sessions ---------------------------------------------------------- */

size_t qs_qmp_session_held(const qs_qmp_session *s)
{
    return s->in.cap + s->splitter.acc.cap + s->out.cap;
}

static size_t excess(const qs_qmp_session *s)
{
    size_t held = qs_qmp_session_held(s);
    return held > QS_QMP_FLOOR ? held - QS_QMP_FLOOR : 0;
}

size_t qs_qmp_session_allowance(const qs_qmp_session *s, size_t other)
{
    size_t others = 0;
    for (const qs_qmp_session *t = s->server->sessions; t; t = t->next)
        if (t != s)
            others += excess(t);
    size_t total = QS_QMP_FLOOR + (others < s->server->pool ? s->server->pool - others : 0);
    return total > other ? total - other : 0;
}

/* A client whose input would pass its share of the buffers is dropped:
 * no reply could be built for it anyway, and nobody else waits. */
static bool over_budget(qs_qmp_session *s, const char *what)
{
    qs_qmp *q = s->server;
    char msg[160];
    snprintf(msg, sizeof(msg), "dropping a QMP client: its %s would pass its share of the "
             "session buffers (%zu bytes in all sessions)", what,
             (size_t)QS_QMP_FLOOR * q->nsessions + q->pool);
    qs_ratelimit_log(&q->log_limit, uv_now(q->loop), msg, qs_qmp_log, NULL);
    return true;
}

static void maybe_release(qs_qmp *q)
{
    if (q->freed && q->pending_closes == 0) {
        qs_results_destroy(&q->results);
        qs_schemas_destroy(&q->schemas);
        qs_qmp_commands_free(q);
        qs_qapi_free(q->qapi);
        free(q);
    }
}

static void session_closed(uv_handle_t *h)
{
    qs_qmp_session *s = h->data;
    qs_qmp *q = s->server;
    close(s->fd);
    for (size_t i = 0; i < s->npassed; i++)
        close(s->passed_fds[i]);
    for (size_t i = 0; i < s->nfds; i++) {
        close(s->fds[i].fd);
        free(s->fds[i].name);
    }
    free(s->fds);
    qs_buf_free(&s->in);
    qs_buf_free(&s->out);
    qs_json_splitter_free(&s->splitter);
    free(s);
    q->pending_closes--;
    maybe_release(q);
}

/* Runs a requested quit; the reply, where it could be sent, went first. */
static void maybe_quit(qs_qmp *q)
{
    if (q->quitting && !q->freed && q->cfg.on_quit) {
        q->quitting = false;
        q->cfg.on_quit(q->cfg.opaque);
    }
}

void qs_qmp_handle_closed(qs_qmp *q)
{
    q->pending_closes--;
    maybe_release(q);
}

void qs_qmp_session_close(qs_qmp_session *s)
{
    if (s->closing)
        return;
    s->closing = true;
    for (qs_qmp_session **p = &s->server->sessions; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    s->server->pending_closes++;
    s->server->nsessions--;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, session_closed);
    /* A quit already dispatched takes effect like any other command, even
     * if its client hung up before the reply went out, rather than being
     * left to whichever client flushes next. */
    maybe_quit(s->server);
}

/* Keeps the fds of the latest message that carried any until getfd claims
 * them; an older batch nobody claimed is closed, as QEMU's socket chardev
 * does, so that fds sent with other commands cannot pile up. */
static void stash_fds(qs_qmp_session *s, struct msghdr *msg)
{
    bool replaced = false;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *fds = (int *)CMSG_DATA(c);
        if (n && !replaced) {
            for (size_t i = 0; i < s->npassed; i++)
                close(s->passed_fds[i]);
            s->npassed = 0;
            replaced = true;
        }
        for (size_t i = 0; i < n; i++) {
            if (s->npassed < QS_QMP_MAX_FDS)
                s->passed_fds[s->npassed++] = fds[i];
            else
                close(fds[i]);
        }
    }
}

/* getfd takes the first fd of the batch and closes the others, as QEMU's
 * socket chardev hands out one fd per command. */
int qs_qmp_session_take_passed_fd(qs_qmp_session *s)
{
    if (!s->npassed)
        return -1;
    for (size_t i = 1; i < s->npassed; i++)
        close(s->passed_fds[i]);
    s->npassed = 0;
    return s->passed_fds[0];
}

static size_t backlog(const qs_qmp_session *s)
{
    return s->out.len - s->out_sent;
}

static void on_text(void *opaque, const char *text, size_t len, const char *error)
{
    qs_qmp_session *s = opaque;
    if (!s->closing)
        qs_qmp_session_handle_text(s, text, len, error);
    /* A client that sends requests faster than it reads replies waits with
     * its remaining input unread, so its backlog stays bounded. */
    if (backlog(s) >= QS_QMP_OUT_HIGH)
        s->splitter.paused = true;
}

/* Serves buffered input until it is used up or the backlog is too high. */
static void session_process(qs_qmp_session *s)
{
    while (!s->closing && s->in_off < s->in.len && backlog(s) < QS_QMP_OUT_HIGH) {
        s->splitter.acc.limit = qs_qmp_session_allowance(s, s->in.cap + s->out.cap);
        s->in_off += qs_json_splitter_feed(&s->splitter, s->in.data + s->in_off,
                                           s->in.len - s->in_off, on_text, s);
        s->splitter.acc.limit = 0;
        if (s->splitter.over_budget && over_budget(s, "request")) {
            qs_qmp_session_close(s);
            return;
        }
    }
    if (s->in_off == s->in.len) {
        qs_buf_reset(&s->in);
        qs_buf_trim(&s->in, QS_KEEP_BYTES);
        s->in_off = 0;
    }
    if (!s->closing)
        qs_qmp_session_flush(s);
}

static void session_read(qs_qmp_session *s)
{
    char data[65536];
    union { char buf[CMSG_SPACE(sizeof(int) * QS_QMP_MAX_FDS)]; struct cmsghdr align; } ctl;
    struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (s->is_unix) {
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
    }
    ssize_t n = recvmsg(s->fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        qs_qmp_session_close(s);
        return;
    }
    if (s->is_unix)
        stash_fds(s, &msg);
    s->in.limit = qs_qmp_session_allowance(s, s->splitter.acc.cap + s->out.cap);
    qs_buf_append(&s->in, data, (size_t)n);
    s->in.limit = 0;
    if (s->in.overflow && over_budget(s, "input")) {
        qs_qmp_session_close(s);
        return;
    }
    session_process(s);
}

void qs_qmp_session_flush(qs_qmp_session *s)
{
    while (s->out_sent < s->out.len) {
        ssize_t n = send(s->fd, s->out.data + s->out_sent, s->out.len - s->out_sent,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0) {
            qs_qmp_session_close(s);
            return;
        }
        s->out_sent += (size_t)n;
    }
    if (s->out_sent == s->out.len) {
        qs_buf_reset(&s->out);
        qs_buf_trim(&s->out, QS_KEEP_BYTES);
        s->out_sent = 0;
        if (s->server->quitting && s->server->cfg.on_quit) {
            maybe_quit(s->server);
            return;
        }
    }
    session_update_poll(s);
}

static void session_on_poll(uv_poll_t *h, int status, int events)
{
    qs_qmp_session *s = h->data;
    if (status < 0) {
        qs_qmp_session_close(s);
        return;
    }
    if (events & UV_WRITABLE) {
        qs_qmp_session_flush(s);
        if (!s->closing && s->in_off < s->in.len && backlog(s) < QS_QMP_OUT_HIGH)
            session_process(s);         /* room again: serve what was held back */
    }
    if (!s->closing && (events & (UV_READABLE | UV_DISCONNECT)))
        session_read(s);
}

/* Reads only while nothing is held back and the backlog of unsent replies
 * is small. */
static void session_update_poll(qs_qmp_session *s)
{
    if (s->closing)
        return;
    int ev = backlog(s) ? UV_WRITABLE : 0;
    if (backlog(s) < QS_QMP_OUT_HIGH && s->in_off == s->in.len)
        ev |= UV_READABLE | UV_DISCONNECT;
    if (ev != s->poll_events) {
        s->poll_events = ev;
        uv_poll_start(&s->poll, ev, session_on_poll);
    }
}

void qs_qmp_request_quit(qs_qmp_session *s)
{
    s->server->quitting = true;
}

static void session_new(qs_qmp *q, int fd, bool is_unix)
{
    qs_qmp_session *s = qs_calloc(1, sizeof(*s));
    s->server = q;
    s->fd = fd;
    s->is_unix = is_unix;
    qs_buf_init(&s->in);
    qs_buf_init(&s->out);
    qs_json_splitter_init(&s->splitter);
    if (uv_poll_init(q->loop, &s->poll, fd) < 0) {
        close(fd);
        free(s);
        return;
    }
    s->poll.data = s;
    s->next = q->sessions;
    q->sessions = s;
    q->nsessions++;
    s->accepted_ms = uv_now(q->loop);
    qs_qmp_watch_negotiation(q);
    qs_qmp_send_greeting(s);
    qs_qmp_session_flush(s);
}

/* ---- listeners --------------------------------------------------------- */

static bool on_accept(void *opaque, int fd)
{
    qs_qmp_listener *l = opaque;
    if (l->server->nsessions >= l->server->max_sessions)
        return false;
    session_new(l->server, fd, qs_acceptor_kind(l->acceptor) == QS_ADDR_UNIX);
    return true;
}

void qs_qmp_log(void *opaque, const char *msg)
{
    fprintf(stderr, "qstats: %s\n", msg);
}

static void listener_log(void *opaque, const char *msg)
{
    qs_qmp *q = ((qs_qmp_listener *)opaque)->server;
    qs_ratelimit_log(&q->log_limit, uv_now(q->loop), msg, qs_qmp_log, NULL);
}

static void listener_closed(void *opaque)
{
    qs_qmp_listener *l = opaque;
    qs_qmp *q = l->server;
    free(l);
    q->pending_closes--;
    maybe_release(q);
}

bool qs_qmp_listen(qs_qmp *q, const char *spec, bool allow_remote, qs_error **errp)
{
    qs_qmp_listener *l = qs_calloc(1, sizeof(*l));
    l->server = q;
    l->acceptor = qs_acceptor_new(q->loop, spec, &(qs_acceptor_config){
        .what = "QMP", .kinds = QS_ADDR_UNIX | QS_ADDR_TCP, .allow_remote = allow_remote,
        .on_accept = on_accept, .refusal = q->refusal, .refused_log = q->refused_log,
        .log = listener_log, .on_closed = listener_closed, .opaque = l }, errp);
    if (!l->acceptor) {
        free(l);
        return false;
    }
    l->next = q->listeners;
    q->listeners = l;
    return true;
}

void qs_qmp_free(qs_qmp *q)
{
    if (!q)
        return;
    q->freed = true;
    q->pending_closes++;           /* hold: nothing is released mid-loop */
    qs_qmp_events_stop(q);
    while (q->listeners) {
        qs_qmp_listener *l = q->listeners;
        q->listeners = l->next;
        q->pending_closes++;
        qs_acceptor_close(l->acceptor);
    }
    while (q->sessions)
        qs_qmp_session_close(q->sessions);
    q->pending_closes--;
    maybe_release(q);
}
