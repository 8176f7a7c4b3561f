/*
 * registry.c - the provider registry and QEMU's query-stats filter
 * semantics (qemu-reference.md §2.2).  Providers run in registration
 * order and append in natural order (the contract's deliberate difference
 * from QEMU, which prepends everything).  The object tree that qom-list /
 * qom-get / qom-set walk lives in the same registry object (object.c), so a
 * process has exactly one piece of shared state.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The containers QEMU always has, so that qom-list finds them before any
 * vCPU or device is registered (qstatsd --no-vm). */
static const char *const standard_containers[] = {
    "/machine", "/machine/unattached", "/machine/peripheral", "/machine/peripheral-anon",
};

qs_registry *qs_registry_new(void)
{
    qs_registry *reg = qs_calloc(1, sizeof(qs_registry));
    for (size_t i = 0; i < sizeof(standard_containers) / sizeof(standard_containers[0]); i++)
        qs_registry_add_object(reg, standard_containers[i], QS_CONTAINER_TYPE, NULL, 0, NULL);
    return reg;
}

void qs_registry_free(qs_registry *reg)
{
    if (!reg)
        return;
    while (reg->head)
        qs_registry_remove(reg, reg->head);
    qs_registry_objects_free(reg);
    free(reg);
}

qs_provider_entry *qs_registry_add(qs_registry *reg, qs_provider provider,
                                   qs_stats_fn stats_fn, qs_schemas_fn schemas_fn,
                                   void *opaque)
{
    qs_provider_entry *e = qs_calloc(1, sizeof(*e));
    e->provider = provider;
    e->stats_fn = stats_fn;
    e->schemas_fn = schemas_fn;
    e->opaque = opaque;
    qs_provider_entry **tail = &reg->head;
    while (*tail)
        tail = &(*tail)->next;
    *tail = e;
    return e;
}

void qs_registry_remove(qs_registry *reg, qs_provider_entry *entry)
{
    for (qs_provider_entry **p = &reg->head; *p; p = &(*p)->next) {
        if (*p == entry) {
            *p = entry->next;
            free(entry);
            return;
        }
    }
}

bool qs_strlist_match(const qs_strlist *l, const char *s)
{
    if (!l)
        return true;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

/* One callback invocation for an optional request: "empty list" cuts the
 * call off before the callback sees it, since NULL already means "all". */
static bool invoke(const qs_provider_entry *e, const qs_filter *f,
                   const qs_stats_request *req, qs_results *out, qs_error **errp)
{
    const qs_strlist *names = NULL, *targets = NULL;

    if (req) {
        if (req->provider != e->provider)
            return true;
        if (req->has_names && req->names.n == 0)
            return true;
        names = req->has_names ? &req->names : NULL;
    }
    if (f->target == QS_TARGET_VCPU && f->has_vcpus) {
        if (f->vcpus.n == 0)
            return true;
        targets = &f->vcpus;
    }
    return e->stats_fn(e->opaque, out, f->target, names, targets, errp);
}

bool qs_registry_query_stats(qs_registry *reg, const qs_filter *f,
                             qs_results *out, qs_error **errp)
{
    qs_results_reset(out);
    for (const qs_provider_entry *e = reg->head; e; e = e->next) {
        bool ok = true;
        if (f->has_providers) {
            for (size_t i = 0; ok && i < f->nproviders; i++)
                ok = invoke(e, f, &f->providers[i], out, errp);
        } else {
            ok = invoke(e, f, NULL, out, errp);
        }
        if (!ok) {
            /* No partial results: one failure fails the whole query. */
            qs_results_reset(out);
            return false;
        }
    }
    return true;
}

bool qs_registry_query_schemas(qs_registry *reg, int provider,
                               qs_schemas *out, qs_error **errp)
{
    qs_schemas_reset(out);
    for (const qs_provider_entry *e = reg->head; e; e = e->next) {
        if (provider >= 0 && (int)e->provider != provider)
            continue;
        if (!e->schemas_fn(e->opaque, out, errp)) {
            qs_schemas_reset(out);
            return false;
        }
    }
    return true;
}
