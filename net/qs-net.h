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

/* Address family and local port of a listening socket. */
int qs_socket_family(int fd);
int qs_socket_port(int fd);

#endif
