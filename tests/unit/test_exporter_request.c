/*
 * test_exporter_request.c - the edges of what a scrape may ask for, on the
 * pure functions behind it: the query string (qs_metrics_parse_query:
 * escapes, repeats, bare keys, typos, broken escapes, the length cap, and
 * that a refused query leaves nothing behind), the vCPU detail of
 * --metrics-vcpus (qs_metrics_parse_vcpu_detail) and Accept-Encoding
 * (qs_metrics_accepts_gzip).  The integration tests reach the same code
 * through HTTP; here each edge is one line.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "exporter/internal.h"
#include "qs-exporter.h"

/* ---- the query string --------------------------------------------------- */

static void assert_list(const qs_metrics_list *l, size_t n, const char *const *want)
{
    assert_true(l->given);
    assert_int_equal(l->n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(l->v[i], want[i]);
}

static void test_query_lists_keep_every_value_in_order(void **state)
{
    qs_metrics_query q;
    qs_error *err = NULL;
    assert_true(qs_metrics_parse_query("provider=kvm&target=vm&name=exits&target=vcpu"
                                       "&name=halt_exits&name=exits", &q, &err));
    assert_null(err);
    assert_list(&q.providers, 1, (const char *[]){ "kvm" });
    assert_list(&q.targets, 2, (const char *[]){ "vm", "vcpu" });
    assert_list(&q.names, 3, (const char *[]){ "exits", "halt_exits", "exits" });
    qs_metrics_query_free(&q);
    assert_false(q.names.given);
    assert_int_equal(q.names.n, 0);
}

static void test_query_nothing_given_selects_everything(void **state)
{
    const char *empty[] = { NULL, "", "&", "&&&" };
    for (size_t i = 0; i < 4; i++) {
        qs_metrics_query q;
        qs_error *err = NULL;
        assert_true(qs_metrics_parse_query(empty[i], &q, &err));
        assert_false(q.providers.given || q.targets.given || q.names.given);
        qs_metrics_view v;
        qs_metrics_lists lists;
        qs_metrics_view_init(&v);
        qs_metrics_select(&v, &q, &lists);
        assert_null(v.providers);
        assert_null(v.targets);
        assert_null(v.names);
        qs_metrics_query_free(&q);
    }
}

static void test_query_escapes_plus_and_bare_keys(void **state)
{
    qs_metrics_query q;
    qs_error *err = NULL;
    /* %XX in either case, in keys too; '+' is a space; a bare key or an
     * empty value is given with "" (which selects nothing); '=' after the
     * first belongs to the value; empty pairs are skipped. */
    assert_true(qs_metrics_parse_query("&%6Eame=halt%5fexits&name=a+b%2Bc&name&"
                                       "provider=&target=x=y&&name=%C3%A9", &q, &err));
    assert_list(&q.names, 4, (const char *[]){ "halt_exits", "a b+c", "", "\xc3\xa9" });
    assert_list(&q.providers, 1, (const char *[]){ "" });
    assert_list(&q.targets, 1, (const char *[]){ "x=y" });
    qs_metrics_view v;
    qs_metrics_lists lists;
    qs_metrics_view_init(&v);
    qs_metrics_select(&v, &q, &lists);
    assert_non_null(v.names);
    assert_int_equal(v.names->n, 4);
    assert_string_equal(v.names->v[0], "halt_exits");
    assert_true(qs_strlist_match(v.names, "a b+c"));
    assert_false(qs_strlist_match(v.names, "exits"));
    assert_false(qs_strlist_match(v.providers, "kvm"));
    qs_metrics_query_free(&q);
}

static void assert_refused(const char *query, const char *why)
{
    qs_metrics_query q;
    memset(&q, 0x5a, sizeof(q));
    qs_error *err = NULL;
    if (qs_metrics_parse_query(query, &q, &err))
        fail_msg("'%s' was accepted", query);
    assert_non_null(err);
    if (!strstr(err->msg, why))
        fail_msg("'%s': '%s' does not say '%s'", query, err->msg, why);
    assert_null(strchr(err->msg, '\n'));            /* one line */
    /* nothing is left behind for the caller to free */
    assert_false(q.providers.given || q.targets.given || q.names.given);
    assert_null(q.names.v);
    assert_null(q.providers.v);
    qs_error_free(err);
}

static void test_query_typos_and_broken_escapes_are_refused(void **state)
{
    assert_refused("names=exits", "unknown parameter 'names'");
    assert_refused("name=exits&Provider=kvm", "unknown parameter 'Provider'");
    assert_refused("provider=kvm&target=vm&bogus", "unknown parameter 'bogus'");
    assert_refused("=kvm", "unknown parameter ''");
    /* broken escapes, in a key or in a value, anywhere in the string */
    const char *bad[] = { "%zz", "%4", "%", "name=%zz", "name=%4", "name=%", "name=x%2",
                          "name=%g0", "name=%0g", "provider=kvm&name=exits%",
                          "name=%00", "na%00me=x", "name=a&name=%2", "%zz=exits" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_refused(bad[i], "percent-escape");
}

static void test_query_length_is_capped(void **state)
{
    size_t n = 8192;
    char *s = malloc(n + 2);
    memcpy(s, "name=", 5);
    memset(s + 5, 'a', n - 5);
    s[n] = 0;
    qs_metrics_query q;
    qs_error *err = NULL;
    assert_true(qs_metrics_parse_query(s, &q, &err));      /* at the cap */
    assert_int_equal(strlen(q.names.v[0]), n - 5);
    qs_metrics_query_free(&q);
    s[n] = 'a';
    s[n + 1] = 0;
    assert_refused(s, "longer than 8192 bytes");
    free(s);
}

/* ---- --metrics-vcpus ---------------------------------------------------- */

static void assert_detail(const qs_metrics_view *v, unsigned c, unsigned g, unsigned b,
                          unsigned h)
{
    assert_int_equal(v->per_vcpu_max[QS_METRICS_COUNTERS], c);
    assert_int_equal(v->per_vcpu_max[QS_METRICS_GAUGES], g);
    assert_int_equal(v->per_vcpu_max[QS_METRICS_BOOLEANS], b);
    assert_int_equal(v->per_vcpu_max[QS_METRICS_HISTOGRAMS], h);
}

static void detail(const char *spec, qs_metrics_view *v)
{
    qs_error *err = NULL;
    qs_metrics_view_init(v);
    if (!qs_metrics_parse_vcpu_detail(spec, v, &err))
        fail_msg("'%s' refused: %s", spec, err->msg);
}

static void test_vcpu_detail_per_kind_all_and_later_wins(void **state)
{
    qs_metrics_view v;
    detail(NULL, &v);
    assert_detail(&v, 1024, 1024, 1024, 128);
    detail("", &v);
    assert_detail(&v, 1024, 1024, 1024, 128);
    detail("histograms=0", &v);
    assert_detail(&v, 1024, 1024, 1024, 0);
    detail("counters=1,gauges=2,booleans=3,histograms=4", &v);
    assert_detail(&v, 1, 2, 3, 4);
    detail("all=7", &v);
    assert_detail(&v, 7, 7, 7, 7);
    detail("all=all", &v);
    assert_detail(&v, UINT_MAX, UINT_MAX, UINT_MAX, UINT_MAX);
    detail("all=0,counters=all", &v);
    assert_detail(&v, UINT_MAX, 0, 0, 0);
    detail("gauges=5,all=9", &v);
    assert_detail(&v, 9, 9, 9, 9);
    detail("booleans=4294967295", &v);
    assert_detail(&v, 1024, 1024, UINT_MAX, 128);
    detail("counters=0010", &v);
    assert_detail(&v, 10, 1024, 1024, 128);
}

static void assert_detail_refused(const char *spec, const char *why)
{
    qs_metrics_view v;
    qs_metrics_view_init(&v);
    qs_error *err = NULL;
    if (qs_metrics_parse_vcpu_detail(spec, &v, &err))
        fail_msg("'%s' was accepted", spec);
    assert_non_null(err);
    if (!strstr(err->msg, why))
        fail_msg("'%s': '%s' does not say '%s'", spec, err->msg, why);
    qs_error_free(err);
}

static void test_vcpu_detail_refusals_name_the_element(void **state)
{
    assert_detail_refused("cpus=3", "unknown kind 'cpus'");
    assert_detail_refused("Counters=3", "unknown kind 'Counters'");
    assert_detail_refused("counter=3", "unknown kind 'counter'");
    assert_detail_refused("=3", "unknown kind ''");
    assert_detail_refused("counters", "invalid vCPU detail 'counters'");
    assert_detail_refused("counters=", "invalid vCPU detail 'counters='");
    assert_detail_refused("counters=-1", "invalid vCPU detail 'counters=-1'");
    assert_detail_refused("counters=x", "invalid vCPU detail 'counters=x'");
    assert_detail_refused("counters=+5", "invalid vCPU detail 'counters=+5'");
    assert_detail_refused("counters= 5", "invalid vCPU detail 'counters= 5'");
    assert_detail_refused("counters=5x", "invalid vCPU detail 'counters=5x'");
    assert_detail_refused("counters=alll", "invalid vCPU detail 'counters=alll'");
    assert_detail_refused("counters=4294967296", "invalid vCPU detail 'counters=4294967296'");
    assert_detail_refused("counters=123456789012345678901234567890",
                          "invalid vCPU detail 'counters=1234567890");
    assert_detail_refused("gauges=1,histograms", "invalid vCPU detail 'histograms'");
    assert_detail_refused("gauges=1,,booleans=2", "invalid vCPU detail ''");
    assert_detail_refused("counters=1;gauges=2", "invalid vCPU detail 'counters=1;gauges=2'");
}

/* ---- Accept-Encoding ------------------------------------------------------- */

static void test_accepts_gzip_by_rfc_9110_q_values(void **state)
{
    const char *yes[] = {
        "gzip", "GZip", "x-gzip", " gzip ", "gzip;q=1", "gzip; q=0.001", "gzip ;q=0.5",
        "deflate, gzip", "br;q=1.0, gzip;q=0.8, *;q=0.1", "*", "*;q=0.2", "identity, *",
        "gzip;level=1", "deflate;q=0, gzip", "gzip;q=0, gzip;q=0.5",
    };
    const char *no[] = {
        "", "identity", "deflate", "br, deflate", "gzip;q=0", "gzip; q=0", "gzip;q=0.0",
        "gzip;q=0.000", "*;q=0", "gzip;q=0, *", "*, gzip;q=0", "gzipx", "gzi", "xgzip",
        "gzip;q=2", "gzip;q=abc", "gzip;q=-1", ",,,", "identity;q=1, *;q=0",
    };
    assert_false(qs_metrics_accepts_gzip(NULL));
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!qs_metrics_accepts_gzip(yes[i]))
            fail_msg("'%s' should accept gzip", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (qs_metrics_accepts_gzip(no[i]))
            fail_msg("'%s' should not accept gzip", no[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_lists_keep_every_value_in_order),
        cmocka_unit_test(test_query_nothing_given_selects_everything),
        cmocka_unit_test(test_query_escapes_plus_and_bare_keys),
        cmocka_unit_test(test_query_typos_and_broken_escapes_are_refused),
        cmocka_unit_test(test_query_length_is_capped),
        cmocka_unit_test(test_vcpu_detail_per_kind_all_and_later_wins),
        cmocka_unit_test(test_vcpu_detail_refusals_name_the_element),
        cmocka_unit_test(test_accepts_gzip_by_rfc_9110_q_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
