/*
 * stats.c - `info stats` as QEMU's HMP runs it
 * (docs/qemu-behaviour.md#hmp-info-stats), turned into a registry filter, then handed to the formatter.  The vCPU
 * target shows the monitor's current CPU only, as QEMU does, unless the
 * -a extension asks for all of them.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct stats_query {
    qs_filter f;
    qs_stats_request *req;
    char **names;
    const char *vcpu[1];
    char *cpu;
} stats_query;

/* One request per StatsProvider value that matches, each with the names
 * (none for "*"), as QEMU builds them. */
static void build_filter(qs_hmp_monitor *m, stats_query *q, qs_target target,
                         const char *names, const char *provider, bool all)
{
    memset(q, 0, sizeof(*q));
    q->f.target = target;
    if (target == QS_TARGET_VCPU && !all) {
        q->cpu = qs_hmp_current_cpu(m);
        q->vcpu[0] = q->cpu;
        q->f.has_vcpus = true;
        q->f.vcpus = (qs_strlist){ .n = q->cpu ? 1 : 0, .v = q->vcpu };
    }
    if (!names && !provider)
        return;
    size_t nnames = 0;
    bool has_names = names && strcmp(names, "*") != 0;
    if (has_names)
        q->names = qs_hmp_split_commas(names, &nnames);
    const char *const *known;
    size_t nknown = qs_registry_provider_names(m->h->cfg.reg, &known, NULL);
    q->req = qs_calloc(nknown, sizeof(*q->req));
    q->f.has_providers = true;
    q->f.providers = q->req;
    for (size_t p = 0; p < nknown; p++) {
        if (provider && strcmp(known[p], provider) != 0)
            continue;
        q->req[q->f.nproviders++] = (qs_stats_request){
            .provider = known[p],
            .has_names = has_names,
            .names = { .n = nnames, .v = (const char *const *)q->names },
        };
    }
}

static void query_free(stats_query *q)
{
    free(q->req);
    qs_hmp_strv_free(q->names);
    free(q->cpu);
}

void qs_hmp_cmd_info_stats(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out)
{
    const char *tstr = qs_hmp_args_str(a, "target");
    const char *names = qs_hmp_args_str(a, "names");
    const char *pstr = qs_hmp_args_str(a, "provider");
    qs_hmp *h = m->h;
    qs_error *err = NULL;

    int target = qs_target_lookup(tstr);
    if (target < 0) {
        qs_buf_printf(out, "invalid stats target %s\n", tstr);
        return;
    }
    if (pstr && !qs_registry_provider_known(h->cfg.reg, pstr)) {
        qs_buf_printf(out, "invalid stats provider %s\n", pstr);
        return;
    }
    if (!qs_registry_query_schemas(h->cfg.reg, pstr, &h->schemas, &err)) {
        qs_buf_printf(out, "%s\n", err->msg);
        qs_error_free(err);
        return;
    }

    bool all = qs_hmp_args_flag(a, "all");
    stats_query q;
    build_filter(m, &q, (qs_target)target, names, pstr, all);
    if (qs_registry_query_stats(h->cfg.reg, &q.f, &h->results, &err)) {
        qs_hmp_format_opts o = {
            .show_provider = !pstr,
            .show_qom_path = all,
            .bounds = qs_hmp_args_flag(a, "bounds"),
        };
        qs_hmp_format_stats(out, &h->results, &h->schemas, (qs_target)target, &o);
    } else {
        qs_buf_printf(out, "%s\n", err->msg);
        qs_error_free(err);
    }
    query_free(&q);
    /* Names and descriptors are borrowed from providers: drop them now,
     * and what a large query needed with them. */
    qs_results_reset(&h->results);
    qs_results_trim(&h->results, QS_KEEP_BYTES);
    qs_schemas_reset(&h->schemas);
}
