/*
 * test_hmp_format.c - the `info stats` formatter on hand-built schemas and
 * results: every branch of the descriptor rules of
 * docs/qemu-behaviour.md#hmp-format, the value forms, the forward-only
 * schema walk, the unsigned printing (docs/qemu-behaviour.md#differences),
 * the -a/-b extensions and qom-get's pretty JSON (qs_json_reindent).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hmp/internal.h"

static char *descr(qs_stat_type type, qs_unit unit, int base, int exp, uint32_t bucket)
{
    qs_schema_value sv = { .name = "x", .type = type, .unit = unit, .base = (int8_t)base,
                           .exponent = (int16_t)exp, .bucket_size = bucket, .size = 1 };
    qs_buf b;
    qs_buf_init(&b);
    qs_hmp_format_descr(&b, &sv);
    return qs_buf_steal(&b);
}

#define ASSERT_DESCR(expect, ...)                     \
    do {                                              \
        char *s_ = descr(__VA_ARGS__);                \
        assert_string_equal(s_, expect);              \
        free(s_);                                     \
    } while (0)

/* The DESCR samples listed in docs/qemu-behaviour.md#hmp-format. */
static void test_descr_reference_samples(void **state)
{
    ASSERT_DESCR("cumulative", QS_TYPE_CUMULATIVE, QS_UNIT_NONE, 0, 0, 0);
    ASSERT_DESCR("cumulative, ns", QS_TYPE_CUMULATIVE, QS_UNIT_SECONDS, 10, -9, 0);
    ASSERT_DESCR("instant, KiB", QS_TYPE_INSTANT, QS_UNIT_BYTES, 2, 10, 0);
    ASSERT_DESCR("instant, boolean", QS_TYPE_INSTANT, QS_UNIT_BOOLEAN, 0, 0, 0);
    ASSERT_DESCR("cumulative, cycles", QS_TYPE_CUMULATIVE, QS_UNIT_CYCLES, 0, 0, 0);
    ASSERT_DESCR("cumulative, * 10^3 cycles", QS_TYPE_CUMULATIVE, QS_UNIT_CYCLES, 10, 3, 0);
    ASSERT_DESCR("peak, * 10^3", QS_TYPE_PEAK, QS_UNIT_NONE, 10, 3, 0);
    ASSERT_DESCR("linear-histogram, bucket size=5", QS_TYPE_LINEAR_HIST, QS_UNIT_NONE, 0, 0, 5);
    ASSERT_DESCR("log2-histogram, ns", QS_TYPE_LOG2_HIST, QS_UNIT_SECONDS, 10, -9, 0);
}

static void test_descr_si_prefix_range(void **state)
{
    ASSERT_DESCR("instant, as", QS_TYPE_INSTANT, QS_UNIT_SECONDS, 10, -18, 0);
    ASSERT_DESCR("instant, us", QS_TYPE_INSTANT, QS_UNIT_SECONDS, 10, -6, 0);
    ASSERT_DESCR("instant, ms", QS_TYPE_INSTANT, QS_UNIT_SECONDS, 10, -3, 0);
    ASSERT_DESCR("instant, KB", QS_TYPE_INSTANT, QS_UNIT_BYTES, 10, 3, 0);
    ASSERT_DESCR("instant, EB", QS_TYPE_INSTANT, QS_UNIT_BYTES, 10, 18, 0);
    /* out of the table or not a multiple of 3: exponential notation */
    ASSERT_DESCR("instant, * 10^21 bytes", QS_TYPE_INSTANT, QS_UNIT_BYTES, 10, 21, 0);
    ASSERT_DESCR("instant, * 10^-21 seconds", QS_TYPE_INSTANT, QS_UNIT_SECONDS, 10, -21, 0);
    ASSERT_DESCR("instant, * 10^-7 seconds", QS_TYPE_INSTANT, QS_UNIT_SECONDS, 10, -7, 0);
}

static void test_descr_iec_prefix_range(void **state)
{
    ASSERT_DESCR("instant, MiB", QS_TYPE_INSTANT, QS_UNIT_BYTES, 2, 20, 0);
    ASSERT_DESCR("instant, EiB", QS_TYPE_INSTANT, QS_UNIT_BYTES, 2, 60, 0);
    ASSERT_DESCR("instant, Kis", QS_TYPE_INSTANT, QS_UNIT_SECONDS, 2, 10, 0);
    ASSERT_DESCR("instant, * 2^70 bytes", QS_TYPE_INSTANT, QS_UNIT_BYTES, 2, 70, 0);
    ASSERT_DESCR("instant, * 2^5 bytes", QS_TYPE_INSTANT, QS_UNIT_BYTES, 2, 5, 0);
    ASSERT_DESCR("instant, * 2^-10 bytes", QS_TYPE_INSTANT, QS_UNIT_BYTES, 2, -10, 0);
    /* IEC only for seconds and bytes */
    ASSERT_DESCR("instant, * 2^10 cycles", QS_TYPE_INSTANT, QS_UNIT_CYCLES, 2, 10, 0);
}

static void test_descr_exponent_zero_and_absent_base(void **state)
{
    ASSERT_DESCR("instant, s", QS_TYPE_INSTANT, QS_UNIT_SECONDS, 0, 0, 0);
    ASSERT_DESCR("instant, B", QS_TYPE_INSTANT, QS_UNIT_BYTES, 0, 0, 0);
    /* base absent counts as 0 */
    ASSERT_DESCR("instant, * 0^3", QS_TYPE_INSTANT, QS_UNIT_NONE, 0, 3, 0);
    ASSERT_DESCR("instant, * 0^-9 seconds", QS_TYPE_INSTANT, QS_UNIT_SECONDS, 0, -9, 0);
    /* base 10 with exponent 0 is the bare unit, via the SI table's "" */
    ASSERT_DESCR("instant, s", QS_TYPE_INSTANT, QS_UNIT_SECONDS, 10, 0, 0);
}

static void test_descr_bucket_size(void **state)
{
    ASSERT_DESCR("linear-histogram, ns, bucket size=5", QS_TYPE_LINEAR_HIST,
                 QS_UNIT_SECONDS, 10, -9, 5);
    ASSERT_DESCR("linear-histogram, bucket size=0", QS_TYPE_LINEAR_HIST, QS_UNIT_NONE, 0, 0, 0);
    /* QEMU's %d would print this one negative */
    ASSERT_DESCR("linear-histogram, bucket size=4294967295", QS_TYPE_LINEAR_HIST,
                 QS_UNIT_NONE, 0, 0, UINT32_MAX);
    /* log2 histograms never print a bucket size */
    ASSERT_DESCR("log2-histogram", QS_TYPE_LOG2_HIST, QS_UNIT_NONE, 0, 0, 5);
}

/* ---- whole results ---------------------------------------------------- */

static const qs_schema_value vcpu_schema[] = {
    { .name = "exits", .type = QS_TYPE_CUMULATIVE, .size = 1 },
    { .name = "guest_mode", .type = QS_TYPE_INSTANT, .unit = QS_UNIT_BOOLEAN, .size = 1 },
    { .name = "blocking", .type = QS_TYPE_INSTANT, .unit = QS_UNIT_BOOLEAN, .size = 1 },
    { .name = "halt_wait_ns", .type = QS_TYPE_CUMULATIVE, .unit = QS_UNIT_SECONDS,
      .base = 10, .exponent = -9, .size = 1 },
    { .name = "halt_hist", .type = QS_TYPE_LOG2_HIST, .unit = QS_UNIT_SECONDS,
      .base = 10, .exponent = -9, .size = 4 },
    { .name = "lin", .type = QS_TYPE_LINEAR_HIST, .bucket_size = 5, .size = 3 },
    { .name = "empty", .type = QS_TYPE_LINEAR_HIST, .bucket_size = 1, .size = 0 },
};

typedef struct fixture {
    qs_results res;
    qs_schemas schemas;
    qs_buf out;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    qs_results_init(&f->res);
    qs_schemas_init(&f->schemas);
    qs_buf_init(&f->out);
    qs_schemas_add(&f->schemas, "kvm", QS_TARGET_VCPU, vcpu_schema,
                   sizeof(vcpu_schema) / sizeof(vcpu_schema[0]));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    qs_results_destroy(&f->res);
    qs_schemas_destroy(&f->schemas);
    qs_buf_free(&f->out);
    free(f);
    return 0;
}

/* Adds stat `desc` with values v[0..desc->size) to the open result. */
static void add(qs_results *r, const qs_schema_value *desc, const uint64_t *v)
{
    size_t off = qs_results_reserve(r, desc->size);
    if (desc->size)
        memcpy(qs_results_values(r, off), v, desc->size * sizeof(uint64_t));
    qs_results_add(r, desc, off);
}

static const char *format(fixture *f, bool provider, bool qom, bool bounds)
{
    qs_hmp_format_opts o = { provider, qom, bounds };
    qs_buf_reset(&f->out);
    qs_hmp_format_stats(&f->out, &f->res, &f->schemas, QS_TARGET_VCPU, &o);
    qs_buf_putc(&f->out, '\0');
    return f->out.data;
}

static void fill_all(fixture *f, const char *path, uint64_t exits)
{
    static const uint64_t no[1] = { 0 }, yes[1] = { 7 };
    static const uint64_t hist[4] = { 0, 3, 17, 1 }, lin[3] = { 1, 2, 3 };
    uint64_t e[1] = { exits }, wait[1] = { 60271041 };
    qs_results_begin(&f->res, "kvm", path);
    add(&f->res, &vcpu_schema[0], e);
    add(&f->res, &vcpu_schema[1], no);
    add(&f->res, &vcpu_schema[2], yes);
    add(&f->res, &vcpu_schema[3], wait);
    add(&f->res, &vcpu_schema[4], hist);
    add(&f->res, &vcpu_schema[5], lin);
    add(&f->res, &vcpu_schema[6], NULL);
    qs_results_end(&f->res, false);
}

static const char all_lines[] =
    "    exits (cumulative): 6542\n"
    "    guest_mode (instant, boolean): no\n"
    "    blocking (instant, boolean): yes\n"
    "    halt_wait_ns (cumulative, ns): 60271041\n"
    "    halt_hist (log2-histogram, ns): [1]=0 [2]=3 [3]=17 [4]=1 \n"
    "    lin (linear-histogram, bucket size=5): [1]=1 [2]=2 [3]=3 \n"
    "    empty (linear-histogram, bucket size=1): \n";

static void test_every_value_form_with_provider_line(void **state)
{
    fixture *f = *state;
    fill_all(f, "/machine/unattached/device[0]", 6542);
    char expect[1024];
    snprintf(expect, sizeof(expect), "provider: kvm\n%s", all_lines);
    assert_string_equal(format(f, true, false, false), expect);
    /* with a provider argument QEMU prints no provider line */
    assert_string_equal(format(f, false, false, false), all_lines);
}

static void test_values_from_2_63_print_unsigned(void **state)
{
    fixture *f = *state;
    uint64_t big[1] = { UINT64_MAX }, half[1] = { 1ULL << 63 };
    uint64_t hist[4] = { 0, UINT64_MAX, 0, 1ULL << 63 };
    qs_results_begin(&f->res, "kvm", NULL);
    add(&f->res, &vcpu_schema[0], big);
    add(&f->res, &vcpu_schema[3], half);
    add(&f->res, &vcpu_schema[4], hist);
    qs_results_end(&f->res, false);
    assert_string_equal(format(f, false, false, false),
                        "    exits (cumulative): 18446744073709551615\n"
                        "    halt_wait_ns (cumulative, ns): 9223372036854775808\n"
                        "    halt_hist (log2-histogram, ns): [1]=0 [2]=18446744073709551615 "
                        "[3]=0 [4]=9223372036854775808 \n");
}

/* A stat the rest of the schema lacks ends that result, QEMU's message;
 * the next result is printed again from the start of the schema. */
static void test_missing_schema_entry_stops_the_result(void **state)
{
    fixture *f = *state;
    static const qs_schema_value stray = { .name = "stray", .type = QS_TYPE_CUMULATIVE,
                                           .size = 1 };
    uint64_t v[1] = { 5 };
    qs_results_begin(&f->res, "kvm", NULL);
    add(&f->res, &vcpu_schema[1], v);
    add(&f->res, &stray, v);
    add(&f->res, &vcpu_schema[2], v);
    qs_results_end(&f->res, false);
    /* forward only: exits comes before guest_mode in the schema */
    qs_results_begin(&f->res, "kvm", NULL);
    add(&f->res, &vcpu_schema[1], v);
    add(&f->res, &vcpu_schema[0], v);
    qs_results_end(&f->res, false);
    assert_string_equal(format(f, true, false, false),
                        "provider: kvm\n"
                        "    guest_mode (instant, boolean): yes\n"
                        "failed to find schema entry for stray\n"
                        "provider: kvm\n"
                        "    guest_mode (instant, boolean): yes\n"
                        "failed to find schema entry for exits\n");
}

static void test_missing_schema_list_skips_the_result(void **state)
{
    fixture *f = *state;
    static const qs_schema_value bal[] = {
        { .name = "free-memory", .type = QS_TYPE_INSTANT, .unit = QS_UNIT_BYTES, .size = 1 },
    };
    uint64_t v[1] = { 4096 };
    qs_results_begin(&f->res, "balloon", NULL);
    add(&f->res, &bal[0], v);
    qs_results_end(&f->res, false);
    qs_results_begin(&f->res, "kvm", NULL);
    add(&f->res, &vcpu_schema[0], v);
    qs_results_end(&f->res, false);
    /* an empty schema counts as missing, as QEMU's value-list lookup does */
    qs_schemas_add(&f->schemas, "cryptodev", QS_TARGET_VCPU, bal, 0);
    qs_results_begin(&f->res, "cryptodev", NULL);
    qs_results_end(&f->res, false);
    assert_string_equal(format(f, true, false, false),
                        "failed to find schema list for balloon\n"
                        "provider: kvm\n"
                        "    exits (cumulative): 4096\n"
                        "failed to find schema list for cryptodev\n");
}

static void test_all_vcpus_extension_prints_qom_paths(void **state)
{
    fixture *f = *state;
    uint64_t a[1] = { 1 }, b[1] = { 2 };
    qs_results_begin(&f->res, "kvm", "/machine/unattached/device[0]");
    add(&f->res, &vcpu_schema[0], a);
    qs_results_end(&f->res, false);
    qs_results_begin(&f->res, "kvm", "/machine/unattached/device[1]");
    add(&f->res, &vcpu_schema[0], b);
    qs_results_end(&f->res, false);
    assert_string_equal(format(f, true, true, false),
                        "provider: kvm\n"
                        "qom-path: /machine/unattached/device[0]\n"
                        "    exits (cumulative): 1\n"
                        "provider: kvm\n"
                        "qom-path: /machine/unattached/device[1]\n"
                        "    exits (cumulative): 2\n");
    /* QEMU never prints the qom-path */
    assert_null(strstr(format(f, true, false, false), "qom-path"));
}

/* ---- -b --------------------------------------------------------------- */

static char *bucket(const qs_schema_value *sv, size_t i, size_t n)
{
    qs_buf b;
    qs_buf_init(&b);
    qs_hmp_format_bucket(&b, sv, i, n);
    return qs_buf_steal(&b);
}

#define ASSERT_BUCKET(expect, sv, i, n)               \
    do {                                              \
        char *s_ = bucket(sv, i, n);                  \
        assert_string_equal(s_, expect);              \
        free(s_);                                     \
    } while (0)

static void test_bounds_log2_ns(void **state)
{
    qs_schema_value sv = { .name = "h", .type = QS_TYPE_LOG2_HIST, .unit = QS_UNIT_SECONDS,
                           .base = 10, .exponent = -9, .size = 32 };
    ASSERT_BUCKET("[0,1)ns", &sv, 0, 32);
    ASSERT_BUCKET("[1,2)ns", &sv, 1, 32);
    ASSERT_BUCKET("[2,4)ns", &sv, 2, 32);
    ASSERT_BUCKET("[256,512)ns", &sv, 9, 32);
    /* bounds straddling a prefix take the larger bound's */
    ASSERT_BUCKET("[0.512,1.02)us", &sv, 10, 32);
    ASSERT_BUCKET("[0.537,1.07)s", &sv, 30, 32);
    /* the last bucket is open-ended: bucket 32 is [2^30 ns, +inf) */
    ASSERT_BUCKET("[1.07s,+inf)", &sv, 31, 32);
}

static void test_bounds_linear_and_bytes(void **state)
{
    qs_schema_value lin = { .name = "l", .type = QS_TYPE_LINEAR_HIST, .bucket_size = 5,
                            .size = 4 };
    ASSERT_BUCKET("[0,5)", &lin, 0, 4);
    ASSERT_BUCKET("[5,10)", &lin, 1, 4);
    ASSERT_BUCKET("[15,+inf)", &lin, 3, 4);

    qs_schema_value linus = { .name = "l", .type = QS_TYPE_LINEAR_HIST, .bucket_size = 250,
                              .unit = QS_UNIT_SECONDS, .base = 10, .exponent = -6, .size = 8 };
    ASSERT_BUCKET("[0,250)us", &linus, 0, 8);
    ASSERT_BUCKET("[0.75,1)ms", &linus, 3, 8);
    ASSERT_BUCKET("[1.75ms,+inf)", &linus, 7, 8);

    qs_schema_value bytes = { .name = "b", .type = QS_TYPE_LOG2_HIST, .unit = QS_UNIT_BYTES,
                              .size = 64 };
    ASSERT_BUCKET("[0.5,1)KiB", &bytes, 10, 64);
    ASSERT_BUCKET("[1,2)KiB", &bytes, 11, 64);
    ASSERT_BUCKET("[2,4)EiB", &bytes, 62, 64);
    ASSERT_BUCKET("[4EiB,+inf)", &bytes, 63, 64);
}

static void test_bounds_in_info_stats_line(void **state)
{
    fixture *f = *state;
    static const uint64_t hist[4] = { 0, 3, 17, 1 };
    qs_results_begin(&f->res, "kvm", NULL);
    add(&f->res, &vcpu_schema[4], hist);
    qs_results_end(&f->res, false);
    assert_string_equal(format(f, false, false, true),
                        "    halt_hist (log2-histogram, ns): "
                        "[0,1)ns=0 [1,2)ns=3 [2,4)ns=17 [4ns,+inf)=1 \n");
}

/* ---- pretty JSON (qom-get) -------------------------------------------- */

static void pretty_is(const char *in, const char *expect)
{
    qs_buf b;
    qs_buf_init(&b);
    qs_json_reindent(&b, in, strlen(in), 4, false);
    qs_buf_putc(&b, '\0');
    assert_string_equal(b.data, expect);
    qs_buf_free(&b);
}

static void test_pretty_json_like_qemu(void **state)
{
    pretty_is("5", "5");
    pretty_is("\"qemu64-x86_64-cpu\"", "\"qemu64-x86_64-cpu\"");
    pretty_is("[\"pni\"]", "[\n    \"pni\"\n]");
    pretty_is("{\"stats\": {\"stat-swap-in\": 18446744073709551615, \"a\": 1}, \"last-update\": 0}",
              "{\n    \"stats\": {\n        \"stat-swap-in\": 18446744073709551615,\n"
              "        \"a\": 1\n    },\n    \"last-update\": 0\n}");
    pretty_is("{}", "{\n}");
    pretty_is("{\"a\": []}", "{\n    \"a\": [\n    ]\n}");
    /* separators inside strings are text, not structure */
    pretty_is("{\"k, [x]\": \"v: {y}\\\"\"}", "{\n    \"k, [x]\": \"v: {y}\\\"\"\n}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descr_reference_samples),
        cmocka_unit_test(test_descr_si_prefix_range),
        cmocka_unit_test(test_descr_iec_prefix_range),
        cmocka_unit_test(test_descr_exponent_zero_and_absent_base),
        cmocka_unit_test(test_descr_bucket_size),
        cmocka_unit_test_setup_teardown(test_every_value_form_with_provider_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values_from_2_63_print_unsigned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_schema_entry_stops_the_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_schema_list_skips_the_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_vcpus_extension_prints_qom_paths, setup, teardown),
        cmocka_unit_test(test_bounds_log2_ns),
        cmocka_unit_test(test_bounds_linear_and_bytes),
        cmocka_unit_test_setup_teardown(test_bounds_in_info_stats_line, setup, teardown),
        cmocka_unit_test(test_pretty_json_like_qemu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
