/*
 * test_balloon_agent.c - the guest agent's mapping from a /proc tree to
 * virtio-balloon records (providers/balloon/guest_stats.c), on fixture
 * trees in tests/fixtures/proc-*:
 *
 *   proc-linux-6.18     this host's meminfo and vmstat, with the event
 *                       counters set to distinct values so that every
 *                       mapping (and every unit conversion) is pinned;
 *   proc-linux-3.10     an older kernel: no MemAvailable, no oom_kill,
 *                       per-zone pgscan/pgsteal only, one allocstall;
 *   proc-meminfo-only   no vmstat at all.
 *
 * The records are decoded with the host's own parser, so the test also
 * checks that both sides agree on the wire format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "providers/balloon/internal.h"

static uint64_t page;

static void fixture(const char *name, char *out, size_t n)
{
    const char *dir = getenv("QS_FIXTURES");
    snprintf(out, n, "%s/%s", dir ? dir : "tests/fixtures", name);
}

/* Fills from a fixture tree and decodes with the host parser. */
static size_t fill(const char *tree, uint64_t st[QS_BALLOON_S_NR], uint8_t *buf, size_t max)
{
    char dir[4096];
    fixture(tree, dir, sizeof(dir));
    size_t n = qs_balloon_guest_fill(dir, buf, max);
    assert_int_equal(n % QS_BALLOON_RECORD_SIZE, 0);
    qs_balloon_parse_records(st, buf, n);
    return n;
}

static void assert_stat(const uint64_t *st, unsigned tag, uint64_t want)
{
    if (st[tag] != want)
        fail_msg("%s: got %llu, want %llu", qs_balloon_stat_name(tag),
                 (unsigned long long)st[tag], (unsigned long long)want);
}

static void test_linux_6_18_fills_all_sixteen_like_the_driver(void **state)
{
    uint8_t buf[QS_BALLOON_MAX_RECORDS * QS_BALLOON_RECORD_SIZE];
    uint64_t st[QS_BALLOON_S_NR];
    size_t n = fill("proc-linux-6.18", st, buf, sizeof(buf));
    assert_int_equal(n, 160);
    assert_stat(st, QS_BALLOON_S_SWAP_IN, 11 * page);
    assert_stat(st, QS_BALLOON_S_SWAP_OUT, 12 * page);
    assert_stat(st, QS_BALLOON_S_MAJFLT, 13);
    assert_stat(st, QS_BALLOON_S_MINFLT, 14000);
    assert_stat(st, QS_BALLOON_S_OOM_KILL, 15);
    assert_stat(st, QS_BALLOON_S_ALLOC_STALL, 1 + 2 + 3 + 4 + 5);
    assert_stat(st, QS_BALLOON_S_ASYNC_SCAN, 21 * page);
    assert_stat(st, QS_BALLOON_S_DIRECT_SCAN, 22 * page);   /* not _throttle */
    assert_stat(st, QS_BALLOON_S_ASYNC_RECLAIM, 23 * page);
    assert_stat(st, QS_BALLOON_S_DIRECT_RECLAIM, 24 * page);
    assert_stat(st, QS_BALLOON_S_HTLB_PGALLOC, 31);
    assert_stat(st, QS_BALLOON_S_HTLB_PGFAIL, 32);
    assert_stat(st, QS_BALLOON_S_MEMTOT, 24684096ull * 1024);
    assert_stat(st, QS_BALLOON_S_MEMFREE, 24081852ull * 1024);
    assert_stat(st, QS_BALLOON_S_AVAIL, 24247432ull * 1024);
    assert_stat(st, QS_BALLOON_S_CACHES, 54588 * page);
}

static void test_records_follow_the_drivers_order(void **state)
{
    static const unsigned order[] = {
        QS_BALLOON_S_SWAP_IN, QS_BALLOON_S_SWAP_OUT, QS_BALLOON_S_MAJFLT,
        QS_BALLOON_S_MINFLT, QS_BALLOON_S_OOM_KILL, QS_BALLOON_S_ALLOC_STALL,
        QS_BALLOON_S_ASYNC_SCAN, QS_BALLOON_S_DIRECT_SCAN, QS_BALLOON_S_ASYNC_RECLAIM,
        QS_BALLOON_S_DIRECT_RECLAIM, QS_BALLOON_S_HTLB_PGALLOC, QS_BALLOON_S_HTLB_PGFAIL,
        QS_BALLOON_S_MEMFREE, QS_BALLOON_S_MEMTOT, QS_BALLOON_S_AVAIL, QS_BALLOON_S_CACHES,
    };
    uint8_t buf[160];
    uint64_t st[QS_BALLOON_S_NR];
    fill("proc-linux-6.18", st, buf, sizeof(buf));
    for (size_t i = 0; i < 16; i++) {
        unsigned tag = buf[i * 10] | buf[i * 10 + 1] << 8;
        assert_int_equal(tag, order[i]);
    }
}

static void test_old_kernel_leaves_missing_fields_unset(void **state)
{
    uint8_t buf[160];
    uint64_t st[QS_BALLOON_S_NR];
    size_t n = fill("proc-linux-3.10", st, buf, sizeof(buf));
    assert_int_equal(n, 10 * QS_BALLOON_RECORD_SIZE);
    assert_stat(st, QS_BALLOON_S_SWAP_IN, 3 * page);
    assert_stat(st, QS_BALLOON_S_SWAP_OUT, 30 * page);
    assert_stat(st, QS_BALLOON_S_MAJFLT, 890);
    assert_stat(st, QS_BALLOON_S_MINFLT, 1234567);
    assert_stat(st, QS_BALLOON_S_ALLOC_STALL, 6);
    assert_stat(st, QS_BALLOON_S_HTLB_PGALLOC, 4);
    assert_stat(st, QS_BALLOON_S_HTLB_PGFAIL, 1);
    assert_stat(st, QS_BALLOON_S_MEMTOT, 1016232ull * 1024);
    assert_stat(st, QS_BALLOON_S_MEMFREE, 612340ull * 1024);
    assert_stat(st, QS_BALLOON_S_CACHES, 53036 * page);
    /* not in that kernel's files */
    assert_stat(st, QS_BALLOON_S_AVAIL, QS_BALLOON_UNSET);
    assert_stat(st, QS_BALLOON_S_OOM_KILL, QS_BALLOON_UNSET);
    assert_stat(st, QS_BALLOON_S_ASYNC_SCAN, QS_BALLOON_UNSET);
    assert_stat(st, QS_BALLOON_S_DIRECT_SCAN, QS_BALLOON_UNSET);
    assert_stat(st, QS_BALLOON_S_ASYNC_RECLAIM, QS_BALLOON_UNSET);
    assert_stat(st, QS_BALLOON_S_DIRECT_RECLAIM, QS_BALLOON_UNSET);
}

static void test_without_vmstat_caches_come_from_meminfo(void **state)
{
    uint8_t buf[160];
    uint64_t st[QS_BALLOON_S_NR];
    size_t n = fill("proc-meminfo-only", st, buf, sizeof(buf));
    assert_int_equal(n, 4 * QS_BALLOON_RECORD_SIZE);
    assert_stat(st, QS_BALLOON_S_MEMTOT, 2048000ull * 1024);
    assert_stat(st, QS_BALLOON_S_MEMFREE, 1024000ull * 1024);
    assert_stat(st, QS_BALLOON_S_AVAIL, 1536000ull * 1024);
    assert_stat(st, QS_BALLOON_S_CACHES, (20000ull + 1000 + 300) * 1024);
    assert_stat(st, QS_BALLOON_S_MAJFLT, QS_BALLOON_UNSET);
    assert_stat(st, QS_BALLOON_S_SWAP_IN, QS_BALLOON_UNSET);
}

static void test_missing_tree_sends_nothing(void **state)
{
    uint8_t buf[160];
    assert_int_equal(qs_balloon_guest_fill("/nonexistent/proc", buf, sizeof(buf)), 0);
}

static void test_fill_respects_capacity(void **state)
{
    uint8_t buf[160 + 8];
    memset(buf, 0xAA, sizeof(buf));
    char dir[4096];
    fixture("proc-linux-6.18", dir, sizeof(dir));
    assert_int_equal(qs_balloon_guest_fill(dir, buf, 25), 20);
    for (size_t i = 20; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0xAA);
}

static void test_live_proc_reports_this_machines_memtotal(void **state)
{
    uint8_t buf[160];
    uint64_t st[QS_BALLOON_S_NR];
    size_t n = qs_balloon_guest_fill("/proc", buf, sizeof(buf));
    qs_balloon_parse_records(st, buf, n);
    FILE *f = fopen("/proc/meminfo", "r");
    unsigned long long kb = 0;
    assert_non_null(f);
    assert_int_equal(fscanf(f, "MemTotal: %llu kB", &kb), 1);
    fclose(f);
    assert_stat(st, QS_BALLOON_S_MEMTOT, kb * 1024);
    assert_true(st[QS_BALLOON_S_MINFLT] != QS_BALLOON_UNSET);
}

int main(void)
{
    page = (uint64_t)sysconf(_SC_PAGESIZE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linux_6_18_fills_all_sixteen_like_the_driver),
        cmocka_unit_test(test_records_follow_the_drivers_order),
        cmocka_unit_test(test_old_kernel_leaves_missing_fields_unset),
        cmocka_unit_test(test_without_vmstat_caches_come_from_meminfo),
        cmocka_unit_test(test_missing_tree_sends_nothing),
        cmocka_unit_test(test_fill_respects_capacity),
        cmocka_unit_test(test_live_proc_reports_this_machines_memtotal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
