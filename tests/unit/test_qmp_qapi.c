/*
 * test_qmp_qapi.c - the QMP schema (qmp/qapi-schema.c) and the argument
 * validator (qmp/qapi-validate.c, with keyorder.c).
 *
 * The expected texts below were observed on a live QEMU 7.2
 * (qemu-system-x86_64 -M pc -accel kvm, QMP over a Unix socket) unless a
 * comment says otherwise; the error replies of the recorded transcript
 * (tests/fixtures/qemu-7.2-qmp-transcript.json) are replayed as well.
 * Since QMP reports only the first error, several tests pin the ORDER in
 * which QEMU finds errors, including which of several unexpected keys it
 * names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "qmp/qapi.h"

/* ---- helpers ------------------------------------------------------------ */

/* Validates; returns NULL on success or the error text (caller frees). */
static char *validate(const qs_qapi *s, const char *cmd, const char *args_json)
{
    json_error_t jerr;
    json_t *args = json_loads(args_json, JSON_REJECT_DUPLICATES, &jerr);
    qs_error *err = NULL;
    char *msg = NULL;

    if (!args) {
        fail_msg("bad test JSON %s: %s", args_json, jerr.text);
    }
    if (!qs_qapi_validate_args(s, cmd, args, &err)) {
        assert_non_null(err);
        assert_int_equal(err->cls, QS_ERR_GENERIC);
        msg = qs_strdup(err->msg);
        qs_error_free(err);
    } else {
        assert_null(err);
    }
    json_decref(args);
    return msg;
}

static void expect_err(const qs_qapi *s, const char *cmd, const char *args,
                       const char *text)
{
    char *msg = validate(s, cmd, args);

    if (!msg) {
        fail_msg("%s %s: accepted, expected \"%s\"", cmd, args, text);
    }
    if (strcmp(msg, text)) {
        fail_msg("%s %s:\n  got      \"%s\"\n  expected \"%s\"", cmd, args, msg, text);
    }
    free(msg);
}

static void expect_ok(const qs_qapi *s, const char *cmd, const char *args)
{
    char *msg = validate(s, cmd, args);

    if (msg) {
        fail_msg("%s %s: refused with \"%s\"", cmd, args, msg);
    }
}

static qs_qapi *load_str(const char *json)
{
    qs_error *err = NULL;
    qs_qapi *s = qs_qapi_load(json, strlen(json), &err);

    if (!s) {
        fail_msg("schema refused: %s", err ? err->msg : "(no error)");
    }
    return s;
}

extern const char qs_balloon_schema_json[];

/* The schema qstatsd serves: the framework's part and the balloon's. */
static int setup_builtin(void **state)
{
    qs_error *err = NULL;

    *state = qs_qapi_load_builtin(&err);
    if (*state && !qs_qapi_add(*state, qs_balloon_schema_json,
                               strlen(qs_balloon_schema_json), &err)) {
        qs_qapi_free(*state);
        *state = NULL;
    }
    if (!*state) {
        fprintf(stderr, "builtin schema: %s\n", err ? err->msg : "?");
        qs_error_free(err);
        return -1;
    }
    return 0;
}

static int teardown_builtin(void **state)
{
    qs_qapi_free(*state);
    return 0;
}

/* ---- the builtin schema ------------------------------------------------- */

static const char *const contract_commands[] = {
    "qmp_capabilities", "query-version", "query-commands", "query-qmp-schema",
    "query-name", "quit", "query-stats", "query-stats-schemas", "qom-list",
    "qom-get", "qom-set", "human-monitor-command", "getfd", "closefd",
    "add-stats-fd", "remove-stats-fd", "query-status", "query-stats-failures",
    "query-cpus-fast", "query-balloon",
};

static void builtin_schema_lists_every_contract_command_in_order(void **state)
{
    const qs_qapi *s = *state;
    size_t n = sizeof(contract_commands) / sizeof(contract_commands[0]);

    assert_int_equal(qs_qapi_command_count(s), n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(qs_qapi_command_name(s, i), contract_commands[i]);
        assert_true(qs_qapi_has_command(s, contract_commands[i]));
    }
    assert_null(qs_qapi_command_name(s, n));
    assert_false(qs_qapi_has_command(s, "query-cpus"));
    /* a type name is not a command */
    assert_false(qs_qapi_has_command(s, "StatsFilter"));
}

static const json_t *find_entry(const json_t *schema, const char *name)
{
    size_t i;
    json_t *e;

    json_array_foreach(schema, i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "name")), name)) {
            return e;
        }
    }
    return NULL;
}

static void builtin_schema_has_introspection_shapes(void **state)
{
    const json_t *schema = qs_qapi_schema(*state);
    const json_t *e, *filter, *prov, *vars;

    assert_true(json_is_array(schema));
    e = find_entry(schema, "query-stats");
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "meta-type")), "command");
    assert_string_equal(json_string_value(json_object_get(e, "arg-type")), "StatsFilter");
    assert_string_equal(json_string_value(json_object_get(e, "ret-type")), "[StatsResult]");

    filter = find_entry(schema, "StatsFilter");
    assert_string_equal(json_string_value(json_object_get(filter, "tag")), "target");
    vars = json_object_get(filter, "variants");
    assert_int_equal(json_array_size(vars), 3);
    /* optional members carry "default": null, as in QEMU */
    e = json_array_get(json_object_get(filter, "members"), 1);
    assert_string_equal(json_string_value(json_object_get(e, "name")), "providers");
    assert_true(json_is_null(json_object_get(e, "default")));

    prov = find_entry(schema, "StatsProvider");
    assert_string_equal(json_string_value(json_object_get(prov, "meta-type")), "enum");
    assert_int_equal(json_array_size(json_object_get(prov, "values")), 4);
    assert_string_equal(json_string_value(json_array_get(json_object_get(prov, "values"), 2)),
                        "balloon");
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(json_object_get(prov, "members"), 0), "name")), "kvm");

    e = find_entry(schema, "StatsValue");
    assert_string_equal(json_string_value(json_object_get(e, "meta-type")), "alternate");
    e = find_entry(schema, "any");
    assert_string_equal(json_string_value(json_object_get(e, "json-type")), "value");
}

/* ---- error shapes (texts from live QEMU 7.2) ----------------------------- */

static void missing_members_are_named_by_full_path(void **state)
{
    const qs_qapi *s = *state;

    expect_err(s, "query-stats", "{}", "Parameter 'target' is missing");
    expect_err(s, "query-stats", "{\"target\":\"vm\",\"providers\":[{}]}",
               "Parameter 'providers[0].provider' is missing");
    expect_err(s, "query-stats",
               "{\"target\":\"vm\",\"providers\":[{\"provider\":\"kvm\"},{\"names\":[]}]}",
               "Parameter 'providers[1].provider' is missing");
    expect_err(s, "qom-get", "{\"path\":\"/machine\"}", "Parameter 'property' is missing");
    expect_err(s, "qom-set", "{\"path\":\"/p\",\"property\":\"x\"}",
               "Parameter 'value' is missing");
    expect_err(s, "human-monitor-command", "{}", "Parameter 'command-line' is missing");
    expect_err(s, "getfd", "{}", "Parameter 'fdname' is missing");
    expect_err(s, "closefd", "{}", "Parameter 'fdname' is missing");
    expect_err(s, "add-stats-fd", "{\"fdname\":\"f\",\"target\":\"vm\"}",
               "Parameter 'provider' is missing");
    expect_err(s, "remove-stats-fd", "{}", "Parameter 'target' is missing");
}

static void enum_errors_use_the_bare_member_name(void **state)
{
    const qs_qapi *s = *state;

    expect_err(s, "query-stats", "{\"target\":\"foo\"}",
               "Parameter 'target' does not accept value 'foo'");
    /* the path would be providers[1].provider; QEMU says 'provider' */
    expect_err(s, "query-stats",
               "{\"target\":\"vm\",\"providers\":[{\"provider\":\"kvm\"},{\"provider\":\"xyz\"}]}",
               "Parameter 'provider' does not accept value 'xyz'");
    /* an enum that is itself a list element has no name at all */
    expect_err(s, "qmp_capabilities", "{\"enable\":[\"foo\"]}",
               "Parameter 'null' does not accept value 'foo'");
    /* case-sensitive */
    expect_err(s, "query-stats", "{\"target\":\"VM\"}",
               "Parameter 'target' does not accept value 'VM'");
    expect_err(s, "query-stats-schemas", "{\"provider\":\"\"}",
               "Parameter 'provider' does not accept value ''");
    expect_err(s, "add-stats-fd", "{\"fdname\":\"f\",\"provider\":\"kvm\",\"target\":\"x\"}",
               "Parameter 'target' does not accept value 'x'");
    /* a non-string for an enum is a type error, with the full path */
    expect_err(s, "query-stats", "{\"target\":1}",
               "Invalid parameter type for 'target', expected: string");
    expect_err(s, "query-stats",
               "{\"target\":\"vm\",\"providers\":[{\"provider\":\"kvm\"},{\"provider\":3}]}",
               "Invalid parameter type for 'providers[1].provider', expected: string");
}

static void unexpected_keys_and_other_union_branches_are_refused(void **state)
{
    const qs_qapi *s = *state;

    expect_err(s, "query-stats", "{\"target\":\"vm\",\"vcpus\":[]}",
               "Parameter 'vcpus' is unexpected");
    expect_err(s, "query-stats", "{\"target\":\"cryptodev\",\"vcpus\":[\"/a\"]}",
               "Parameter 'vcpus' is unexpected");
    expect_err(s, "query-stats",
               "{\"target\":\"vm\",\"providers\":[{\"provider\":\"kvm\",\"foo\":1}]}",
               "Parameter 'providers[0].foo' is unexpected");
    expect_err(s, "query-version", "{\"foo\":1}", "Parameter 'foo' is unexpected");
    expect_err(s, "quit", "{\"force\":true}", "Parameter 'force' is unexpected");
    expect_err(s, "query-stats-schemas", "{\"provider\":\"kvm\",\"target\":\"vm\"}",
               "Parameter 'target' is unexpected");
}

static void wrong_json_types_name_the_expected_type(void **state)
{
    const qs_qapi *s = *state;

    expect_err(s, "query-stats", "{\"target\":\"vcpu\",\"vcpus\":[1]}",
               "Invalid parameter type for 'vcpus[0]', expected: string");
    expect_err(s, "query-stats", "{\"target\":\"vcpu\",\"vcpus\":\"x\"}",
               "Invalid parameter type for 'vcpus', expected: array");
    expect_err(s, "query-stats", "{\"target\":\"vm\",\"providers\":{}}",
               "Invalid parameter type for 'providers', expected: array");
    expect_err(s, "query-stats", "{\"target\":\"vm\",\"providers\":[1]}",
               "Invalid parameter type for 'providers[0]', expected: object");
    expect_err(s, "query-stats",
               "{\"target\":\"vm\",\"providers\":[{\"provider\":\"kvm\",\"names\":[\"a\",2]}]}",
               "Invalid parameter type for 'providers[0].names[1]', expected: string");
    expect_err(s, "human-monitor-command", "{\"command-line\":\"x\",\"cpu-index\":\"x\"}",
               "Invalid parameter type for 'cpu-index', expected: integer");
    /* 1.0 and 1.5 are numbers, not integers */
    expect_err(s, "human-monitor-command", "{\"command-line\":\"x\",\"cpu-index\":1.0}",
               "Invalid parameter type for 'cpu-index', expected: integer");
    expect_err(s, "human-monitor-command", "{\"command-line\":\"x\",\"cpu-index\":true}",
               "Invalid parameter type for 'cpu-index', expected: integer");
    expect_err(s, "getfd", "{\"fdname\":{}}",
               "Invalid parameter type for 'fdname', expected: string");
    expect_err(s, "closefd", "{\"fdname\":false}",
               "Invalid parameter type for 'fdname', expected: string");
    expect_err(s, "qom-list", "{\"path\":[]}",
               "Invalid parameter type for 'path', expected: string");
}

static void null_for_an_optional_member_is_a_type_error(void **state)
{
    const qs_qapi *s = *state;

    expect_err(s, "query-stats", "{\"target\":\"vm\",\"providers\":null}",
               "Invalid parameter type for 'providers', expected: array");
    expect_err(s, "query-stats", "{\"target\":\"vcpu\",\"vcpus\":null}",
               "Invalid parameter type for 'vcpus', expected: array");
    expect_err(s, "query-stats-schemas", "{\"provider\":null}",
               "Invalid parameter type for 'provider', expected: string");
    expect_err(s, "human-monitor-command", "{\"command-line\":\"x\",\"cpu-index\":null}",
               "Invalid parameter type for 'cpu-index', expected: integer");
}

/* ---- order: only the first error is reported ----------------------------- */

static void errors_are_found_in_declaration_order(void **state)
{
    const qs_qapi *s = *state;

    /* unknown keys are checked only after every member was visited */
    expect_err(s, "query-stats", "{\"zzz\":1}", "Parameter 'target' is missing");
    expect_err(s, "query-stats", "{\"zzz\":1,\"target\":\"vm\",\"providers\":[{}]}",
               "Parameter 'providers[0].provider' is missing");
    /* a nested struct is checked completely before the outer one */
    expect_err(s, "query-stats",
               "{\"vcpus\":[1],\"target\":\"vcpu\",\"providers\":[{\"provider\":\"kvm\",\"foo\":1}]}",
               "Parameter 'providers[0].foo' is unexpected");
    expect_err(s, "query-stats",
               "{\"target\":\"vcpu\",\"providers\":[{\"foo\":1,\"provider\":\"zz\"}]}",
               "Parameter 'provider' does not accept value 'zz'");
    /* the tag (a base member) comes before the other base members, and the
     * base before the branch, whatever the key order */
    expect_err(s, "query-stats", "{\"vcpus\":[1],\"providers\":3,\"target\":\"x\"}",
               "Parameter 'target' does not accept value 'x'");
    expect_err(s, "query-stats", "{\"vcpus\":[1],\"providers\":3,\"target\":\"vcpu\"}",
               "Invalid parameter type for 'providers', expected: array");
    /* list elements in order */
    expect_err(s, "query-stats", "{\"target\":\"vcpu\",\"vcpus\":[\"a\",{},1]}",
               "Invalid parameter type for 'vcpus[1]', expected: string");
    /* qom-get: path before property */
    expect_err(s, "qom-get", "{\"property\":1}", "Parameter 'path' is missing");
    expect_err(s, "add-stats-fd", "{\"provider\":\"nope\",\"target\":\"nope\"}",
               "Parameter 'fdname' is missing");
}

/* Which of several unexpected keys QEMU names follows its hash tables;
 * each case below is a reply of the live QEMU 7.2. */
static void several_unexpected_keys_are_reported_like_qemu(void **state)
{
    const qs_qapi *s = *state;

    expect_err(s, "query-stats-schemas", "{\"b\":1,\"a\":2}", "Parameter 'b' is unexpected");
    expect_err(s, "query-stats-schemas", "{\"provider\":\"kvm\",\"a\":1,\"b\":2}",
               "Parameter 'b' is unexpected");
    expect_err(s, "query-stats-schemas", "{\"provider\":\"kvm\",\"b\":1,\"a\":2,\"c\":3}",
               "Parameter 'b' is unexpected");
    expect_err(s, "query-version", "{\"alpha\":1,\"beta\":2,\"gamma\":3,\"delta\":4}",
               "Parameter 'beta' is unexpected");
    /* 20 keys: the table grew twice */
    expect_err(s, "query-version",
               "{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,"
               "\"k8\":8,\"k9\":9,\"k10\":10,\"k11\":11,\"k12\":12,\"k13\":13,\"k14\":14,"
               "\"k15\":15,\"k16\":16,\"k17\":17,\"k18\":18,\"k19\":19}",
               "Parameter 'k7' is unexpected");
    /* keys sharing a QDict bucket: its newest-first order decides */
    expect_err(s, "query-version", "{\"k1921\":1,\"k1009\":1,\"k1559\":1,\"k2227\":1}",
               "Parameter 'k1559' is unexpected");
    expect_err(s, "query-version", "{\"k2470\":1,\"k2400\":1,\"k13\":1,\"k2441\":1}",
               "Parameter 'k2470' is unexpected");
    expect_err(s, "query-stats",
               "{\"target\":\"vcpu\",\"vcpus\":[\"a\"],\"providers\":[{\"provider\":\"kvm\","
               "\"names\":[]}],\"x\":1,\"y\":2,\"z\":3,\"w\":4,\"v\":5,\"u\":6,\"t\":7,"
               "\"s\":8,\"r\":9}",
               "Parameter 'u' is unexpected");
    expect_err(s, "query-stats",
               "{\"target\":\"vm\",\"providers\":[{\"provider\":\"kvm\",\"zeta\":1,"
               "\"eta\":2,\"theta\":3}]}",
               "Parameter 'providers[0].theta' is unexpected");
    expect_err(s, "query-stats",
               "{\"foo\":1,\"target\":\"vcpu\",\"bar\":2,\"vcpus\":[],\"baz\":3}",
               "Parameter 'baz' is unexpected");
}

/* QEMU 7.2's migrate-set-parameters members, in declaration order: visiting
 * 27 of them shrinks the hash table before the unexpected keys are looked
 * for, which moves them around. */
static const char *const msp_members[] = {
    "announce-initial", "announce-max", "announce-rounds", "announce-step",
    "compress-level", "compress-threads", "compress-wait-thread",
    "decompress-threads", "throttle-trigger-threshold", "cpu-throttle-initial",
    "cpu-throttle-increment", "cpu-throttle-tailslow", "tls-creds",
    "tls-hostname", "tls-authz", "max-bandwidth", "downtime-limit",
    "x-checkpoint-delay", "block-incremental", "multifd-channels",
    "xbzrle-cache-size", "max-postcopy-bandwidth", "max-cpu-throttle",
    "multifd-compression", "multifd-zlib-level", "multifd-zstd-level",
    "block-bitmap-mapping",
};

static void unexpected_key_after_the_table_shrank_matches_qemu(void **state)
{
    size_t n = sizeof(msp_members) / sizeof(msp_members[0]);
    qs_buf schema, args;
    qs_qapi *s;

    (void)state;
    qs_buf_init(&schema);
    qs_buf_init(&args);
    qs_buf_puts(&schema, "[{\"name\":\"msp\",\"meta-type\":\"command\",\"arg-type\":\"A\","
                "\"ret-type\":\"A\"},{\"name\":\"any\",\"meta-type\":\"builtin\","
                "\"json-type\":\"value\"},{\"name\":\"A\",\"meta-type\":\"object\","
                "\"members\":[");
    qs_buf_putc(&args, '{');
    for (size_t i = 0; i < n; i++) {
        qs_buf_printf(&schema, "%s{\"name\":\"%s\",\"type\":\"any\",\"default\":null}",
                      i ? "," : "", msp_members[i]);
        qs_buf_printf(&args, "\"%s\":1,", msp_members[i]);
    }
    qs_buf_puts(&schema, "]}]");
    s = load_str(schema.data);
    qs_buf_free(&schema);
    qs_buf_puts(&args, "\"x1\":1,\"x2\":1,\"x3\":1,\"x4\":1}");
    expect_err(s, "msp", args.data, "Parameter 'x4' is unexpected");
    qs_qapi_free(s);
    qs_buf_free(&args);
}

/* ---- accepted inputs ------------------------------------------------------ */

static void valid_arguments_are_accepted(void **state)
{
    const qs_qapi *s = *state;

    expect_ok(s, "query-stats", "{\"target\":\"vm\"}");
    expect_ok(s, "query-stats", "{\"target\":\"vcpu\"}");
    expect_ok(s, "query-stats", "{\"target\":\"cryptodev\"}");
    expect_ok(s, "query-stats", "{\"target\":\"vcpu\",\"vcpus\":[]}");
    expect_ok(s, "query-stats",
              "{\"providers\":[{\"provider\":\"balloon\",\"names\":[]},{\"provider\":\"kvm\"}],"
              "\"vcpus\":[\"/machine/unattached/device[0]\"],\"target\":\"vcpu\"}");
    expect_ok(s, "query-stats", "{\"target\":\"vm\",\"providers\":[]}");
    expect_ok(s, "query-stats-schemas", "{}");
    expect_ok(s, "query-stats-schemas", "{\"provider\":\"cryptodev\"}");
    expect_ok(s, "qmp_capabilities", "{}");
    expect_ok(s, "qmp_capabilities", "{\"enable\":[\"oob\"]}");
    expect_ok(s, "query-version", "{}");
    expect_ok(s, "query-commands", "{}");
    expect_ok(s, "query-qmp-schema", "{}");
    expect_ok(s, "query-name", "{}");
    expect_ok(s, "query-balloon", "{}");
    expect_ok(s, "quit", "{}");
    expect_ok(s, "qom-list", "{\"path\":\"/machine\"}");
    expect_ok(s, "qom-get", "{\"path\":\"/machine\",\"property\":\"type\"}");
    expect_ok(s, "human-monitor-command", "{\"command-line\":\"info stats vm\",\"cpu-index\":-1}");
    expect_ok(s, "getfd", "{\"fdname\":\"\"}");
    expect_ok(s, "closefd", "{\"fdname\":\"fd0\"}");
    expect_ok(s, "add-stats-fd",
              "{\"fdname\":\"f\",\"provider\":\"kvm\",\"target\":\"vcpu\","
              "\"qom-path\":\"/machine/unattached/device[3]\"}");
    expect_ok(s, "remove-stats-fd", "{\"target\":\"vm\"}");
}

static void any_accepts_every_json_value(void **state)
{
    const qs_qapi *s = *state;
    static const char *const values[] = {
        "null", "0", "-1", "1.5", "true", "\"s\"", "[]", "[1,[2]]", "{}", "{\"a\":{\"b\":null}}",
    };

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char args[128];

        snprintf(args, sizeof(args), "{\"path\":\"/p\",\"property\":\"x\",\"value\":%s}",
                 values[i]);
        expect_ok(s, "qom-set", args);
    }
}

static void a_null_args_pointer_counts_as_no_arguments(void **state)
{
    const qs_qapi *s = *state;
    qs_error *err = NULL;

    assert_true(qs_qapi_validate_args(s, "query-version", NULL, &err));
    assert_false(qs_qapi_validate_args(s, "query-stats", NULL, &err));
    assert_string_equal(err->msg, "Parameter 'target' is missing");
    qs_error_free(err);
}

static void unknown_command_is_command_not_found(void **state)
{
    const qs_qapi *s = *state;
    json_t *args = json_object();
    qs_error *err = NULL;

    assert_false(qs_qapi_validate_args(s, "query-cpus", args, &err));
    assert_int_equal(err->cls, QS_ERR_COMMAND_NOT_FOUND);
    assert_string_equal(err->msg, "The command query-cpus has not been found");
    qs_error_free(err);
    err = NULL;
    /* a type is not a command */
    assert_false(qs_qapi_validate_args(s, "StatsFilter", args, &err));
    assert_int_equal(err->cls, QS_ERR_COMMAND_NOT_FOUND);
    qs_error_free(err);
    json_decref(args);
}

/* ---- builtins and alternates (a schema written for the test) ------------- */

static const char builtin_test_schema[] =
    "[{\"name\":\"t\",\"meta-type\":\"command\",\"arg-type\":\"A\",\"ret-type\":\"E\"},"
    "{\"name\":\"E\",\"meta-type\":\"object\",\"members\":[]},"
    "{\"name\":\"A\",\"meta-type\":\"object\",\"members\":["
    "{\"name\":\"u8\",\"type\":\"uint8\",\"default\":null},"
    "{\"name\":\"u16\",\"type\":\"uint16\",\"default\":null},"
    "{\"name\":\"u32\",\"type\":\"uint32\",\"default\":null},"
    "{\"name\":\"u64\",\"type\":\"uint64\",\"default\":null},"
    "{\"name\":\"i8\",\"type\":\"int8\",\"default\":null},"
    "{\"name\":\"i16\",\"type\":\"int16\",\"default\":null},"
    "{\"name\":\"i\",\"type\":\"int\",\"default\":null},"
    "{\"name\":\"n\",\"type\":\"number\",\"default\":null},"
    "{\"name\":\"b\",\"type\":\"bool\",\"default\":null},"
    "{\"name\":\"z\",\"type\":\"null\",\"default\":null},"
    "{\"name\":\"sub\",\"type\":\"S\",\"default\":null},"
    "{\"name\":\"l8\",\"type\":\"[uint8]\",\"default\":null},"
    "{\"name\":\"v\",\"type\":\"V\",\"default\":null},"
    "{\"name\":\"vl\",\"type\":\"[V]\",\"default\":null}]},"
    "{\"name\":\"S\",\"meta-type\":\"object\",\"members\":["
    "{\"name\":\"u8\",\"type\":\"uint8\",\"default\":null}]},"
    "{\"name\":\"V\",\"meta-type\":\"alternate\",\"members\":["
    "{\"type\":\"uint64\"},{\"type\":\"bool\"},{\"type\":\"[uint64]\"},{\"type\":\"S\"}]},"
    "{\"name\":\"[uint8]\",\"meta-type\":\"array\",\"element-type\":\"uint8\"},"
    "{\"name\":\"[uint64]\",\"meta-type\":\"array\",\"element-type\":\"uint64\"},"
    "{\"name\":\"[V]\",\"meta-type\":\"array\",\"element-type\":\"V\"},"
    "{\"name\":\"uint8\",\"meta-type\":\"builtin\",\"json-type\":\"int\"},"
    "{\"name\":\"uint16\",\"meta-type\":\"builtin\",\"json-type\":\"int\"},"
    "{\"name\":\"uint32\",\"meta-type\":\"builtin\",\"json-type\":\"int\"},"
    "{\"name\":\"uint64\",\"meta-type\":\"builtin\",\"json-type\":\"int\"},"
    "{\"name\":\"int8\",\"meta-type\":\"builtin\",\"json-type\":\"int\"},"
    "{\"name\":\"int16\",\"meta-type\":\"builtin\",\"json-type\":\"int\"},"
    "{\"name\":\"int\",\"meta-type\":\"builtin\",\"json-type\":\"int\"},"
    "{\"name\":\"number\",\"meta-type\":\"builtin\",\"json-type\":\"number\"},"
    "{\"name\":\"bool\",\"meta-type\":\"builtin\",\"json-type\":\"boolean\"},"
    "{\"name\":\"null\",\"meta-type\":\"builtin\",\"json-type\":\"null\"}]";

static void sized_integers_report_range_and_type_like_qemu(void **state)
{
    qs_qapi *s = load_str(builtin_test_schema);

    (void)state;
    /* observed with migrate-set-parameters, set-numa-node, blockdev-add */
    expect_err(s, "t", "{\"u8\":256}", "Parameter 'u8' expects uint8_t");
    expect_err(s, "t", "{\"u8\":-1}", "Parameter 'u8' expects uint8_t");
    expect_err(s, "t", "{\"u8\":\"x\"}", "Parameter 'u8' expects uint64");
    expect_err(s, "t", "{\"u8\":1.5}", "Parameter 'u8' expects uint64");
    expect_err(s, "t", "{\"u16\":65536}", "Parameter 'u16' expects uint16_t");
    expect_err(s, "t", "{\"u32\":4294967296}", "Parameter 'u32' expects uint32_t");
    /* the range error names the bare member, the type error the path */
    expect_err(s, "t", "{\"sub\":{\"u8\":300}}", "Parameter 'u8' expects uint8_t");
    expect_err(s, "t", "{\"sub\":{\"u8\":\"z\"}}", "Parameter 'sub.u8' expects uint64");
    expect_err(s, "t", "{\"l8\":[1,256]}", "Parameter 'null' expects uint8_t");
    expect_err(s, "t", "{\"l8\":[1,\"a\"]}", "Parameter 'l8[1]' expects uint64");
    /* uint64 takes negative numbers as their two's complement */
    expect_ok(s, "t", "{\"u8\":255,\"u16\":65535,\"u32\":4294967295,\"u64\":-1}");
    expect_err(s, "t", "{\"u64\":\"1\"}", "Parameter 'u64' expects uint64");
    /* signed: by symmetry with the unsigned texts (not observed live) */
    expect_err(s, "t", "{\"i8\":128}", "Parameter 'i8' expects int8_t");
    expect_err(s, "t", "{\"i16\":-32769}", "Parameter 'i16' expects int16_t");
    expect_err(s, "t", "{\"i8\":\"x\"}", "Invalid parameter type for 'i8', expected: integer");
    expect_ok(s, "t", "{\"i8\":-128,\"i16\":32767,\"i\":-9223372036854775807}");
    qs_qapi_free(s);
}

static void number_bool_and_null_builtins(void **state)
{
    qs_qapi *s = load_str(builtin_test_schema);

    (void)state;
    expect_ok(s, "t", "{\"n\":1}");
    expect_ok(s, "t", "{\"n\":-1.5e3}");
    expect_err(s, "t", "{\"n\":\"1\"}", "Invalid parameter type for 'n', expected: number");
    expect_ok(s, "t", "{\"b\":false}");
    expect_err(s, "t", "{\"b\":1}", "Invalid parameter type for 'b', expected: boolean");
    expect_ok(s, "t", "{\"z\":null}");
    expect_err(s, "t", "{\"z\":0}", "Invalid parameter type for 'z', expected: null");
    qs_qapi_free(s);
}

static void alternates_pick_a_branch_by_json_type(void **state)
{
    qs_qapi *s = load_str(builtin_test_schema);

    (void)state;
    expect_ok(s, "t", "{\"v\":7,\"vl\":[true,[1,2],{\"u8\":1},0]}");
    /* observed with blockdev-add's BlockdevRef: bare name, 'null' in lists */
    expect_err(s, "t", "{\"v\":\"x\"}", "Invalid parameter type for 'v', expected: V");
    expect_err(s, "t", "{\"v\":null}", "Invalid parameter type for 'v', expected: V");
    expect_err(s, "t", "{\"vl\":[1,\"x\"]}", "Invalid parameter type for 'null', expected: V");
    /* inside the chosen branch the usual rules apply */
    expect_err(s, "t", "{\"v\":[1,\"x\"]}", "Parameter 'v[1]' expects uint64");
    expect_err(s, "t", "{\"v\":{\"q\":1}}", "Parameter 'v.q' is unexpected");
    expect_err(s, "t", "{\"v\":1.5}", "Parameter 'v' expects uint64");
    qs_qapi_free(s);
}

/* ---- parts and enums ----------------------------------------------------- */

static const char part_a[] =
    "[{\"name\":\"a\",\"meta-type\":\"command\",\"arg-type\":\"A\",\"ret-type\":\"E\"},"
    "{\"name\":\"A\",\"meta-type\":\"object\",\"members\":[{\"name\":\"p\",\"type\":\"P\"}]},"
    "{\"name\":\"P\",\"meta-type\":\"enum\",\"values\":[\"kvm\"]},"
    "{\"name\":\"E\",\"meta-type\":\"object\",\"members\":[]}]";

/* A module's part may repeat a type the schema has, identically; a command
 * then validates by the composed schema, and both parts' commands list. */
static void parts_compose_and_share_identical_types(void **state)
{
    qs_qapi *s = load_str(part_a);
    qs_error *err = NULL;
    const char part_b[] =
        "[{\"name\":\"b\",\"meta-type\":\"command\",\"arg-type\":\"E\",\"ret-type\":\"E\"},"
        "{\"name\":\"E\",\"meta-type\":\"object\",\"members\":[]}]";

    (void)state;
    assert_true(qs_qapi_add(s, part_b, strlen(part_b), &err));
    assert_int_equal(qs_qapi_command_count(s), 2);
    assert_string_equal(qs_qapi_command_name(s, 1), "b");
    assert_int_equal(json_array_size(qs_qapi_schema(s)), 5);
    expect_ok(s, "b", "{}");
    expect_err(s, "b", "{\"x\":1}", "Parameter 'x' is unexpected");
    expect_ok(s, "a", "{\"p\":\"kvm\"}");
    qs_qapi_free(s);
}

/* A part that redefines a name differently, or refers to a type nobody
 * defines, is refused and leaves the schema as it was. */
static void a_conflicting_part_is_refused_and_changes_nothing(void **state)
{
    qs_qapi *s = load_str(part_a);
    qs_error *err = NULL;
    const char clash[] =
        "[{\"name\":\"c\",\"meta-type\":\"command\",\"arg-type\":\"E\",\"ret-type\":\"E\"},"
        "{\"name\":\"E\",\"meta-type\":\"object\",\"members\":[{\"name\":\"m\",\"type\":\"P\"}]}]";
    const char dangling[] =
        "[{\"name\":\"d\",\"meta-type\":\"command\",\"arg-type\":\"Nope\",\"ret-type\":\"E\"}]";

    (void)state;
    assert_false(qs_qapi_add(s, clash, strlen(clash), &err));
    assert_string_equal(err->msg, "QMP schema: 'E' is defined twice, differently");
    qs_error_free(err);
    err = NULL;
    assert_false(qs_qapi_add(s, dangling, strlen(dangling), &err));
    assert_non_null(strstr(err->msg, "unknown type 'Nope'"));
    qs_error_free(err);
    assert_int_equal(json_array_size(qs_qapi_schema(s)), 4);
    assert_int_equal(qs_qapi_command_count(s), 1);
    assert_false(qs_qapi_has_command(s, "d"));
    expect_ok(s, "a", "{\"p\":\"kvm\"}");
    qs_qapi_free(s);
}

/* StatsProvider grows when a VMM registers a provider: validation and the
 * introspection document both follow. */
static void an_enum_can_be_replaced(void **state)
{
    qs_qapi *s = load_str(part_a);
    const char *const values[] = { "kvm", "virtio-net" };
    qs_error *err = NULL;

    (void)state;
    expect_err(s, "a", "{\"p\":\"virtio-net\"}", "Parameter 'p' does not accept value 'virtio-net'");
    assert_true(qs_qapi_set_enum(s, "P", values, 2, &err));
    expect_ok(s, "a", "{\"p\":\"virtio-net\"}");
    const json_t *e = json_array_get(qs_qapi_schema(s), 2);
    assert_int_equal(json_array_size(json_object_get(e, "values")), 2);
    assert_string_equal(json_string_value(json_object_get(
        json_array_get(json_object_get(e, "members"), 1), "name")), "virtio-net");
    assert_false(qs_qapi_set_enum(s, "A", values, 2, &err));
    qs_error_free(err);
    qs_qapi_free(s);
}

/* ---- malformed schemas ---------------------------------------------------- */

static void refused(const char *json, const char *needle)
{
    qs_error *err = NULL;
    qs_qapi *s = qs_qapi_load(json, strlen(json), &err);

    assert_null(s);
    assert_non_null(err);
    if (!strstr(err->msg, needle)) {
        fail_msg("schema error \"%s\" lacks \"%s\"", err->msg, needle);
    }
    qs_error_free(err);
}

static void malformed_schemas_are_refused_with_a_reason(void **state)
{
    (void)state;
    refused("{}", "not a JSON array");
    refused("[", "line");
    refused("[{\"name\":\"c\",\"meta-type\":\"command\",\"arg-type\":\"X\",\"ret-type\":\"X\"}]",
            "unknown type 'X'");
    refused("[{\"name\":\"E\",\"meta-type\":\"object\",\"members\":[]},"
            "{\"name\":\"E\",\"meta-type\":\"object\",\"members\":[]}]", "defined twice");
    refused("[{\"name\":\"E\",\"meta-type\":\"widget\"}]", "meta-type");
    refused("[{\"meta-type\":\"object\",\"members\":[]}]", "name");
    refused("[{\"name\":\"U\",\"meta-type\":\"object\",\"members\":[],\"tag\":\"t\","
            "\"variants\":[]}]", "bad tag");
    refused("[{\"name\":\"b\",\"meta-type\":\"builtin\",\"json-type\":\"object\"}]",
            "json-type");
    refused("[{\"name\":\"c\",\"meta-type\":\"command\",\"arg-type\":\"s\",\"ret-type\":\"s\"},"
            "{\"name\":\"s\",\"meta-type\":\"builtin\",\"json-type\":\"string\"}]",
            "not an object");
}

/* ---- the recorded QEMU 7.2 transcript ------------------------------------ */

/* The replies hold u64 values jansson cannot represent (unset balloon
 * stats); only the requests matter here, so those are blanked in place. */
static json_t *load_transcript(void)
{
    static const char big[] = "18446744073709551615";
    const char *dir = getenv("QS_FIXTURES");
    char path[4096], *text, *p;
    json_error_t jerr;
    json_t *t;
    FILE *f;
    long len;

    assert_non_null(dir);
    snprintf(path, sizeof(path), "%s/qemu-7.2-qmp-transcript.json", dir);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    rewind(f);
    text = qs_malloc((size_t)len + 1);
    assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
    text[len] = '\0';
    fclose(f);
    for (p = strstr(text, big); p; p = strstr(p, big)) {
        memcpy(p, "-1", 2);
        memset(p + 2, ' ', sizeof(big) - 3);
    }
    t = json_loads(text, 0, &jerr);
    free(text);
    if (!t) {
        fail_msg("%s: %s", path, jerr.text);
    }
    return t;
}

static bool is_argument_error(const char *desc)
{
    return !strncmp(desc, "Parameter '", 11) || !strncmp(desc, "Invalid parameter type", 22);
}

/* Replays every transcript request of a command we have: argument errors
 * must come out with QEMU's text, everything else must validate.  The one
 * deliberate difference: our StatsProvider has cryptodev (QEMU 8.0+). */
static void transcript_argument_errors_are_reproduced(void **state)
{
    const qs_qapi *s = *state;
    json_t *t = load_transcript(), *e;
    size_t i, errors = 0, accepted = 0;

    json_array_foreach(t, i, e) {
        const json_t *req = json_object_get(e, "request");
        const char *cmd = json_string_value(json_object_get(req, "execute"));
        const json_t *args = json_object_get(req, "arguments");
        const json_t *error = json_object_get(json_object_get(e, "reply"), "error");
        const char *desc = json_string_value(json_object_get(error, "desc"));
        const char *tag = json_string_value(json_object_get(e, "tag"));
        json_t *empty = json_object();
        qs_error *err = NULL;
        bool ok;

        if (!cmd || !qs_qapi_has_command(s, cmd)) {
            json_decref(empty);
            continue;
        }
        ok = qs_qapi_validate_args(s, cmd, args ? args : empty, &err);
        json_decref(empty);
        if (desc && is_argument_error(desc) && strcmp(tag, "error: provider unknown to 7.2")) {
            if (ok || strcmp(err->msg, desc)) {
                fail_msg("%s: got \"%s\", QEMU said \"%s\"", tag, ok ? "(ok)" : err->msg, desc);
            }
            errors++;
        } else {
            if (!ok) {
                fail_msg("%s: refused with \"%s\"", tag, err->msg);
            }
            accepted++;
        }
        qs_error_free(err);
    }
    assert_int_equal(errors, 4);
    assert_true(accepted >= 25);
    json_decref(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builtin_schema_lists_every_contract_command_in_order),
        cmocka_unit_test(builtin_schema_has_introspection_shapes),
        cmocka_unit_test(missing_members_are_named_by_full_path),
        cmocka_unit_test(enum_errors_use_the_bare_member_name),
        cmocka_unit_test(unexpected_keys_and_other_union_branches_are_refused),
        cmocka_unit_test(wrong_json_types_name_the_expected_type),
        cmocka_unit_test(null_for_an_optional_member_is_a_type_error),
        cmocka_unit_test(errors_are_found_in_declaration_order),
        cmocka_unit_test(several_unexpected_keys_are_reported_like_qemu),
        cmocka_unit_test(unexpected_key_after_the_table_shrank_matches_qemu),
        cmocka_unit_test(valid_arguments_are_accepted),
        cmocka_unit_test(parts_compose_and_share_identical_types),
        cmocka_unit_test(a_conflicting_part_is_refused_and_changes_nothing),
        cmocka_unit_test(an_enum_can_be_replaced),
        cmocka_unit_test(any_accepts_every_json_value),
        cmocka_unit_test(a_null_args_pointer_counts_as_no_arguments),
        cmocka_unit_test(unknown_command_is_command_not_found),
        cmocka_unit_test(sized_integers_report_range_and_type_like_qemu),
        cmocka_unit_test(number_bool_and_null_builtins),
        cmocka_unit_test(alternates_pick_a_branch_by_json_type),
        cmocka_unit_test(malformed_schemas_are_refused_with_a_reason),
        cmocka_unit_test(transcript_argument_errors_are_reproduced),
    };

    return cmocka_run_group_tests(tests, setup_builtin, teardown_builtin);
}
