/*
 * results.c - the containers a query fills: qs_results (values in one
 * reusable u64 arena, stats and results as offsets into it) and qs_schemas.
 * They are reset, not freed, between queries so that a steady stream of
 * query-stats allocates nothing once the arrays have grown to size.
 */
#include <stdlib.h>
#include <string.h>

#include "qs-common.h"

#define GROW(ptr, n, cap, extra)                                         \
    do {                                                                 \
        if ((n) + (extra) > (cap)) {                                     \
            size_t c_ = (cap) ? (cap) : 16;                              \
            while (c_ < (n) + (extra))                                   \
                c_ *= 2;                                                 \
            (ptr) = qs_realloc((ptr), c_ * sizeof(*(ptr)));              \
            (cap) = c_;                                                  \
        }                                                                \
    } while (0)

void qs_results_init(qs_results *r) { memset(r, 0, sizeof(*r)); }

void qs_results_reset(qs_results *r)
{
    r->nres = r->nstats = r->narena = 0;
}

void qs_results_destroy(qs_results *r)
{
    free(r->res);
    free(r->stats);
    free(r->arena);
    qs_results_init(r);
}

size_t qs_results_reserve(qs_results *r, size_t n)
{
    /* At least one word, so that the arena pointer is never NULL even for
     * a stats file with no data (a zero offset on NULL is undefined). */
    GROW(r->arena, r->narena, r->cap_arena, n ? n : 1);
    size_t off = r->narena;
    r->narena += n;
    return off;
}

void qs_results_begin(qs_results *r, const char *p, const char *qom_path)
{
    GROW(r->res, r->nres, r->cap_res, 1);
    r->res[r->nres++] = (qs_result){ .provider = p, .qom_path = qom_path,
                                     .first = r->nstats, .count = 0 };
}

void qs_results_add(qs_results *r, const qs_schema_value *desc, size_t off)
{
    GROW(r->stats, r->nstats, r->cap_stats, 1);
    r->stats[r->nstats++] = (qs_stat){ .desc = desc, .off = off };
    r->res[r->nres - 1].count++;
}

void qs_results_end(qs_results *r, bool drop_empty)
{
    if (drop_empty && r->nres && r->res[r->nres - 1].count == 0)
        r->nres--;
}

void qs_results_truncate(qs_results *r, size_t nres)
{
    if (nres >= r->nres)
        return;
    r->nstats = r->res[nres].first;
    r->nres = nres;
}

void qs_schemas_init(qs_schemas *s) { memset(s, 0, sizeof(*s)); }
void qs_schemas_reset(qs_schemas *s) { s->n = 0; }
void qs_schemas_destroy(qs_schemas *s) { free(s->v); qs_schemas_init(s); }

void qs_schemas_add(qs_schemas *s, const char *p, qs_target t,
                    const qs_schema_value *stats, size_t n)
{
    GROW(s->v, s->n, s->cap, 1);
    s->v[s->n++] = (qs_schema){ .provider = p, .target = t, .n = n, .stats = stats };
}

const qs_schema *qs_schemas_find(const qs_schemas *s, const char *p, qs_target t)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].target == t && strcmp(s->v[i].provider, p) == 0)
            return &s->v[i];
    return NULL;
}
