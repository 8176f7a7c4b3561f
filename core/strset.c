/*
 * strset.c - a set of strings, each with a value, with constant-time
 * lookup, for the places that must find a name among as many names as a
 * client or a stats file can bring (the metrics renderer's family names and
 * histogram sums: scanning lists made one scrape of 65536 families take a
 * minute).  Open addressing, linear probing, the strings copied into one
 * arena.
 */
#include <stdlib.h>
#include <string.h>

#include "qs-common.h"

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;          /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void qs_strset_init(qs_strset *set)
{
    memset(set, 0, sizeof(*set));
    qs_buf_init(&set->arena);
}

void qs_strset_free(qs_strset *set)
{
    free(set->slots);
    free(set->values);
    qs_buf_free(&set->arena);
    qs_strset_init(set);
}

void qs_strset_clear(qs_strset *set)
{
    if (set->slots)
        memset(set->slots, 0, set->cap * sizeof(*set->slots));
    set->n = 0;
    qs_buf_reset(&set->arena);
}

/* Slots hold arena offset + 1 (0: empty). */
static size_t *find(const qs_strset *set, const char *s)
{
    size_t i = hash(s) & (set->cap - 1);
    for (;; i = (i + 1) & (set->cap - 1)) {
        size_t *slot = &set->slots[i];
        if (!*slot || strcmp(set->arena.data + *slot - 1, s) == 0)
            return slot;
    }
}

static void rehash(qs_strset *set)
{
    size_t old_cap = set->cap, *old = set->slots, *old_values = set->values;
    set->cap = old_cap ? 2 * old_cap : 64;
    set->slots = qs_calloc(set->cap, sizeof(*set->slots));
    set->values = qs_calloc(set->cap, sizeof(*set->values));
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i]) {
            size_t *slot = find(set, set->arena.data + old[i] - 1);
            *slot = old[i];
            set->values[slot - set->slots] = old_values[i];
        }
    }
    free(old);
    free(old_values);
}

bool qs_strset_contains(const qs_strset *set, const char *s)
{
    return qs_strset_get(set, s, NULL);
}

bool qs_strset_put(qs_strset *set, const char *s, size_t value)
{
    if (2 * (set->n + 1) > set->cap)
        rehash(set);
    size_t *slot = find(set, s);
    if (*slot)
        return false;
    size_t at = set->arena.len;
    qs_buf_append(&set->arena, s, strlen(s) + 1);
    *slot = at + 1;
    set->values[slot - set->slots] = value;
    set->n++;
    return true;
}

bool qs_strset_add(qs_strset *set, const char *s)
{
    return qs_strset_put(set, s, 0);
}

bool qs_strset_get(const qs_strset *set, const char *s, size_t *value)
{
    if (!set->cap)
        return false;
    size_t *slot = find(set, s);
    if (*slot && value)
        *value = set->values[slot - set->slots];
    return *slot != 0;
}
