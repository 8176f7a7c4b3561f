/*
 * results.c - the containers a query fills: qs_results (values in one
 * reusable u64 arena, stats and results as offsets into it) and qs_schemas.
 * They are reset, not freed, between queries so that a steady stream of
 * query-stats allocates nothing once the arrays have grown to size.
 */
#include <stdlib.h>
#include <string.h>

#include "qs-common.h"

/* Bytes the three arrays hold now. */
static size_t held(const qs_results *r)
{
    return r->cap_res * sizeof(*r->res) + r->cap_stats * sizeof(*r->stats) +
           r->cap_arena * sizeof(*r->arena);
}

/* Grows one array (elements of `size` bytes) to hold n + extra, doubling,
 * unless that would take the results past their byte budget. */
static bool grow(qs_results *r, void **ptr, size_t n, size_t *cap, size_t extra, size_t size)
{
    if (n + extra <= *cap)
        return true;
    size_t c = *cap ? *cap : 16;
    while (c < n + extra)
        c *= 2;
    if (r->overflow || n + extra < n || c > SIZE_MAX / size / 2 ||
        (r->limit && held(r) + (c - *cap) * size > r->limit)) {
        r->overflow = true;
        return false;
    }
    *ptr = qs_realloc(*ptr, c * size);
    *cap = c;
    return true;
}

#define GROW(r, arr, n, cap, extra) \
    grow((r), (void **)&(r)->arr, (r)->n, &(r)->cap, (extra), sizeof(*(r)->arr))

void qs_results_init(qs_results *r) { memset(r, 0, sizeof(*r)); }

void qs_results_reset(qs_results *r)
{
    r->nres = r->nstats = r->narena = 0;
    r->overflow = false;
}

void qs_results_destroy(qs_results *r)
{
    size_t limit = r->limit;
    free(r->res);
    free(r->stats);
    free(r->arena);
    qs_results_init(r);
    r->limit = limit;
}

void qs_results_trim(qs_results *r, size_t keep)
{
    if (r->nres == 0 && r->narena == 0 && held(r) > keep)
        qs_results_destroy(r);
}

size_t qs_results_reserve(qs_results *r, size_t n)
{
    /* At least one word, so that the arena pointer is never NULL even for
     * a stats file with no data (a zero offset on NULL is undefined). */
    if (!GROW(r, arena, narena, cap_arena, n ? n : 1))
        return QS_RESULTS_FULL;
    size_t off = r->narena;
    r->narena += n;
    return off;
}

void qs_results_begin(qs_results *r, const char *p, const char *qom_path)
{
    if (!GROW(r, res, nres, cap_res, 1))
        return;
    r->res[r->nres++] = (qs_result){ .provider = p, .qom_path = qom_path,
                                     .first = r->nstats, .count = 0 };
}

void qs_results_add(qs_results *r, const qs_schema_value *desc, size_t off)
{
    if (r->overflow || !GROW(r, stats, nstats, cap_stats, 1))
        return;
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
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->v = qs_realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = (qs_schema){ .provider = p, .target = t, .n = n, .stats = stats };
}

const qs_schema *qs_schemas_find(const qs_schemas *s, const char *p, qs_target t)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].target == t && strcmp(s->v[i].provider, p) == 0)
            return &s->v[i];
    return NULL;
}
