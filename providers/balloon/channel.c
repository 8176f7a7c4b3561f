/*
 * channel.c - the socket that stands in for virtio-balloon's stats queue:
 * a guest agent (tools/qstats-guest-agent.c) connects to qstatsd over a
 * unix or vsock stream socket and plays the guest driver's part.
 *
 * Framing (one agent at a time; all integers little-endian):
 *
 *   host -> agent   a request: the single byte 0x01 ("send fresh stats").
 *                   Sent when the poll timer fires and the agent has
 *                   answered the previous request; never more than one
 *                   outstanding.
 *   agent -> host   an answer: u32 length N, then N bytes of virtio-balloon
 *                   records, each a packed { u16 tag; u64 val; } (10 bytes).
 *                   N <= 160 (16 records).  A trailing partial record, an
 *                   unknown tag or a duplicate tag is not an error (the
 *                   device parses as QEMU does); N = 0 is a valid answer.
 *
 * On connecting, the agent answers at once without being asked, like the
 * Linux driver's initial buffer, so statistics resume after a reconnect.
 *
 * The agent is dropped, with one log line, and a new one may connect, when
 * it announces N > 160, sends bytes while no answer is due (garbage, a
 * second answer), takes longer than the answer timeout (default 5 s) to
 * complete an answer, or fails a read or write.  A second agent that
 * connects while one is being served is closed at once, also with one log
 * line.  Nothing here blocks: every socket is non-blocking on the loop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "internal.h"
#include "qs-net.h"

#define REQUEST_BYTE 0x01
#define HEADER_SIZE 4
#define MAX_ANSWER (QS_BALLOON_MAX_RECORDS * QS_BALLOON_RECORD_SIZE)
#define DEFAULT_TIMEOUT_MS 5000
#define ACCEPT_RETRY_MS 100

static const uint8_t request_byte = REQUEST_BYTE;

typedef struct conn {
    uv_pipe_t pipe;
    qs_balloon_chan *chan;
    bool dropped;
    bool expecting;           /* an answer is due */
    uint32_t want;            /* announced length, once the header is in */
    size_t rxlen;
    uint8_t rx[HEADER_SIZE + MAX_ANSWER];
    char readbuf[256];
} conn;

struct qs_balloon_chan {
    uv_loop_t *loop;
    qs_balloon_chan_cb cb;
    qs_acceptor *acceptor;
    uv_timer_t answer_timer;
    conn *conn;               /* the agent being served */
    uint64_t timeout_ms;
    int open_handles;         /* acceptor, timer, conn */
    bool closing;
    qs_ratelimit log_limit;   /* agents come and go as fast as they like */
};

static void chan_log(qs_balloon_chan *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void chan_log(qs_balloon_chan *c, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    qs_ratelimit_log(&c->log_limit, uv_now(c->loop), msg, c->cb.log, c->cb.opaque);
}

static void maybe_finish(qs_balloon_chan *c)
{
    if (!c->closing || c->open_handles > 0)
        return;
    qs_balloon_chan_cb cb = c->cb;
    free(c);
    cb.closed(cb.opaque);
}

static void handle_closed(uv_handle_t *h)
{
    qs_balloon_chan *c = h->data;
    c->open_handles--;
    maybe_finish(c);
}

static void conn_closed(uv_handle_t *h)
{
    conn *k = h->data;
    qs_balloon_chan *c = k->chan;
    free(k);
    c->open_handles--;
    maybe_finish(c);
}

qs_balloon_chan *qs_balloon_chan_new(uv_loop_t *loop, const qs_balloon_chan_cb *cb)
{
    qs_balloon_chan *c = qs_calloc(1, sizeof(*c));
    c->loop = loop;
    c->cb = *cb;
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    uv_timer_init(loop, &c->answer_timer);
    c->answer_timer.data = c;
    c->open_handles = 1;
    return c;
}

void qs_balloon_chan_set_timeout(qs_balloon_chan *c, uint64_t ms)
{
    c->timeout_ms = ms;
}

bool qs_balloon_chan_connected(const qs_balloon_chan *c)
{
    return c->conn != NULL;
}

/* Forgets the agent: closes its socket and tells the device. */
static void drop(conn *k, const char *why)
{
    qs_balloon_chan *c = k->chan;
    if (k->dropped)
        return;
    k->dropped = true;
    chan_log(c, "%s", why);
    if (c->conn == k) {
        c->conn = NULL;
        uv_timer_stop(&c->answer_timer);
    }
    uv_close((uv_handle_t *)&k->pipe, conn_closed);
    c->cb.gone(c->cb.opaque);
}

static void answer_timeout(uv_timer_t *t)
{
    qs_balloon_chan *c = t->data;
    char why[96];
    if (!c->conn)
        return;
    snprintf(why, sizeof(why), "dropping guest agent: no complete answer within %llu ms",
             (unsigned long long)c->timeout_ms);
    drop(c->conn, why);
}

static void expect_answer(conn *k)
{
    k->expecting = true;
    k->rxlen = 0;
    uv_timer_start(&k->chan->answer_timer, answer_timeout, k->chan->timeout_ms, 0);
}

/* Consumes up to n bytes of an answer; returns how many, or -1 after
 * dropping the agent. */
static ssize_t take(conn *k, const uint8_t *p, size_t n)
{
    char why[128];
    if (!k->expecting) {
        drop(k, "dropping guest agent: data received while no answer was due");
        return -1;
    }
    size_t need = k->rxlen < HEADER_SIZE ? HEADER_SIZE - k->rxlen
                                         : HEADER_SIZE + k->want - k->rxlen;
    size_t len = n < need ? n : need;
    memcpy(k->rx + k->rxlen, p, len);
    k->rxlen += len;
    if (k->rxlen == HEADER_SIZE) {
        k->want = (uint32_t)k->rx[0] | (uint32_t)k->rx[1] << 8 |
                  (uint32_t)k->rx[2] << 16 | (uint32_t)k->rx[3] << 24;
        if (k->want > MAX_ANSWER) {
            snprintf(why, sizeof(why), "dropping guest agent: answer of %u bytes exceeds "
                     "%d records (%d bytes)", k->want, QS_BALLOON_MAX_RECORDS, MAX_ANSWER);
            drop(k, why);
            return -1;
        }
    }
    if (k->rxlen >= HEADER_SIZE && k->rxlen == HEADER_SIZE + k->want) {
        qs_balloon_chan *c = k->chan;
        k->expecting = false;
        uv_timer_stop(&c->answer_timer);
        c->cb.answer(c->cb.opaque, k->rx + HEADER_SIZE, k->want);
    }
    return (ssize_t)len;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn *k = h->data;
    *buf = uv_buf_init(k->readbuf, sizeof(k->readbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn *k = s->data;
    char why[128];
    if (n == 0 || k->dropped)
        return;
    if (n < 0) {
        if (n == UV_EOF)
            snprintf(why, sizeof(why), "guest agent disconnected");
        else
            snprintf(why, sizeof(why), "dropping guest agent: read failed: %s",
                     uv_strerror((int)n));
        drop(k, why);
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    for (size_t done = 0; done < (size_t)n;) {
        ssize_t used = take(k, p + done, (size_t)n - done);
        if (used < 0)
            return;
        done += (size_t)used;
    }
}

static void accept_agent(qs_balloon_chan *c, int fd)
{
    conn *k = qs_calloc(1, sizeof(*k));
    k->chan = c;
    uv_pipe_init(c->loop, &k->pipe, 0);
    k->pipe.data = k;
    c->open_handles++;
    int r = uv_pipe_open(&k->pipe, fd);
    if (r == 0)
        r = uv_read_start((uv_stream_t *)&k->pipe, alloc_cb, on_read);
    if (r < 0) {
        chan_log(c, "cannot serve guest agent: %s", uv_strerror(r));
        k->dropped = true;
        uv_close((uv_handle_t *)&k->pipe, conn_closed);
        close(fd);
        return;
    }
    c->conn = k;
    chan_log(c, "guest agent connected");
    /* Its initial report is due at once. */
    expect_answer(k);
}

/* One agent at a time: another is refused (and told nothing: the
 * channel's protocol has no error message). */
static bool on_accept(void *opaque, int fd)
{
    qs_balloon_chan *c = opaque;
    if (c->closing || c->conn)
        return false;
    accept_agent(c, fd);
    return true;
}

static void acceptor_log(void *opaque, const char *msg)
{
    chan_log(opaque, "%s", msg);
}

static void acceptor_closed(void *opaque)
{
    qs_balloon_chan *c = opaque;
    c->open_handles--;
    maybe_finish(c);
}

static void on_write(uv_write_t *req, int status)
{
    conn *k = req->handle->data;
    free(req);
    if (status < 0 && status != UV_ECANCELED && !k->dropped) {
        char why[96];
        snprintf(why, sizeof(why), "dropping guest agent: write failed: %s",
                 uv_strerror(status));
        drop(k, why);
    }
}

bool qs_balloon_chan_request(qs_balloon_chan *c)
{
    conn *k = c->conn;
    if (!k || k->expecting)
        return false;
    uv_write_t *req = qs_malloc(sizeof(*req));
    uv_buf_t b = uv_buf_init((char *)&request_byte, 1);
    int r = uv_write(req, (uv_stream_t *)&k->pipe, &b, 1, on_write);
    if (r < 0) {
        char why[96];
        free(req);
        snprintf(why, sizeof(why), "dropping guest agent: write failed: %s", uv_strerror(r));
        drop(k, why);
        return false;
    }
    expect_answer(k);
    return true;
}

/* ---- listening ------------------------------------------------------------ */

bool qs_balloon_chan_listen(qs_balloon_chan *c, const char *spec, qs_error **errp)
{
    if (c->acceptor) {
        qs_error_setg(errp, "The balloon channel is already listening");
        return false;
    }
    c->acceptor = qs_acceptor_new(c->loop, spec, &(qs_acceptor_config){
        .what = "balloon", .kinds = QS_ADDR_UNIX | QS_ADDR_VSOCK, .on_accept = on_accept,
        .refused_log = "refusing a second guest agent: one is already connected",
        .log = acceptor_log, .on_closed = acceptor_closed, .opaque = c }, errp);
    if (c->acceptor)
        c->open_handles++;
    return c->acceptor != NULL;
}

void qs_balloon_chan_close(qs_balloon_chan *c)
{
    c->closing = true;
    if (c->conn) {
        conn *k = c->conn;
        c->conn = NULL;
        k->dropped = true;
        uv_close((uv_handle_t *)&k->pipe, conn_closed);
    }
    qs_acceptor_close(c->acceptor);
    uv_close((uv_handle_t *)&c->answer_timer, handle_closed);
}
