/*
 * listen.c - see qs-net.h.  One place for the socket rules of every
 * qstats server: file mode of unix sockets, stale-socket replacement, the
 * loopback-only default for TCP.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "qs-net.h"

#define BACKLOG 64

bool qs_parse_host_port(const char *s, const char *what, char *host, size_t hostlen,
                        int *port, qs_error **errp)
{
    const char *colon, *hstart = s;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            goto bad;
        hstart = s + 1;
        hlen = (size_t)(close - hstart);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            goto bad;   /* none, or a bare IPv6 address without brackets */
        hlen = (size_t)(colon - s);
    }
    if (hlen >= hostlen)
        goto bad;
    char *stop;
    long v = strtol(colon + 1, &stop, 10);
    if (colon[1] < '0' || colon[1] > '9' || *stop || v < 0 || v > 65535) {
        qs_error_setg(errp, "Invalid port in %s address '%s'", what, s);
        return false;
    }
    memcpy(host, hstart, hlen);
    host[hlen] = 0;
    *port = (int)v;
    return true;
bad:
    qs_error_setg(errp, "Invalid %s address '%s': expected HOST:PORT or [IPV6]:PORT", what, s);
    return false;
}

/* Binds and listens at sa's path.  Where the name allows it, the socket is
 * made under "PATH.new" and renamed into place once it listens, so a
 * client that waits for PATH to appear never finds a socket that refuses
 * connections.  Created 0600: no window in which others could connect. */
static bool bind_listening(int fd, struct sockaddr_un *sa, const char *path)
{
    struct sockaddr_un tmp = *sa;
    bool staged = strlen(path) + 4 < sizeof(tmp.sun_path);
    if (staged) {
        strcat(tmp.sun_path, ".new");
        unlink(tmp.sun_path);
    }
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)(staged ? &tmp : sa), sizeof(tmp));
    umask(old);
    if (r == 0 && listen(fd, BACKLOG) == 0 && (!staged || rename(tmp.sun_path, path) == 0))
        return true;
    int e = errno;
    if (r == 0 && staged)
        unlink(tmp.sun_path);
    errno = e;
    return false;
}

int qs_listen_unix(const char *path, qs_error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    if (!*path || strlen(path) >= sizeof(sa.sun_path)) {
        qs_error_setg(errp, "UNIX socket path '%s' is too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        qs_error_setg(errp, "Failed to create socket: %s", strerror(errno));
        return -1;
    }
    /* A socket left by an earlier run is replaced, as QEMU does, but not
     * one that a live process still answers on: taking it over would cut
     * that daemon off.  Any other kind of file is not ours to remove (bind
     * then fails). */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            qs_error_setg(errp, "Failed to bind socket to %s: another process is listening there",
                          path);
            close(fd);
            return -1;
        }
        unlink(path);
    }
    if (!bind_listening(fd, &sa, path)) {
        qs_error_setg(errp, "Failed to bind socket to %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

static int bind_tcp(const struct addrinfo *ai, const char *spec, qs_error **errp)
{
    int one = 1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, BACKLOG)) {
        qs_error_setg(errp, "Cannot listen on '%s': %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int qs_listen_tcp(const char *spec, bool allow_remote, const char *what, qs_error **errp)
{
    char host[256], service[8];
    int port;
    if (!qs_parse_host_port(spec, what, host, sizeof(host), &port, errp))
        return -1;
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
    struct addrinfo *ai;
    int rc = getaddrinfo(host[0] ? host : NULL, service, &hints, &ai);
    if (rc) {
        qs_error_setg(errp, "Cannot resolve %s host '%s': %s", what, host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    if (!allow_remote && !is_loopback(ai->ai_addr))
        qs_error_setg(errp, "Refusing to serve %s on non-loopback address '%s' "
                      "without --allow-remote", what, spec);
    else
        fd = bind_tcp(ai, spec, errp);
    freeaddrinfo(ai);
    return fd;
}

int qs_listen_vsock(const char *port_s, qs_error **errp)
{
    char *end;
    errno = 0;
    unsigned long port = strtoul(port_s, &end, 10);
    if (!*port_s || *end || errno || port > UINT32_MAX || *port_s == '-') {
        qs_error_setg(errp, "Invalid vsock port '%s'", port_s);
        return -1;
    }
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        qs_error_setg(errp, "vsock is not available on this host: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
                              .svm_port = (unsigned)port };
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, BACKLOG) < 0) {
        qs_error_setg(errp, "Failed to listen on vsock port %lu: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int qs_socket_family(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    return getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ? -1 : ss.ss_family;
}

int qs_socket_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return -1;
}
