/*
 * balloon.c - qs_balloon, the public face of the module: the device core
 * (device.c) driven by a libuv timer and the host's wall clock, fed by the
 * guest agent channel (channel.c).  It only wires the two together and
 * manages their lifetime.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

struct qs_balloon {
    uv_loop_t *loop;
    qs_balloon_dev dev;
    uv_timer_t poll_timer;
    qs_balloon_chan *chan;
    qs_balloon_log_fn log_fn;
    void *log_opaque;
    int open_parts;           /* poll timer + channel, until closed */
};

/* ---- device ops: the real timer and clock ---------------------------- */

static void on_poll(uv_timer_t *t)
{
    qs_balloon *b = t->data;
    qs_balloon_dev_timer_fired(&b->dev);
}

static void op_timer_arm(void *opaque, uint64_t delay_ms)
{
    qs_balloon *b = opaque;
    uv_timer_start(&b->poll_timer, on_poll, delay_ms, 0);
}

static void op_timer_stop(void *opaque)
{
    qs_balloon *b = opaque;
    uv_timer_stop(&b->poll_timer);
}

static void op_request(void *opaque)
{
    qs_balloon *b = opaque;
    qs_balloon_chan_request(b->chan);
}

static int64_t op_wall_seconds(void *opaque)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

static const qs_balloon_dev_ops dev_ops = {
    .timer_arm = op_timer_arm,
    .timer_stop = op_timer_stop,
    .request = op_request,
    .wall_seconds = op_wall_seconds,
};

/* ---- channel callbacks -------------------------------------------------- */

static void on_answer(void *opaque, const uint8_t *records, size_t len)
{
    qs_balloon *b = opaque;
    qs_balloon_dev_receive(&b->dev, records, len);
}

static void on_gone(void *opaque)
{
    qs_balloon *b = opaque;
    qs_balloon_dev_guest_gone(&b->dev);
}

static void on_log(void *opaque, const char *msg)
{
    qs_balloon *b = opaque;
    if (b->log_fn)
        b->log_fn(b->log_opaque, msg);
    else
        fprintf(stderr, "qstats: balloon: %s\n", msg);
}

static void part_closed(qs_balloon *b)
{
    if (--b->open_parts == 0)
        free(b);
}

static void on_chan_closed(void *opaque)
{
    part_closed(opaque);
}

static void on_timer_closed(uv_handle_t *h)
{
    part_closed(h->data);
}

/* ---- public API ----------------------------------------------------------- */

qs_balloon *qs_balloon_new(uv_loop_t *loop, qs_registry *reg, uint64_t actual_bytes)
{
    qs_balloon *b = qs_calloc(1, sizeof(*b));
    b->loop = loop;
    qs_balloon_dev_init(&b->dev, &dev_ops, b, actual_bytes);
    uv_timer_init(loop, &b->poll_timer);
    b->poll_timer.data = b;
    qs_balloon_chan_cb cb = {
        .answer = on_answer, .gone = on_gone, .log = on_log,
        .closed = on_chan_closed, .opaque = b,
    };
    b->chan = qs_balloon_chan_new(loop, &cb);
    b->open_parts = 2;
    qs_balloon_dev_register(&b->dev, reg);
    return b;
}

bool qs_balloon_listen(qs_balloon *b, const char *spec, qs_error **errp)
{
    return qs_balloon_chan_listen(b->chan, spec, errp);
}

uint64_t qs_balloon_actual(const qs_balloon *b)
{
    return b->dev.actual;
}

void qs_balloon_set_log(qs_balloon *b, qs_balloon_log_fn fn, void *opaque)
{
    b->log_fn = fn;
    b->log_opaque = opaque;
}

void qs_balloon_set_answer_timeout(qs_balloon *b, uint64_t ms)
{
    qs_balloon_chan_set_timeout(b->chan, ms);
}

bool qs_balloon_agent_connected(const qs_balloon *b)
{
    return qs_balloon_chan_connected(b->chan);
}

void qs_balloon_free(qs_balloon *b)
{
    if (!b)
        return;
    qs_balloon_dev_unregister(&b->dev);
    uv_close((uv_handle_t *)&b->poll_timer, on_timer_closed);
    qs_balloon_chan_close(b->chan);
    b->chan = NULL;
}
