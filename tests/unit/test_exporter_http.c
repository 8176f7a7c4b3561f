/*
 * test_exporter_http.c - the metrics HTTP server over a real loopback TCP
 * socket: content negotiation, HEAD, 404/405, the loopback-only rule, and
 * that scrapes are served from the caller's uv loop (the registry callback
 * must run on the loop thread).  A client thread speaks raw HTTP/1.0 with
 * blocking sockets while the main thread runs the loop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "qs-exporter.h"

static const qs_schema_value vcpu_schema[] = {
    { "exits", QS_TYPE_CUMULATIVE, QS_UNIT_NONE, 0, 0, 0, 1, NULL },
};

typedef struct served {
    pthread_t loop_thread;
    int calls;
    bool wrong_thread;
} served;

static bool stats_fn(void *opaque, qs_results *out, qs_target target,
                     const qs_strlist *names, const qs_strlist *targets,
                     qs_error **errp)
{
    served *s = opaque;
    s->calls++;
    if (!pthread_equal(pthread_self(), s->loop_thread))
        s->wrong_thread = true;
    if (target != QS_TARGET_VCPU)
        return true;
    qs_results_begin(out, "kvm", "/machine/unattached/device[0]");
    size_t off = qs_results_reserve(out, 1);
    qs_results_values(out, off)[0] = 1234;
    qs_results_add(out, &vcpu_schema[0], off);
    qs_results_end(out, true);
    return true;
}

static bool schemas_fn(void *opaque, qs_schemas *out, qs_error **errp)
{
    qs_schemas_add(out, "kvm", QS_TARGET_VCPU, vcpu_schema, 1);
    return true;
}

typedef struct client {
    int port;
    char *replies[5];
    uv_async_t done;
    qs_exporter *exp;
} client;

/* One HTTP/1.0 exchange; returns the whole reply (headers + body). */
static char *http(int port, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return strdup("connect failed");
    if (write(fd, request, strlen(request)) < 0)
        return strdup("write failed");
    qs_buf b;
    qs_buf_init(&b);
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        qs_buf_append(&b, chunk, (size_t)n);
    close(fd);
    return qs_buf_steal(&b);
}

static void *client_main(void *arg)
{
    client *c = arg;
    c->replies[0] = http(c->port, "GET /metrics HTTP/1.0\r\n\r\n");
    c->replies[1] = http(c->port, "GET /metrics HTTP/1.0\r\nAccept: "
                         "application/openmetrics-text;version=1.0.0,"
                         "text/plain;version=0.0.4;q=0.5\r\n\r\n");
    c->replies[2] = http(c->port, "HEAD /metrics HTTP/1.0\r\n\r\n");
    c->replies[3] = http(c->port, "GET /other HTTP/1.0\r\n\r\n");
    c->replies[4] = http(c->port, "DELETE /metrics HTTP/1.0\r\n\r\n");
    uv_async_send(&c->done);
    return NULL;
}

static void on_done(uv_async_t *a)
{
    client *c = a->data;
    qs_exporter_free(c->exp);
    uv_close((uv_handle_t *)a, NULL);
}

static void test_serves_formats_head_404_405_on_loop_thread(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    served s = { .loop_thread = pthread_self() };
    qs_registry *reg = qs_registry_new();
    qs_registry_add(reg, "kvm", stats_fn, schemas_fn, &s, NULL);
    qs_exporter_config cfg = { .reg = reg, .vm_name = "web-1" };
    qs_error *err = NULL;
    client c = { 0 };
    c.exp = qs_exporter_new(&loop, &cfg, "127.0.0.1:0", false, &err);
    assert_null(err);
    assert_non_null(c.exp);
    c.port = qs_exporter_port(c.exp);
    assert_true(c.port > 0);
    uv_async_init(&loop, &c.done, on_done);
    c.done.data = &c;
    pthread_t th;
    pthread_create(&th, NULL, client_main, &c);
    uv_run(&loop, UV_RUN_DEFAULT);     /* ends once everything is closed */
    pthread_join(th, NULL);

    const char *text = c.replies[0];
    assert_memory_equal(text, "HTTP/1.", 7);
    assert_non_null(strstr(text, " 200 OK\r\n"));
    assert_non_null(strstr(text, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(text, "\r\n\r\n# HELP qstats_kvm_vcpu_exits_total "));
    assert_non_null(strstr(text, "qstats_kvm_vcpu_exits_total{vm=\"web-1\",vcpu=\"0\"} 1234\n"));
    assert_null(strstr(text, "# EOF"));

    const char *om = c.replies[1];
    assert_non_null(strstr(om, "Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"));
    assert_non_null(strstr(om, "# TYPE qstats_kvm_vcpu_exits counter\n"));
    size_t n = strlen(om);
    assert_string_equal(om + n - 6, "# EOF\n");

    const char *head = c.replies[2];
    assert_non_null(strstr(head, " 200 "));
    assert_non_null(strstr(head, "Content-Type: text/plain; version=0.0.4"));
    const char *end = strstr(head, "\r\n\r\n");
    assert_non_null(end);
    assert_string_equal(end, "\r\n\r\n");              /* no body */
    assert_non_null(strstr(head, "Content-Length: "));  /* but its length */

    assert_non_null(strstr(c.replies[3], " 404 Not Found\r\n"));
    assert_non_null(strstr(c.replies[4], " 405 Method Not Allowed\r\n"));
    assert_non_null(strstr(c.replies[4], "Allow: GET, HEAD\r\n"));

    /* three scrapes (GET, GET, HEAD) x (vm + vcpu), all on the loop thread */
    assert_int_equal(s.calls, 6);
    assert_false(s.wrong_thread);
    for (int i = 0; i < 5; i++)
        free(c.replies[i]);
    assert_int_equal(uv_loop_close(&loop), 0);
    qs_registry_free(reg);
}

static void test_non_loopback_refused_unless_allowed(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    qs_registry *reg = qs_registry_new();
    qs_exporter_config cfg = { .reg = reg };
    qs_error *err = NULL;
    assert_null(qs_exporter_new(&loop, &cfg, "0.0.0.0:0", false, &err));
    assert_string_equal(err->msg, "Refusing to serve metrics on non-loopback "
                        "address '0.0.0.0:0' without --allow-remote");
    qs_error_free(err);
    err = NULL;
    qs_exporter *e = qs_exporter_new(&loop, &cfg, "0.0.0.0:0", true, &err);
    assert_null(err);
    assert_non_null(e);
    qs_exporter_free(e);
    e = qs_exporter_new(&loop, &cfg, "[::1]:0", false, &err);
    if (e)      /* IPv6 loopback may be disabled in a container */
        qs_exporter_free(e);
    else
        qs_error_free(err), err = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    qs_registry_free(reg);
}

static void test_busy_port_is_a_clear_error(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    qs_registry *reg = qs_registry_new();
    qs_exporter_config cfg = { .reg = reg };
    qs_error *err = NULL;
    qs_exporter *a = qs_exporter_new(&loop, &cfg, "127.0.0.1:0", false, &err);
    assert_non_null(a);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", qs_exporter_port(a));
    assert_null(qs_exporter_new(&loop, &cfg, addr, false, &err));
    assert_non_null(strstr(err->msg, "Address already in use"));
    qs_error_free(err);
    qs_exporter_free(a);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    qs_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serves_formats_head_404_405_on_loop_thread),
        cmocka_unit_test(test_non_loopback_refused_unless_allowed),
        cmocka_unit_test(test_busy_port_is_a_clear_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
