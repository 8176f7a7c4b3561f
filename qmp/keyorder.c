/*
 * keyorder.c - which unexpected key QEMU names when a struct has several.
 *
 * QEMU copies a struct's keys into a GHashTable (g_str_hash), removes each
 * key as its member is visited, and reports the first key the table
 * iterator yields.  With two or more unexpected keys the answer is thus an
 * accident of two hash tables: the keys are inserted in QDict iteration
 * order (512 buckets by tdb_hash, newest first within a bucket), and the
 * GHashTable (open addressing, quadratic probing, prime modulus, resized
 * on insert and remove) is iterated by slot.  This file simulates both
 * as GLib 2.74 (Debian 12) behaves; tens of thousands of random key sets
 * gave the same answer as QEMU 7.2.  Other GLib versions may differ; the
 * choice is an accident either way, but a faithful one costs nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qapi.h"

enum { GH_UNUSED = 0, GH_TOMBSTONE = 1, GH_MIN_SHIFT = 3 };

typedef struct gh_sim {
    unsigned shift, size, mod, mask;
    size_t nnodes, noccupied;
    size_t cap;
    uint32_t *hashes;
    size_t *keys;               /* index into the key array */
    const char *const *names;
} gh_sim;

static const uint32_t gh_prime_mod[] = {
    1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381,
    32749, 65521, 131071, 262139, 524287, 1048573, 2097143, 4194301, 8388593,
    16777213, 33554393, 67108859, 134217689, 268435399, 536870909, 1073741789,
    2147483647,
};

static uint32_t gh_str_hash(const char *key)
{
    uint32_t h = 5381;

    for (const signed char *p = (const signed char *)key; *p; p++) {
        h = (h << 5) + h + (uint32_t)(int32_t)*p;
    }
    return h < 2 ? 2 : h;
}

static uint32_t qdict_bucket(const char *key)
{
    uint32_t v = 0x238F13AFu * (uint32_t)strlen(key);

    for (unsigned i = 0; key[i]; i++) {
        v += (uint32_t)(unsigned char)key[i] << (i * 5 % 24);
    }
    return (1103515243u * v + 12345u) % 512;
}

static void gh_set_shift(gh_sim *g, unsigned shift)
{
    g->shift = shift;
    g->size = 1u << shift;
    g->mod = gh_prime_mod[shift];
    g->mask = g->size - 1;
    if (g->size > g->cap) {
        g->hashes = qs_realloc(g->hashes, g->size * sizeof(*g->hashes));
        g->keys = qs_realloc(g->keys, g->size * sizeof(*g->keys));
        memset(g->hashes + g->cap, 0, (g->size - g->cap) * sizeof(*g->hashes));
        memset(g->keys + g->cap, 0, (g->size - g->cap) * sizeof(*g->keys));
        g->cap = g->size;
    }
}

static unsigned gh_slot(const gh_sim *g, uint32_t hash)
{
    return (uint32_t)(hash * 11u) % g->mod;
}

/* Re-places every node into a table of the new size, old slots in order;
 * a node landing on a not-yet-moved node evicts it, which moves next. */
static void gh_resize(gh_sim *g)
{
    unsigned old_size = g->size, shift = 0;
    int n = (int)((double)g->nnodes * 1.333);
    bool *moved;

    while (n) {
        n >>= 1;
        shift++;
    }
    if (shift < GH_MIN_SHIFT) {
        shift = GH_MIN_SHIFT;
    }
    gh_set_shift(g, shift < 31 ? shift : 31);
    moved = qs_calloc(g->cap, sizeof(*moved));
    for (unsigned i = 0; i < old_size; i++) {
        uint32_t h = g->hashes[i];
        size_t k = g->keys[i];

        if (h < 2) {
            g->hashes[i] = GH_UNUSED;
            continue;
        }
        if (moved[i]) {
            continue;
        }
        g->hashes[i] = GH_UNUSED;
        for (;;) {
            unsigned slot = gh_slot(g, h), step = 0;

            while (moved[slot]) {
                slot = (slot + ++step) & g->mask;
            }
            moved[slot] = true;
            uint32_t rh = g->hashes[slot];
            size_t rk = g->keys[slot];
            g->hashes[slot] = h;
            g->keys[slot] = k;
            if (rh < 2) {
                break;
            }
            h = rh;
            k = rk;
        }
    }
    for (unsigned i = g->size; i < g->cap; i++) {
        g->hashes[i] = GH_UNUSED;
    }
    free(moved);
    g->noccupied = g->nnodes;
}

static void gh_maybe_resize(gh_sim *g)
{
    if ((g->size > g->nnodes * 4 && g->size > (1u << GH_MIN_SHIFT)) ||
        g->size <= g->noccupied + g->noccupied / 16) {
        gh_resize(g);
    }
}

/* The slot holding key k, or where it would go (first tombstone seen). */
static unsigned gh_lookup(const gh_sim *g, size_t k, uint32_t h)
{
    unsigned slot = gh_slot(g, h), step = 0, tomb = 0;
    bool have_tomb = false;

    while (g->hashes[slot] != GH_UNUSED) {
        if (g->hashes[slot] == h && !strcmp(g->names[g->keys[slot]], g->names[k])) {
            return slot;
        }
        if (g->hashes[slot] == GH_TOMBSTONE && !have_tomb) {
            tomb = slot;
            have_tomb = true;
        }
        slot = (slot + ++step) & g->mask;
    }
    return have_tomb ? tomb : slot;
}

static void gh_insert(gh_sim *g, size_t k)
{
    uint32_t h = gh_str_hash(g->names[k]);
    unsigned slot = gh_lookup(g, k, h);
    uint32_t old = g->hashes[slot];

    g->hashes[slot] = h;
    g->keys[slot] = k;
    g->nnodes++;
    if (old == GH_UNUSED) {
        g->noccupied++;
        gh_maybe_resize(g);
    }
}

static void gh_remove(gh_sim *g, size_t k)
{
    uint32_t h = gh_str_hash(g->names[k]);
    unsigned slot = gh_lookup(g, k, h);

    if (g->hashes[slot] == h && g->keys[slot] == k) {
        g->hashes[slot] = GH_TOMBSTONE;
        g->nnodes--;
        gh_maybe_resize(g);
    }
}

typedef struct qdict_pos {
    uint32_t bucket;
    size_t index;
} qdict_pos;

static int qdict_pos_cmp(const void *a, const void *b)
{
    const qdict_pos *x = a, *y = b;

    if (x->bucket != y->bucket) {
        return x->bucket < y->bucket ? -1 : 1;
    }
    return x->index > y->index ? -1 : x->index < y->index;   /* newest first */
}

void qs_qapi_qdict_order(const char *const *names, size_t n, size_t *order)
{
    qdict_pos *pos = qs_calloc(n ? n : 1, sizeof(*pos));

    for (size_t i = 0; i < n; i++) {
        pos[i].bucket = qdict_bucket(names[i]);
        pos[i].index = i;
    }
    qsort(pos, n, sizeof(*pos), qdict_pos_cmp);
    for (size_t i = 0; i < n; i++) {
        order[i] = pos[i].index;
    }
    free(pos);
}

/* names: the struct's keys in JSON order; consumed: indexes of the keys
 * the members took, in visiting order.  Returns the index QEMU reports. */
size_t qs_qapi_unexpected_key(const char *const *names, size_t n,
                             const size_t *consumed, size_t nconsumed)
{
    gh_sim g = { .names = names };
    size_t *order = qs_calloc(n ? n : 1, sizeof(*order));
    size_t found = SIZE_MAX;

    qs_qapi_qdict_order(names, n, order);
    gh_set_shift(&g, GH_MIN_SHIFT);
    for (size_t i = 0; i < n; i++) {
        gh_insert(&g, order[i]);
    }
    for (size_t i = 0; i < nconsumed; i++) {
        gh_remove(&g, consumed[i]);
    }
    for (unsigned i = 0; i < g.size && found == SIZE_MAX; i++) {
        if (g.hashes[i] >= 2) {
            found = g.keys[i];
        }
    }
    free(order);
    free(g.hashes);
    free(g.keys);
    return found;
}

