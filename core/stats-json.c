/*
 * stats-json.c - query-stats and query-stats-schemas as QEMU writes them:
 * the one encoder of the stats model to JSON, used by QMP and by the
 * metrics server's JSON API.  It is the hot path of query-stats: the stats
 * arrays are nearly all of a reply (3000 stats at 64 vCPUs), so their fixed
 * text is copied as is and only the stat names go through the escaper; no
 * jansson tree, exact u64.
 */
#include "qs-common.h"

static void put_value(qs_buf *b, const qs_results *r, const qs_stat *st)
{
    const uint64_t *v = qs_results_values(r, st->off);
    switch (qs_schema_value_kind(st->desc)) {
    case QS_VALUE_SCALAR:
        qs_buf_put_u64(b, v[0]);
        break;
    case QS_VALUE_BOOLEAN:
        qs_buf_puts(b, v[0] ? "true" : "false");
        break;
    case QS_VALUE_LIST:
        qs_buf_putc(b, '[');
        for (uint32_t i = 0; i < st->desc->size; i++) {
            if (i)
                qs_buf_append(b, ", ", 2);
            qs_buf_put_u64(b, v[i]);
        }
        qs_buf_putc(b, ']');
        break;
    }
}

/* Hand-written rather than through qs_jw: the stats arrays are nearly all
 * of a query-stats reply (3000 stats at 64 vCPUs), so their fixed text is
 * copied as is and only the stat names go through the string escaper. */
static void put_stats(qs_buf *b, const qs_results *r, const qs_result *res)
{
    qs_buf_putc(b, '[');
    for (size_t j = 0; j < res->count; j++) {
        const qs_stat *st = &r->stats[res->first + j];
        qs_buf_puts(b, j ? ", {\"name\": " : "{\"name\": ");
        qs_json_put_string(b, st->desc->name);
        qs_buf_puts(b, ", \"value\": ");
        put_value(b, r, st);
        qs_buf_putc(b, '}');
    }
    qs_buf_putc(b, ']');
}

void qs_json_put_results(qs_jw *w, const qs_results *r)
{
    qs_jw_begin_array(w);
    for (size_t i = 0; i < r->nres; i++) {
        const qs_result *res = &r->res[i];
        qs_jw_begin_object(w);
        qs_jw_key(w, "provider");
        qs_jw_str(w, res->provider);
        if (res->qom_path) {
            qs_jw_key(w, "qom-path");
            qs_jw_str(w, res->qom_path);
        }
        qs_jw_key(w, "stats");
        qs_jw_raw(w, "", 0);          /* the writer's separators, then ours */
        put_stats(w->b, r, res);
        qs_jw_end_object(w);
    }
    qs_jw_end_array(w);
}

void qs_json_put_schema_value(qs_jw *w, const qs_schema_value *sv)
{
    qs_jw_begin_object(w);
    qs_jw_key(w, "name");
    qs_jw_str(w, sv->name);
    qs_jw_key(w, "type");
    qs_jw_str(w, qs_stat_type_name(sv->type));
    if (sv->unit != QS_UNIT_NONE) {
        qs_jw_key(w, "unit");
        qs_jw_str(w, qs_unit_name(sv->unit));
    }
    if (sv->base && sv->exponent) {
        qs_jw_key(w, "base");
        qs_jw_i64(w, sv->base);
    }
    qs_jw_key(w, "exponent");
    qs_jw_i64(w, sv->exponent);
    if (sv->type == QS_TYPE_LINEAR_HIST) {
        qs_jw_key(w, "bucket-size");
        qs_jw_u64(w, sv->bucket_size);
    }
    qs_jw_end_object(w);
}

void qs_json_put_schema(qs_jw *w, const qs_schema *sc, const qs_strlist *names)
{
    qs_jw_begin_object(w);
    qs_jw_key(w, "provider");
    qs_jw_str(w, sc->provider);
    qs_jw_key(w, "target");
    qs_jw_str(w, qs_target_name(sc->target));
    qs_jw_key(w, "stats");
    qs_jw_begin_array(w);
    for (size_t j = 0; j < sc->n; j++)
        if (qs_strlist_match(names, sc->stats[j].name))
            qs_json_put_schema_value(w, &sc->stats[j]);
    qs_jw_end_array(w);
    qs_jw_end_object(w);
}

void qs_json_put_schemas(qs_jw *w, const qs_schemas *s)
{
    qs_jw_begin_array(w);
    for (size_t i = 0; i < s->n; i++)
        qs_json_put_schema(w, &s->v[i], NULL);
    qs_jw_end_array(w);
}
