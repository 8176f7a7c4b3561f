/*
 * qs-balloon.h - the balloon provider: guest memory statistics with the
 * semantics of QEMU's virtio-balloon device (qemu-reference.md §5), fed by a
 * guest agent over a socket instead of a virtqueue.
 *
 *   device    the 16 virtio-balloon stats, the QOM object
 *             /machine/peripheral-anon/device[0] with guest-stats and
 *             guest-stats-polling-interval, the poll cycle (re-armed only
 *             when the guest answers) and the stats provider "balloon"
 *             (target vm) for query-stats / query-stats-schemas.
 *   channel   "unix:PATH" or "vsock:PORT": one guest agent at a time; the
 *             framing is described at the top of channel.c.
 *   agent     qs_balloon_guest_fill() fills records from a /proc tree the
 *             way Linux's virtio_balloon driver does; tools/
 *             qstats-guest-agent.c is the program around it.
 */
#ifndef QS_BALLOON_H
#define QS_BALLOON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "qs-core.h"

/* The one list of stats: virtio tag (implicit, in order), macro suffix,
 * QEMU's guest-stats key, provider stat name, type and unit.  The enum, the
 * name table and the schema are all generated from it, so they cannot go
 * out of step (QEMU 9.2-rc crashed when they did, reference B12). */
#define QS_BALLOON_STATS(X)                                                   \
    X(SWAP_IN,        "stat-swap-in",          "swap-in",          QS_TYPE_CUMULATIVE, QS_UNIT_BYTES) \
    X(SWAP_OUT,       "stat-swap-out",         "swap-out",         QS_TYPE_CUMULATIVE, QS_UNIT_BYTES) \
    X(MAJFLT,         "stat-major-faults",     "major-faults",     QS_TYPE_CUMULATIVE, QS_UNIT_NONE)  \
    X(MINFLT,         "stat-minor-faults",     "minor-faults",     QS_TYPE_CUMULATIVE, QS_UNIT_NONE)  \
    X(MEMFREE,        "stat-free-memory",      "free-memory",      QS_TYPE_INSTANT,    QS_UNIT_BYTES) \
    X(MEMTOT,         "stat-total-memory",     "total-memory",     QS_TYPE_INSTANT,    QS_UNIT_BYTES) \
    X(AVAIL,          "stat-available-memory", "available-memory", QS_TYPE_INSTANT,    QS_UNIT_BYTES) \
    X(CACHES,         "stat-disk-caches",      "disk-caches",      QS_TYPE_INSTANT,    QS_UNIT_BYTES) \
    X(HTLB_PGALLOC,   "stat-htlb-pgalloc",     "htlb-pgalloc",     QS_TYPE_CUMULATIVE, QS_UNIT_NONE)  \
    X(HTLB_PGFAIL,    "stat-htlb-pgfail",      "htlb-pgfail",      QS_TYPE_CUMULATIVE, QS_UNIT_NONE)  \
    X(OOM_KILL,       "stat-oom-kills",        "oom-kills",        QS_TYPE_CUMULATIVE, QS_UNIT_NONE)  \
    X(ALLOC_STALL,    "stat-alloc-stalls",     "alloc-stalls",     QS_TYPE_CUMULATIVE, QS_UNIT_NONE)  \
    X(ASYNC_SCAN,     "stat-async-scans",      "async-scans",      QS_TYPE_CUMULATIVE, QS_UNIT_NONE)  \
    X(DIRECT_SCAN,    "stat-direct-scans",     "direct-scans",     QS_TYPE_CUMULATIVE, QS_UNIT_NONE)  \
    X(ASYNC_RECLAIM,  "stat-async-reclaims",   "async-reclaims",   QS_TYPE_CUMULATIVE, QS_UNIT_NONE)  \
    X(DIRECT_RECLAIM, "stat-direct-reclaims",  "direct-reclaims",  QS_TYPE_CUMULATIVE, QS_UNIT_NONE)

#define QS_BALLOON_TAG_ENUM(macro, qemu, name, type, unit) QS_BALLOON_S_##macro,
enum qs_balloon_tag {
    QS_BALLOON_STATS(QS_BALLOON_TAG_ENUM)
    QS_BALLOON_S_NR     /* 16: tags at or above are ignored */
};
#undef QS_BALLOON_TAG_ENUM

/* Wire record: packed little-endian { u16 tag; u64 val; }. */
#define QS_BALLOON_RECORD_SIZE 10
/* At most this many records per answer (one per tag). */
#define QS_BALLOON_MAX_RECORDS QS_BALLOON_S_NR
#define QS_BALLOON_UNSET UINT64_MAX

/* The QOM path and type of the device.  As in QEMU, the object at that
 * path is the PCI proxy, whose properties alias the backend device's: error
 * texts name the proxy for unknown properties and the device for the
 * aliased ones ("virtio-balloon-device.guest-stats' is not writable"). */
#define QS_BALLOON_QOM_PATH "/machine/peripheral-anon/device[0]"
#define QS_BALLOON_QOM_TYPE "virtio-balloon-pci"
#define QS_BALLOON_DEVICE_TYPE "virtio-balloon-device"

/* QEMU's guest-stats key ("stat-swap-in") and the provider's stat name
 * ("swap-in") of a tag < QS_BALLOON_S_NR. */
const char *qs_balloon_stat_qemu_name(unsigned tag);
const char *qs_balloon_stat_name(unsigned tag);

/* ---- the provider with its channel ------------------------------------- */

typedef struct qs_balloon qs_balloon;

/* Registers provider "balloon" (target vm) and the QOM object at
 * QS_BALLOON_QOM_PATH.  actual_bytes is the guest memory size that
 * query-balloon and "info balloon" report. */
qs_balloon *qs_balloon_new(uv_loop_t *loop, qs_registry *reg, uint64_t actual_bytes);
/* "unix:PATH" (created mode 0600; a stale socket is replaced) or
 * "vsock:PORT" (any CID): accepts one guest agent at a time.  One listener
 * per qs_balloon. */
bool qs_balloon_listen(qs_balloon *b, const char *spec, qs_error **errp);
uint64_t qs_balloon_actual(const qs_balloon *b);
/* Adds QMP query-balloon and HMP `info balloon` (either server may be
 * NULL), answered by b; with b NULL they answer QEMU's "No balloon device
 * has been activated", as a VM without one does. */
typedef struct qs_qmp qs_qmp;
typedef struct qs_hmp qs_hmp;
bool qs_balloon_add_commands(qs_balloon *b, qs_qmp *qmp, qs_hmp *hmp, qs_error **errp);
/* Unregisters, closes every handle and unlinks the socket.  Memory is
 * released in close callbacks: the owner runs the loop afterwards. */
void qs_balloon_free(qs_balloon *b);

/* One line per event worth telling an operator (agent connected, dropped
 * and why).  Default: "qstats: balloon: MSG" on stderr. */
typedef void (*qs_balloon_log_fn)(void *opaque, const char *msg);
void qs_balloon_set_log(qs_balloon *b, qs_balloon_log_fn fn, void *opaque);
/* How long an agent may take to complete an answer (default 5000 ms). */
void qs_balloon_set_answer_timeout(qs_balloon *b, uint64_t ms);
/* Whether a guest agent is connected right now. */
bool qs_balloon_agent_connected(const qs_balloon *b);

/* ---- the guest side ---------------------------------------------------- */

/* Fills wire records from PROC_DIR/meminfo and PROC_DIR/vmstat the way
 * Linux's virtio_balloon driver fills its stats buffer; a field the tree
 * lacks is not sent.  `max` is the capacity of `records` in bytes; returns
 * the number of bytes written (a multiple of QS_BALLOON_RECORD_SIZE). */
size_t qs_balloon_guest_fill(const char *proc_dir, uint8_t *records, size_t max);

#endif
