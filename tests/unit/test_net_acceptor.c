/*
 * test_net_acceptor.c - net/acceptor.c and net/ratelimit.c: the one accept
 * loop of the servers and the budget of their log lines.  Pinned here on
 * real unix sockets and a real uv loop: connections reach the owner, one
 * the owner cannot take is told why and closed while the others stay, the
 * socket is removed on close; the vsock peer rule (loopback vsock does not
 * exist on every host, so the rule is a pure function tested directly); a
 * burst of log lines is cut and summarised.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "net/qs-net.h"

typedef struct owner {
    uv_loop_t loop;
    qs_acceptor *a;
    int fds[8];
    size_t nfds, limit;
    char log[1024];
    bool closed;
    char path[108];
} owner;

static bool on_accept(void *opaque, int fd)
{
    owner *o = opaque;
    if (o->nfds >= o->limit)
        return false;
    o->fds[o->nfds++] = fd;
    return true;
}

static void on_log(void *opaque, const char *msg)
{
    owner *o = opaque;
    strncat(o->log, msg, sizeof(o->log) - strlen(o->log) - 2);
    strcat(o->log, "\n");
}

static void on_closed(void *opaque)
{
    ((owner *)opaque)->closed = true;
}

static int connect_to(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void spin(owner *o)
{
    for (int i = 0; i < 20; i++)
        uv_run(&o->loop, UV_RUN_NOWAIT);
}

static void start(owner *o, size_t limit)
{
    memset(o, 0, sizeof(*o));
    uv_loop_init(&o->loop);
    o->limit = limit;
    snprintf(o->path, sizeof(o->path), "/tmp/qs-acceptor-%d.sock", getpid());
    char spec[128];
    snprintf(spec, sizeof(spec), "unix:%s", o->path);
    qs_error *err = NULL;
    o->a = qs_acceptor_new(&o->loop, spec, &(qs_acceptor_config){
        .what = "TEST", .kinds = QS_ADDR_UNIX, .on_accept = on_accept,
        .refusal = "too many\r\n", .log = on_log, .on_closed = on_closed, .opaque = o }, &err);
    assert_non_null(o->a);
    assert_int_equal(qs_acceptor_kind(o->a), QS_ADDR_UNIX);
}

static void stop(owner *o)
{
    qs_acceptor_close(o->a);
    uv_run(&o->loop, UV_RUN_DEFAULT);
    assert_true(o->closed);
    assert_int_equal(uv_loop_close(&o->loop), 0);
    for (size_t i = 0; i < o->nfds; i++)
        close(o->fds[i]);
}

static void test_connections_reach_the_owner_and_the_socket_goes_on_close(void **state)
{
    owner o;
    start(&o, 8);
    struct stat st;
    assert_int_equal(stat(o.path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    int c1 = connect_to(o.path), c2 = connect_to(o.path);
    spin(&o);
    assert_int_equal(o.nfds, 2);
    stop(&o);
    assert_int_not_equal(stat(o.path, &st), 0);     /* removed */
    close(c1);
    close(c2);
}

static void test_over_the_owners_limit_a_client_is_told_and_others_stay(void **state)
{
    owner o;
    start(&o, 1);
    int kept = connect_to(o.path);
    spin(&o);
    int extra = connect_to(o.path);
    spin(&o);
    char buf[64] = "";
    assert_int_equal(recv(extra, buf, sizeof(buf) - 1, 0), 10);
    assert_string_equal(buf, "too many\r\n");
    assert_int_equal(recv(extra, buf, sizeof(buf), 0), 0);     /* then closed */
    assert_non_null(strstr(o.log, "refusing a TEST connection"));
    /* the first connection is untouched */
    assert_int_equal(o.nfds, 1);
    assert_int_equal(write(o.fds[0], "x", 1), 1);
    assert_int_equal(recv(kept, buf, 1, 0), 1);
    close(kept);
    close(extra);
    stop(&o);
}

static void test_addresses_of_another_kind_are_refused_by_name(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    qs_error *err = NULL;
    assert_null(qs_acceptor_new(&loop, "tcp:127.0.0.1:0", &(qs_acceptor_config){
        .what = "HMP", .kinds = QS_ADDR_UNIX, .on_accept = on_accept }, &err));
    assert_string_equal(err->msg, "Invalid HMP address 'tcp:127.0.0.1:0': expected unix:PATH");
    qs_error_free(err);
    err = NULL;
    assert_null(qs_acceptor_new(&loop, "tcp:10.1.2.3:7000", &(qs_acceptor_config){
        .what = "QMP", .kinds = QS_ADDR_UNIX | QS_ADDR_TCP, .on_accept = on_accept }, &err));
    assert_non_null(strstr(err->msg, "non-loopback"));
    qs_error_free(err);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_vsock_peers_are_a_guest_never_the_host(void **state)
{
    /* any guest: the hypervisor (0), loopback (1) and the host (2) are not */
    assert_false(qs_vsock_peer_allowed(-1, 0));
    assert_false(qs_vsock_peer_allowed(-1, 1));
    assert_false(qs_vsock_peer_allowed(-1, 2));
    assert_true(qs_vsock_peer_allowed(-1, 3));
    assert_true(qs_vsock_peer_allowed(-1, 4000000000u));
    /* the configured guest only */
    assert_true(qs_vsock_peer_allowed(42, 42));
    assert_false(qs_vsock_peer_allowed(42, 43));
    assert_false(qs_vsock_peer_allowed(42, 2));
}

static void count_line(void *opaque, const char *msg)
{
    char *log = opaque;
    strncat(log, msg, 4000 - strlen(log));
    strcat(log, "\n");
}

static void test_a_burst_of_log_lines_is_cut_and_summarised(void **state)
{
    qs_ratelimit rl = { 0 };
    char *log = calloc(1, 4096);
    for (int i = 0; i < 100; i++)
        qs_ratelimit_log(&rl, 1000 + (uint64_t)i, "refused", count_line, log);
    size_t lines = 0;
    for (char *p = log; (p = strchr(p, '\n')); p++)
        lines++;
    assert_int_equal(lines, QS_LOG_BURST);
    log[0] = 0;
    qs_ratelimit_log(&rl, 1000 + QS_LOG_WINDOW_MS, "again", count_line, log);
    char want[128];
    snprintf(want, sizeof(want), "(%d similar messages suppressed)\nagain\n",
             100 - QS_LOG_BURST);
    assert_string_equal(log, want);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connections_reach_the_owner_and_the_socket_goes_on_close),
        cmocka_unit_test(test_over_the_owners_limit_a_client_is_told_and_others_stay),
        cmocka_unit_test(test_addresses_of_another_kind_are_refused_by_name),
        cmocka_unit_test(test_vsock_peers_are_a_guest_never_the_host),
        cmocka_unit_test(test_a_burst_of_log_lines_is_cut_and_summarised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
