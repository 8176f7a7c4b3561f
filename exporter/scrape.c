/*
 * exporter/scrape.c - what a request gathers from the registry: schemas,
 * and the results of target vm and vcpu, asking only for what the view
 * selects (a scrape of one stat of one provider reads nothing else), under
 * the request's byte budget.  Shared by /metrics and the JSON API.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void qs_metrics_data_init(qs_metrics_data *d, size_t budget)
{
    qs_schemas_init(&d->schemas);
    qs_results_init(&d->vm);
    qs_results_init(&d->vcpu);
    d->vm.limit = d->vcpu.limit = budget / 2;
}

void qs_metrics_data_release(qs_metrics_data *d)
{
    qs_schemas_reset(&d->schemas);
    qs_results_reset(&d->vm);
    qs_results_reset(&d->vcpu);
    qs_results_trim(&d->vm, QS_KEEP_BYTES);
    qs_results_trim(&d->vcpu, QS_KEEP_BYTES);
}

void qs_metrics_data_destroy(qs_metrics_data *d)
{
    qs_schemas_destroy(&d->schemas);
    qs_results_destroy(&d->vm);
    qs_results_destroy(&d->vcpu);
}

/* The registry filter for one target: one request per selected provider
 * (or per known provider when only names are selected), each with the
 * selected names.  reqs has room for one request per known provider. */
static void build_filter(qs_registry *reg, const qs_metrics_view *view, qs_target target,
                         qs_filter *f, qs_stats_request *reqs)
{
    *f = (qs_filter){ .target = target };
    if (!view || (!view->providers && !view->names))
        return;
    const char *const *known;
    size_t nknown = qs_registry_provider_names(reg, &known, NULL);
    f->has_providers = true;
    f->providers = reqs;
    for (size_t i = 0; i < nknown; i++) {
        if (!qs_strlist_match(view->providers, known[i]))
            continue;
        reqs[f->nproviders++] = (qs_stats_request){
            .provider = known[i], .has_names = view->names != NULL,
            .names = view->names ? *view->names : (qs_strlist){ 0 } };
    }
}

static bool gather_target(qs_registry *reg, const qs_metrics_view *view, qs_target target,
                          qs_results *out, qs_error **errp)
{
    qs_results_reset(out);
    if (view && !qs_strlist_match(view->targets, qs_target_name(target)))
        return true;
    const char *const *known;
    size_t nknown = qs_registry_provider_names(reg, &known, NULL);
    qs_stats_request *reqs = qs_calloc(nknown, sizeof(*reqs));
    qs_filter f;
    build_filter(reg, view, target, &f, reqs);
    qs_error *err = NULL;
    bool ok = qs_registry_query_stats(reg, &f, out, &err);
    free(reqs);
    if (!ok && out->overflow)         /* said in the words of an HTTP request */
        qs_error_setg(errp, "the statistics would take more than %zu bytes (qstats' reply "
                      "limit); select fewer with provider=, target= or name=",
                      out->limit * 2);
    else if (!ok && errp && !*errp) {
        *errp = err;
        err = NULL;
    }
    qs_error_free(err);
    return ok;
}

bool qs_metrics_gather(qs_registry *reg, const qs_metrics_view *view, qs_metrics_data *d,
                       qs_error **errp)
{
    return qs_registry_query_schemas(reg, NULL, &d->schemas, errp) &&
           gather_target(reg, view, QS_TARGET_VM, &d->vm, errp) &&
           gather_target(reg, view, QS_TARGET_VCPU, &d->vcpu, errp);
}
