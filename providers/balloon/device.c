/*
 * device.c - the host side of virtio-balloon statistics, independent of
 * how records reach it: the stat tables, record parsing
 * (docs/qemu-behaviour.md#balloon-records), the poll cycle
 * (docs/qemu-behaviour.md#balloon-polling), the QOM properties with QEMU's
 * error texts (docs/qemu-behaviour.md#balloon-properties) and qstats' own
 * "balloon" stats provider (docs/qemu-behaviour.md#differences, 7).
 *
 * The poll cycle mirrors the device's single stats buffer: the guest's
 * answer is "held" by the host until the timer fires and hands it back as
 * a request.  The timer is re-armed only when an answer arrives, so a guest
 * that stops answering stops the polling (as in QEMU) until it answers
 * again or the interval is changed.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define QEMU_NAME(macro, qemu, name, type, unit) qemu,
static const char *const qemu_names[] = { QS_BALLOON_STATS(QEMU_NAME) };
#undef QEMU_NAME

/* What each stat means, for people (the metrics # HELP lines). */
#define DESCRIBE(name, text) static const char desc_##name[] = text;
DESCRIBE(SWAP_IN, "Memory swapped in by the guest.")
DESCRIBE(SWAP_OUT, "Memory swapped out by the guest.")
DESCRIBE(MAJFLT, "Guest page faults that needed I/O.")
DESCRIBE(MINFLT, "Guest page faults served without I/O.")
DESCRIBE(MEMFREE, "Memory the guest reports as unused.")
DESCRIBE(MEMTOT, "Memory available to the guest kernel.")
DESCRIBE(AVAIL, "Memory the guest estimates it could use without swapping.")
DESCRIBE(CACHES, "Guest memory used for disk caches.")
DESCRIBE(HTLB_PGALLOC, "Huge-page allocations in the guest.")
DESCRIBE(HTLB_PGFAIL, "Failed huge-page allocations in the guest.")
DESCRIBE(OOM_KILL, "Processes the guest killed for lack of memory.")
DESCRIBE(ALLOC_STALL, "Guest memory allocations that stalled for reclaim.")
DESCRIBE(ASYNC_SCAN, "Pages scanned by the guest's background reclaim.")
DESCRIBE(DIRECT_SCAN, "Pages scanned by the guest's direct reclaim.")
DESCRIBE(ASYNC_RECLAIM, "Pages reclaimed by the guest's background reclaim.")
DESCRIBE(DIRECT_RECLAIM, "Pages reclaimed by the guest's direct reclaim.")
#undef DESCRIBE

/* The provider's schema: the 16 stats in tag order, then last-update. */
#define SCHEMA_ENTRY(macro, qemu, nm, ty, un) \
    { .name = nm, .type = ty, .unit = un, .size = 1, .description = desc_##macro },
static const qs_schema_value schema[] = {
    QS_BALLOON_STATS(SCHEMA_ENTRY)
    { .name = "last-update", .type = QS_TYPE_INSTANT, .unit = QS_UNIT_SECONDS, .size = 1,
      .description = "Wall-clock time (Unix seconds) of the guest's last statistics report." },
};
#undef SCHEMA_ENTRY

_Static_assert(sizeof(qemu_names) / sizeof(qemu_names[0]) == QS_BALLOON_S_NR,
               "one QEMU name per balloon tag");
_Static_assert(sizeof(schema) / sizeof(schema[0]) == QS_BALLOON_S_NR + 1,
               "one schema entry per balloon tag, plus last-update");

#define LAST_UPDATE (&schema[QS_BALLOON_S_NR])

const char *qs_balloon_stat_qemu_name(unsigned tag)
{
    return tag < QS_BALLOON_S_NR ? qemu_names[tag] : NULL;
}

const char *qs_balloon_stat_name(unsigned tag)
{
    return tag < QS_BALLOON_S_NR ? schema[tag].name : NULL;
}

/* ---- records ------------------------------------------------------------ */

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void qs_balloon_parse_records(uint64_t stats[QS_BALLOON_S_NR],
                              const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < QS_BALLOON_S_NR; i++)
        stats[i] = QS_BALLOON_UNSET;
    /* A trailing partial record is ignored; so are unknown tags; a later
     * duplicate overwrites an earlier one. */
    for (size_t off = 0; off + QS_BALLOON_RECORD_SIZE <= len;
         off += QS_BALLOON_RECORD_SIZE) {
        unsigned tag = (unsigned)buf[off] | (unsigned)buf[off + 1] << 8;
        if (tag < QS_BALLOON_S_NR)
            stats[tag] = le64(buf + off + 2);
    }
}

/* ---- the poll cycle ----------------------------------------------------- */

/* The published schema: every tag reported so far, then last-update. */
static void publish(qs_balloon_dev *d)
{
    d->npublished = 0;
    for (size_t i = 0; i < QS_BALLOON_S_NR; i++)
        if (d->reported & (1u << i))
            d->published[d->npublished++] = schema[i];
    d->published[d->npublished++] = *LAST_UPDATE;
}

void qs_balloon_dev_init(qs_balloon_dev *d, const qs_balloon_dev_ops *ops,
                         void *opaque, uint64_t actual)
{
    memset(d, 0, sizeof(*d));
    d->ops = ops;
    d->opaque = opaque;
    d->actual = actual;
    for (size_t i = 0; i < QS_BALLOON_S_NR; i++)
        d->stats[i] = QS_BALLOON_UNSET;
    publish(d);
}

/* A stat reported for the first time joins the schema, and clients that
 * poll query-stats-schemas are told (STATS_SCHEMA_CHANGED). */
static void learn_reported(qs_balloon_dev *d)
{
    uint32_t now = d->reported;
    for (size_t i = 0; i < QS_BALLOON_S_NR; i++)
        if (d->stats[i] != QS_BALLOON_UNSET)
            now |= 1u << i;
    if (now == d->reported)
        return;
    d->reported = now;
    publish(d);
    if (d->reg)
        qs_registry_schema_changed(d->reg, "balloon", QS_TARGET_VM);
}

void qs_balloon_dev_receive(qs_balloon_dev *d, const uint8_t *buf, size_t len)
{
    d->held = true;
    qs_balloon_parse_records(d->stats, buf, len);
    learn_reported(d);
    d->last_update = d->ops->wall_seconds(d->opaque);
    if (d->interval > 0)
        d->ops->timer_arm(d->opaque, (uint64_t)d->interval * 1000);
}

void qs_balloon_dev_timer_fired(qs_balloon_dev *d)
{
    if (d->interval <= 0)
        return;
    if (!d->held) {
        /* Nothing to hand back yet: look again one interval later. */
        d->ops->timer_arm(d->opaque, (uint64_t)d->interval * 1000);
        return;
    }
    d->held = false;
    d->ops->request(d->opaque);
}

void qs_balloon_dev_guest_gone(qs_balloon_dev *d)
{
    d->held = false;
}

/* ---- properties ---------------------------------------------------------- */

bool qs_balloon_dev_get_interval(void *opaque, qs_jw *out, qs_error **errp)
{
    const qs_balloon_dev *d = opaque;
    qs_jw_i64(out, d->interval);
    return true;
}

bool qs_balloon_dev_set_interval(void *opaque, const qs_input *in, qs_error **errp)
{
    qs_balloon_dev *d = opaque;

    /* Floats and integers above INT64_MAX fail like any non-integer. */
    if (in->kind != QS_IN_INT) {
        qs_error_setg(errp, "Invalid parameter type for 'guest-stats-polling-interval', "
                      "expected: integer");
        return false;
    }
    int64_t value = in->i;
    if (value < 0) {
        qs_error_setg(errp, "timer value must be greater than zero");
        return false;
    }
    if (value > (int64_t)UINT32_MAX) {
        qs_error_setg(errp, "timer value is too big");
        return false;
    }
    if (value == d->interval)
        return true;
    if (value == 0) {
        d->ops->timer_stop(d->opaque);
        d->interval = 0;
        return true;
    }
    bool enabled = d->interval > 0;
    d->interval = value;
    /* Enabling polls at once; changing an enabled interval re-arms. */
    d->ops->timer_arm(d->opaque, enabled ? (uint64_t)value * 1000 : 0);
    return true;
}

bool qs_balloon_dev_get_stats(void *opaque, qs_jw *out, qs_error **errp)
{
    const qs_balloon_dev *d = opaque;
    qs_jw_begin_object(out);
    qs_jw_key(out, "stats");
    qs_jw_begin_object(out);
    for (size_t i = 0; i < QS_BALLOON_S_NR; i++) {
        qs_jw_key(out, qemu_names[i]);
        qs_jw_u64(out, d->stats[i]);
    }
    qs_jw_end_object(out);
    qs_jw_key(out, "last-update");
    qs_jw_i64(out, d->last_update);
    qs_jw_end_object(out);
    return true;
}

static const qs_property properties[] = {
    { "guest-stats", "guest statistics", qs_balloon_dev_get_stats, NULL,
      QS_BALLOON_DEVICE_TYPE },
    { "guest-stats-polling-interval", "int",
      qs_balloon_dev_get_interval, qs_balloon_dev_set_interval, QS_BALLOON_DEVICE_TYPE },
};

/* ---- the stats provider -------------------------------------------------- */

static void add_value(qs_results *out, const qs_schema_value *desc, uint64_t v)
{
    size_t off = qs_results_reserve(out, 1);
    if (off == QS_RESULTS_FULL)
        return;                 /* over budget: the registry fails the query */
    *qs_results_values(out, off) = v;
    qs_results_add(out, desc, off);
}

static bool provider_stats(void *opaque, qs_results *out, qs_target target,
                           const qs_strlist *names, const qs_strlist *targets,
                           qs_error **errp)
{
    const qs_balloon_dev *d = opaque;
    if (target != QS_TARGET_VM)
        return true;
    qs_results_begin(out, "balloon", NULL);
    for (size_t i = 0; i < QS_BALLOON_S_NR; i++)
        if (d->stats[i] != QS_BALLOON_UNSET && qs_strlist_match(names, schema[i].name))
            add_value(out, &schema[i], d->stats[i]);
    if (qs_strlist_match(names, LAST_UPDATE->name))
        add_value(out, LAST_UPDATE, (uint64_t)d->last_update);
    /* A names filter that leaves nothing leaves no result, as for kvm. */
    qs_results_end(out, true);
    return true;
}

static bool provider_schemas(void *opaque, qs_schemas *out, qs_error **errp)
{
    const qs_balloon_dev *d = opaque;
    qs_schemas_add(out, "balloon", QS_TARGET_VM, d->published, d->npublished);
    return true;
}

void qs_balloon_dev_register(qs_balloon_dev *d, qs_registry *reg)
{
    d->reg = reg;
    d->entry = qs_registry_add(reg, "balloon", provider_stats,
                               provider_schemas, d, NULL);
    qs_registry_schema_changed(reg, "balloon", QS_TARGET_VM);
    d->obj = qs_registry_add_object(reg, QS_BALLOON_QOM_PATH, QS_BALLOON_QOM_TYPE,
                                    properties,
                                    sizeof(properties) / sizeof(properties[0]), d);
}

void qs_balloon_dev_unregister(qs_balloon_dev *d)
{
    if (!d->reg)
        return;
    qs_registry_remove(d->reg, d->entry);
    qs_registry_remove_object(d->reg, d->obj);
    qs_registry_schema_changed(d->reg, "balloon", QS_TARGET_VM);
    d->reg = NULL;
    d->entry = NULL;
    d->obj = NULL;
}
