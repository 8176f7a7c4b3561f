/*
 * exporter/api.c - the JSON API beside /metrics, for the web page and any
 * client that prefers JSON to QMP: what query-stats-schemas and query-stats
 * return, with the same provider/target/name selection as /metrics and the
 * same byte budget.
 *
 *   GET /api/v1/schemas  {"generation": G, "name": VM, "schemas": [StatsSchema...]}
 *       G changes exactly when a STATS_SCHEMA_CHANGED event is sent; VM is
 *       the configured name (--name, the vm label of /metrics).
 *   GET /api/v1/stats    {"timestamp": {"monotonic": s, "wall": s},
 *                         "vm": [StatsResult...], "vcpu": [StatsResult...]}
 *       monotonic: CLOCK_MONOTONIC seconds of the collection (rates).
 *   Errors: {"error": "one line"} with the HTTP status.
 */
#include <string.h>
#include <time.h>

#include "internal.h"

void qs_metrics_api_error(qs_buf *out, const char *msg)
{
    qs_jw w;
    qs_buf_reset(out);
    qs_jw_init(&w, out);
    qs_jw_begin_object(&w);
    qs_jw_key(&w, "error");
    qs_jw_str(&w, msg);
    qs_jw_end_object(&w);
    qs_buf_putc(out, '\n');
}

/* One schema, its stats cut down to the selected names; none when a name
 * selection leaves it empty (as /metrics shows no family for it). */
static void put_schema(qs_jw *w, const qs_schema *sc, const qs_metrics_view *view)
{
    size_t shown = 0;
    for (size_t j = 0; j < sc->n; j++)
        shown += qs_strlist_match(view->names, sc->stats[j].name);
    if (!view->names || shown)
        qs_json_put_schema(w, sc, view->names);
}

void qs_metrics_api_schemas(qs_buf *out, qs_registry *reg, const char *vm_name,
                            const qs_metrics_data *d, const qs_metrics_view *view)
{
    qs_jw w;
    qs_jw_init(&w, out);
    qs_jw_begin_object(&w);
    qs_jw_key(&w, "generation");
    qs_jw_u64(&w, qs_registry_schema_generation(reg));
    qs_jw_key(&w, "name");
    qs_jw_str(&w, vm_name);
    qs_jw_key(&w, "schemas");
    qs_jw_begin_array(&w);
    for (size_t i = 0; i < d->schemas.n; i++) {
        const qs_schema *sc = &d->schemas.v[i];
        if (qs_strlist_match(view->providers, sc->provider) &&
            qs_strlist_match(view->targets, qs_target_name(sc->target)))
            put_schema(&w, sc, view);
    }
    qs_jw_end_array(&w);
    qs_jw_end_object(&w);
    qs_buf_putc(out, '\n');
}

void qs_metrics_api_stats(qs_buf *out, const qs_metrics_data *d)
{
    qs_jw w;
    qs_jw_init(&w, out);
    qs_jw_begin_object(&w);
    qs_jw_key(&w, "timestamp");
    qs_jw_begin_object(&w);
    qs_jw_key(&w, "monotonic");
    qs_jw_raw(&w, "", 0);
    qs_buf_printf(out, "%.6f", qs_clock_seconds(CLOCK_MONOTONIC));
    qs_jw_key(&w, "wall");
    qs_jw_raw(&w, "", 0);
    qs_buf_printf(out, "%.6f", qs_clock_seconds(CLOCK_REALTIME));
    qs_jw_end_object(&w);
    qs_jw_key(&w, "vm");
    qs_json_put_results(&w, &d->vm);
    qs_jw_key(&w, "vcpu");
    qs_json_put_results(&w, &d->vcpu);
    qs_jw_end_object(&w);
    qs_buf_putc(out, '\n');
}
