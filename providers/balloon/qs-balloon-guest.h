/*
 * qs-balloon-guest.h - (internal) the virtio-balloon statistics as they
 * travel: the tags and their names, the packed records, and the guest
 * side that fills them from /proc as Linux's virtio_balloon driver does
 * (guest_stats.c).  Shared by the device, qstats-guest-agent and the tests;
 * not part of the embedding API.
 */
#ifndef QS_BALLOON_GUEST_H
#define QS_BALLOON_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "qs-core.h"

/* The one list of stats: virtio tag (implicit, in order), macro suffix,
 * QEMU's guest-stats key, provider stat name, type and unit.  The enum, the
 * name table and the schema are all generated from it, so they cannot go
 * out of step (QEMU 9.2-rc crashed when they did:
 * docs/qemu-behaviour.md#balloon-names). */
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


/* QEMU's guest-stats key ("stat-swap-in") and the provider's stat name
 * ("swap-in") of a tag < QS_BALLOON_S_NR. */
const char *qs_balloon_stat_qemu_name(unsigned tag);
const char *qs_balloon_stat_name(unsigned tag);

/* ---- the guest side ---------------------------------------------------- */

/* Fills wire records from PROC_DIR/meminfo and PROC_DIR/vmstat the way
 * Linux's virtio_balloon driver fills its stats buffer; a field the tree
 * lacks is not sent.  `max` is the capacity of `records` in bytes; returns
 * the number of bytes written (a multiple of QS_BALLOON_RECORD_SIZE). */
size_t qs_balloon_guest_fill(const char *proc_dir, uint8_t *records, size_t max);

#endif
