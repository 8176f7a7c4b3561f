/*
 * qs-net.h - the sockets of qstats: listening sockets for every server
 * (QMP, HMP consoles, the balloon agent channel, the metrics endpoint) and
 * connections for the tools, so that the rules users rely on hold
 * everywhere alike: unix sockets are created mode
 * 0600 and replace a stale socket (never another kind of file); a TCP host
 * other than loopback is refused unless remote access was allowed.  Every
 * fd returned is non-blocking and close-on-exec.
 */
#ifndef QS_NET_H
#define QS_NET_H

#include <uv.h>

#include "qs-core.h"

/* "HOST:PORT" or "[IPV6]:PORT" with a numeric port 0..65535.  `what` names
 * the address in errors ("metrics", "QMP"). */
bool qs_parse_host_port(const char *s, const char *what, char *host, size_t hostlen,
                        int *port, qs_error **errp);

int qs_listen_unix(const char *path, qs_error **errp);
int qs_listen_tcp(const char *host_port, bool allow_remote, const char *what,
                  qs_error **errp);
int qs_listen_vsock(const char *port, qs_error **errp);

/* Connects (blocking) to "unix:PATH" (or a bare PATH), "tcp:HOST:PORT" or
 * "vsock:CID:PORT".  -1 with *errp = "cannot connect to SPEC: reason";
 * errno is kept (EINVAL: the address itself is malformed). */
int qs_connect(const char *spec, qs_error **errp);

/* ---- the accept loop (acceptor.c) ------------------------------------- */

typedef enum qs_addr_kind {
    QS_ADDR_UNIX = 1,         /* unix:PATH (mode 0600) */
    QS_ADDR_TCP = 2,          /* tcp:HOST:PORT (loopback unless allow_remote) */
    QS_ADDR_VSOCK = 4,        /* vsock:PORT (any guest) or vsock:CID:PORT */
} qs_addr_kind;

typedef struct qs_acceptor_config {
    const char *what;         /* "QMP", "HMP", "balloon": names it in messages */
    unsigned kinds;           /* the qs_addr_kind values this server takes */
    bool allow_remote;
    /* A new connection (fd non-blocking, close-on-exec).  The owner takes
     * it and returns true, or returns false when it is at its limit: the
     * acceptor then sends `refusal` (one line in the server's protocol, may
     * be NULL), closes the fd and logs why. */
    bool (*on_accept)(void *opaque, int fd);
    const char *refusal;
    const char *refused_log;  /* the log line then (NULL: a generic one) */
    /* Lines for an operator (refused peers, failing accepts); the owner
     * rate-limits them.  May be NULL. */
    void (*log)(void *opaque, const char *msg);
    /* After qs_acceptor_close, once the acceptor's handles are closed. */
    void (*on_closed)(void *opaque);
    void *opaque;
} qs_acceptor_config;

typedef struct qs_acceptor qs_acceptor;

qs_acceptor *qs_acceptor_new(uv_loop_t *loop, const char *spec,
                             const qs_acceptor_config *cfg, qs_error **errp);
qs_addr_kind qs_acceptor_kind(const qs_acceptor *a);
/* The bound TCP port (useful with port 0), or -1. */
int qs_acceptor_port(const qs_acceptor *a);
/* Stops accepting, removes a unix socket; memory goes in close callbacks. */
void qs_acceptor_close(qs_acceptor *a);

/* The vsock peer rule: expected_cid >= 0 accepts that guest only; -1
 * accepts any guest but never the hypervisor, loopback or host CIDs (0-2). */
bool qs_vsock_peer_allowed(long expected_cid, unsigned peer_cid);

/* ---- log lines about peers, rate-limited (ratelimit.c) ------------------ */

/* At most QS_LOG_BURST lines in any QS_LOG_WINDOW_MS, then one line saying
 * how many were suppressed when the window reopens: a hostile peer can
 * not flood the log. */
#define QS_LOG_BURST 20
#define QS_LOG_WINDOW_MS 10000
typedef struct qs_ratelimit {
    uint64_t window_start;
    unsigned lines;
    unsigned suppressed;
} qs_ratelimit;
/* Writes msg through emit unless the budget is spent. */
void qs_ratelimit_log(qs_ratelimit *rl, uint64_t now_ms, const char *msg,
                      void (*emit)(void *opaque, const char *msg), void *opaque);

/* Address family and local port of a listening socket. */
int qs_socket_family(int fd);
int qs_socket_port(int fd);

#endif
