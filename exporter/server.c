/*
 * exporter/server.c - the HTTP side of the metrics endpoint.
 *
 * Why libmicrohttpd runs inside the libuv loop (external polling, epoll
 * mode) instead of in its own thread: the registry is single-threaded and
 * lives on that loop, so a scrape must query it from the loop thread
 * anyway.  With MHD's epoll mode the whole server is one epoll fd that a
 * single uv_poll watches, plus a uv_timer for MHD_get_timeout(); request
 * callbacks then run on the loop thread and call the registry directly.
 * No locks, no cross-thread hand-off, nothing to get wrong at shutdown.
 * Sockets are non-blocking, so a slow client never stalls the loop: the
 * only loop time a scrape costs is one registry query (KVM: pread of the
 * stats fds, which never interrupts a vCPU) and one render.
 *
 * Connections are accepted by net/acceptor.c, as every qstats server's are,
 * and handed to MHD (MHD_add_connection): MHD, left to its own listening
 * socket, took it out of its epoll set at the connection limit and never
 * woke up to put it back once idle connections timed out.  At the limit a
 * client now gets a 503 at once; the others time out after the idle time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "qs-net.h"

#ifdef QS_HAVE_MHD
#include <microhttpd.h>

#define MAX_CONNECTIONS 64
#define IDLE_TIMEOUT_S 15
#define REFUSAL "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n" \
                "Content-Length: 37\r\nConnection: close\r\n\r\n" \
                "qstats: too many metrics connections\n"


/* ---- MHD inside the uv loop -------------------------------------------- */

static void on_timer(uv_timer_t *t);

/* Runs MHD's pending work, then arms the timer for its next deadline
 * (0 ms when it still has buffered work, as its documentation demands). */
static void run_mhd(qs_exporter *e)
{
    MHD_UNSIGNED_LONG_LONG ms;
    MHD_run(e->mhd);
    if (MHD_get_timeout(e->mhd, &ms) == MHD_YES)
        uv_timer_start(&e->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&e->timer);
}

static void on_timer(uv_timer_t *t)
{
    run_mhd(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    run_mhd(p->data);
}

/* ---- connections ------------------------------------------------------- */

static void destroy(qs_exporter *e);
static void on_closed(uv_handle_t *h);

static bool on_accept(void *opaque, int fd)
{
    qs_exporter *e = opaque;
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(e->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    if (info && info->num_connections >= MAX_CONNECTIONS)
        return false;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
        MHD_add_connection(e->mhd, fd, (struct sockaddr *)&ss, len) != MHD_YES) {
        close(fd);              /* MHD closes it itself only on some failures */
        return true;
    }
    run_mhd(e);
    return true;
}

static void emit_log(void *opaque, const char *msg)
{
    fprintf(stderr, "qstats: %s\n", msg);
}

static void acceptor_log(void *opaque, const char *msg)
{
    qs_exporter *e = opaque;
    qs_ratelimit_log(&e->log_limit, uv_now(e->loop), msg, emit_log, NULL);
}

static void acceptor_closed(void *opaque)
{
    qs_exporter *e = opaque;
    if (--e->open_handles == 0)
        destroy(e);
}

/* ---- lifetime ---------------------------------------------------------- */

/* The page's chart library; a daemon without it serves the page anyway
 * (tables only), so a missing file is said once, not an error. */
static void load_d3(qs_exporter *e, const char *file)
{
    qs_error *err = NULL;
    if (!file)
        file = qs_exporter_default_d3();
    if (*file && !qs_exporter_load_d3(&e->d3, file, &err)) {
        fprintf(stderr, "qstats: the web page shows tables only, without charts: %s "
                "(d3.js v3, Debian package libjs-d3)\n", err->msg);
        qs_error_free(err);
    }
}

static void destroy(qs_exporter *e)
{
    if (e->mhd)
        MHD_stop_daemon(e->mhd);
    qs_metrics_data_destroy(&e->data);
    qs_buf_free(&e->body);
    qs_buf_free(&e->gz);
    qs_metrics_query_free(&e->default_query);
    free((void *)e->d3.data);
    free(e->vm_name);
    free(e);
}

static bool start_mhd(qs_exporter *e, qs_error **errp)
{
    /* No MHD_USE_ERROR_LOG: it reports every client that hangs up early,
     * which is noise on a daemon's stderr; our own failures are qs_errors. */
    unsigned flags = MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_DUAL_STACK;
    e->mhd = MHD_start_daemon(flags, 0, NULL, NULL, qs_exporter_on_request, e,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS + 1,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
                              MHD_OPTION_URI_LOG_CALLBACK, qs_exporter_on_uri, e,
                              MHD_OPTION_NOTIFY_COMPLETED, qs_exporter_on_completed, e,
                              MHD_OPTION_END);
    if (!e->mhd) {
        qs_error_setg(errp, "Cannot start the metrics HTTP server");
        return false;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(e->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info || uv_poll_init(e->loop, &e->poll, info->epoll_fd) != 0) {
        MHD_stop_daemon(e->mhd);
        qs_error_setg(errp, "Cannot watch the metrics HTTP server's epoll fd");
        return false;
    }
    return true;
}

qs_exporter *qs_exporter_new(uv_loop_t *loop, const qs_exporter_config *cfg,
                             const char *listen, bool allow_remote,
                             qs_error **errp)
{
    qs_exporter *e = qs_calloc(1, sizeof(*e));
    e->loop = loop;
    e->reg = cfg->reg;
    e->vm_name = qs_strdup(cfg->vm_name ? cfg->vm_name : QS_METRICS_DEFAULT_VM);
    e->reply_max = cfg->max_reply_bytes ? cfg->max_reply_bytes : QS_REPLY_MAX_DEFAULT;
    qs_metrics_data_init(&e->data, e->reply_max);
    qs_buf_init(&e->body);
    qs_buf_init(&e->gz);
    qs_metrics_view_init(&e->default_view);
    load_d3(e, cfg->d3_js);
    if (!qs_metrics_parse_query(cfg->select, &e->default_query, errp) ||
        !qs_metrics_parse_vcpu_detail(cfg->vcpu_detail, &e->default_view, errp) ||
        !start_mhd(e, errp)) {
        destroy(e);
        return NULL;
    }
    char *spec = qs_strdup_printf("tcp:%s", listen);
    e->acceptor = qs_acceptor_new(loop, spec, &(qs_acceptor_config){
        .what = "metrics", .kinds = QS_ADDR_TCP, .allow_remote = allow_remote,
        .on_accept = on_accept, .refusal = REFUSAL,
        .refused_log = "refusing a metrics connection: 64 open (the limit)",
        .log = acceptor_log, .on_closed = acceptor_closed, .opaque = e }, errp);
    free(spec);
    if (!e->acceptor) {
        e->poll.data = e;
        e->open_handles = 1;            /* freed when the poll handle is closed */
        uv_close((uv_handle_t *)&e->poll, on_closed);
        return NULL;
    }
    e->poll.data = e;
    uv_timer_init(loop, &e->timer);
    e->timer.data = e;
    e->open_handles = 3;
    uv_poll_start(&e->poll, UV_READABLE, on_poll);
    run_mhd(e);
    return e;
}

int qs_exporter_port(const qs_exporter *e)
{
    return qs_acceptor_port(e->acceptor);
}

static void on_closed(uv_handle_t *h)
{
    qs_exporter *e = h->data;
    if (--e->open_handles == 0)
        destroy(e);
}

void qs_exporter_free(qs_exporter *e)
{
    if (!e)
        return;
    /* Stop watching the epoll fd before MHD closes it. */
    uv_poll_stop(&e->poll);
    uv_timer_stop(&e->timer);
    MHD_stop_daemon(e->mhd);
    e->mhd = NULL;
    qs_acceptor_close(e->acceptor);
    uv_close((uv_handle_t *)&e->poll, on_closed);
    uv_close((uv_handle_t *)&e->timer, on_closed);
}

#else /* !QS_HAVE_MHD */

struct qs_exporter { int port; };

qs_exporter *qs_exporter_new(uv_loop_t *loop, const qs_exporter_config *cfg,
                             const char *listen, bool allow_remote,
                             qs_error **errp)
{
    qs_error_setg(errp, "The metrics endpoint is unavailable: qstats was "
                  "built without libmicrohttpd");
    return NULL;
}

int qs_exporter_port(const qs_exporter *e) { return e ? e->port : -1; }
void qs_exporter_free(qs_exporter *e) { (void)e; }

#endif
