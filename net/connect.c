/*
 * connect.c - the client side of qstats' sockets, for the programs that
 * talk to a daemon (the qstats client, the guest agent): one place that
 * knows the address forms, so every tool accepts the same ones and words
 * its errors alike.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "qs-net.h"

/* Connects fd to addr; on failure closes it and keeps connect's errno. */
static int connect_or_close(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (fd >= 0 && connect(fd, addr, len) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (!*path || strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    return connect_or_close(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0),
                            (struct sockaddr *)&sa, sizeof(sa));
}

static int connect_tcp(const char *hostport, const char *spec, qs_error **errp)
{
    char host[256], service[8];
    int port;
    if (!qs_parse_host_port(hostport, "TCP", host, sizeof(host), &port, errp)) {
        errno = EINVAL;
        return -1;
    }
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc) {
        qs_error_setg(errp, "cannot connect to %s: %s", spec, gai_strerror(rc));
        errno = EHOSTUNREACH;
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = connect_or_close(socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0),
                              ai->ai_addr, ai->ai_addrlen);
    int e = errno;
    freeaddrinfo(res);
    errno = e;
    return fd;
}

static int connect_vsock(const char *cid_port)
{
    unsigned cid, port;
    char tail;
    if (sscanf(cid_port, "%u:%u%c", &cid, &port, &tail) != 2) {
        errno = EINVAL;
        return -1;
    }
    struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
    return connect_or_close(socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0),
                            (struct sockaddr *)&sa, sizeof(sa));
}

int qs_connect(const char *spec, qs_error **errp)
{
    int fd;
    if (strncmp(spec, "tcp:", 4) == 0)
        fd = connect_tcp(spec + 4, spec, errp);
    else if (strncmp(spec, "vsock:", 6) == 0)
        fd = connect_vsock(spec + 6);
    else
        fd = connect_unix(strncmp(spec, "unix:", 5) == 0 ? spec + 5 : spec);
    if (fd < 0) {
        int e = errno;
        qs_error_setg(errp, "cannot connect to %s: %s", spec,
                      e == EINVAL ? "invalid address" : strerror(e));
        errno = e;
    }
    return fd;
}
