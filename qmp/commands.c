/*
 * commands.c - the QMP commands.  Arguments arrive already validated
 * against schemas/qapi-schema.json, so handlers only convert them to core
 * types and encode what the core returns.  query-stats is the hot path: its
 * reply is encoded straight from the registry's results into the session's
 * output buffer with the hand-written JSON writer (no jansson tree, exact
 * u64), reusing the server's result arrays across queries.
 */
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "qs-hmp.h"

#define DUMP_FLAGS (JSON_ENCODE_ANY | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER)

static void put_json(qs_jw *ret, const json_t *v)
{
    char *s = json_dumps(v, DUMP_FLAGS);
    qs_jw_raw(ret, s, strlen(s));
    free(s);
}

static bool cmd_qmp_capabilities(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                                 qs_error **errp)
{
    if (s->negotiated) {
        qs_error_set(errp, QS_ERR_COMMAND_NOT_FOUND,
                     "Capabilities negotiation is already complete, command ignored");
        return false;
    }
    const json_t *enable = json_object_get(args, "enable");
    if (json_array_size(enable)) {
        qs_error_setg(errp, "Capability %s not available",
                      json_string_value(json_array_get(enable, 0)));
        return false;
    }
    s->negotiated = true;
    qs_qmp_return_empty(ret);
    return true;
}

static bool cmd_query_version(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                              qs_error **errp)
{
    qs_jw_begin_object(ret);
    qs_jw_key(ret, "qemu");
    qs_jw_begin_object(ret);
    qs_jw_key(ret, "micro"); qs_jw_i64(ret, QS_VERSION_MICRO);
    qs_jw_key(ret, "minor"); qs_jw_i64(ret, QS_VERSION_MINOR);
    qs_jw_key(ret, "major"); qs_jw_i64(ret, QS_VERSION_MAJOR);
    qs_jw_end_object(ret);
    qs_jw_key(ret, "package"); qs_jw_str(ret, "qstats " QS_VERSION_STRING);
    qs_jw_end_object(ret);
    return true;
}

static bool cmd_query_commands(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                               qs_error **errp)
{
    const qs_qapi *qapi = s->server->qapi;
    qs_jw_begin_array(ret);
    for (size_t i = 0; i < qs_qapi_command_count(qapi); i++) {
        qs_jw_begin_object(ret);
        qs_jw_key(ret, "name");
        qs_jw_str(ret, qs_qapi_command_name(qapi, i));
        qs_jw_end_object(ret);
    }
    qs_jw_end_array(ret);
    return true;
}

static bool cmd_query_qmp_schema(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                                 qs_error **errp)
{
    put_json(ret, qs_qapi_schema(s->server->qapi));
    return true;
}

static bool cmd_query_name(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                           qs_error **errp)
{
    qs_jw_begin_object(ret);
    if (s->server->cfg.name) {
        qs_jw_key(ret, "name");
        qs_jw_str(ret, s->server->cfg.name);
    }
    qs_jw_end_object(ret);
    return true;
}

/* A statistics daemon is always running; clients such as libvirt and
 * go-qemu check this on connect.  Key order is QEMU 7.2's output. */
static bool cmd_query_status(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                             qs_error **errp)
{
    qs_jw_begin_object(ret);
    qs_jw_key(ret, "status"); qs_jw_str(ret, "running");
    qs_jw_key(ret, "singlestep"); qs_jw_bool(ret, false);
    qs_jw_key(ret, "running"); qs_jw_bool(ret, true);
    qs_jw_end_object(ret);
    return true;
}

/* qstats' own: the sources whose reads fail now (they are skipped by
 * query-stats rather than failing it), so that a client can tell a vCPU
 * with no results from one that stopped reading. */
static bool cmd_query_stats_failures(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                                     qs_error **errp)
{
    const qs_source_failure *v;
    size_t n = qs_registry_failing_sources(s->server->cfg.reg, &v);
    qs_jw_begin_array(ret);
    for (size_t i = 0; i < n; i++) {
        qs_jw_begin_object(ret);
        qs_jw_key(ret, "provider"); qs_jw_str(ret, v[i].provider);
        qs_jw_key(ret, "target"); qs_jw_str(ret, qs_target_name(v[i].target));
        if (v[i].qom_path) {
            qs_jw_key(ret, "qom-path");
            qs_jw_str(ret, v[i].qom_path);
        }
        qs_jw_key(ret, "error"); qs_jw_str(ret, v[i].error);
        qs_jw_key(ret, "since"); qs_jw_i64(ret, v[i].since);
        qs_jw_end_object(ret);
    }
    qs_jw_end_array(ret);
    return true;
}

#if defined(__x86_64__)
#define SYSEMU_TARGET "x86_64"
#elif defined(__aarch64__)
#define SYSEMU_TARGET "aarch64"
#elif defined(__s390x__)
#define SYSEMU_TARGET "s390x"
#elif defined(__riscv) && __riscv_xlen == 64
#define SYSEMU_TARGET "riscv64"
#elif defined(__powerpc64__)
#define SYSEMU_TARGET "ppc64"
#else
#define SYSEMU_TARGET "i386"
#endif

/* QEMU's query-cpus-fast for every vCPU whose host thread is known (the
 * sched provider learnt it), in QEMU 7.2's member order; clients map vCPUs
 * to threads with it.  The target is the host's: KVM runs the guest on it. */
static bool cmd_query_cpus_fast(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                                qs_error **errp)
{
    qs_registry *reg = s->server->cfg.reg;
    qs_jw_begin_array(ret);
    for (size_t i = 0; i < qs_registry_vcpu_count(reg); i++) {
        const char *path = qs_registry_vcpu_path(reg, i);
        long tid = qs_registry_vcpu_thread(reg, i), index = qs_vcpu_index(path);
        if (!tid)
            continue;
        index = index >= 0 ? index : (long)i;
        qs_jw_begin_object(ret);
        qs_jw_key(ret, "thread-id"); qs_jw_i64(ret, tid);
        qs_jw_key(ret, "props");
        qs_jw_begin_object(ret);
        qs_jw_key(ret, "core-id"); qs_jw_i64(ret, index);
        qs_jw_key(ret, "thread-id"); qs_jw_i64(ret, 0);
        qs_jw_key(ret, "socket-id"); qs_jw_i64(ret, 0);
        qs_jw_end_object(ret);
        qs_jw_key(ret, "qom-path"); qs_jw_str(ret, path);
        qs_jw_key(ret, "cpu-index"); qs_jw_i64(ret, index);
        qs_jw_key(ret, "target"); qs_jw_str(ret, SYSEMU_TARGET);
        qs_jw_end_object(ret);
    }
    qs_jw_end_array(ret);
    return true;
}

static bool cmd_quit(qs_qmp_session *s, const json_t *args, qs_jw *ret, qs_error **errp)
{
    qs_qmp_request_quit(s);
    qs_qmp_return_empty(ret);
    return true;
}

/* ---- stats ------------------------------------------------------------- */

/* Borrowed views of a JSON string array (the JSON outlives the query). */
static const char **strlist_of(const json_t *arr, qs_strlist *l)
{
    size_t n = json_array_size(arr);
    const char **v = qs_calloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = json_string_value(json_array_get(arr, i));
    l->n = n;
    l->v = v;
    return v;
}

static bool cmd_query_stats(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                            qs_error **errp)
{
    const json_t *providers = json_object_get(args, "providers");
    const json_t *vcpus = json_object_get(args, "vcpus");
    size_t np = json_array_size(providers);
    qs_stats_request *reqs = qs_calloc(np ? np : 1, sizeof(*reqs));
    /* On the heap: np is the client's to choose (millions fit in 64 MiB). */
    const char ***lists = qs_calloc(np + 1, sizeof(*lists));
    qs_filter f = {
        .target = qs_target_lookup(qs_qmp_arg_str(args, "target")),
        .has_providers = providers != NULL,
        .nproviders = np,
        .providers = reqs,
        .has_vcpus = vcpus != NULL,
    };
    for (size_t i = 0; i < np; i++) {
        const json_t *req = json_array_get(providers, i);
        const json_t *names = json_object_get(req, "names");
        reqs[i].provider = qs_qmp_arg_str(req, "provider");
        reqs[i].has_names = names != NULL;
        lists[i] = strlist_of(names, &reqs[i].names);
    }
    lists[np] = strlist_of(vcpus, &f.vcpus);

    qs_qmp *q = s->server;
    bool ok = qs_registry_query_stats(q->cfg.reg, &f, &q->results, errp);
    if (ok)
        qs_json_put_results(ret, &q->results);
    qs_results_reset(&q->results);      /* names are borrowed: not past the reply */
    qs_results_trim(&q->results, QS_KEEP_BYTES);
    for (size_t i = 0; i <= np; i++)
        free(lists[i]);
    free(lists);
    free(reqs);
    return ok;
}

static bool cmd_query_stats_schemas(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                                    qs_error **errp)
{
    qs_qmp *q = s->server;
    const char *prov = qs_qmp_arg_str(args, "provider");
    if (!qs_registry_query_schemas(q->cfg.reg, prov, &q->schemas, errp))
        return false;
    qs_json_put_schemas(ret, &q->schemas);
    return true;
}

/* ---- QOM --------------------------------------------------------------- */

static bool cmd_qom_list(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                         qs_error **errp)
{
    qs_prop_info *props;
    size_t n;
    if (!qs_registry_qom_list(s->server->cfg.reg, qs_qmp_arg_str(args, "path"), &props, &n, errp))
        return false;
    qs_jw_begin_array(ret);
    for (size_t i = 0; i < n; i++) {
        qs_jw_begin_object(ret);
        qs_jw_key(ret, "name");
        qs_jw_str(ret, props[i].name);
        qs_jw_key(ret, "type");
        qs_jw_str(ret, props[i].type);
        qs_jw_end_object(ret);
    }
    qs_jw_end_array(ret);
    qs_prop_info_free(props, n);
    return true;
}

static bool cmd_qom_get(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                        qs_error **errp)
{
    return qs_registry_qom_get(s->server->cfg.reg, qs_qmp_arg_str(args, "path"),
                               qs_qmp_arg_str(args, "property"), ret, errp);
}

static void input_of(const json_t *v, qs_input *in)
{
    memset(in, 0, sizeof(*in));
    switch (json_typeof(v)) {
    case JSON_OBJECT: in->kind = QS_IN_OBJECT; break;
    case JSON_ARRAY: in->kind = QS_IN_ARRAY; break;
    case JSON_STRING: in->kind = QS_IN_STRING; in->s = json_string_value(v); break;
    case JSON_INTEGER: in->kind = QS_IN_INT; in->i = json_integer_value(v); break;
    case JSON_REAL: in->kind = QS_IN_REAL; in->d = json_real_value(v); break;
    case JSON_TRUE: case JSON_FALSE: in->kind = QS_IN_BOOL; in->b = json_is_true(v); break;
    default: in->kind = QS_IN_NULL; break;
    }
}

static bool cmd_qom_set(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                        qs_error **errp)
{
    qs_input in;
    input_of(json_object_get(args, "value"), &in);
    if (!qs_registry_qom_set(s->server->cfg.reg, qs_qmp_arg_str(args, "path"),
                             qs_qmp_arg_str(args, "property"), &in, errp))
        return false;
    qs_qmp_return_empty(ret);
    return true;
}

/* ---- human monitor ----------------------------------------------------- */

static bool cmd_human_monitor_command(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                                      qs_error **errp)
{
    qs_hmp *hmp = s->server->cfg.hmp;
    if (!hmp) {
        qs_error_setg(errp, "The human monitor is not available");
        return false;
    }
    qs_hmp_monitor *m = qs_hmp_monitor_new(hmp);
    const json_t *cpu = json_object_get(args, "cpu-index");
    qs_error *err = NULL;
    if (cpu && !qs_hmp_monitor_set_cpu(m, json_integer_value(cpu), &err)) {
        qs_error_free(err);
        qs_hmp_monitor_free(m);
        qs_error_setg(errp, "Parameter 'cpu-index' expects a CPU number");
        return false;
    }
    qs_buf out;
    qs_buf_init(&out);
    qs_hmp_execute(m, qs_qmp_arg_str(args, "command-line"), &out);
    qs_jw_str(ret, out.data ? out.data : "");
    qs_buf_free(&out);
    qs_hmp_monitor_free(m);
    return true;
}

/* ---- fd passing (getfd.c) ---------------------------------------------- */

bool qs_qmp_cmd_getfd(qs_qmp_session *s, const json_t *args, qs_jw *ret, qs_error **errp);
bool qs_qmp_cmd_closefd(qs_qmp_session *s, const json_t *args, qs_jw *ret, qs_error **errp);
bool qs_qmp_cmd_add_stats_fd(qs_qmp_session *s, const json_t *args, qs_jw *ret, qs_error **errp);
bool qs_qmp_cmd_remove_stats_fd(qs_qmp_session *s, const json_t *args, qs_jw *ret, qs_error **errp);

static const struct {
    const char *name;
    qs_qmp_cmd_fn fn;
} builtin[] = {
    { "qmp_capabilities", cmd_qmp_capabilities },
    { "query-version", cmd_query_version },
    { "query-commands", cmd_query_commands },
    { "query-qmp-schema", cmd_query_qmp_schema },
    { "query-name", cmd_query_name },
    { "query-status", cmd_query_status },
    { "query-stats-failures", cmd_query_stats_failures },
    { "query-cpus-fast", cmd_query_cpus_fast },
    { "quit", cmd_quit },
    { "query-stats", cmd_query_stats },
    { "query-stats-schemas", cmd_query_stats_schemas },
    { "qom-list", cmd_qom_list },
    { "qom-get", cmd_qom_get },
    { "qom-set", cmd_qom_set },
    { "human-monitor-command", cmd_human_monitor_command },
    { "getfd", qs_qmp_cmd_getfd },
    { "closefd", qs_qmp_cmd_closefd },
    { "add-stats-fd", qs_qmp_cmd_add_stats_fd },
    { "remove-stats-fd", qs_qmp_cmd_remove_stats_fd },
};

bool qs_qmp_add_builtin_commands(qs_qmp *q, qs_error **errp)
{
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        if (!qs_qmp_add_session_command(q, builtin[i].name, builtin[i].fn, errp))
            return false;
    return true;
}
