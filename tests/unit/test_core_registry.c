/*
 * test_core_registry.c - the registry's query-stats filter semantics
 * (qemu-reference.md §2.2, §7.1), the result containers, the JSON writer
 * and the object tree, on providers defined here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/qs-core.h"

/* A provider with two vCPUs and a VM; counts its calls. */
static const qs_schema_value vm_schema[] = {
    { .name = "pages", .type = QS_TYPE_INSTANT, .size = 1 },
    { .name = "flushes", .type = QS_TYPE_CUMULATIVE, .size = 1 },
};
static const qs_schema_value vcpu_schema[] = {
    { .name = "exits", .type = QS_TYPE_CUMULATIVE, .size = 1 },
    { .name = "guest_mode", .type = QS_TYPE_INSTANT, .unit = QS_UNIT_BOOLEAN, .size = 1 },
    { .name = "hist", .type = QS_TYPE_LOG2_HIST, .size = 3 },
};
static const char *const vcpu_paths[] = { "/machine/unattached/device[0]",
                                          "/machine/unattached/device[1]" };

typedef struct fake {
    int calls;
    bool fail;
    const char *provider;
} fake;

static void add_all(qs_results *out, const char *p, const char *path,
                    const qs_schema_value *schema, size_t n, const qs_strlist *names,
                    uint64_t seed)
{
    size_t off = qs_results_reserve(out, 8);
    if (off == QS_RESULTS_FULL)
        return;
    for (int i = 0; i < 8; i++)
        qs_results_values(out, off)[i] = seed + (uint64_t)i;
    qs_results_begin(out, p, path);
    for (size_t i = 0, at = off; i < n; at += schema[i].size, i++)
        if (qs_strlist_match(names, schema[i].name))
            qs_results_add(out, &schema[i], at);
    qs_results_end(out, true);
}

static bool fake_stats(void *opaque, qs_results *out, qs_target target,
                       const qs_strlist *names, const qs_strlist *targets, qs_error **errp)
{
    fake *f = opaque;
    f->calls++;
    if (f->fail) {
        qs_error_setg(errp, "provider failed");
        return false;
    }
    if (target == QS_TARGET_VM)
        add_all(out, f->provider, NULL, vm_schema, 2, names, 100);
    if (target == QS_TARGET_VCPU)
        for (int i = 0; i < 2; i++)
            if (qs_strlist_match(targets, vcpu_paths[i]))
                add_all(out, f->provider, vcpu_paths[i], vcpu_schema, 3, names, 10 * (uint64_t)i);
    return true;
}

static bool fake_schemas(void *opaque, qs_schemas *out, qs_error **errp)
{
    fake *f = opaque;
    qs_schemas_add(out, f->provider, QS_TARGET_VM, vm_schema, 2);
    qs_schemas_add(out, f->provider, QS_TARGET_VCPU, vcpu_schema, 3);
    return true;
}

typedef struct ctx {
    qs_registry *reg;
    fake kvm, balloon;
    qs_results r;
} ctx;

static int setup(void **state)
{
    ctx *c = calloc(1, sizeof(*c));
    c->reg = qs_registry_new();
    c->kvm.provider = "kvm";
    c->balloon.provider = "balloon";
    qs_registry_add(c->reg, "kvm", fake_stats, fake_schemas, &c->kvm, NULL);
    qs_registry_add(c->reg, "balloon", fake_stats, fake_schemas, &c->balloon, NULL);
    qs_results_init(&c->r);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx *c = *state;
    qs_results_destroy(&c->r);
    qs_registry_free(c->reg);
    free(c);
    return 0;
}

static bool query(ctx *c, const qs_filter *f)
{
    qs_error *err = NULL;
    bool ok = qs_registry_query_stats(c->reg, f, &c->r, &err);
    qs_error_free(err);
    return ok;
}

static void absent_providers_runs_every_provider_in_registration_order(void **state)
{
    ctx *c = *state;
    qs_filter f = { .target = QS_TARGET_VCPU };
    assert_true(query(c, &f));
    assert_int_equal(c->r.nres, 4);
    assert_string_equal(c->r.res[0].provider, "kvm");
    assert_string_equal(c->r.res[0].qom_path, vcpu_paths[0]);
    assert_string_equal(c->r.res[1].qom_path, vcpu_paths[1]);
    assert_string_equal(c->r.res[2].provider, "balloon");
    assert_int_equal(c->r.res[0].count, 3);
    /* stats in descriptor order, values from the arena */
    const qs_stat *st = &c->r.stats[c->r.res[1].first];
    assert_string_equal(st[0].desc->name, "exits");
    assert_int_equal(qs_results_values(&c->r, st[0].off)[0], 10);
    assert_int_equal(qs_results_values(&c->r, st[2].off)[2], 14);
}

static void empty_providers_list_returns_nothing_without_calling(void **state)
{
    ctx *c = *state;
    qs_filter f = { .target = QS_TARGET_VM, .has_providers = true, .nproviders = 0 };
    assert_true(query(c, &f));
    assert_int_equal(c->r.nres, 0);
    assert_int_equal(c->kvm.calls + c->balloon.calls, 0);
}

static void provider_requested_twice_answers_twice(void **state)
{
    ctx *c = *state;
    qs_stats_request reqs[] = { { .provider = "kvm" }, { .provider = "kvm" } };
    qs_filter f = { .target = QS_TARGET_VM, .has_providers = true, .nproviders = 2, .providers = reqs };
    assert_true(query(c, &f));
    assert_int_equal(c->r.nres, 2);
    assert_int_equal(c->kvm.calls, 2);
    assert_int_equal(c->balloon.calls, 0);
}

static void empty_names_yield_nothing_and_absent_names_everything(void **state)
{
    ctx *c = *state;
    const char *names[] = { "flushes", "no_such_stat" };
    qs_stats_request reqs[] = {
        { .provider = "kvm", .has_names = true, .names = { .n = 0, .v = NULL } },
        { .provider = "balloon", .has_names = true, .names = { .n = 2, .v = names } },
    };
    qs_filter f = { .target = QS_TARGET_VM, .has_providers = true, .nproviders = 2, .providers = reqs };
    assert_true(query(c, &f));
    assert_int_equal(c->kvm.calls, 0);
    assert_int_equal(c->r.nres, 1);
    assert_string_equal(c->r.res[0].provider, "balloon");
    assert_int_equal(c->r.res[0].count, 1);
    assert_string_equal(c->r.stats[0].desc->name, "flushes");
}

static void unknown_names_drop_the_whole_result(void **state)
{
    ctx *c = *state;
    const char *names[] = { "nope" };
    qs_stats_request reqs[] = { { .provider = "kvm", .has_names = true, .names = { .n = 1, .v = names } } };
    qs_filter f = { .target = QS_TARGET_VCPU, .has_providers = true, .nproviders = 1, .providers = reqs };
    assert_true(query(c, &f));
    assert_int_equal(c->r.nres, 0);
}

static void vcpu_filter_empty_gives_nothing_and_exact_paths_match(void **state)
{
    ctx *c = *state;
    qs_filter f = { .target = QS_TARGET_VCPU, .has_vcpus = true, .vcpus = { .n = 0, .v = NULL } };
    assert_true(query(c, &f));
    assert_int_equal(c->r.nres, 0);
    assert_int_equal(c->kvm.calls, 0);

    const char *paths[] = { "/machine/unattached/device[1]", "device[0]" };
    f.vcpus = (qs_strlist){ .n = 2, .v = paths };
    assert_true(query(c, &f));
    assert_int_equal(c->r.nres, 2);        /* one per provider; partial path ignored */
    assert_string_equal(c->r.res[0].qom_path, vcpu_paths[1]);
}

static void long_name_lists_match_exactly_like_short_ones(void **state)
{
    ctx *c = *state;
    const char *names[40];
    char buf[40][16];
    for (int i = 0; i < 40; i++) {                 /* decoys around the real names */
        snprintf(buf[i], sizeof(buf[i]), "zz%02d", 39 - i);
        names[i] = buf[i];
    }
    names[7] = "hist";
    names[30] = "exits";
    qs_stats_request reqs[] = { { .provider = "kvm", .has_names = true,
                                  .names = { .n = 40, .v = names } } };
    qs_filter f = { .target = QS_TARGET_VCPU, .has_providers = true, .nproviders = 1,
                    .providers = reqs };
    assert_true(query(c, &f));
    assert_int_equal(c->r.nres, 2);
    assert_int_equal(c->r.res[0].count, 2);
    assert_string_equal(c->r.stats[0].desc->name, "exits");   /* descriptor order kept */
    assert_string_equal(c->r.stats[1].desc->name, "hist");
    assert_string_equal(names[7], "hist");                    /* the caller's list untouched */
}

/* The results' budget is in bytes and checked before growth: a request
 * repeating a provider fails once the results would pass it, having
 * allocated no more than the budget, and stops calling providers. */
static void a_query_too_large_for_its_budget_fails_before_spending_more(void **state)
{
    ctx *c = *state;
    size_t n = 100000;                               /* 2 vCPUs x 3 stats per request */
    qs_stats_request *reqs = calloc(n, sizeof(*reqs));
    for (size_t i = 0; i < n; i++)
        reqs[i].provider = "kvm";
    qs_filter f = { .target = QS_TARGET_VCPU, .has_providers = true, .nproviders = n,
                    .providers = reqs };
    qs_error *err = NULL;
    c->r.limit = 1 << 20;
    assert_false(qs_registry_query_stats(c->reg, &f, &c->r, &err));
    assert_string_equal(err->msg, "query-stats: the results would take more than 1048576 "
                        "bytes; ask for fewer providers, names or vCPUs");
    assert_int_equal(c->r.nres, 0);
    assert_true(c->kvm.calls < (int)n / 10);         /* stopped early */
    size_t held = c->r.cap_res * sizeof(qs_result) + c->r.cap_stats * sizeof(qs_stat) +
                  c->r.cap_arena * sizeof(uint64_t);
    assert_true(held <= c->r.limit);
    /* the same results serve the next, reasonable query */
    qs_error_free(err);
    err = NULL;
    f.nproviders = 2;
    assert_true(qs_registry_query_stats(c->reg, &f, &c->r, &err));
    assert_int_equal(c->r.nres, 4);
    free(reqs);
}

static void failing_provider_discards_all_results(void **state)
{
    ctx *c = *state;
    c->balloon.fail = true;
    qs_error *err = NULL;
    qs_filter f = { .target = QS_TARGET_VM };
    assert_false(qs_registry_query_stats(c->reg, &f, &c->r, &err));
    assert_non_null(err);
    assert_string_equal(err->msg, "provider failed");
    assert_int_equal(c->r.nres, 0);
    qs_error_free(err);
}

static void schemas_filter_by_provider(void **state)
{
    ctx *c = *state;
    qs_schemas s;
    qs_schemas_init(&s);
    assert_true(qs_registry_query_schemas(c->reg, NULL, &s, NULL));
    assert_int_equal(s.n, 4);
    assert_int_equal(s.v[0].target, QS_TARGET_VM);
    assert_true(qs_registry_query_schemas(c->reg, "balloon", &s, NULL));
    assert_int_equal(s.n, 2);
    assert_string_equal(s.v[0].provider, "balloon");
    assert_true(qs_registry_query_schemas(c->reg, "cryptodev", &s, NULL));
    assert_int_equal(s.n, 0);
    assert_ptr_equal(qs_schemas_find(&s, "kvm", QS_TARGET_VM), NULL);
    qs_schemas_destroy(&s);
}

static void json_writer_emits_exact_u64_and_qemu_separators(void **state)
{
    qs_buf b;
    qs_jw w;
    qs_buf_init(&b);
    qs_jw_init(&w, &b);
    qs_jw_begin_object(&w);
    qs_jw_key(&w, "max");
    qs_jw_u64(&w, UINT64_MAX);
    qs_jw_key(&w, "l");
    qs_jw_begin_array(&w);
    qs_jw_u64(&w, 0);
    qs_jw_i64(&w, INT64_MIN);
    qs_jw_bool(&w, true);
    qs_jw_null(&w);
    qs_jw_end_array(&w);
    qs_jw_key(&w, "s");
    qs_jw_str(&w, "a\"b\\c\n\x01\xc3\xa9\xf0\x9f\x98\x80");
    qs_jw_end_object(&w);
    assert_string_equal(b.data,
        "{\"max\": 18446744073709551615, \"l\": [0, -9223372036854775808, true, null], "
        "\"s\": \"a\\\"b\\\\c\\n\\u0001\\u00E9\\uD83D\\uDE00\"}");
    qs_buf_free(&b);
}

static void json_strings_never_carry_invalid_unicode(void **state)
{
    qs_buf b;
    qs_buf_init(&b);
    /* a lone surrogate (CESU), an overlong '/', a noncharacter, > U+10FFFF,
     * a truncated sequence: each one U+FFFD */
    qs_json_put_string(&b, "f\xed\xa2\x9e|\xc0\xaf|\xef\xbf\xbe|\xf4\x90\x80\x80|\xe2\x82");
    assert_string_equal(b.data, "\"f\\uFFFD|\\uFFFD|\\uFFFD|\\uFFFD|\\uFFFD\"");
    qs_buf_free(&b);
}

static void empty_reservation_still_gives_a_valid_arena(void **state)
{
    qs_results r;
    qs_results_init(&r);
    size_t off = qs_results_reserve(&r, 0);
    assert_int_equal(off, 0);
    assert_non_null(qs_results_values(&r, off));
    assert_int_equal(r.narena, 0);
    qs_results_destroy(&r);
}

static void bucket_bounds_follow_the_kvm_rules(void **state)
{
    qs_schema_value log2 = { .type = QS_TYPE_LOG2_HIST, .unit = QS_UNIT_SECONDS,
                             .base = 10, .exponent = -9, .size = 32 };
    qs_schema_value lin = { .type = QS_TYPE_LINEAR_HIST, .bucket_size = 5, .size = 4 };
    assert_true(qs_schema_bucket_lower(&log2, 0) == 0 && qs_schema_bucket_upper(&log2, 0) == 1);
    assert_true(qs_schema_bucket_lower(&log2, 1) == 1 && qs_schema_bucket_upper(&log2, 1) == 2);
    assert_true(qs_schema_bucket_lower(&log2, 11) == 1024);
    assert_true(qs_schema_bucket_upper(&log2, 31) > 1e308);          /* open last bucket */
    assert_true(qs_schema_value_scale(&log2, 1) == 1e-9);            /* exact, not 1.0000000000000001e-09 */
    assert_true(qs_schema_value_scale(&log2, qs_schema_bucket_upper(&log2, 30)) == 1073741824e-9);
    assert_true(qs_schema_bucket_lower(&lin, 2) == 10 && qs_schema_bucket_upper(&lin, 2) == 15);
    assert_true(qs_schema_bucket_upper(&lin, 3) > 1e308);
    qs_schema_value kib = { .type = QS_TYPE_INSTANT, .unit = QS_UNIT_BYTES, .base = 2,
                            .exponent = 10, .size = 1 };
    assert_true(qs_schema_value_scale(&kib, 3) == 3072);
}

static bool get_answer(void *opaque, qs_jw *out, qs_error **errp)
{
    qs_jw_u64(out, *(uint64_t *)opaque);
    return true;
}

static bool set_answer(void *opaque, const qs_input *in, qs_error **errp)
{
    if (in->kind != QS_IN_INT) {
        qs_error_setg(errp, "expected integer");
        return false;
    }
    *(uint64_t *)opaque = (uint64_t)in->i;
    return true;
}

static const qs_property props[] = {
    { .name = "answer", .type = "int", .get = get_answer, .set = set_answer },
    { .name = "secret", .type = "int", .set = set_answer },
};

static void object_tree_resolves_paths_like_qom(void **state)
{
    ctx *c = *state;
    uint64_t v = 42;
    qs_registry_add_object(c->reg, "/machine/unattached/device[0]", "kvm-vcpu", NULL, 0, NULL);
    qs_registry_add_object(c->reg, "/machine/unattached/device[1]", "kvm-vcpu", NULL, 0, NULL);
    qs_registry_add_object(c->reg, "/machine/peripheral-anon/device[0]", "thing", props, 2, &v);
    qs_error *err = NULL;
    qs_prop_info *info;
    size_t n;
    assert_true(qs_registry_qom_list(c->reg, "/machine", &info, &n, &err));
    assert_int_equal(n, 4);              /* QEMU's standard containers are always there */
    assert_string_equal(info[1].name, "unattached");
    assert_string_equal(info[1].type, "child<container>");
    assert_string_equal(info[2].name, "peripheral");
    qs_prop_info_free(info, n);
    assert_true(qs_registry_qom_list(c->reg, "/machine/peripheral", &info, &n, &err));
    assert_int_equal(n, 1);              /* just "type": empty, but it exists */
    qs_prop_info_free(info, n);

    assert_false(qs_registry_qom_list(c->reg, "device[0]", &info, &n, &err));
    assert_string_equal(err->msg, "Path 'device[0]' is ambiguous");
    qs_error_free(err), err = NULL;
    assert_false(qs_registry_qom_list(c->reg, "/nope", &info, &n, &err));
    assert_int_equal(err->cls, QS_ERR_DEVICE_NOT_FOUND);
    assert_string_equal(err->msg, "Device '/nope' not found");
    qs_error_free(err), err = NULL;

    qs_buf b;
    qs_jw w;
    qs_buf_init(&b);
    qs_jw_init(&w, &b);
    assert_true(qs_registry_qom_get(c->reg, "peripheral-anon/device[0]", "answer", &w, &err));
    assert_string_equal(b.data, "42");
    qs_input in = { .kind = QS_IN_INT, .i = 7 };
    assert_true(qs_registry_qom_set(c->reg, "/machine/peripheral-anon/device[0]", "answer", &in, &err));
    assert_int_equal(v, 7);
    assert_false(qs_registry_qom_get(c->reg, "/machine/peripheral-anon/device[0]", "secret", &w, &err));
    assert_string_equal(err->msg, "Property 'thing.secret' is not readable");
    qs_error_free(err), err = NULL;
    assert_false(qs_registry_qom_set(c->reg, "/machine/unattached/device[1]", "type", &in, &err));
    assert_string_equal(err->msg, "Property 'kvm-vcpu.type' is not writable");
    qs_error_free(err), err = NULL;
    assert_false(qs_registry_qom_get(c->reg, "/machine", "x", &w, &err));
    assert_string_equal(err->msg, "Property 'container.x' not found");
    qs_error_free(err), err = NULL;

    /* new objects must not collide with what is there */
    assert_true(qs_registry_path_free(c->reg, "/machine/unattached/device[2]", NULL));
    assert_false(qs_registry_path_free(c->reg, "/machine/unattached", &err));
    assert_string_equal(err->msg, "QOM path '/machine/unattached' is already in use (type 'container')");
    qs_error_free(err), err = NULL;
    assert_false(qs_registry_path_free(c->reg, "/machine/peripheral-anon/device[0]/x", &err));
    assert_string_equal(err->msg, "QOM path '/machine/peripheral-anon/device[0]/x' is below "
                        "'/machine/peripheral-anon/device[0]', which is not a container (type 'thing')");
    qs_error_free(err), err = NULL;
    for (size_t i = 0; i < 4; i++) {
        const char *bad[] = { "device[3]", "/", "/machine//x", "/machine/x/" };
        assert_false(qs_registry_path_free(c->reg, bad[i], &err));
        assert_string_equal(err->msg, "Parameter 'qom-path' expects an absolute QOM path");
        qs_error_free(err), err = NULL;
    }
    qs_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(absent_providers_runs_every_provider_in_registration_order, setup, teardown),
        cmocka_unit_test_setup_teardown(empty_providers_list_returns_nothing_without_calling, setup, teardown),
        cmocka_unit_test_setup_teardown(provider_requested_twice_answers_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(empty_names_yield_nothing_and_absent_names_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_names_drop_the_whole_result, setup, teardown),
        cmocka_unit_test_setup_teardown(vcpu_filter_empty_gives_nothing_and_exact_paths_match, setup, teardown),
        cmocka_unit_test_setup_teardown(long_name_lists_match_exactly_like_short_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(a_query_too_large_for_its_budget_fails_before_spending_more, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_provider_discards_all_results, setup, teardown),
        cmocka_unit_test_setup_teardown(schemas_filter_by_provider, setup, teardown),
        cmocka_unit_test(json_writer_emits_exact_u64_and_qemu_separators),
        cmocka_unit_test(json_strings_never_carry_invalid_unicode),
        cmocka_unit_test(empty_reservation_still_gives_a_valid_arena),
        cmocka_unit_test(bucket_bounds_follow_the_kvm_rules),
        cmocka_unit_test_setup_teardown(object_tree_resolves_paths_like_qom, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
