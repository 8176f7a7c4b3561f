/*
 * internal.h - the balloon module's inner seams.  The device core
 * (device.c) knows nothing of libuv or sockets: it reaches its timer, its
 * clock and its guest through qs_balloon_dev_ops, so unit tests drive the
 * poll cycle with a fake clock and feed it records by hand, while
 * balloon.c plugs in a uv_timer_t and channel.c the guest agent.
 */
#ifndef QS_BALLOON_INTERNAL_H
#define QS_BALLOON_INTERNAL_H

#include "qs-common.h"
#include "qs-balloon.h"
#include "qs-balloon-guest.h"

typedef struct qs_balloon_dev_ops {
    /* (Re-)arms the poll timer to fire once after delay_ms. */
    void (*timer_arm)(void *opaque, uint64_t delay_ms);
    void (*timer_stop)(void *opaque);
    /* Hands the held buffer back to the guest: ask it for fresh stats. */
    void (*request)(void *opaque);
    /* Host wall-clock seconds, for last-update. */
    int64_t (*wall_seconds)(void *opaque);
} qs_balloon_dev_ops;

typedef struct qs_balloon_dev {
    const qs_balloon_dev_ops *ops;
    void *opaque;
    uint64_t stats[QS_BALLOON_S_NR];
    int64_t last_update;        /* 0 until the first answer */
    int64_t interval;           /* seconds; 0 = polling disabled */
    bool held;                  /* the guest's buffer is with the host */
    uint64_t actual;
    /* The schema published: the stats the guest has ever reported, in
     * tag order, then last-update (it grows; each growth is announced). */
    qs_schema_value published[QS_BALLOON_S_NR + 1];
    size_t npublished;
    uint32_t reported;          /* tags ever reported */
    qs_provider_entry *entry;
    qs_object *obj;
    qs_registry *reg;
} qs_balloon_dev;

/* Stats unset, polling off, nothing held. */
void qs_balloon_dev_init(qs_balloon_dev *d, const qs_balloon_dev_ops *ops,
                         void *opaque, uint64_t actual);
/* Registers the provider and the QOM object; unregister undoes both. */
void qs_balloon_dev_register(qs_balloon_dev *d, qs_registry *reg);
void qs_balloon_dev_unregister(qs_balloon_dev *d);

/* The guest returned a buffer (docs/qemu-behaviour.md#balloon-polling):
 * reset, parse, last-update = now, re-arm if polling. */
void qs_balloon_dev_receive(qs_balloon_dev *d, const uint8_t *buf, size_t len);
/* The poll timer fired (docs/qemu-behaviour.md#balloon-polling). */
void qs_balloon_dev_timer_fired(qs_balloon_dev *d);
/* The guest went away (virtio reset): a held buffer is dropped. */
void qs_balloon_dev_guest_gone(qs_balloon_dev *d);

/* Resets all stats to unset, then applies every complete record
 * (docs/qemu-behaviour.md#balloon-records). */
void qs_balloon_parse_records(uint64_t stats[QS_BALLOON_S_NR],
                              const uint8_t *buf, size_t len);

/* The property callbacks (opaque = the qs_balloon_dev). */
bool qs_balloon_dev_get_interval(void *opaque, qs_jw *out, qs_error **errp);
bool qs_balloon_dev_set_interval(void *opaque, const qs_input *in, qs_error **errp);
bool qs_balloon_dev_get_stats(void *opaque, qs_jw *out, qs_error **errp);

/* ---- channel.c ---------------------------------------------------------- */

typedef struct qs_balloon_chan qs_balloon_chan;

typedef struct qs_balloon_chan_cb {
    /* A complete answer arrived (records without the length prefix). */
    void (*answer)(void *opaque, const uint8_t *records, size_t len);
    /* The agent is gone (disconnected or dropped). */
    void (*gone)(void *opaque);
    void (*log)(void *opaque, const char *msg);
    /* The channel's memory is released: the owner may go too. */
    void (*closed)(void *opaque);
    void *opaque;
} qs_balloon_chan_cb;

qs_balloon_chan *qs_balloon_chan_new(uv_loop_t *loop, const qs_balloon_chan_cb *cb);
bool qs_balloon_chan_listen(qs_balloon_chan *c, const char *spec, qs_error **errp);
/* Sends a stats request; false when no agent is connected. */
bool qs_balloon_chan_request(qs_balloon_chan *c);
bool qs_balloon_chan_connected(const qs_balloon_chan *c);
void qs_balloon_chan_set_timeout(qs_balloon_chan *c, uint64_t ms);
/* Closes everything; cb->closed runs once all handles are closed. */
void qs_balloon_chan_close(qs_balloon_chan *c);

#endif
