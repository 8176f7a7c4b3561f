/*
 * fuzz_metrics_request.c - libFuzzer target for the metrics endpoint's
 * request handling: the real exporter of the fuzz world (qs_exporter_new
 * on 127.0.0.1, its acceptor, libmicrohttpd in the uv loop, the request
 * handler and its routes, the scrape, the renderer and the JSON API)
 * answering requests over a real loopback connection, plus the pure parts
 * of a request that qstats parses itself, checked on their own: the Accept
 * header (qs_metrics_negotiate) and the ?provider=&target=&name= query
 * string (qs_metrics_parse_query).
 * Any local user can send these bytes (the port is loopback, not
 * private).
 *
 * Input: byte 0 picks the mode.  Bit 0 set: the rest is sent verbatim
 * (raw HTTP; libmicrohttpd's parser is not instrumented, but what it hands
 * over reaches our handler).  Otherwise a well-formed request is built
 * from '\n'-separated fields "method\npath\nquery\naccept": bits 1-2 pick
 * the method (GET, HEAD, POST, or the method field), bit 3 sends the
 * Accept header, bit 4 makes it HTTP/1.0, bit 5 leaves the query out.
 * Bit 6 (both modes) sends it to a second exporter whose reply ceiling is
 * below one scrape of the recorded VM.
 * Path and query bytes outside printable ASCII are percent-encoded, so
 * that every byte value can reach the decoded path.
 *
 * Oracles beyond the sanitizers:
 *   Accept     the format does not depend on the order of the media
 *              ranges, on an unrelated range, or on an OpenMetrics range
 *              of q=0; an OpenMetrics range of q=1 always wins.
 *   built      the answer is one complete HTTP response under the strict
 *              CSP, as the routes say: 405 (Allow: GET, HEAD) unless GET
 *              or HEAD; the page's files; 404 with its text (JSON under
 *              /api/) but for /metrics and /api/v1/{stats,schemas}; 400
 *              for a query string the parser refuses; else 200 (500
 *              saying why from the small exporter, unless a selection
 *              keeps the answer within its limit) whose Content-Length
 *              is the body's (none for HEAD): for /metrics, of the
 *              negotiated Content-Type and a valid exposition
 *              (fuzz_exposition.c) of the recorded VM, the same every time
 *              up to the exporter's health (nothing in the world moves);
 *              for the API, a JSON object.
 *   raw        whatever comes back is HTTP responses; the server does not
 *              crash, and stops sending once the request is used up (an
 *              incomplete request is held until the idle timeout, by
 *              libmicrohttpd, even half-closed: not waited for here).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "exporter/internal.h"
#include "qs-exporter.h"
#include "fuzz_exposition.h"
#include "fuzz_world.h"

#define MAX_REQUEST 8192
#define WAIT_MS 10000           /* a local scrape takes milliseconds */
#define SMALL_REPLY 4096        /* far below the recorded VM's exposition */

typedef struct fuzz_env {
    uv_loop_t loop;
    fuzz_world world;
    qs_exporter *exporter[2];   /* [1]: a reply ceiling below one scrape */
    int port[2];
    qs_buf expected[2];         /* the exposition in each format, once seen */
} fuzz_env;

static fuzz_env *env;

typedef struct request {
    const char *method;
    const char *path;           /* as sent (percent-encoded) */
    const char *query;          /* NULL: no '?' */
    const char *accept;         /* NULL: no Accept header */
    bool http10;
    bool small;                 /* to the exporter whose scrapes are too large */
} request;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_metrics_request: %s\n%s%s", what, detail ? detail : "",
            detail ? "\n" : "");
    abort();
}

/* ---- the parts of a request that qstats parses itself ------------------- */

/* The media ranges of an Accept value in reverse order. */
static char *reverse_ranges(const char *accept)
{
    qs_buf b;
    qs_buf_init(&b);
    size_t len = strlen(accept);
    size_t end = len;
    for (size_t i = len + 1; i-- > 0;) {
        if (i == 0 || accept[i - 1] == ',') {
            qs_buf_append(&b, accept + i, end - i);
            if (i)
                qs_buf_putc(&b, ',');
            end = i ? i - 1 : 0;
        }
    }
    return qs_buf_steal(&b);
}

static void expect_format(const char *accept, qs_metrics_format want, const char *why,
                          const char *orig)
{
    if (qs_metrics_negotiate(accept) != want) {
        char *detail = qs_strdup_printf("Accept: %s\nvariant: %s", orig, accept);
        fail(why, detail);
    }
}

static void check_accept(const char *accept)
{
    qs_metrics_format f = qs_metrics_negotiate(accept);
    if (f != QS_METRICS_PROMETHEUS_TEXT && f != QS_METRICS_OPENMETRICS)
        fail("negotiation gave no known format", accept);
    if (!accept)
        return;
    char *v = reverse_ranges(accept);
    expect_format(v, f, "the order of the media ranges changed the format", accept);
    free(v);
    v = qs_strdup_printf("%s,image/png;q=1", accept);
    expect_format(v, f, "an unrelated media range changed the format", accept);
    free(v);
    v = qs_strdup_printf("application/openmetrics-text;q=0,%s", accept);
    expect_format(v, f, "an OpenMetrics range of q=0 changed the format", accept);
    free(v);
    v = qs_strdup_printf("%s,application/openmetrics-text", accept);
    expect_format(v, QS_METRICS_OPENMETRICS, "an OpenMetrics range of q=1 lost", accept);
    free(v);
}

/* Appends one list of a parsed query as "key=v&" with every byte
 * percent-escaped: what parses back into the same list. */
static void encode_list(qs_buf *b, const char *key, const qs_metrics_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        qs_buf_printf(b, "%s=", key);
        for (const char *c = l->v[i]; *c; c++)
            qs_buf_printf(b, "%%%02X", (unsigned char)*c);
        qs_buf_putc(b, '&');
    }
}

static bool same_list(const qs_metrics_list *a, const qs_metrics_list *b)
{
    if (a->given != b->given || a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]))
            return false;
    return true;
}

/* The query string: a refusal says why; an accepted one, re-encoded with
 * every byte escaped, parses back into the same lists. */
static void check_query(const char *query)
{
    qs_metrics_query q = { 0 }, again = { 0 };
    qs_error *err = NULL;
    if (!qs_metrics_parse_query(query, &q, &err)) {
        if (!err || !*err->msg)
            fail("a refused query string without a reason", query);
        qs_error_free(err);
        qs_metrics_query_free(&q);
        return;
    }
    qs_buf b;
    qs_buf_init(&b);
    encode_list(&b, "provider", &q.providers);
    encode_list(&b, "target", &q.targets);
    encode_list(&b, "name", &q.names);
    if (b.len)
        b.data[--b.len] = 0;
    if (b.len <= 8192) {          /* the parser's own bound on a query string */
        if (!qs_metrics_parse_query(b.data ? b.data : "", &again, &err))
            fail("an accepted query string does not parse back", err->msg);
        if (!same_list(&q.providers, &again.providers) ||
            !same_list(&q.targets, &again.targets) || !same_list(&q.names, &again.names))
            fail("a query string parses back into other lists", query);
    }
    qs_metrics_query_free(&again);
    qs_metrics_query_free(&q);
    qs_buf_free(&b);
}

static void check_parts(const request *rq)
{
    check_accept(rq->accept);
    check_query(rq->query);
}

/* ---- the world ------------------------------------------------------------ */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    qs_error *err = NULL;
    env = qs_calloc(1, sizeof(*env));
    uv_loop_init(&env->loop);
    /* Scrapes change nothing: one world serves every input. */
    fuzz_world_init(&env->world, &env->loop, false, 0);
    for (int i = 0; i < 2; i++) {
        qs_exporter_config cfg = { .reg = env->world.reg, .vm_name = "fuzz", .d3_js = "",
                                   .max_reply_bytes = i ? SMALL_REPLY : 0 };
        env->exporter[i] = qs_exporter_new(&env->loop, &cfg, "127.0.0.1:0", false, &err);
        if (!env->exporter[i])
            fail("cannot start the exporter", err->msg);
        env->port[i] = qs_exporter_port(env->exporter[i]);
    }
    qs_buf_init(&env->expected[0]);
    qs_buf_init(&env->expected[1]);
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int http_connect(bool small)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)env->port[small]),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* Closing with a reset leaves no TIME_WAIT behind: a long run would
     * otherwise use up the ephemeral ports. */
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        fail("cannot connect to the exporter", strerror(errno));
    return fd;
}

/* Sends the request, then runs the loop and reads until the server closes
 * the connection, or (quiet_ok) until nothing moves any more: the server
 * holds a connection whose request is incomplete until its idle timeout,
 * even half-closed.  false: neither happened within WAIT_MS. */
static bool exchange(bool small, const char *req, size_t len, bool quiet_ok, qs_buf *resp)
{
    int fd = http_connect(small);
    size_t sent = 0;
    uint64_t deadline = now_ms() + WAIT_MS;
    bool done = false;
    int quiet = 0;
    char buf[65536];

    while (!done && now_ms() < deadline) {
        if (sent < len) {
            ssize_t n = send(fd, req + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN)
                sent = len;         /* the server hung up first */
            if (sent == len)
                shutdown(fd, SHUT_WR);
        }
        uv_run(&env->loop, UV_RUN_NOWAIT);
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            qs_buf_append(resp, buf, (size_t)n);
            quiet = 0;
            continue;
        }
        if (n == 0 || errno != EAGAIN)
            done = true;
        struct pollfd pf[2] = { { .fd = fd, .events = POLLIN },
                                { .fd = uv_backend_fd(&env->loop), .events = POLLIN } };
        if (!done && poll(pf, 2, quiet_ok ? 1 : 5) == 0 && sent == len && quiet_ok)
            done = ++quiet >= 3;
        else
            quiet = 0;
    }
    close(fd);
    /* Let MHD see the reset and forget the connection. */
    for (int i = 0; i < 4; i++)
        uv_run(&env->loop, UV_RUN_NOWAIT);
    return done;
}

/* ---- well-formed requests ----------------------------------------------- */

static void put_encoded(qs_buf *b, const char *s, size_t n, bool is_path)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > 0x20 && c < 0x7f && !(is_path && c == '?') && c != '#') {
            qs_buf_putc(b, (char)c);
        } else {
            qs_buf_putc(b, '%');
            qs_buf_putc(b, hex[c >> 4]);
            qs_buf_putc(b, hex[c & 15]);
        }
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The path as the handler sees it: %XX decoded, up to the first NUL. */
static char *decode_path(const char *s)
{
    qs_buf b;
    qs_buf_init(&b);
    qs_buf_putc(&b, 0);
    b.len = 0;
    for (; *s; s++) {
        int hi, lo;
        if (*s == '%' && (hi = hexval(s[1])) >= 0 && (lo = hexval(s[2])) >= 0) {
            qs_buf_putc(&b, (char)(hi << 4 | lo));
            s += 2;
        } else {
            qs_buf_putc(&b, *s);
        }
    }
    return qs_buf_steal(&b);
}

typedef struct response {
    int status;
    char *headers;              /* "\r\n"-separated, lower-case names kept */
    const char *body;
    size_t body_len;
} response;

/* The value of header `name` (case-insensitive), copied, or NULL. */
static char *header(const response *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = r->headers; l && *l;) {
        const char *end = strstr(l, "\r\n");
        if (!end)
            break;
        if ((size_t)(end - l) > n && !strncasecmp(l, name, n) && l[n] == ':') {
            const char *v = l + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return strndup(v, (size_t)(end - v));
        }
        l = end + 2;
    }
    return NULL;
}

static bool parse_response(const qs_buf *raw, response *r)
{
    memset(r, 0, sizeof(*r));
    if (!raw->data || sscanf(raw->data, "HTTP/1.%*[01] %3d ", &r->status) != 1)
        return false;
    const char *line_end = strstr(raw->data, "\r\n");
    const char *head_end = strstr(raw->data, "\r\n\r\n");
    if (!line_end || !head_end)
        return false;
    r->headers = strndup(line_end + 2, (size_t)(head_end + 2 - (line_end + 2)));
    r->body = head_end + 4;
    r->body_len = raw->len - (size_t)(r->body - raw->data);
    return true;
}

/* What the routes (exporter/routes.c) must answer. */
typedef enum route_kind { R_METHOD, R_ASSET, R_NOT_FOUND, R_BAD_QUERY, R_METRICS, R_API } route_kind;

static route_kind route_of(const request *rq, const char *path, bool *selected)
{
    bool head = strcmp(rq->method, "HEAD") == 0;
    if (strcmp(rq->method, "GET") && !head)
        return R_METHOD;
    if (qs_exporter_find_asset(path))
        return R_ASSET;
    bool metrics = !strcmp(path, "/metrics");
    if (!metrics && strcmp(path, "/api/v1/stats") && strcmp(path, "/api/v1/schemas"))
        return R_NOT_FOUND;
    qs_metrics_query q;
    qs_error *err = NULL;
    if (!qs_metrics_parse_query(rq->query, &q, &err)) {
        qs_error_free(err);
        return R_BAD_QUERY;
    }
    *selected = q.providers.given || q.targets.given || q.names.given;
    qs_metrics_query_free(&q);
    return metrics ? R_METRICS : R_API;
}

static int status_of(route_kind k, bool small)
{
    static const int status[] = { [R_METHOD] = 405, [R_ASSET] = 200, [R_NOT_FOUND] = 404,
                                  [R_BAD_QUERY] = 400, [R_METRICS] = 200, [R_API] = 200 };
    return small && (k == R_METRICS || k == R_API) ? 500 : status[k];
}

/* The exposition without the exporter's health, which moves each scrape. */
static size_t before_health(const char *body, size_t len)
{
    const char *h = memmem(body, len, "# HELP qstats_build_info", 24);
    return h ? (size_t)(h - body) : len;
}

static void check_exposition(const request *rq, const response *r, bool selected,
                             const char *req)
{
    qs_metrics_format fmt = qs_metrics_negotiate(rq->accept);
    size_t line;
    const char *why = fuzz_exposition_error(r->body, r->body_len, fmt, &line);
    if (why) {
        char *detail = qs_strdup_printf("line %zu: %s", line, why);
        fail("the endpoint's exposition is not valid", detail);
    }
    if (selected)                 /* the daemon's whole view is compared below */
        return;
    qs_buf *exp = &env->expected[fmt];
    size_t n = before_health(r->body, r->body_len);
    if (!exp->len) {
        if (n < 8 || memcmp(r->body, "# HELP ", 7))
            fail("the endpoint's exposition has no family first", req);
        qs_buf_append(exp, r->body, n);
    }
    if (n != exp->len || memcmp(r->body, exp->data, exp->len))
        fail("the exposition changed from one scrape to the next", req);
}

static void check_built(const request *rq, const qs_buf *raw, const char *req)
{
    response r;
    if (!parse_response(raw, &r))
        fail("the answer to a well-formed request is not an HTTP response", req);
    bool head = strcmp(rq->method, "HEAD") == 0, selected = false;
    char *path = decode_path(rq->path);
    route_kind k = route_of(rq, path, &selected);
    bool api = !strncmp(path, "/api/", 5);
    int want = status_of(k, rq->small);
    free(path);
    char *clen = header(&r, "Content-Length");
    /* A selection (an unknown provider, say) can leave the small exporter's
     * answer within its limit: 200 is right then, and only then. */
    if (want == 500 && r.status == 200 && selected && clen &&
        strtoull(clen, NULL, 10) <= SMALL_REPLY)
        want = 200;
    if (r.status != want) {
        char *detail = qs_strdup_printf("request:\n%s\nstatus %d, expected %d", req,
                                        r.status, want);
        fail("the status is not the routing's", detail);
    }
    char *ctype = header(&r, "Content-Type");
    char *csp = header(&r, "Content-Security-Policy");
    if (!csp || strncmp(csp, "default-src 'none'", 18))
        fail("a response without the strict Content-Security-Policy", req);
    if (!head && (!clen || strtoull(clen, NULL, 10) != r.body_len))
        fail("Content-Length is not the body's length", req);
    if (head && r.body_len)
        fail("a HEAD answer has a body", req);
    if (want == 405) {
        char *allow = header(&r, "Allow");
        if (!allow || strcmp(allow, "GET, HEAD"))
            fail("a 405 does not allow GET and HEAD", req);
        free(allow);
    }
    bool json = ctype && !strcmp(ctype, "application/json");
    if ((want == 404 || want == 400 || want == 500) && json != api)
        fail("an error is not JSON on /api/ or is JSON elsewhere", req);
    if (want == 404 && !head && !api &&
        (r.body_len != strlen("Not found: metrics are served at /metrics\n") ||
         memcmp(r.body, "Not found: metrics are served at /metrics\n", r.body_len)))
        fail("a 404 does not say where the metrics are", req);
    if (want == 500 && !head && !memmem(r.body, r.body_len, " bytes", 6))
        fail("an answer over the ceiling does not say so", req);
    if (k == R_METRICS && want == 200) {
        qs_metrics_format fmt = qs_metrics_negotiate(rq->accept);
        if (!ctype || strcmp(ctype, qs_metrics_content_type(fmt)))
            fail("the Content-Type is not the negotiated format's", req);
        if (!head)
            check_exposition(rq, &r, selected, req);
    }
    if (k == R_API && want == 200 && !head) {
        json_error_t jerr;
        json_t *doc = json_loadb(r.body, r.body_len, 0, &jerr);
        if (!json || !json_is_object(doc))
            fail("an API answer is not a JSON object", req);
        json_decref(doc);
    }
    free(clen);
    free(ctype);
    free(csp);
    free(r.headers);
}

/* Keeps the characters a method token may have. */
static char *token(const char *s, size_t n)
{
    qs_buf b;
    qs_buf_init(&b);
    for (size_t i = 0; i < n; i++)
        if ((s[i] && strchr("!#$%&'*+-.^_`|~", s[i])) || (s[i] >= '0' && s[i] <= '9') ||
            ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z'))
            qs_buf_putc(&b, s[i]);
    if (!b.len)
        qs_buf_puts(&b, "GET");
    return qs_buf_steal(&b);
}

/* A header value: no line breaks, no control characters but tab. */
static char *field_value(const char *s, size_t n)
{
    qs_buf b;
    qs_buf_init(&b);
    qs_buf_putc(&b, 0);
    b.len = 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x20 ? s[i] != 0x7f : s[i] == '\t')
            qs_buf_putc(&b, s[i]);
    return qs_buf_steal(&b);
}

static void fuzz_built(uint8_t flags, const char *text, size_t len)
{
    const char *field[4] = { "", "", "", "" };
    size_t flen[4] = { 0, 0, 0, 0 };
    size_t nfields = 0;
    for (const char *p = text; nfields < 4;) {
        const char *nl = memchr(p, '\n', (size_t)(text + len - p));
        const char *end = nl ? nl : text + len;
        field[nfields] = p;
        flen[nfields++] = (size_t)(end - p);
        if (!nl)
            break;
        p = nl + 1;
    }
    static const char *const methods[] = { "GET", "HEAD", "POST" };
    char *method = (flags >> 1 & 3) == 3 ? token(field[0], flen[0])
                                         : qs_strdup(methods[flags >> 1 & 3]);
    qs_buf path, query;
    qs_buf_init(&path);
    qs_buf_init(&query);
    qs_buf_putc(&path, '/');
    if (flen[1] && field[1][0] == '/')
        path.len = 0;               /* the field gives its own leading slash */
    put_encoded(&path, field[1], flen[1], true);
    qs_buf_putc(&query, 0);
    query.len = 0;
    put_encoded(&query, field[2], flen[2], false);
    char *accept = flags & 8 ? field_value(field[3], flen[3]) : NULL;

    request rq = { .method = method, .path = path.data,
                   .query = flags & 32 ? NULL : query.data,
                   .accept = accept, .http10 = flags & 16, .small = flags & 64 };
    check_parts(&rq);

    qs_buf req, resp;
    qs_buf_init(&req);
    qs_buf_init(&resp);
    qs_buf_printf(&req, "%s %s%s%s HTTP/1.%c\r\nHost: 127.0.0.1\r\n", rq.method, rq.path,
                  rq.query ? "?" : "", rq.query ? rq.query : "", rq.http10 ? '0' : '1');
    if (rq.accept)
        qs_buf_printf(&req, "Accept: %s\r\n", rq.accept);
    qs_buf_puts(&req, "Connection: close\r\n\r\n");
    if (!exchange(rq.small, req.data, req.len, false, &resp))
        fail("no complete answer to a well-formed request", req.data);
    check_built(&rq, &resp, req.data);

    qs_buf_free(&req);
    qs_buf_free(&resp);
    qs_buf_free(&path);
    qs_buf_free(&query);
    free(accept);
    free(method);
}

/* ---- raw requests ------------------------------------------------------- */

static void fuzz_raw(bool small, const char *data, size_t len)
{
    qs_buf resp;
    qs_buf_init(&resp);
    if (!exchange(small, data, len, true, &resp)) {
        char *detail = qs_strdup_printf("%zu bytes of request", len);
        fail("the server neither answered nor hung up", detail);
    }
    if (resp.len && (resp.len < 9 || memcmp(resp.data, "HTTP/1.", 7)))
        fail("the answer to a raw request is not HTTP", resp.data);
    qs_buf_free(&resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > MAX_REQUEST)
        return 0;
    if (data[0] & 1)
        fuzz_raw(data[0] & 64, (const char *)data + 1, size - 1);
    else
        fuzz_built(data[0], (const char *)data + 1, size - 1);
    return 0;
}
