/*
 * format.c - `info stats` text, byte for byte as QEMU's HMP prints it
 * (docs/qemu-behaviour.md#hmp-format), with the deliberate differences
 * (docs/qemu-behaviour.md#differences): values are printed unsigned, and
 * results arrive in natural order.  Also the -b extension (histogram
 * buckets with their bounds in scaled units).  Pure functions from
 * qs_results/qs_schemas to text.
 */
#include <inttypes.h>
#include <string.h>

#include "internal.h"

static const char *const si_prefixes[] = {
    "a", "f", "p", "n", "u", "m", "", "K", "M", "G", "T", "P", "E",
};
static const char *const iec_prefixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };

void qs_hmp_format_descr(qs_buf *out, const qs_schema_value *sv)
{
    const char *unit = sv->unit == QS_UNIT_SECONDS ? "s"
                     : sv->unit == QS_UNIT_BYTES ? "B" : NULL;
    int exp = sv->exponent;

    qs_buf_puts(out, qs_stat_type_name(sv->type));
    if (sv->unit != QS_UNIT_NONE || exp)
        qs_buf_puts(out, ", ");
    if (unit && sv->base == 10 && exp >= -18 && exp <= 18 && exp % 3 == 0) {
        qs_buf_puts(out, si_prefixes[(exp + 18) / 3]);
    } else if (unit && sv->base == 2 && exp >= 0 && exp <= 60 && exp % 10 == 0) {
        qs_buf_puts(out, iec_prefixes[exp / 10]);
    } else if (exp) {
        /* No prefix fits: exponential notation and the unit's English name. */
        qs_buf_printf(out, "* %d^%d%s", sv->base, exp,
                      sv->unit != QS_UNIT_NONE ? " " : "");
        unit = NULL;
    }
    if (sv->unit != QS_UNIT_NONE)
        qs_buf_puts(out, unit ? unit : qs_unit_name(sv->unit));
    /* QEMU prints the bucket size with %d; it is a u32, so print it as one. */
    if (sv->type == QS_TYPE_LINEAR_HIST)
        qs_buf_printf(out, ", bucket size=%" PRIu32, sv->bucket_size);
}

/* ---- -b: bucket bounds ------------------------------------------------- */

static void put_number(qs_buf *out, double v)
{
    if (v >= 1000)
        qs_buf_printf(out, "%.0f", v);
    else
        qs_buf_printf(out, "%.3g", v);
}

void qs_hmp_format_bucket(qs_buf *out, const qs_schema_value *sv, size_t i, size_t n)
{
    double lo = qs_schema_value_scale(sv, qs_schema_bucket_lower(sv, (uint32_t)i));
    bool last = i + 1 >= n;
    double hi = last ? 0 : qs_schema_value_scale(sv, qs_schema_bucket_upper(sv, (uint32_t)i));
    /* The step comes from the larger finite bound, so that both bounds read
     * naturally ("[0.512,1.02)us"); cycles stay cycles. */
    qs_unit_step s = { 1, sv->unit == QS_UNIT_CYCLES ? "cycles" : "" };
    if (sv->unit == QS_UNIT_SECONDS || sv->unit == QS_UNIT_BYTES)
        s = *qs_unit_step_for(sv->unit, last ? lo : hi);
    qs_buf_putc(out, '[');
    put_number(out, lo / s.factor);
    if (last) {
        qs_buf_printf(out, "%s,+inf)", s.suffix);
        return;
    }
    qs_buf_putc(out, ',');
    put_number(out, hi / s.factor);
    qs_buf_printf(out, ")%s", s.suffix);
}

/* ---- one result ------------------------------------------------------- */

static void format_value(qs_buf *out, const qs_schema_value *sv,
                         const qs_stat *st, const qs_results *res, bool bounds)
{
    const uint64_t *v = qs_results_values(res, st->off);

    switch (qs_schema_value_kind(st->desc)) {
    case QS_VALUE_SCALAR:
        qs_buf_puts(out, ": ");
        qs_buf_put_u64(out, v[0]);     /* QEMU's PRId64 turns >= 2^63 negative */
        break;
    case QS_VALUE_BOOLEAN:
        qs_buf_puts(out, v[0] ? ": yes" : ": no");
        break;
    case QS_VALUE_LIST:
        qs_buf_puts(out, ": ");
        for (size_t i = 0; i < st->desc->size; i++) {
            if (bounds)
                qs_hmp_format_bucket(out, sv, i, st->desc->size);
            else
                qs_buf_printf(out, "[%zu]", i + 1);
            qs_buf_putc(out, '=');
            qs_buf_put_u64(out, v[i]);
            qs_buf_putc(out, ' ');     /* QEMU's trailing space */
        }
        break;
    }
    qs_buf_putc(out, '\n');
}

/* Walks the result's stats and the schema together, the cursor moving
 * forward only, as QEMU does; a stat the rest of the schema lacks ends the
 * result (QEMU would then dereference NULL in one case; we just stop). */
static void format_result(qs_buf *out, const qs_results *res, const qs_result *r,
                          const qs_schema *schema, bool bounds)
{
    size_t j = 0;
    for (size_t k = 0; k < r->count; k++, j++) {
        const qs_stat *st = &res->stats[r->first + k];
        const char *name = st->desc->name;
        while (j < schema->n && strcmp(schema->stats[j].name, name) != 0)
            j++;
        if (j == schema->n) {
            qs_buf_printf(out, "failed to find schema entry for %s\n", name);
            return;
        }
        qs_buf_printf(out, "    %s (", name);
        qs_hmp_format_descr(out, &schema->stats[j]);
        qs_buf_putc(out, ')');
        format_value(out, &schema->stats[j], st, res, bounds);
    }
}

void qs_hmp_format_stats(qs_buf *out, const qs_results *res,
                         const qs_schemas *schemas, qs_target target,
                         const qs_hmp_format_opts *o)
{
    for (size_t i = 0; i < res->nres; i++) {
        const qs_result *r = &res->res[i];
        const qs_schema *schema = qs_schemas_find(schemas, r->provider, target);
        const char *pname = r->provider;

        /* QEMU looks for the schema's value list, so an empty schema is as
         * good as none. */
        if (!schema || schema->n == 0) {
            qs_buf_printf(out, "failed to find schema list for %s\n", pname);
            continue;
        }
        if (o->show_provider)
            qs_buf_printf(out, "provider: %s\n", pname);
        if (o->show_qom_path && r->qom_path)
            qs_buf_printf(out, "qom-path: %s\n", r->qom_path);
        format_result(out, res, r, schema, o->bounds);
    }
}
