/*
 * console.c - the transports of the human monitor on the caller's libuv
 * loop: the terminal (stdio) and a listening unix socket where every client
 * is a monitor of its own (so `cpu 1` in one does not move the others).
 * Input is split into lines; each line's output (already "\r\n") is sent
 * followed by the prompt, as QEMU's monitor does.  No line editing: the
 * terminal's cooked mode, or socat/the qstats client, provide it.
 *
 * Lifetime: handles are closed by qs_hmp_console_free or on disconnect;
 * memory goes in the close callbacks, counted by `refs`, so a command
 * (quit) may free the console while its own read callback is running.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "qs-net.h"

#define BANNER "qstats " QS_VERSION_STRING " monitor - type 'help' for more information\r\n"
#define MAX_LINE (1024 * 1024)
#define MAX_QUEUED (16 * 1024 * 1024)   /* unread output before a client is dropped */
#define MAX_CLIENTS 16                   /* monitors on one socket at once */
#define REFUSAL "qstats: too many monitor sessions (limit 16); try again later\r\n"

typedef struct conn conn;

struct qs_hmp_console {
    uv_loop_t *loop;
    qs_hmp *h;
    qs_acceptor *acceptor;  /* unix:PATH; NULL for stdio */
    conn *conns;
    size_t nconns;
    int refs;               /* open acceptor + live conns */
    bool closing;
    qs_ratelimit log_limit;
};

typedef union stream_handle {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tty_t tty;
} stream_handle;

struct conn {
    qs_hmp_console *con;
    qs_hmp_monitor *mon;
    stream_handle in_h, out_h;
    uv_stream_t *in;        /* NULL: stdin is a file, read with uv_fs_read */
    uv_stream_t *out;       /* NULL: stdout is a file, written synchronously */
    uv_fs_t fs_req;
    char fs_buf[4096];
    bool fs_busy;
    int pending;            /* self (until conn_close) + open handles + an fs
                               read in flight + commands running */
    qs_buf line;
    bool discarding;        /* rest of an over-long line */
    bool tty_out;           /* stdout is a terminal: its ONLCR adds the \r */
    bool closing;
    conn *next;
};

typedef struct write_req {
    uv_write_t req;
    char data[];
} write_req;

static void console_unref(qs_hmp_console *c)
{
    if (--c->refs == 0 && c->closing)
        free(c);
}

static void conn_release(conn *k)
{
    if (--k->pending > 0)
        return;
    qs_hmp_console *c = k->con;
    for (conn **p = &c->conns; *p; p = &(*p)->next) {
        if (*p == k) {
            *p = k->next;
            break;
        }
    }
    qs_hmp_monitor_free(k->mon);
    qs_buf_free(&k->line);
    free(k);
    c->nconns--;
    console_unref(c);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_release(h->data);
}

static void conn_close(conn *k)
{
    if (k->closing)
        return;
    k->closing = true;
    if (k->in)
        uv_close((uv_handle_t *)k->in, on_conn_closed);
    if (k->out && k->out != k->in)
        uv_close((uv_handle_t *)k->out, on_conn_closed);
    if (k->fs_busy)
        uv_cancel((uv_req_t *)&k->fs_req);   /* its callback releases */
    conn_release(k);          /* may free k */
}

static void on_written(uv_write_t *req, int status)
{
    free(req);
}

static void write_fd(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;           /* a closed stdout is not the monitor's problem */
        data += n;
        len -= (size_t)n;
    }
}

/* A terminal in cooked mode turns "\n" into "\r\n" itself; sending ours
 * as is would show up as "\r\r\n". */
static size_t drop_cr_before_lf(char *data, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (!(data[i] == '\r' && i + 1 < len && data[i + 1] == '\n'))
            data[n++] = data[i];
    return n;
}

static void conn_send(conn *k, const char *data, size_t len)
{
    if (k->closing || !len)
        return;
    if (!k->out) {
        write_fd(STDOUT_FILENO, data, len);
        return;
    }
    if (uv_stream_get_write_queue_size(k->out) > MAX_QUEUED) {
        conn_close(k);        /* a client that never reads */
        return;
    }
    write_req *w = qs_malloc(sizeof(*w) + len);
    memcpy(w->data, data, len);
    if (k->tty_out)
        len = drop_cr_before_lf(w->data, len);
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, k->out, &buf, 1, on_written) < 0) {
        free(w);
        conn_close(k);
    }
}

/* Runs every complete line in k->line; stops if a command closed us. */
static void run_lines(conn *k)
{
    qs_buf out;
    size_t start = 0;
    qs_buf_init(&out);
    for (;;) {
        char *nl = memchr(k->line.data + start, '\n', k->line.len - start);
        if (!nl)
            break;
        *nl = '\0';
        if (nl > k->line.data + start && nl[-1] == '\r')
            nl[-1] = '\0';
        if (k->discarding)
            k->discarding = false;
        else
            qs_hmp_execute(k->mon, k->line.data + start, &out);
        start = (size_t)(nl - k->line.data) + 1;
        if (k->closing || k->con->closing)
            break;
        if (k->mon->quit) {
            /* Like QEMU, nothing after quit: no prompt, no further lines. */
            conn_send(k, out.data, out.len);
            if (k->in)
                uv_read_stop(k->in);
            k->line.len = start = 0;
            break;
        }
        qs_buf_puts(&out, QS_HMP_PROMPT);
        conn_send(k, out.data, out.len);
        qs_buf_reset(&out);
    }
    qs_buf_free(&out);
    if (k->closing)
        return;
    memmove(k->line.data, k->line.data + start, k->line.len - start);
    k->line.len -= start;
    if (k->line.len > MAX_LINE) {
        static const char msg[] = "line too long\r\n";
        k->line.len = 0;
        if (!k->discarding)       /* once per line, however long it goes on */
            conn_send(k, msg, sizeof(msg) - 1);
        k->discarding = true;
    }
}

static void conn_input(conn *k, const char *data, size_t len)
{
    k->pending++;             /* a command (quit) may close k under us */
    qs_buf_append(&k->line, data, len);
    run_lines(k);
    conn_release(k);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = qs_malloc(suggested);
    buf->len = suggested;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *k = s->data;     /* alive until this handle's close callback */
    if (nread > 0)
        conn_input(k, buf->base, (size_t)nread);
    free(buf->base);
    if (nread < 0 && !k->closing) {
        if (k->con->acceptor)
            conn_close(k);    /* a unix client went away */
        else
            uv_read_stop(s);  /* stdin ended: the daemon keeps running */
    }
}

static void start_fs_read(conn *k);

static void on_fs_read(uv_fs_t *req)
{
    conn *k = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    k->fs_busy = false;
    if (n > 0 && !k->closing) {
        conn_input(k, k->fs_buf, (size_t)n);
        if (!k->closing && !k->mon->quit)
            start_fs_read(k);
    }
    conn_release(k);          /* the reference the read held */
}

static void start_fs_read(conn *k)
{
    uv_buf_t buf = uv_buf_init(k->fs_buf, sizeof(k->fs_buf));
    k->fs_req.data = k;
    if (uv_fs_read(k->con->loop, &k->fs_req, STDIN_FILENO, &buf, 1, -1, on_fs_read) == 0) {
        k->fs_busy = true;
        k->pending++;
    }
}

static conn *conn_new(qs_hmp_console *c)
{
    conn *k = qs_calloc(1, sizeof(*k));
    k->con = c;
    k->mon = qs_hmp_monitor_new(c->h);
    qs_buf_init(&k->line);
    k->pending = 1;           /* dropped by conn_close */
    k->next = c->conns;
    c->conns = k;
    c->nconns++;
    c->refs++;
    return k;
}

/* ---- stdio ------------------------------------------------------------ */

/* Opens fd as a stream handle of k (counted in k->pending); false when it
 * is a file or unknown, which the caller then reads or writes directly. */
static bool open_std_stream(conn *k, int fd, bool readable, stream_handle *h)
{
    uv_loop_t *loop = k->con->loop;
    h->handle.data = k;
    switch (uv_guess_handle(fd)) {
    case UV_TTY:
        if (uv_tty_init(loop, &h->tty, fd, readable) < 0)
            return false;
        break;
    case UV_NAMED_PIPE:
    case UV_TCP:
        if (uv_pipe_init(loop, &h->pipe, 0) < 0)
            return false;
        h->handle.data = k;
        if (uv_pipe_open(&h->pipe, fd) < 0) {
            k->pending++;
            uv_close(&h->handle, on_conn_closed);
            return false;
        }
        break;
    default:
        return false;
    }
    h->handle.data = k;
    k->pending++;
    return true;
}

static bool stdio_open(qs_hmp_console *c, qs_error **errp)
{
    conn *k = conn_new(c);
    if (open_std_stream(k, STDIN_FILENO, true, &k->in_h)) {
        k->in = &k->in_h.stream;
        uv_read_start(k->in, on_alloc, on_read);
    } else {
        start_fs_read(k);
    }
    if (open_std_stream(k, STDOUT_FILENO, false, &k->out_h)) {
        k->out = &k->out_h.stream;
        k->tty_out = uv_guess_handle(STDOUT_FILENO) == UV_TTY;
    }
    static const char hello[] = BANNER QS_HMP_PROMPT;
    conn_send(k, hello, sizeof(hello) - 1);
    return true;
}

/* ---- unix socket ------------------------------------------------------ */

static bool on_accept(void *opaque, int fd)
{
    qs_hmp_console *c = opaque;
    if (c->closing || c->nconns >= MAX_CLIENTS)
        return false;
    conn *k = conn_new(c);
    uv_pipe_init(c->loop, &k->in_h.pipe, 0);
    k->in = k->out = &k->in_h.stream;
    k->in->data = k;
    k->pending++;
    if (uv_pipe_open(&k->in_h.pipe, fd) < 0) {
        close(fd);
        conn_close(k);
        return true;
    }
    static const char hello[] = BANNER QS_HMP_PROMPT;
    conn_send(k, hello, sizeof(hello) - 1);
    uv_read_start(k->in, on_alloc, on_read);
    return true;
}

static void emit_log(void *opaque, const char *msg)
{
    fprintf(stderr, "qstats: %s\n", msg);
}

static void acceptor_log(void *opaque, const char *msg)
{
    qs_hmp_console *c = opaque;
    qs_ratelimit_log(&c->log_limit, uv_now(c->loop), msg, emit_log, NULL);
}

static void acceptor_closed(void *opaque)
{
    console_unref(opaque);
}

static bool unix_listen(qs_hmp_console *c, const char *spec, qs_error **errp)
{
    c->acceptor = qs_acceptor_new(c->loop, spec, &(qs_acceptor_config){
        .what = "HMP", .kinds = QS_ADDR_UNIX, .on_accept = on_accept, .refusal = REFUSAL,
        .log = acceptor_log, .on_closed = acceptor_closed, .opaque = c }, errp);
    if (c->acceptor)
        c->refs++;
    return c->acceptor != NULL;
}

/* ---- public ----------------------------------------------------------- */

qs_hmp_console *qs_hmp_console_new(uv_loop_t *loop, qs_hmp *h, const char *spec,
                                   qs_error **errp)
{
    qs_hmp_console *c = qs_calloc(1, sizeof(*c));
    c->loop = loop;
    c->h = h;
    bool ok;
    if (strcmp(spec, "stdio") == 0) {
        ok = stdio_open(c, errp);
    } else if (strncmp(spec, "unix:", 5) == 0) {
        ok = unix_listen(c, spec, errp);
    } else {
        qs_error_setg(errp, "invalid HMP console '%s' (expected stdio or unix:PATH)", spec);
        ok = false;
    }
    if (!ok) {
        c->closing = true;
        if (c->refs == 0)
            free(c);            /* otherwise the server's close callback frees it */
        return NULL;
    }
    return c;
}

void qs_hmp_console_free(qs_hmp_console *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    c->refs++;                  /* hold c while closing everything */
    qs_acceptor_close(c->acceptor);
    for (conn *k = c->conns, *next; k; k = next) {
        next = k->next;
        conn_close(k);
    }
    console_unref(c);
}
