/*
 * acceptor.c - the one accept loop of qstats' servers (QMP, the HMP
 * console, the balloon's agent channel): it parses the address, listens
 * (listen.c), accepts without blocking on the caller's uv loop and hands
 * each connection's fd to its owner.  What every server needs alike lives
 * here once:
 *   - out of fds, a pending connection keeps the socket readable: polling
 *     on would spin, so the acceptor waits on a timer and tries again;
 *   - a connection the owner cannot take (its limit) is told why in one
 *     line and closed, so that sessions already open are unaffected;
 *   - a vsock peer other than the expected guest is refused;
 *   - what goes wrong is logged through the owner's rate-limited logger.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "qs-common.h"
#include "qs-net.h"

#define ACCEPT_RETRY_MS 100     /* out of fds: next attempt */
#define ACCEPT_BATCH 64         /* connections taken per wake-up */

struct qs_acceptor {
    qs_acceptor_config cfg;
    uv_loop_t *loop;
    int fd;
    qs_addr_kind kind;
    long vsock_cid;             /* vsock: the only peer accepted; -1: any guest */
    char *unlink_path;
    uv_poll_t poll;
    uv_timer_t retry;
    int open_handles;
    bool failing;               /* accept is failing: logged once */
};

static void say(qs_acceptor *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(qs_acceptor *a, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (a->cfg.log)
        a->cfg.log(a->cfg.opaque, msg);
}

bool qs_vsock_peer_allowed(long expected_cid, unsigned peer_cid)
{
    if (expected_cid >= 0)
        return peer_cid == (unsigned long)expected_cid;
    return peer_cid > VMADDR_CID_HOST;        /* a guest: not the host itself */
}

/* Whether the connection may be served; false: a reason has been logged. */
static bool peer_ok(qs_acceptor *a, int fd)
{
    if (a->kind != QS_ADDR_VSOCK)
        return true;
    struct sockaddr_vm sa;
    socklen_t len = sizeof(sa);
    if (getpeername(fd, (struct sockaddr *)&sa, &len) < 0)
        return false;
    if (qs_vsock_peer_allowed(a->vsock_cid, sa.svm_cid))
        return true;
    say(a, "refusing a %s connection from vsock CID %u (%s)", a->cfg.what, sa.svm_cid,
        a->vsock_cid >= 0 ? "not the configured guest" : "the host itself");
    return false;
}

/* The owner is at its limit: one line that says so, best effort, then
 * close; the connections already open are not touched. */
static void refuse(qs_acceptor *a, int fd)
{
    if (a->cfg.refusal) {
        ssize_t r = send(fd, a->cfg.refusal, strlen(a->cfg.refusal), MSG_NOSIGNAL);
        (void)r;
    }
    if (a->cfg.refused_log)
        say(a, "%s", a->cfg.refused_log);
    else
        say(a, "refusing a %s connection: too many open", a->cfg.what);
    close(fd);
}

static void on_ready(uv_poll_t *h, int status, int events);

static void retry(uv_timer_t *t)
{
    qs_acceptor *a = t->data;
    uv_poll_start(&a->poll, UV_READABLE, on_ready);
}

static void on_ready(uv_poll_t *h, int status, int events)
{
    qs_acceptor *a = h->data;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && errno == EINTR)
            continue;
        if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (fd < 0) {
            if (!a->failing)
                say(a, "%s: accept failed: %s (trying again)", a->cfg.what, strerror(errno));
            a->failing = true;
            uv_poll_stop(&a->poll);
            uv_timer_start(&a->retry, retry, ACCEPT_RETRY_MS, 0);
            return;
        }
        a->failing = false;
        if (!peer_ok(a, fd))
            close(fd);
        else if (!a->cfg.on_accept(a->cfg.opaque, fd))
            refuse(a, fd);
    }
}

/* "PORT" (any guest) or "CID:PORT" (that guest only). */
static int listen_vsock(qs_acceptor *a, const char *spec, qs_error **errp)
{
    const char *colon = strchr(spec, ':');
    a->vsock_cid = -1;
    if (colon) {
        char *end;
        errno = 0;
        unsigned long cid = strtoul(spec, &end, 10);
        if (end != colon || spec[0] < '0' || spec[0] > '9' || errno || cid > UINT32_MAX) {
            qs_error_setg(errp, "Invalid vsock CID in '%s'", spec);
            return -1;
        }
        a->vsock_cid = (long)cid;
    }
    return qs_listen_vsock(colon ? colon + 1 : spec, errp);
}

static int open_listener(qs_acceptor *a, const char *spec, qs_error **errp)
{
    if (strncmp(spec, "unix:", 5) == 0 && (a->cfg.kinds & QS_ADDR_UNIX)) {
        a->kind = QS_ADDR_UNIX;
        int fd = qs_listen_unix(spec + 5, errp);
        if (fd >= 0)
            a->unlink_path = qs_strdup(spec + 5);
        return fd;
    }
    if (strncmp(spec, "tcp:", 4) == 0 && (a->cfg.kinds & QS_ADDR_TCP)) {
        a->kind = QS_ADDR_TCP;
        return qs_listen_tcp(spec + 4, a->cfg.allow_remote, a->cfg.what, errp);
    }
    if (strncmp(spec, "vsock:", 6) == 0 && (a->cfg.kinds & QS_ADDR_VSOCK)) {
        a->kind = QS_ADDR_VSOCK;
        return listen_vsock(a, spec + 6, errp);
    }
    qs_error_setg(errp, "Invalid %s address '%s': expected %s%s%s", a->cfg.what, spec,
                  a->cfg.kinds & QS_ADDR_UNIX ? "unix:PATH" : "",
                  a->cfg.kinds & QS_ADDR_TCP ? " or tcp:HOST:PORT" : "",
                  a->cfg.kinds & QS_ADDR_VSOCK ? " or vsock:[CID:]PORT" : "");
    return -1;
}

qs_acceptor *qs_acceptor_new(uv_loop_t *loop, const char *spec,
                             const qs_acceptor_config *cfg, qs_error **errp)
{
    qs_acceptor *a = qs_calloc(1, sizeof(*a));
    a->cfg = *cfg;
    a->loop = loop;
    a->fd = open_listener(a, spec, errp);
    if (a->fd < 0) {
        free(a->unlink_path);
        free(a);
        return NULL;
    }
    uv_poll_init(loop, &a->poll, a->fd);
    uv_timer_init(loop, &a->retry);
    a->poll.data = a->retry.data = a;
    a->open_handles = 2;
    uv_poll_start(&a->poll, UV_READABLE, on_ready);
    return a;
}

qs_addr_kind qs_acceptor_kind(const qs_acceptor *a)
{
    return a->kind;
}

int qs_acceptor_port(const qs_acceptor *a)
{
    return qs_socket_port(a->fd);
}

static void closed(uv_handle_t *h)
{
    qs_acceptor *a = h->data;
    if (--a->open_handles > 0)
        return;
    close(a->fd);
    if (a->cfg.on_closed)
        a->cfg.on_closed(a->cfg.opaque);
    free(a);
}

void qs_acceptor_close(qs_acceptor *a)
{
    if (!a)
        return;
    if (a->unlink_path)
        unlink(a->unlink_path);
    free(a->unlink_path);
    a->unlink_path = NULL;
    uv_poll_stop(&a->poll);
    uv_close((uv_handle_t *)&a->poll, closed);
    uv_close((uv_handle_t *)&a->retry, closed);
}
