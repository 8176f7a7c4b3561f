/*
 * test_balloon_device.c - the balloon device core (providers/balloon/
 * device.c) without any transport: record parsing, the polling-interval
 * setter and its QEMU error texts, the poll cycle on a fake clock
 * (docs/qemu-behaviour.md: #balloon-records, #balloon-properties,
 * #balloon-polling), the guest-stats JSON, and the "balloon" stats
 * provider and schema, all reached through a real registry the way the QMP
 * layer reaches them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "providers/balloon/internal.h"

/* ---- a fake timer, clock and guest --------------------------------------- */

typedef struct fake {
    qs_balloon_dev dev;
    qs_registry *reg;
    uint64_t now_ms;
    bool armed;
    uint64_t deadline;
    int arms;
    int requests;
    int64_t wall;
} fake;

static void f_arm(void *o, uint64_t delay)
{
    fake *f = o;
    f->armed = true;
    f->deadline = f->now_ms + delay;
    f->arms++;
}

static void f_stop(void *o) { ((fake *)o)->armed = false; }
static void f_request(void *o) { ((fake *)o)->requests++; }
static int64_t f_wall(void *o) { return ((fake *)o)->wall; }

static const qs_balloon_dev_ops fake_ops = {
    .timer_arm = f_arm, .timer_stop = f_stop, .request = f_request, .wall_seconds = f_wall,
};

/* Moves the fake clock, firing the timer whenever its deadline passes. */
static void advance(fake *f, uint64_t ms)
{
    uint64_t end = f->now_ms + ms;
    while (f->armed && f->deadline <= end) {
        f->now_ms = f->deadline;
        f->armed = false;
        qs_balloon_dev_timer_fired(&f->dev);
    }
    f->now_ms = end;
}

static int setup(void **state)
{
    fake *f = calloc(1, sizeof(*f));
    f->wall = 1700000000;
    f->reg = qs_registry_new();
    qs_balloon_dev_init(&f->dev, &fake_ops, f, 256ull << 20);
    qs_balloon_dev_register(&f->dev, f->reg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fake *f = *state;
    qs_balloon_dev_unregister(&f->dev);
    qs_registry_free(f->reg);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------------- */

static size_t rec(uint8_t *p, unsigned tag, uint64_t val)
{
    p[0] = (uint8_t)tag;
    p[1] = (uint8_t)(tag >> 8);
    for (int i = 0; i < 8; i++)
        p[2 + i] = (uint8_t)(val >> (8 * i));
    return QS_BALLOON_RECORD_SIZE;
}

static qs_input int_in(int64_t v) { return (qs_input){ .kind = QS_IN_INT, .i = v }; }

static char *set_interval_err(fake *f, const qs_input *in)
{
    qs_error *err = NULL;
    bool ok = qs_registry_qom_set(f->reg, QS_BALLOON_QOM_PATH,
                                  "guest-stats-polling-interval", in, &err);
    if (ok) {
        assert_null(err);
        return NULL;
    }
    assert_non_null(err);
    char *msg = strdup(err->msg);
    qs_error_free(err);
    return msg;
}

static void set_interval(fake *f, int64_t v)
{
    qs_input in = int_in(v);
    char *msg = set_interval_err(f, &in);
    if (msg)
        fail_msg("setting %lld failed: %s", (long long)v, msg);
}

static void assert_set_fails(fake *f, const qs_input *in, const char *text)
{
    char *msg = set_interval_err(f, in);
    assert_non_null(msg);
    assert_string_equal(msg, text);
    free(msg);
}

static char *qom_get(fake *f, const char *path, const char *prop)
{
    qs_buf b;
    qs_jw w;
    qs_error *err = NULL;
    qs_buf_init(&b);
    qs_jw_init(&w, &b);
    if (!qs_registry_qom_get(f->reg, path, prop, &w, &err)) {
        char *msg = qs_strdup_printf("ERROR: %s", err->msg);
        qs_error_free(err);
        qs_buf_free(&b);
        return msg;
    }
    return qs_buf_steal(&b);
}

/* ---- the table ------------------------------------------------------------- */

static void test_table_names_follow_tags(void **state)
{
    static const char *const names[QS_BALLOON_S_NR] = {
        "swap-in", "swap-out", "major-faults", "minor-faults", "free-memory",
        "total-memory", "available-memory", "disk-caches", "htlb-pgalloc",
        "htlb-pgfail", "oom-kills", "alloc-stalls", "async-scans", "direct-scans",
        "async-reclaims", "direct-reclaims",
    };
    assert_int_equal(QS_BALLOON_S_NR, 16);
    assert_int_equal(QS_BALLOON_S_MEMTOT, 5);
    assert_int_equal(QS_BALLOON_S_DIRECT_RECLAIM, 15);
    for (unsigned t = 0; t < QS_BALLOON_S_NR; t++) {
        char qemu[64];
        snprintf(qemu, sizeof(qemu), "stat-%s", names[t]);
        assert_string_equal(qs_balloon_stat_name(t), names[t]);
        assert_string_equal(qs_balloon_stat_qemu_name(t), qemu);
    }
    assert_null(qs_balloon_stat_name(QS_BALLOON_S_NR));
    assert_null(qs_balloon_stat_qemu_name(QS_BALLOON_S_NR));
}

/* ---- parsing ----------------------------------------------------------------- */

static void test_parse_reads_little_endian_records_in_any_order(void **state)
{
    uint8_t buf[64];
    uint64_t st[QS_BALLOON_S_NR];
    size_t n = 0;
    n += rec(buf + n, QS_BALLOON_S_MEMTOT, 0x0102030405060708ull);
    n += rec(buf + n, QS_BALLOON_S_SWAP_IN, 7);
    n += rec(buf + n, QS_BALLOON_S_DIRECT_RECLAIM, UINT64_MAX - 1);
    qs_balloon_parse_records(st, buf, n);
    assert_int_equal(st[QS_BALLOON_S_MEMTOT], 0x0102030405060708ull);
    assert_int_equal(st[QS_BALLOON_S_SWAP_IN], 7);
    assert_true(st[QS_BALLOON_S_DIRECT_RECLAIM] == UINT64_MAX - 1);
    assert_true(st[QS_BALLOON_S_MEMFREE] == QS_BALLOON_UNSET);
}

static void test_parse_ignores_partial_trailing_record(void **state)
{
    uint8_t buf[64];
    uint64_t st[QS_BALLOON_S_NR];
    size_t n = rec(buf, QS_BALLOON_S_MAJFLT, 3);
    n += rec(buf + n, QS_BALLOON_S_MINFLT, 4);
    /* 9 of the second record's 10 bytes */
    qs_balloon_parse_records(st, buf, n - 1);
    assert_int_equal(st[QS_BALLOON_S_MAJFLT], 3);
    assert_true(st[QS_BALLOON_S_MINFLT] == QS_BALLOON_UNSET);
    /* shorter than one record: nothing */
    qs_balloon_parse_records(st, buf, 9);
    assert_true(st[QS_BALLOON_S_MAJFLT] == QS_BALLOON_UNSET);
}

static void test_parse_ignores_unknown_tags(void **state)
{
    uint8_t buf[64];
    uint64_t st[QS_BALLOON_S_NR];
    size_t n = rec(buf, QS_BALLOON_S_NR, 1);
    n += rec(buf + n, 0xffff, 2);
    n += rec(buf + n, 0x0100 | QS_BALLOON_S_SWAP_IN, 3);   /* high byte counts */
    n += rec(buf + n, QS_BALLOON_S_OOM_KILL, 4);
    qs_balloon_parse_records(st, buf, n);
    for (unsigned t = 0; t < QS_BALLOON_S_NR; t++)
        assert_true(st[t] == (t == QS_BALLOON_S_OOM_KILL ? 4 : QS_BALLOON_UNSET));
}

static void test_parse_last_duplicate_wins(void **state)
{
    uint8_t buf[64];
    uint64_t st[QS_BALLOON_S_NR];
    size_t n = rec(buf, QS_BALLOON_S_MEMFREE, 100);
    n += rec(buf + n, QS_BALLOON_S_MEMTOT, 5);
    n += rec(buf + n, QS_BALLOON_S_MEMFREE, 200);
    qs_balloon_parse_records(st, buf, n);
    assert_int_equal(st[QS_BALLOON_S_MEMFREE], 200);
}

static void test_parse_resets_every_stat_first(void **state)
{
    uint8_t buf[16];
    uint64_t st[QS_BALLOON_S_NR];
    for (unsigned t = 0; t < QS_BALLOON_S_NR; t++)
        st[t] = t;
    qs_balloon_parse_records(st, buf, rec(buf, QS_BALLOON_S_CACHES, 9));
    for (unsigned t = 0; t < QS_BALLOON_S_NR; t++)
        assert_true(st[t] == (t == QS_BALLOON_S_CACHES ? 9 : QS_BALLOON_UNSET));
}

static void test_empty_answer_unsets_stats_and_updates_last_update(void **state)
{
    fake *f = *state;
    uint8_t buf[16];
    qs_balloon_dev_receive(&f->dev, buf, rec(buf, QS_BALLOON_S_MEMTOT, 1 << 20));
    assert_int_equal(f->dev.last_update, 1700000000);
    f->wall += 30;
    qs_balloon_dev_receive(&f->dev, NULL, 0);
    assert_int_equal(f->dev.last_update, 1700000030);
    assert_true(f->dev.stats[QS_BALLOON_S_MEMTOT] == QS_BALLOON_UNSET);
}

/* ---- the polling interval property ------------------------------------------- */

static void test_interval_rejects_non_integers(void **state)
{
    fake *f = *state;
    static const char *text =
        "Invalid parameter type for 'guest-stats-polling-interval', expected: integer";
    qs_input in[] = {
        { .kind = QS_IN_REAL, .d = 2.0 },
        { .kind = QS_IN_UINT, .u = 9223372036854775808ull },
        { .kind = QS_IN_STRING, .s = "2" },
        { .kind = QS_IN_BOOL, .b = true },
        { .kind = QS_IN_NULL },
        { .kind = QS_IN_OBJECT },
        { .kind = QS_IN_ARRAY },
    };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        assert_set_fails(f, &in[i], text);
    assert_int_equal(f->dev.interval, 0);
    assert_int_equal(f->arms, 0);
}

static void test_interval_range_errors(void **state)
{
    fake *f = *state;
    qs_input neg = int_in(-1), min = int_in(INT64_MIN);
    qs_input big = int_in(4294967296ll), max = int_in(INT64_MAX);
    assert_set_fails(f, &neg, "timer value must be greater than zero");
    assert_set_fails(f, &min, "timer value must be greater than zero");
    assert_set_fails(f, &big, "timer value is too big");
    assert_set_fails(f, &max, "timer value is too big");
    assert_int_equal(f->dev.interval, 0);
    set_interval(f, 4294967295ll);
    assert_int_equal(f->dev.interval, 4294967295ll);
    assert_true(f->deadline == 0);   /* enabled: first poll at once */
}

static void test_interval_get_returns_value(void **state)
{
    fake *f = *state;
    char *s = qom_get(f, QS_BALLOON_QOM_PATH, "guest-stats-polling-interval");
    assert_string_equal(s, "0");
    free(s);
    set_interval(f, 2);
    s = qom_get(f, QS_BALLOON_QOM_PATH, "guest-stats-polling-interval");
    assert_string_equal(s, "2");
    free(s);
}

static void test_qom_errors_name_the_device_type(void **state)
{
    fake *f = *state;
    qs_error *err = NULL;
    qs_input in = int_in(1);
    assert_false(qs_registry_qom_set(f->reg, QS_BALLOON_QOM_PATH, "guest-stats", &in, &err));
    assert_string_equal(err->msg, "Property 'virtio-balloon-device.guest-stats' is not writable");
    qs_error_free(err);
    err = NULL;
    char *s = qom_get(f, QS_BALLOON_QOM_PATH, "stats-polling-interval");
    assert_string_equal(s, "ERROR: Property 'virtio-balloon-pci.stats-polling-interval' "
                           "not found");
    free(s);
    s = qom_get(f, "/machine/peripheral-anon/device[1]", "guest-stats");
    assert_string_equal(s, "ERROR: Device '/machine/peripheral-anon/device[1]' not found");
    free(s);
    s = qom_get(f, QS_BALLOON_QOM_PATH, "type");
    assert_string_equal(s, "\"virtio-balloon-pci\"");
    free(s);
}

static void test_qom_list_shows_both_properties(void **state)
{
    fake *f = *state;
    qs_prop_info *v;
    size_t n;
    qs_error *err = NULL;
    assert_true(qs_registry_qom_list(f->reg, QS_BALLOON_QOM_PATH, &v, &n, &err));
    bool stats = false, interval = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].name, "guest-stats") == 0)
            stats = strcmp(v[i].type, "guest statistics") == 0;
        if (strcmp(v[i].name, "guest-stats-polling-interval") == 0)
            interval = strcmp(v[i].type, "int") == 0;
    }
    qs_prop_info_free(v, n);
    assert_true(stats);
    assert_true(interval);
}

/* ---- the poll cycle ------------------------------------------------------------ */

static void test_enabling_polls_at_once(void **state)
{
    fake *f = *state;
    qs_balloon_dev_receive(&f->dev, NULL, 0);     /* the initial buffer */
    assert_false(f->armed);                        /* polling is off */
    f->now_ms = 5000;
    set_interval(f, 2);
    assert_true(f->armed);
    assert_true(f->deadline == 5000);
    advance(f, 0);
    assert_int_equal(f->requests, 1);
}

static void test_timer_rearms_only_when_guest_answers(void **state)
{
    fake *f = *state;
    qs_balloon_dev_receive(&f->dev, NULL, 0);
    set_interval(f, 2);
    advance(f, 0);
    assert_int_equal(f->requests, 1);
    assert_false(f->armed);
    advance(f, 60000);                             /* a silent guest stops polling */
    assert_int_equal(f->requests, 1);
    assert_false(f->armed);
    qs_balloon_dev_receive(&f->dev, NULL, 0);      /* it answers */
    assert_true(f->armed);
    advance(f, 1999);
    assert_int_equal(f->requests, 1);
    advance(f, 1);
    assert_int_equal(f->requests, 2);
}

static void test_timer_without_held_buffer_looks_again(void **state)
{
    fake *f = *state;
    set_interval(f, 3);                            /* no guest yet */
    advance(f, 0);
    assert_int_equal(f->requests, 0);
    assert_true(f->armed);
    assert_true(f->deadline == 3000);
    qs_balloon_dev_receive(&f->dev, NULL, 0);      /* a guest arrives */
    assert_true(f->deadline == 3000);              /* re-armed: now + interval */
    advance(f, 3000);
    assert_int_equal(f->requests, 1);
}

static void test_guest_gone_drops_held_buffer(void **state)
{
    fake *f = *state;
    qs_balloon_dev_receive(&f->dev, NULL, 0);
    qs_balloon_dev_guest_gone(&f->dev);
    set_interval(f, 1);
    advance(f, 5000);
    assert_int_equal(f->requests, 0);
    assert_true(f->armed);
}

static void test_interval_change_rearms(void **state)
{
    fake *f = *state;
    set_interval(f, 2);
    advance(f, 0);                                 /* no guest: re-armed at 2000 */
    assert_true(f->deadline == 2000);
    advance(f, 1000);
    set_interval(f, 5);
    assert_true(f->armed);
    assert_true(f->deadline == 6000);              /* now + 5 s, not immediate */
}

static void test_same_interval_is_a_no_op(void **state)
{
    fake *f = *state;
    set_interval(f, 2);
    advance(f, 500);                               /* fired at 0, re-armed at 2000 */
    int arms = f->arms;
    uint64_t deadline = f->deadline;
    set_interval(f, 2);
    assert_int_equal(f->arms, arms);
    assert_true(f->deadline == deadline);
    set_interval(f, 0);
    arms = f->arms;
    set_interval(f, 0);
    assert_int_equal(f->arms, arms);
    assert_false(f->armed);
}

static void test_zero_stops_polling_but_answers_still_count(void **state)
{
    fake *f = *state;
    uint8_t buf[16];
    qs_balloon_dev_receive(&f->dev, NULL, 0);
    set_interval(f, 2);
    advance(f, 0);
    set_interval(f, 0);
    assert_false(f->armed);
    f->wall += 7;
    qs_balloon_dev_receive(&f->dev, buf, rec(buf, QS_BALLOON_S_MEMFREE, 42));
    assert_false(f->armed);
    assert_int_equal(f->dev.last_update, 1700000007);
    assert_int_equal(f->dev.stats[QS_BALLOON_S_MEMFREE], 42);
    advance(f, 100000);
    assert_int_equal(f->requests, 1);
}

/* ---- guest-stats ---------------------------------------------------------------- */

static void test_guest_stats_has_all_keys_and_exact_unset(void **state)
{
    fake *f = *state;
    qs_buf want;
    qs_buf_init(&want);
    qs_buf_puts(&want, "{\"stats\": {");
    for (unsigned t = 0; t < QS_BALLOON_S_NR; t++)
        qs_buf_printf(&want, "%s\"%s\": 18446744073709551615", t ? ", " : "",
                      qs_balloon_stat_qemu_name(t));
    qs_buf_puts(&want, "}, \"last-update\": 0}");
    char *s = qom_get(f, QS_BALLOON_QOM_PATH, "guest-stats");
    assert_string_equal(s, want.data);
    free(s);
    qs_buf_free(&want);
}

static void test_guest_stats_after_answer(void **state)
{
    fake *f = *state;
    uint8_t buf[32];
    size_t n = rec(buf, QS_BALLOON_S_MEMTOT, 25276514304ull);
    n += rec(buf + n, QS_BALLOON_S_OOM_KILL, 0);
    qs_balloon_dev_receive(&f->dev, buf, n);
    char *s = qom_get(f, QS_BALLOON_QOM_PATH, "guest-stats");
    assert_non_null(strstr(s, "\"stat-total-memory\": 25276514304, "));
    assert_non_null(strstr(s, "\"stat-oom-kills\": 0, "));
    assert_non_null(strstr(s, "\"stat-free-memory\": 18446744073709551615"));
    assert_non_null(strstr(s, "}, \"last-update\": 1700000000}"));
    free(s);
}

/* ---- the stats provider ----------------------------------------------------------- */

static void query(fake *f, qs_target target, const qs_strlist *names, qs_results *r)
{
    qs_stats_request req = { .provider = "balloon", .has_names = names != NULL };
    if (names)
        req.names = *names;
    qs_filter flt = { .target = target, .has_providers = true, .nproviders = 1,
                      .providers = &req };
    qs_error *err = NULL;
    assert_true(qs_registry_query_stats(f->reg, &flt, r, &err));
}

static void test_provider_reports_set_stats_and_last_update(void **state)
{
    fake *f = *state;
    uint8_t buf[32];
    size_t n = rec(buf, QS_BALLOON_S_MEMTOT, 1ull << 30);
    n += rec(buf + n, QS_BALLOON_S_SWAP_OUT, 0);
    qs_balloon_dev_receive(&f->dev, buf, n);
    qs_results r;
    qs_results_init(&r);
    query(f, QS_TARGET_VM, NULL, &r);
    assert_int_equal(r.nres, 1);
    assert_string_equal(r.res[0].provider, "balloon");
    assert_null(r.res[0].qom_path);
    assert_int_equal(r.res[0].count, 3);
    const char *names[] = { "swap-out", "total-memory", "last-update" };
    uint64_t vals[] = { 0, 1ull << 30, 1700000000 };
    for (size_t i = 0; i < 3; i++) {
        const qs_stat *st = &r.stats[r.res[0].first + i];
        assert_string_equal(st->desc->name, names[i]);
        assert_true(*qs_results_values(&r, st->off) == vals[i]);
    }
    query(f, QS_TARGET_VCPU, NULL, &r);
    assert_int_equal(r.nres, 0);
    qs_results_destroy(&r);
}

static void test_provider_applies_names_filter(void **state)
{
    fake *f = *state;
    uint8_t buf[32];
    size_t n = rec(buf, QS_BALLOON_S_MEMTOT, 77);
    n += rec(buf + n, QS_BALLOON_S_MEMFREE, 5);
    qs_balloon_dev_receive(&f->dev, buf, n);
    qs_results r;
    qs_results_init(&r);
    const char *one[] = { "total-memory", "stat-free-memory" };
    qs_strlist l = { .n = 2, .v = one };
    query(f, QS_TARGET_VM, &l, &r);
    assert_int_equal(r.nres, 1);
    assert_int_equal(r.res[0].count, 1);
    assert_string_equal(r.stats[r.res[0].first].desc->name, "total-memory");
    const char *none[] = { "swap-in" };             /* known but unset */
    l = (qs_strlist){ .n = 1, .v = none };
    query(f, QS_TARGET_VM, &l, &r);
    assert_int_equal(r.nres, 0);
    const char *lu[] = { "last-update" };
    l = (qs_strlist){ .n = 1, .v = lu };
    query(f, QS_TARGET_VM, &l, &r);
    assert_int_equal(r.nres, 1);
    assert_int_equal(r.res[0].count, 1);
    qs_results_destroy(&r);
}

static void count_schema_events(void *opaque, const qs_event *ev)
{
    if (ev->kind == QS_EVENT_SCHEMA_CHANGED && !strcmp(ev->provider, "balloon") &&
        ev->target == QS_TARGET_VM)
        ++*(int *)opaque;
}

/* The schema lists what the guest has ever reported, then last-update;
 * each stat reported for the first time announces a schema change, once. */
static void test_schema_grows_with_the_stats_reported_and_says_so(void **state)
{
    fake *f = *state;
    qs_schemas s;
    qs_error *err = NULL;
    int changes = 0;
    qs_watch *w = qs_registry_watch(f->reg, count_schema_events, &changes);
    qs_schemas_init(&s);
    assert_true(qs_registry_query_schemas(f->reg, "balloon", &s, &err));
    assert_int_equal(s.v[0].n, 1);
    assert_string_equal(s.v[0].stats[0].name, "last-update");
    uint8_t buf[QS_BALLOON_RECORD_SIZE * 2];
    size_t n = rec(buf, QS_BALLOON_S_MEMFREE, 5);
    n += rec(buf + n, QS_BALLOON_S_SWAP_IN, 7);
    qs_balloon_dev_receive(&f->dev, buf, n);
    assert_int_equal(changes, 1);
    assert_true(qs_registry_query_schemas(f->reg, "balloon", &s, &err));
    assert_int_equal(s.v[0].n, 3);                       /* tag order */
    assert_string_equal(s.v[0].stats[0].name, "swap-in");
    assert_string_equal(s.v[0].stats[1].name, "free-memory");
    qs_balloon_dev_receive(&f->dev, buf, n);             /* nothing new */
    qs_balloon_dev_receive(&f->dev, NULL, 0);            /* nothing reported */
    assert_int_equal(changes, 1);
    assert_true(qs_registry_query_schemas(f->reg, "balloon", &s, &err));
    assert_int_equal(s.v[0].n, 3);                       /* never shrinks */
    qs_registry_unwatch(f->reg, w);
    qs_schemas_destroy(&s);
}

static void test_schema_matches_contract(void **state)
{
    fake *f = *state;
    qs_schemas s;
    qs_error *err = NULL;
    qs_schemas_init(&s);
    uint8_t buf[QS_BALLOON_RECORD_SIZE * QS_BALLOON_S_NR];
    size_t n = 0;
    for (unsigned tag = 0; tag < QS_BALLOON_S_NR; tag++)
        n += rec(buf + n, tag, tag);
    qs_balloon_dev_receive(&f->dev, buf, n);             /* every stat reported */
    assert_true(qs_registry_query_schemas(f->reg, "balloon", &s, &err));
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].provider, "balloon");
    assert_int_equal(s.v[0].target, QS_TARGET_VM);
    assert_int_equal(s.v[0].n, 17);
    for (size_t i = 0; i < s.v[0].n; i++) {
        const qs_schema_value *sv = &s.v[0].stats[i];
        const char *nm = sv->name;
        bool bytes = i == QS_BALLOON_S_SWAP_IN || i == QS_BALLOON_S_SWAP_OUT ||
                     (i >= QS_BALLOON_S_MEMFREE && i <= QS_BALLOON_S_CACHES);
        bool instant = i >= QS_BALLOON_S_MEMFREE && i <= QS_BALLOON_S_CACHES;
        if (i == QS_BALLOON_S_NR) {
            assert_string_equal(nm, "last-update");
            assert_int_equal(sv->type, QS_TYPE_INSTANT);
            assert_int_equal(sv->unit, QS_UNIT_SECONDS);
        } else {
            assert_string_equal(nm, qs_balloon_stat_name((unsigned)i));
            assert_int_equal(sv->type, instant ? QS_TYPE_INSTANT : QS_TYPE_CUMULATIVE);
            assert_int_equal(sv->unit, bytes ? QS_UNIT_BYTES : QS_UNIT_NONE);
        }
        assert_int_equal(sv->exponent, 0);
        assert_int_equal(sv->base, 0);
        assert_int_equal(sv->size, 1);
        assert_int_equal(qs_schema_value_kind(sv), QS_VALUE_SCALAR);
    }
    assert_true(qs_registry_query_schemas(f->reg, "kvm", &s, &err));
    assert_int_equal(s.n, 0);
    qs_schemas_destroy(&s);
}

static void test_unregister_removes_provider_and_object(void **state)
{
    fake *f = *state;
    qs_balloon_dev_unregister(&f->dev);
    char *s = qom_get(f, QS_BALLOON_QOM_PATH, "guest-stats");
    assert_string_equal(s, "ERROR: Device '/machine/peripheral-anon/device[0]' not found");
    free(s);
    qs_results r;
    qs_results_init(&r);
    query(f, QS_TARGET_VM, NULL, &r);
    assert_int_equal(r.nres, 0);
    qs_results_destroy(&r);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_table_names_follow_tags),
        T(test_parse_reads_little_endian_records_in_any_order),
        T(test_parse_ignores_partial_trailing_record),
        T(test_parse_ignores_unknown_tags),
        T(test_parse_last_duplicate_wins),
        T(test_parse_resets_every_stat_first),
        T(test_empty_answer_unsets_stats_and_updates_last_update),
        T(test_interval_rejects_non_integers),
        T(test_interval_range_errors),
        T(test_interval_get_returns_value),
        T(test_qom_errors_name_the_device_type),
        T(test_qom_list_shows_both_properties),
        T(test_enabling_polls_at_once),
        T(test_timer_rearms_only_when_guest_answers),
        T(test_timer_without_held_buffer_looks_again),
        T(test_guest_gone_drops_held_buffer),
        T(test_interval_change_rearms),
        T(test_same_interval_is_a_no_op),
        T(test_zero_stops_polling_but_answers_still_count),
        T(test_guest_stats_has_all_keys_and_exact_unset),
        T(test_guest_stats_after_answer),
        T(test_provider_reports_set_stats_and_last_update),
        T(test_provider_applies_names_filter),
        T(test_schema_grows_with_the_stats_reported_and_says_so),
        T(test_schema_matches_contract),
        T(test_unregister_removes_provider_and_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
