/*
 * test_hmp_commands.c - the HMP commands end to end through qs_hmp_execute,
 * against a real registry holding fake providers with hand-made values and
 * vCPU objects at /machine/unattached/device[i]: info stats filters and
 * errors, the current CPU per monitor (cpu N, cpu-index, fallback when a
 * vCPU goes away), help, info, qom-*, quit, and CRLF output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hmp/internal.h"
#include "qs-balloon.h"

#define NVCPUS 2

static const qs_schema_value kvm_vm[] = {
    { .name = "pages_4k", .type = QS_TYPE_INSTANT, .size = 1 },
    { .name = "nx_lpage_splits", .type = QS_TYPE_INSTANT, .size = 1 },
    { .name = "mmu_cache_miss", .type = QS_TYPE_CUMULATIVE, .size = 1 },
};
static const qs_schema_value kvm_vcpu[] = {
    { .name = "exits", .type = QS_TYPE_CUMULATIVE, .size = 1 },
    { .name = "halt_exits", .type = QS_TYPE_CUMULATIVE, .size = 1 },
    { .name = "guest_mode", .type = QS_TYPE_INSTANT, .unit = QS_UNIT_BOOLEAN, .size = 1 },
    { .name = "halt_wait_hist", .type = QS_TYPE_LOG2_HIST, .unit = QS_UNIT_SECONDS,
      .base = 10, .exponent = -9, .size = 4 },
};
static const qs_schema_value balloon_vm[] = {
    { .name = "free-memory", .type = QS_TYPE_INSTANT, .unit = QS_UNIT_BYTES, .size = 1 },
};

typedef struct fake {
    qs_registry *reg;
    qs_hmp *h;
    qs_hmp_monitor *m;
    qs_object *vcpu_obj[NVCPUS];
    char vcpu_path[NVCPUS][64];
    bool fail;
    int quits;
    int64_t interval;
    qs_input_kind last_kind;
    uint64_t last_uint;
    qs_buf out;
} fake;

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void add_scalar(qs_results *out, const qs_schema_value *sv, uint64_t v)
{
    size_t off = qs_results_reserve(out, sv->size);
    if (off == QS_RESULTS_FULL)
        return;
    for (uint32_t k = 0; k < sv->size; k++)
        qs_results_values(out, off)[k] = v + k;
    qs_results_add(out, sv, off);
}

/* vm: pages_4k=10, nx_lpage_splits=20, mmu_cache_miss=30.  vCPU i: exits
 * 1000(i+1), halt_exits 1000(i+1)+1, guest_mode i, hist [i, i+1, ...]. */
static bool kvm_stats(void *opaque, qs_results *out, qs_target target,
                      const qs_strlist *names, const qs_strlist *targets, qs_error **errp)
{
    fake *f = opaque;
    if (f->fail) {
        qs_error_setg(errp, "KVM stats: failed to read stats header");
        return false;
    }
    if (target == QS_TARGET_VM) {
        qs_results_begin(out, "kvm", NULL);
        for (size_t j = 0; j < COUNT(kvm_vm); j++)
            if (qs_strlist_match(names, kvm_vm[j].name))
                add_scalar(out, &kvm_vm[j], 10 * (j + 1));
        qs_results_end(out, true);
    } else if (target == QS_TARGET_VCPU) {
        for (int i = 0; i < NVCPUS; i++) {
            if (!f->vcpu_obj[i] || !qs_strlist_match(targets, f->vcpu_path[i]))
                continue;
            qs_results_begin(out, "kvm", f->vcpu_path[i]);
            uint64_t v[] = { 1000 * (i + 1), 1000 * (i + 1) + 1, (uint64_t)i, (uint64_t)i };
            for (size_t j = 0; j < COUNT(kvm_vcpu); j++)
                if (qs_strlist_match(names, kvm_vcpu[j].name))
                    add_scalar(out, &kvm_vcpu[j], v[j]);
            qs_results_end(out, true);
        }
    }
    return true;
}

static bool kvm_schemas(void *opaque, qs_schemas *out, qs_error **errp)
{
    qs_schemas_add(out, "kvm", QS_TARGET_VM, kvm_vm, COUNT(kvm_vm));
    qs_schemas_add(out, "kvm", QS_TARGET_VCPU, kvm_vcpu, COUNT(kvm_vcpu));
    return true;
}

static bool balloon_stats(void *opaque, qs_results *out, qs_target target,
                          const qs_strlist *names, const qs_strlist *targets, qs_error **errp)
{
    if (target != QS_TARGET_VM)
        return true;
    qs_results_begin(out, "balloon", NULL);
    if (qs_strlist_match(names, balloon_vm[0].name))
        add_scalar(out, &balloon_vm[0], 4096);
    qs_results_end(out, true);
    return true;
}

static bool balloon_schemas(void *opaque, qs_schemas *out, qs_error **errp)
{
    qs_schemas_add(out, "balloon", QS_TARGET_VM, balloon_vm, COUNT(balloon_vm));
    return true;
}

/* ---- a device with properties, for qom-* ------------------------------ */

static bool get_interval(void *opaque, qs_jw *w, qs_error **errp)
{
    qs_jw_i64(w, ((fake *)opaque)->interval);
    return true;
}

static bool set_interval(void *opaque, const qs_input *in, qs_error **errp)
{
    fake *f = opaque;
    f->last_kind = in->kind;
    f->last_uint = in->u;
    if (in->kind != QS_IN_INT) {
        qs_error_setg(errp, "Invalid parameter type for 'guest-stats-polling-interval', "
                            "expected: integer");
        return false;
    }
    if (in->i < 0) {
        qs_error_setg(errp, "timer value must be greater than zero");
        return false;
    }
    f->interval = in->i;
    return true;
}

static bool get_guest_stats(void *opaque, qs_jw *w, qs_error **errp)
{
    qs_jw_begin_object(w);
    qs_jw_key(w, "stats");
    qs_jw_begin_object(w);
    qs_jw_key(w, "stat-swap-in");
    qs_jw_u64(w, UINT64_MAX);
    qs_jw_end_object(w);
    qs_jw_key(w, "last-update");
    qs_jw_u64(w, 0);
    qs_jw_end_object(w);
    return true;
}

static const qs_property balloon_props[] = {
    { "guest-stats-polling-interval", "int", get_interval, set_interval, NULL },
    { "guest-stats", "guest statistics", get_guest_stats, NULL, NULL },
};

static void on_quit(void *opaque)
{
    ((fake *)opaque)->quits++;
}

static int setup(void **state)
{
    fake *f = calloc(1, sizeof(*f));
    f->reg = qs_registry_new();
    qs_registry_add(f->reg, "kvm", kvm_stats, kvm_schemas, f, NULL);
    qs_registry_add(f->reg, "balloon", balloon_stats, balloon_schemas, f, NULL);
    for (int i = 0; i < NVCPUS; i++) {
        snprintf(f->vcpu_path[i], sizeof(f->vcpu_path[i]), "/machine/unattached/device[%d]", i);
        f->vcpu_obj[i] = qs_registry_add_object(f->reg, f->vcpu_path[i], "kvm-vcpu", NULL, 0, f);
        qs_registry_vcpu_ref(f->reg, f->vcpu_path[i]);
    }
    qs_registry_add_object(f->reg, "/machine/peripheral-anon/device[0]", "virtio-balloon-pci",
                           balloon_props, COUNT(balloon_props), f);
    qs_hmp_config cfg = { .reg = f->reg, .on_quit = on_quit, .opaque = f };
    f->h = qs_hmp_new(&cfg);
    /* as qstatsd does: the balloon's commands, with no device behind them */
    assert_true(qs_balloon_add_commands(NULL, NULL, f->h, NULL));
    f->m = qs_hmp_monitor_new(f->h);
    qs_buf_init(&f->out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fake *f = *state;
    qs_hmp_monitor_free(f->m);
    qs_hmp_free(f->h);
    qs_registry_free(f->reg);
    qs_buf_free(&f->out);
    free(f);
    return 0;
}

/* Output of one line on monitor m, NUL-terminated. */
static const char *run_on(fake *f, qs_hmp_monitor *m, const char *line)
{
    qs_buf_reset(&f->out);
    qs_hmp_execute(m, line, &f->out);
    qs_buf_putc(&f->out, '\0');
    return f->out.data;
}

static const char *run(fake *f, const char *line)
{
    return run_on(f, f->m, line);
}

/* ---- info stats ------------------------------------------------------- */

static void test_info_stats_vm_all_providers_in_order(void **state)
{
    fake *f = *state;
    assert_string_equal(run(f, "info stats vm"),
                        "provider: kvm\r\n"
                        "    pages_4k (instant): 10\r\n"
                        "    nx_lpage_splits (instant): 20\r\n"
                        "    mmu_cache_miss (cumulative): 30\r\n"
                        "provider: balloon\r\n"
                        "    free-memory (instant, B): 4096\r\n");
}

/* The reply limit holds for what leaves, "\r\n" included: an output that
 * fits only before each "\n" becomes "\r\n" is refused, one that fits
 * after is not. */
static void test_output_limit_counts_the_line_ends_sent(void **state)
{
    fake *f = *state;
    size_t sent = strlen(run(f, "help"));   /* many lines, no statistics */
    for (size_t limit = sent - 1; limit <= sent; limit++) {
        qs_hmp *h = qs_hmp_new(&(qs_hmp_config){ .reg = f->reg, .max_reply_bytes = limit });
        qs_hmp_monitor *m = qs_hmp_monitor_new(h);
        const char *out = run_on(f, m, "help");
        if (limit < sent)
            assert_non_null(strstr(out, "qstats' reply limit"));
        else
            assert_int_equal(strlen(out), sent);
        qs_hmp_monitor_free(m);
        qs_hmp_free(h);
    }
}

static void test_info_stats_filters_by_names_and_provider(void **state)
{
    fake *f = *state;
    /* names only: every provider is asked, the ones without a match vanish */
    assert_string_equal(run(f, "info stats vm mmu_cache_miss,nosuch,pages_4k"),
                        "provider: kvm\r\n"
                        "    pages_4k (instant): 10\r\n"
                        "    mmu_cache_miss (cumulative): 30\r\n");
    /* a provider argument drops the provider lines */
    assert_string_equal(run(f, "info stats vm * balloon"),
                        "    free-memory (instant, B): 4096\r\n");
    assert_string_equal(run(f, "info stats vm nx_lpage_splits kvm"),
                        "    nx_lpage_splits (instant): 20\r\n");
    /* a provider that is not registered: nothing, and no error */
    assert_string_equal(run(f, "info stats vm * cryptodev"), "");
    assert_string_equal(run(f, "info stats vm nosuch"), "");
    assert_string_equal(run(f, "info stats vm \"\""), "");
}

static void test_info_stats_vcpu_shows_the_current_cpu(void **state)
{
    fake *f = *state;
    assert_string_equal(run(f, "info stats vcpu"),
                        "provider: kvm\r\n"
                        "    exits (cumulative): 1000\r\n"
                        "    halt_exits (cumulative): 1001\r\n"
                        "    guest_mode (instant, boolean): no\r\n"
                        "    halt_wait_hist (log2-histogram, ns): [1]=0 [2]=1 [3]=2 [4]=3 \r\n");
    assert_string_equal(run(f, "cpu 1"), "");
    assert_string_equal(run(f, "info stats vcpu exits,guest_mode"),
                        "provider: kvm\r\n"
                        "    exits (cumulative): 2000\r\n"
                        "    guest_mode (instant, boolean): yes\r\n");
    assert_string_equal(run(f, "cpu 0"), "");
    assert_string_equal(run(f, "info stats vcpu exits kvm"), "    exits (cumulative): 1000\r\n");
}

static void test_cpu_errors(void **state)
{
    fake *f = *state;
    assert_string_equal(run(f, "cpu 2"), "invalid CPU index\r\n");
    assert_string_equal(run(f, "cpu -1"),
                        "'cpu' has failed: integer is for 32-bit values\r\n"
                        "Try \"help cpu\" for more information\r\n");
    assert_string_equal(run(f, "cpu"),
                        "unexpected end of expression\r\n"
                        "Try \"help cpu\" for more information\r\n");
    assert_string_equal(run(f, "cpu 1 2"),
                        "cpu: extraneous characters at the end of line\r\n"
                        "Try \"help cpu\" for more information\r\n");
    /* a failed cpu leaves the current CPU alone */
    assert_string_equal(run(f, "info stats vcpu exits kvm"), "    exits (cumulative): 1000\r\n");
}

static void test_each_monitor_has_its_own_cpu(void **state)
{
    fake *f = *state;
    qs_hmp_monitor *other = qs_hmp_monitor_new(f->h);
    qs_error *err = NULL;
    assert_true(qs_hmp_monitor_set_cpu(other, 1, &err));
    assert_string_equal(run_on(f, other, "info stats vcpu exits kvm"),
                        "    exits (cumulative): 2000\r\n");
    assert_string_equal(run(f, "info stats vcpu exits kvm"), "    exits (cumulative): 1000\r\n");
    assert_false(qs_hmp_monitor_set_cpu(other, 7, &err));
    assert_string_equal(err->msg, "Parameter 'cpu-index' expects a CPU number");
    qs_error_free(err);
    qs_hmp_monitor_free(other);
}

static void test_removed_cpu_falls_back_to_the_first(void **state)
{
    fake *f = *state;
    assert_string_equal(run(f, "cpu 1"), "");
    qs_registry_remove_object(f->reg, f->vcpu_obj[1]);
    qs_registry_vcpu_unref(f->reg, f->vcpu_path[1]);
    f->vcpu_obj[1] = NULL;
    assert_string_equal(run(f, "info stats vcpu exits kvm"), "    exits (cumulative): 1000\r\n");
    assert_string_equal(run(f, "cpu 1"), "invalid CPU index\r\n");
}

static void test_all_vcpus_and_bounds_extensions(void **state)
{
    fake *f = *state;
    assert_string_equal(run(f, "info stats -a vcpu exits"),
                        "provider: kvm\r\n"
                        "qom-path: /machine/unattached/device[0]\r\n"
                        "    exits (cumulative): 1000\r\n"
                        "provider: kvm\r\n"
                        "qom-path: /machine/unattached/device[1]\r\n"
                        "    exits (cumulative): 2000\r\n");
    assert_string_equal(run(f, "info stats -b vcpu halt_wait_hist kvm"),
                        "    halt_wait_hist (log2-histogram, ns): "
                        "[0,1)ns=0 [1,2)ns=1 [2,4)ns=2 [4ns,+inf)=3 \r\n");
}

static void test_info_stats_errors(void **state)
{
    fake *f = *state;
    assert_string_equal(run(f, "info stats nosuch"), "invalid stats target nosuch\r\n");
    assert_string_equal(run(f, "info stats vm * xen"), "invalid stats provider xen\r\n");
    assert_string_equal(run(f, "info stats"),
                        "stats: string expected\r\n"
                        "Try \"help info stats\" for more information\r\n");
    assert_string_equal(run(f, "info stats vm a b c"),
                        "stats: extraneous characters at the end of line\r\n"
                        "Try \"help info stats\" for more information\r\n");
    assert_string_equal(run(f, "info stats -z vm"),
                        "stats: unsupported option -z\r\n"
                        "Try \"help info stats\" for more information\r\n");
    f->fail = true;
    assert_string_equal(run(f, "info stats vm"), "KVM stats: failed to read stats header\r\n");
}

/* ---- the other commands ------------------------------------------------ */

static void test_unknown_commands(void **state)
{
    fake *f = *state;
    assert_string_equal(run(f, "foo"), "unknown command: 'foo'\r\n");
    assert_string_equal(run(f, "info foo"), "unknown command: 'info foo'\r\n");
    assert_string_equal(run(f, ""), "");
    assert_string_equal(run(f, "   "), "");
}

static void test_help(void **state)
{
    fake *f = *state;
    const char *all = run(f, "help");
    assert_non_null(strstr(all, "cpu index -- set the default CPU\r\n"));
    assert_non_null(strstr(all, "help|? [cmd] -- show the help\r\n"));
    assert_non_null(strstr(all, "info [subcommand] -- show various information about the "
                                "system state\r\n"));
    assert_non_null(strstr(all, "qom-get path property -- print QOM property\r\n"));
    assert_non_null(strstr(all, "quit|q  -- "));
    assert_non_null(strstr(run(f, "help info"), "info version  -- "));
    assert_non_null(strstr(run(f, "info"), "info balloon  -- show balloon information\r\n"));
    assert_int_equal(strncmp(run(f, "help info stats x"),
                             "info stats [-a] [-b] target [names] [provider] -- ", 49), 0);
    assert_string_equal(run(f, "? cpu"), "cpu index -- set the default CPU\r\n");
    assert_string_equal(run(f, "help nosuch"), "unknown command: 'nosuch'\r\n");
    assert_string_equal(run(f, "help info nosuch"), "unknown command: 'info nosuch'\r\n");
}

static void test_info_version_and_balloon(void **state)
{
    fake *f = *state;
    assert_string_equal(run(f, "info version"), QS_VERSION_STRING " (qstats)\r\n");
    assert_string_equal(run(f, "info balloon"),
                        "Error: No balloon device has been activated\r\n");
}

/* With the real balloon device: its size in MiB, as QEMU prints it. */
static void test_info_balloon_reports_mib(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    qs_registry *reg = qs_registry_new();
    qs_balloon *b = qs_balloon_new(&loop, reg, 256ull << 20);
    qs_hmp *h = qs_hmp_new(&(qs_hmp_config){ .reg = reg });
    assert_true(qs_balloon_add_commands(b, NULL, h, NULL));
    qs_hmp_monitor *m = qs_hmp_monitor_new(h);
    qs_buf out;
    qs_buf_init(&out);
    qs_hmp_execute(m, "info balloon", &out);
    qs_buf_putc(&out, '\0');
    assert_string_equal(out.data, "balloon: actual=256\r\n");
    qs_buf_free(&out);
    qs_hmp_monitor_free(m);
    qs_hmp_free(h);
    qs_balloon_free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    qs_registry_free(reg);
}

static void test_quit_calls_back(void **state)
{
    fake *f = *state;
    assert_string_equal(run(f, "quit x"),
                        "quit|q: extraneous characters at the end of line\r\n"
                        "Try \"help quit\" for more information\r\n");
    assert_int_equal(f->quits, 0);
    assert_string_equal(run(f, "q"), "");
    assert_int_equal(f->quits, 1);
}

static void test_qom_list(void **state)
{
    fake *f = *state;
    assert_string_equal(run(f, "qom-list"), "/\r\n");
    assert_string_equal(run(f, "qom-list /machine/unattached"),
                        "type (string)\r\n"
                        "device[0] (child<kvm-vcpu>)\r\n"
                        "device[1] (child<kvm-vcpu>)\r\n");
    assert_string_equal(run(f, "qom-list /machine/peripheral-anon/device[0]"),
                        "type (string)\r\n"
                        "guest-stats-polling-interval (int)\r\n"
                        "guest-stats (guest statistics)\r\n");
    assert_string_equal(run(f, "qom-list /nonexist"), "Error: Device '/nonexist' not found\r\n");
}

static void test_qom_get_prints_pretty_json(void **state)
{
    fake *f = *state;
    assert_string_equal(run(f, "qom-get /machine/unattached/device[1] type"),
                        "\"kvm-vcpu\"\r\n");
    assert_string_equal(run(f, "qom-get /machine/peripheral-anon/device[0] guest-stats"),
                        "{\r\n"
                        "    \"stats\": {\r\n"
                        "        \"stat-swap-in\": 18446744073709551615\r\n"
                        "    },\r\n"
                        "    \"last-update\": 0\r\n"
                        "}\r\n");
    assert_string_equal(run(f, "qom-get /machine/peripheral-anon/device[0] nope"),
                        "Error: Property 'virtio-balloon-pci.nope' not found\r\n");
    assert_string_equal(run(f, "qom-get /x"),
                        "qom-get: string expected\r\n"
                        "Try \"help qom-get\" for more information\r\n");
}

static void test_qom_set_converts_by_type_or_json(void **state)
{
    fake *f = *state;
    const char *dev = "qom-set /machine/peripheral-anon/device[0] ";
    char line[256];

#define SET(rest) (snprintf(line, sizeof(line), "%s%s", dev, rest), run(f, line))
#define SETJ(rest) (snprintf(line, sizeof(line), "qom-set -j %s%s", dev + 8, rest), run(f, line))
    assert_string_equal(SET("guest-stats-polling-interval 0x10"), "");
    assert_int_equal(f->interval, 16);
    assert_string_equal(run(f, "qom-get /machine/peripheral-anon/device[0] "
                               "guest-stats-polling-interval"), "16\r\n");
    assert_string_equal(SET("guest-stats-polling-interval abc"),
                        "Error: Parameter 'guest-stats-polling-interval' expects int64\r\n");
    assert_string_equal(SET("guest-stats-polling-interval \"4\""),
                        "Error: Parameter 'guest-stats-polling-interval' expects int64\r\n");
    assert_string_equal(SET("guest-stats-polling-interval -5"),
                        "Error: timer value must be greater than zero\r\n");
    assert_int_equal(f->interval, 16);
    /* -j: the value is JSON, whatever the property's type */
    assert_string_equal(SETJ("guest-stats-polling-interval 3"), "");
    assert_int_equal(f->interval, 3);
    assert_string_equal(SETJ("guest-stats-polling-interval \"3\""),
                        "Error: Invalid parameter type for 'guest-stats-polling-interval', "
                        "expected: integer\r\n");
    assert_int_equal(f->last_kind, QS_IN_STRING);
    assert_string_equal(SETJ("guest-stats-polling-interval 18446744073709551615"),
                        "Error: Invalid parameter type for 'guest-stats-polling-interval', "
                        "expected: integer\r\n");
    assert_int_equal(f->last_kind, QS_IN_UINT);
    assert_true(f->last_uint == UINT64_MAX);
    assert_string_equal(SETJ("guest-stats-polling-interval {"),
                        "Error: JSON parse error, premature EOI\r\n");
    assert_string_equal(SET("guest-stats 1"),
                        "Error: Property 'virtio-balloon-pci.guest-stats' is not writable\r\n");
    assert_string_equal(run(f, "qom-set /nonexist x 1"), "Error: Device '/nonexist' not found\r\n");
#undef SET
#undef SETJ
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_info_stats_vm_all_providers_in_order),
        T(test_output_limit_counts_the_line_ends_sent),
        T(test_info_stats_filters_by_names_and_provider),
        T(test_info_stats_vcpu_shows_the_current_cpu),
        T(test_cpu_errors),
        T(test_each_monitor_has_its_own_cpu),
        T(test_removed_cpu_falls_back_to_the_first),
        T(test_all_vcpus_and_bounds_extensions),
        T(test_info_stats_errors),
        T(test_unknown_commands),
        T(test_help),
        T(test_info_version_and_balloon),
        cmocka_unit_test(test_info_balloon_reports_mib),
        T(test_quit_calls_back),
        T(test_qom_list),
        T(test_qom_get_prints_pretty_json),
        T(test_qom_set_converts_by_type_or_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
