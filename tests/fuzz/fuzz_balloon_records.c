/*
 * fuzz_balloon_records.c - libFuzzer target for everything a guest agent's
 * bytes reach: the balloon channel's framing (providers/balloon/channel.c,
 * its real state machine on a real libuv loop, the agent on the other end
 * of a real unix socket), then the record parser and the device behind it
 * (qs_balloon_parse_records, qs_balloon_dev_receive, the "balloon" stats
 * provider and schema, the guest-stats property).  The guest is untrusted:
 * nothing it sends may crash qstatsd or grow it past the channel's limits.
 *
 * The input is a script for the agent and the host, one op byte then its
 * operands (see the OP_ constants): write raw bytes, write an answer of k
 * records or of a length of the fuzzer's choosing, let the host ask for
 * stats, hang up and reconnect, try a second agent while one is served,
 * or make answers due within 0 ms (the answer timeout, without waiting:
 * such an answer is late at the loop's next timer phase).  Writes are split wherever the script splits them, and each is
 * read by the channel before the next op runs.
 *
 * Oracle beyond the sanitizers: a model of the framing written from the
 * protocol description at the top of channel.c (u32 length <= 160, then
 * that many bytes; data while no answer is due or an oversized length
 * drops the agent, and so does an answer not complete in time; one
 * request outstanding at most; a second agent is closed, the first kept) predicts, after every op, which answers arrive
 * (length and bytes), how often the agent is gone, whether one is
 * connected and which request bytes the agent reads.  After every answer,
 * the device's stats, the provider's results and published schema agree
 * with the documented record semantics (complete records only, tags >= 16
 * ignored, a later duplicate wins), computed here independently.
 */
#include <endian.h>
#include <errno.h>
#include <jansson.h>
#include <linux/sockios.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "providers/balloon/internal.h"

#define MAX_ANSWER (QS_BALLOON_MAX_RECORDS * QS_BALLOON_RECORD_SIZE)
#define HEADER 4

/* Script ops: the op byte's top bits pick one, its low bits are a count. */
#define OP_WRITE 0x00         /* 0x00-0x3f: (b & 0x3f) + 1 raw bytes follow */
#define OP_RECORDS 0x40       /* 0x40-0x5f: an answer of (b & 0x1f) records */
#define OP_LENGTH 0x60        /* 0x60-0x7f: a length byte L, then L bytes */
#define OP_REQUEST 0x80       /* 0x80-0xbf: the host asks for stats */
#define OP_RECONNECT 0xc0     /* 0xc0-0xdf: the agent hangs up, a new one comes */
#define OP_SECOND 0xe0        /* 0xe0-0xef: a second agent tries to connect */
#define OP_TIMEOUT 0xf0       /* 0xf0-0xff: answers from now on are due in
                                 0 ms (b & 1) or a day */
#define LONG_TIMEOUT_MS (24ull * 3600 * 1000)

/* What the channel must do, from its documented protocol. */
typedef struct model {
    bool connected;
    bool expecting;           /* an answer is due */
    bool zero_timeout;        /* answers due from now on: within 0 ms */
    bool due_now;             /* the answer due is late at the next loop run */
    size_t rxlen;
    uint32_t want;
    uint8_t rx[HEADER + 256];
    unsigned answers;         /* complete answers so far */
    unsigned gone;            /* agents gone (dropped or hung up) */
    unsigned requests;        /* request bytes the agent has to read */
    uint8_t expect[4][MAX_ANSWER];   /* answers due from the current op */
    size_t expect_len[4];
    unsigned nexpect;
} model;

typedef struct fuzz_env {
    uv_loop_t loop;
    char dir[64];
    char path[128];
    qs_balloon_chan *chan;
    qs_registry *reg;
    qs_balloon_dev dev;
    uint32_t reported;        /* tags reported since the device was reset */
    model m;
    unsigned answers, gone;   /* what the channel did */
    unsigned checked;         /* answers already compared with the model */
    int agent;                /* the agent's socket, -1 when none */
} fuzz_env;

static fuzz_env *env;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_balloon_records: %s\n", what);
    abort();
}

/* ---- the device, as balloon.c wires it but with a still clock ----------- */

static void dev_timer_arm(void *opaque, uint64_t ms) {}
static void dev_timer_stop(void *opaque) {}
static void dev_request(void *opaque) {}
static int64_t dev_wall_seconds(void *opaque) { return 1700000000; }

static const qs_balloon_dev_ops dev_ops = {
    .timer_arm = dev_timer_arm, .timer_stop = dev_timer_stop,
    .request = dev_request, .wall_seconds = dev_wall_seconds,
};

/* The documented record semantics, read backwards: the last complete
 * record of a tag wins; a trailing partial record and tags >= 16 count
 * for nothing. */
static void expected_stats(const uint8_t *buf, size_t len, uint64_t out[QS_BALLOON_S_NR])
{
    bool set[QS_BALLOON_S_NR] = { false };
    for (size_t i = 0; i < QS_BALLOON_S_NR; i++)
        out[i] = QS_BALLOON_UNSET;
    for (size_t n = len / QS_BALLOON_RECORD_SIZE; n-- > 0;) {
        const uint8_t *r = buf + n * QS_BALLOON_RECORD_SIZE;
        unsigned tag = r[0] | (unsigned)r[1] << 8;
        if (tag >= QS_BALLOON_S_NR || set[tag])
            continue;
        uint64_t v;
        memcpy(&v, r + 2, sizeof(v));       /* little-endian host */
        out[tag] = le64toh(v);
        set[tag] = true;
    }
}

static void check_parser(const uint8_t *buf, size_t len)
{
    uint64_t got[QS_BALLOON_S_NR], want[QS_BALLOON_S_NR];
    qs_balloon_parse_records(got, buf, len);
    expected_stats(buf, len, want);
    if (memcmp(got, want, sizeof(got)))
        fail("qs_balloon_parse_records disagrees with the record rules");
}

/* After an answer: the device holds exactly its stats, and the provider
 * answers them (set ones only, then last-update) under a schema listing
 * every tag reported since the device was reset. */
static void check_device(const uint8_t *buf, size_t len)
{
    uint64_t want[QS_BALLOON_S_NR];
    expected_stats(buf, len, want);
    if (memcmp(env->dev.stats, want, sizeof(want)))
        fail("the device's stats are not the answer's");
    size_t nset = 0;
    for (unsigned i = 0; i < QS_BALLOON_S_NR; i++) {
        if (want[i] != QS_BALLOON_UNSET) {
            env->reported |= 1u << i;
            nset++;
        }
    }

    qs_error *err = NULL;
    qs_results r;
    qs_results_init(&r);
    qs_filter f = { .target = QS_TARGET_VM };
    if (!qs_registry_query_stats(env->reg, &f, &r, &err) || r.nres != 1 ||
        r.res[0].count != nset + 1)
        fail("query-stats does not list the reported stats and last-update");
    for (size_t i = 0; i < r.res[0].count; i++) {
        const qs_stat *st = &r.stats[r.res[0].first + i];
        uint64_t v = *qs_results_values(&r, st->off);
        const char *name = st->desc->name;
        bool found = strcmp(name, "last-update") == 0 && v == 1700000000;
        for (unsigned t = 0; t < QS_BALLOON_S_NR && !found; t++)
            found = strcmp(name, qs_balloon_stat_name(t)) == 0 && want[t] == v;
        if (!found)
            fail("query-stats returned a value the answer did not carry");
    }
    qs_results_destroy(&r);

    qs_schemas s;
    qs_schemas_init(&s);
    if (!qs_registry_query_schemas(env->reg, "balloon", &s, &err) || s.n != 1 ||
        s.v[0].n != (size_t)__builtin_popcount(env->reported) + 1)
        fail("the published schema is not the reported stats and last-update");
    qs_schemas_destroy(&s);

    qs_buf b;
    qs_jw w;
    qs_buf_init(&b);
    qs_jw_init(&w, &b);
    qs_balloon_dev_get_stats(&env->dev, &w, &err);
    json_error_t jerr;
    json_t *j = json_loadb(b.data, b.len, JSON_DECODE_INT_AS_REAL, &jerr);
    json_t *stats = json_object_get(j, "stats");
    if (!json_is_object(stats) || json_object_size(stats) != QS_BALLOON_S_NR ||
        !json_is_number(json_object_get(j, "last-update")))
        fail("guest-stats is not an object of the 16 stats and last-update");
    json_decref(j);
    qs_buf_free(&b);
}

static void reset_device(void)
{
    qs_balloon_dev_unregister(&env->dev);
    qs_balloon_dev_init(&env->dev, &dev_ops, NULL, 1ull << 30);
    qs_balloon_dev_register(&env->dev, env->reg);
    env->reported = 0;
}

/* ---- the channel's callbacks -------------------------------------------- */

static void on_answer(void *opaque, const uint8_t *records, size_t len)
{
    model *m = &env->m;
    if (len > MAX_ANSWER)
        fail("an answer longer than the protocol's limit was delivered");
    unsigned i = env->answers - env->checked;
    if (i >= m->nexpect || m->expect_len[i] != len ||
        (len && memcmp(m->expect[i], records, len)))
        fail("an answer the framing does not produce was delivered");
    env->answers++;
    qs_balloon_dev_receive(&env->dev, records, len);
    check_device(records, len);
}

static void on_gone(void *opaque)
{
    env->gone++;
    qs_balloon_dev_guest_gone(&env->dev);
}

static void on_log(void *opaque, const char *msg)
{
    if (!msg[0])
        fail("an empty log line");
}

static void on_closed(void *opaque) {}

/* ---- the model ------------------------------------------------------------ */

static void model_connect(model *m)
{
    m->connected = true;
    m->expecting = true;        /* the initial report is due at once */
    m->due_now = m->zero_timeout;
    m->rxlen = 0;
}

static void model_drop(model *m)
{
    m->connected = false;
    m->gone++;
}

/* One byte from the agent. */
static void model_byte(model *m, uint8_t c)
{
    if (!m->connected)
        return;
    if (!m->expecting) {
        model_drop(m);
        return;
    }
    m->rx[m->rxlen++] = c;
    if (m->rxlen == HEADER) {
        m->want = m->rx[0] | (uint32_t)m->rx[1] << 8 | (uint32_t)m->rx[2] << 16 |
                  (uint32_t)m->rx[3] << 24;
        if (m->want > MAX_ANSWER) {
            model_drop(m);
            return;
        }
    }
    if (m->rxlen >= HEADER && m->rxlen == HEADER + m->want) {
        if (m->nexpect == 4)
            fail("script op produced too many answers");
        memcpy(m->expect[m->nexpect], m->rx + HEADER, m->want);
        m->expect_len[m->nexpect++] = m->want;
        m->answers++;
        m->expecting = false;
        m->rxlen = 0;
    }
}

/* ---- driving the loop ----------------------------------------------------- */

/* Runs the loop until done() holds; the channel never needs long, so a
 * condition that does not come is a finding (it stopped reading). */
static void pump_until(bool (*done)(void), const char *what)
{
    for (int i = 0; i < 20000; i++) {
        if (done())
            return;
        uv_run(&env->loop, UV_RUN_NOWAIT);
        if (i > 100)
            usleep(100);
    }
    fail(what);
}

static bool chan_idle(void);

/* An answer due within 0 ms is late as soon as the loop runs again: the
 * timer phase comes before the agent's bytes are read, so the agent is
 * dropped before anything it sends counts. */
static void timeouts_expire(void)
{
    model *m = &env->m;
    if (!m->connected || !m->expecting || !m->due_now)
        return;
    pump_until(chan_idle, "an answer due within 0 ms did not time out");
    model_drop(m);
}

static bool agent_sent_all(void)
{
    int n = 0;
    if (ioctl(env->agent, SIOCOUTQ, &n) < 0)
        return true;
    return n == 0;
}

static bool chan_connected(void) { return qs_balloon_chan_connected(env->chan); }
static bool chan_idle(void) { return !qs_balloon_chan_connected(env->chan); }


static int agent_socket(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", env->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        fail("cannot connect to the channel");
    return fd;
}

static void agent_connect(void)
{
    env->agent = agent_socket();
    pump_until(chan_connected, "the channel did not take a new agent");
    model_connect(&env->m);
}

/* The agent hangs up; the channel must notice and forget it. */
static void agent_hang_up(void)
{
    if (env->agent < 0)
        return;
    close(env->agent);
    env->agent = -1;
    if (env->m.connected) {
        pump_until(chan_idle, "the channel did not notice the agent hang up");
        model_drop(&env->m);
    }
    uv_run(&env->loop, UV_RUN_NOWAIT);      /* the connection's close callback */
}

/* A dropped agent's socket is closed by the channel; the script goes on
 * with a new agent. */
static void ensure_agent(void)
{
    if (env->m.connected)
        return;
    agent_hang_up();
    agent_connect();
}

/* The agent reads what the host sent: exactly one 0x01 per request. */
static void agent_read_requests(void)
{
    uint8_t buf[64];
    if (env->agent < 0)
        return;
    ssize_t n = recv(env->agent, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0)
        n = 0;                  /* EAGAIN, or the channel dropped us */
    if (env->m.connected && (size_t)n != env->m.requests)
        fail("the agent did not get exactly one request byte per request");
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] != 0x01)
            fail("the host sent something other than a request byte");
    env->m.requests = 0;
}

static void agent_write(const uint8_t *p, size_t n)
{
    ensure_agent();
    timeouts_expire();
    for (size_t i = 0; i < n; i++)
        model_byte(&env->m, p[i]);
    ssize_t w = send(env->agent, p, n, MSG_NOSIGNAL);
    if (w >= 0 && (size_t)w != n)
        fail("short write to the channel");   /* far below the socket buffer */
    pump_until(agent_sent_all, "the channel stopped reading");
}

/* A second agent while one is served is closed at once, the first kept. */
static void second_agent(void)
{
    if (!env->m.connected) {
        ensure_agent();         /* nobody served: it simply becomes the agent */
        return;
    }
    int fd = agent_socket();
    for (int i = 0;; i++) {
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            break;
        if (n > 0)
            fail("the host sent something to a refused agent");
        if (i == 20000)
            fail("a second agent was not refused");
        uv_run(&env->loop, UV_RUN_NOWAIT);
        if (i > 100)
            usleep(100);
    }
    close(fd);
}

static void host_request(void)
{
    bool due = env->m.connected && !env->m.expecting;
    if (qs_balloon_chan_request(env->chan) != due)
        fail("a request was sent while one was outstanding, or not sent when due");
    if (due) {
        env->m.expecting = true;
        env->m.due_now = env->m.zero_timeout;
        env->m.rxlen = 0;
        env->m.requests++;
    }
    uv_run(&env->loop, UV_RUN_NOWAIT);      /* the write's callback */
    if (due && env->m.due_now) {
        agent_read_requests();              /* the request went out first */
        timeouts_expire();
    }
}

/* After every op the channel did what the model says. */
static void check_op(void)
{
    model *m = &env->m;
    agent_read_requests();
    if (env->answers != m->answers)
        fail("the number of answers delivered differs from the framing's");
    if (env->gone != m->gone)
        fail("an agent was dropped (or kept) against the protocol");
    if (qs_balloon_chan_connected(env->chan) != m->connected)
        fail("the channel's connected state differs from the protocol's");
    env->checked = env->answers;
    m->nexpect = 0;
}

/* ---- libFuzzer ------------------------------------------------------------ */

static void cleanup(void)
{
    if (env->agent >= 0)
        close(env->agent);
    qs_balloon_chan_close(env->chan);
    uv_run(&env->loop, UV_RUN_DEFAULT);
    unlink(env->path);
    rmdir(env->dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    qs_error *err = NULL;
    env = qs_calloc(1, sizeof(*env));
    env->agent = -1;
    snprintf(env->dir, sizeof(env->dir), "/tmp/qs-fuzz-balloon-XXXXXX");
    if (!mkdtemp(env->dir))
        fail("mkdtemp");
    snprintf(env->path, sizeof(env->path), "%s/agent.sock", env->dir);
    uv_loop_init(&env->loop);
    env->reg = qs_registry_new();
    qs_balloon_dev_init(&env->dev, &dev_ops, NULL, 1ull << 30);
    qs_balloon_dev_register(&env->dev, env->reg);
    qs_balloon_chan_cb cb = { .answer = on_answer, .gone = on_gone, .log = on_log,
                              .closed = on_closed, .opaque = env };
    env->chan = qs_balloon_chan_new(&env->loop, &cb);
    /* No answer timeout during a run: time is not part of the input. */
    qs_balloon_chan_set_timeout(env->chan, LONG_TIMEOUT_MS);
    char *spec = qs_strdup_printf("unix:%s", env->path);
    if (!qs_balloon_chan_listen(env->chan, spec, &err))
        fail(err->msg);
    free(spec);
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t buf[HEADER + 31 * QS_BALLOON_RECORD_SIZE];

    check_parser(data, size);
    reset_device();
    memset(&env->m, 0, sizeof(env->m));
    qs_balloon_chan_set_timeout(env->chan, LONG_TIMEOUT_MS);
    env->answers = env->gone = env->checked = 0;
    agent_connect();
    check_op();

    for (size_t i = 0; i < size;) {
        uint8_t op = data[i++];
        if (op < OP_TIMEOUT)
            timeouts_expire();
        size_t left = size - i, n;
        if (op < OP_RECORDS) {
            n = (size_t)(op & 0x3f) + 1;
            n = n < left ? n : left;
            agent_write(data + i, n);
            i += n;
        } else if (op < OP_REQUEST) {
            size_t len = op < OP_LENGTH ? (size_t)(op & 0x1f) * QS_BALLOON_RECORD_SIZE
                                        : (left ? data[i++] : 0);
            left = size - i;
            n = len < left ? len : left;   /* a short script: a partial answer */
            buf[0] = (uint8_t)len;
            buf[1] = (uint8_t)(len >> 8);
            buf[2] = buf[3] = 0;
            memcpy(buf + HEADER, data + i, n);
            agent_write(buf, HEADER + n);
            i += n;
        } else if (op < OP_RECONNECT) {
            host_request();
        } else if (op < OP_SECOND) {
            agent_hang_up();
            agent_connect();
        } else if (op < OP_TIMEOUT) {
            second_agent();
        } else {
            env->m.zero_timeout = op & 1;
            qs_balloon_chan_set_timeout(env->chan, op & 1 ? 0 : LONG_TIMEOUT_MS);
        }
        check_op();
    }
    agent_hang_up();
    check_op();
    return 0;
}
