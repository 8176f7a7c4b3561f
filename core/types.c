/*
 * types.c - the QAPI spellings of the stats enumerations, in one table each,
 * so that QMP, HMP and the metrics exporter cannot disagree on a name.
 * Providers are open-ended: their names live in the registry (registry.c).
 */
#include <math.h>
#include <string.h>

#include "qs-core.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const type_names[] = {
    "cumulative", "instant", "peak", "linear-histogram", "log2-histogram",
};
static const char *const unit_names[] = {
    NULL, "bytes", "seconds", "cycles", "boolean",
};
static const char *const target_names[] = { "vm", "vcpu", "cryptodev" };

_Static_assert(COUNT(type_names) == QS_TYPE__MAX, "type table");
_Static_assert(COUNT(unit_names) == QS_UNIT__MAX, "unit table");
_Static_assert(COUNT(target_names) == QS_TARGET__MAX, "target table");

static const char *name_of(const char *const *t, size_t n, unsigned i)
{
    return i < n ? t[i] : NULL;
}

static int lookup(const char *const *t, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (t[i] && strcmp(t[i], s) == 0)
            return (int)i;
    return -1;
}

const char *qs_stat_type_name(qs_stat_type t) { return name_of(type_names, COUNT(type_names), t); }
const char *qs_unit_name(qs_unit u) { return name_of(unit_names, COUNT(unit_names), u); }
const char *qs_target_name(qs_target t) { return name_of(target_names, COUNT(target_names), t); }
int qs_stat_type_lookup(const char *s) { return lookup(type_names, COUNT(type_names), s); }
int qs_unit_lookup(const char *s) { return lookup(unit_names, COUNT(unit_names), s); }

bool qs_provider_name_valid(const char *name)
{
    size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-");
    return name[0] >= 'a' && name[0] <= 'z' && name[n] == 0 && n <= QS_PROVIDER_NAME_MAX;
}

int qs_target_lookup(const char *s) { return lookup(target_names, COUNT(target_names), s); }

qs_value_kind qs_schema_value_kind(const qs_schema_value *sv)
{
    if (sv->unit == QS_UNIT_BOOLEAN)
        return QS_VALUE_BOOLEAN;   /* even for 2-bucket boolean histograms, as QEMU */
    return sv->size == 1 ? QS_VALUE_SCALAR : QS_VALUE_LIST;
}

/* base^exp by squaring: O(log exp) for any exponent a descriptor may
 * carry (a loop per unit of exponent made a scrape of large log2
 * histograms quadratic), and still exact for 10^0..10^22 and every
 * representable power of two (each partial product is then exact), which
 * covers all real KVM scales.  Far-out exponents saturate to infinity. */
static double power(int base, unsigned exp)
{
    double p = 1, b = base;
    for (; exp; exp >>= 1) {
        if (exp & 1)
            p *= b;
        b *= b;
    }
    return p;
}

double qs_schema_value_scale(const qs_schema_value *sv, double raw)
{
    int exp = sv->exponent;
    if (exp == 0)
        return raw;
    double p = power(sv->base == 2 ? 2 : 10, (unsigned)(exp < 0 ? -exp : exp));
    return exp < 0 ? raw / p : raw * p;
}

double qs_schema_bucket_lower(const qs_schema_value *sv, uint32_t i)
{
    if (sv->type == QS_TYPE_LINEAR_HIST)
        return (double)sv->bucket_size * (double)i;
    return i == 0 ? 0 : power(2, i - 1);
}

double qs_schema_bucket_upper(const qs_schema_value *sv, uint32_t i)
{
    if (i + 1 >= sv->size)
        return 1.0 / 0.0;
    return qs_schema_bucket_lower(sv, i + 1);
}

bool qs_schema_value_equal(const qs_schema_value *a, const qs_schema_value *b)
{
    return strcmp(a->name, b->name) == 0 && a->type == b->type && a->unit == b->unit &&
           a->base == b->base && a->exponent == b->exponent && a->size == b->size &&
           a->bucket_size == b->bucket_size;
}

bool qs_schema_is_histogram(const qs_schema_value *sv)
{
    return sv->type == QS_TYPE_LINEAR_HIST || sv->type == QS_TYPE_LOG2_HIST;
}

/* ---- units as people read them ----------------------------------------- */

static const qs_unit_step seconds_steps[] = {
    { 1e-12, "ps" }, { 1e-9, "ns" }, { 1e-6, "us" }, { 1e-3, "ms" }, { 1, "s" }, { 0, NULL },
};
static const qs_unit_step bytes_steps[] = {
    { 1, "B" }, { 1024.0, "KiB" }, { 1048576.0, "MiB" }, { 1073741824.0, "GiB" },
    { 1099511627776.0, "TiB" }, { 1125899906842624.0, "PiB" },
    { 1152921504606846976.0, "EiB" }, { 0, NULL },
};
static const qs_unit_step cycles_steps[] = {
    { 1, "cycles" }, { 1e3, "Kcycles" }, { 1e6, "Mcycles" }, { 1e9, "Gcycles" },
    { 1e12, "Tcycles" }, { 1e15, "Pcycles" }, { 0, NULL },
};

const qs_unit_step *qs_unit_steps(qs_unit u)
{
    switch (u) {
    case QS_UNIT_SECONDS: return seconds_steps;
    case QS_UNIT_BYTES:   return bytes_steps;
    case QS_UNIT_CYCLES:  return cycles_steps;
    default:              return NULL;
    }
}

const qs_unit_step *qs_unit_step_for(qs_unit u, double v)
{
    const qs_unit_step *st = qs_unit_steps(u);
    if (!st)
        return NULL;
    while (st[1].suffix && fabs(v) >= st[1].factor * (1 - 1e-9))
        st++;
    return st;
}
