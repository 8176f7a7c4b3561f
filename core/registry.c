/*
 * registry.c - the provider registry and QEMU's query-stats filter
 * semantics (docs/qemu-behaviour.md#filters and #provider-errors there).
 * Providers run in registration order and append in natural order (a
 * deliberate difference from QEMU, which prepends everything:
 * docs/qemu-behaviour.md#ordering).  The object tree that qom-list /
 * qom-get / qom-set walk lives in the same registry object (object.c), so a
 * process has exactly one piece of shared state.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* StatsProvider values that exist whether or not anyone registered them:
 * QEMU's, then qstats' own.  Their order is the schema's (query-qmp-schema). */
static const char *const builtin_providers[] = { "kvm", "cryptodev", "balloon", "sched" };

/* The containers QEMU always has, so that qom-list finds them before any
 * vCPU or device is registered (qstatsd --no-vm). */
static const char *const standard_containers[] = {
    "/machine", "/machine/unattached", "/machine/peripheral", "/machine/peripheral-anon",
};

bool qs_registry_provider_known(const qs_registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->nnames; i++)
        if (strcmp(reg->names[i], name) == 0)
            return true;
    return false;
}

static void learn_name(qs_registry *reg, const char *name)
{
    if (qs_registry_provider_known(reg, name))
        return;
    reg->names = qs_realloc(reg->names, (reg->nnames + 1) * sizeof(*reg->names));
    reg->names[reg->nnames++] = qs_strdup(name);
    reg->names_generation++;
}

size_t qs_registry_provider_names(const qs_registry *reg, const char *const **names,
                                  unsigned *generation)
{
    *names = (const char *const *)reg->names;
    if (generation)
        *generation = reg->names_generation;
    return reg->nnames;
}

qs_registry *qs_registry_new(void)
{
    qs_registry *reg = qs_calloc(1, sizeof(qs_registry));
    for (size_t i = 0; i < sizeof(builtin_providers) / sizeof(builtin_providers[0]); i++)
        learn_name(reg, builtin_providers[i]);
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
    qs_registry_vcpus_free(reg);
    qs_registry_events_free(reg);
    for (size_t i = 0; i < reg->nnames; i++)
        free(reg->names[i]);
    free(reg->names);
    free(reg);
}

qs_provider_entry *qs_registry_add(qs_registry *reg, const char *provider,
                                   qs_stats_fn stats_fn, qs_schemas_fn schemas_fn,
                                   void *opaque, qs_error **errp)
{
    if (!qs_provider_name_valid(provider)) {
        qs_error_setg(errp, "Invalid provider name '%s': expected 1 to %d of [a-z0-9_-], "
                      "starting with a letter", provider, QS_PROVIDER_NAME_MAX);
        return NULL;
    }
    learn_name(reg, provider);
    qs_provider_entry *e = qs_calloc(1, sizeof(*e));
    e->name = qs_strdup(provider);
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
    if (!entry)
        return;
    for (qs_provider_entry **p = &reg->head; *p; p = &(*p)->next) {
        if (*p == entry) {
            *p = entry->next;
            free(entry->name);
            free(entry);
            return;
        }
    }
}

void qs_provider_set_fd_handlers(qs_provider_entry *entry, qs_add_fd_fn add,
                                 qs_remove_fd_fn remove)
{
    entry->add_fd = add;
    entry->remove_fd = remove;
}

static qs_provider_entry *fd_taker(qs_registry *reg, const char *provider, qs_error **errp)
{
    for (qs_provider_entry *e = reg->head; e; e = e->next)
        if (e->add_fd && strcmp(e->name, provider) == 0)
            return e;
    qs_error_setg(errp, "Provider '%s' does not take stats fds", provider);
    return NULL;
}

bool qs_registry_add_fd(qs_registry *reg, const char *provider, qs_target target,
                        const char *qom_path, int fd, qs_error **errp)
{
    qs_provider_entry *e = fd_taker(reg, provider, errp);
    return e && e->add_fd(e->opaque, target, qom_path, fd, errp);
}

bool qs_registry_remove_fd(qs_registry *reg, const char *provider, qs_target target,
                           const char *qom_path, qs_error **errp)
{
    qs_provider_entry *e = fd_taker(reg, provider, errp);
    return e && e->remove_fd(e->opaque, target, qom_path, errp);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool qs_strlist_match(const qs_strlist *l, const char *s)
{
    if (!l)
        return true;
    if (l->sorted)
        return bsearch(&s, l->v, l->n, sizeof(*l->v), cmp_str) != NULL;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

#define SORT_MIN 16     /* shorter lists are searched as they are */

/* A sorted copy of a long list (the caller frees its v); short ones as is. */
static qs_strlist prepared(const qs_strlist *l)
{
    if (l->n < SORT_MIN || l->sorted)
        return *l;
    const char **v = qs_malloc(l->n * sizeof(*v));
    memcpy(v, l->v, l->n * sizeof(*v));
    qsort(v, l->n, sizeof(*v), cmp_str);
    return (qs_strlist){ .n = l->n, .v = v, .sorted = true };
}

static void release(const qs_strlist *orig, qs_strlist *l)
{
    if (l->v != orig->v)
        free((void *)l->v);
}

/* One callback invocation for an optional request: "empty list" cuts the
 * call off before the callback sees it, since NULL already means "all". */
static bool invoke(const qs_provider_entry *e, const qs_filter *f,
                   const qs_stats_request *req, qs_results *out, qs_error **errp)
{
    const qs_strlist *names = NULL, *targets = NULL;

    if (req) {
        if (strcmp(req->provider, e->name) != 0)
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

static bool too_large(const qs_results *out, qs_error **errp)
{
    if (!out->overflow)
        return false;
    qs_error_setg(errp, "query-stats: the results would take more than %zu bytes; "
                  "ask for fewer providers, names or vCPUs", out->limit);
    return true;
}

static bool run_providers(qs_registry *reg, const qs_filter *f, qs_results *out,
                          qs_error **errp)
{
    for (const qs_provider_entry *e = reg->head; e; e = e->next) {
        bool ok = true;
        if (f->has_providers) {
            for (size_t i = 0; ok && i < f->nproviders; i++)
                ok = invoke(e, f, &f->providers[i], out, errp) && !too_large(out, errp);
        } else {
            ok = invoke(e, f, NULL, out, errp) && !too_large(out, errp);
        }
        if (!ok)
            return false;
    }
    return true;
}

bool qs_registry_query_stats(qs_registry *reg, const qs_filter *f,
                             qs_results *out, qs_error **errp)
{
    qs_filter pf = *f;
    qs_stats_request *reqs = NULL;
    size_t n = 0;

    /* Copy the requests only when a name list needs sorting: the common
     * query allocates nothing here. */
    for (size_t i = 0; f->has_providers && i < f->nproviders && !n; i++)
        if (f->providers[i].names.n >= SORT_MIN && !f->providers[i].names.sorted)
            n = f->nproviders;
    if (n) {
        reqs = qs_malloc(n * sizeof(*reqs));
        for (size_t i = 0; i < n; i++) {
            reqs[i] = f->providers[i];
            reqs[i].names = prepared(&f->providers[i].names);
        }
        pf.providers = reqs;
    }
    pf.vcpus = prepared(&f->vcpus);

    qs_results_reset(out);
    bool ok = run_providers(reg, &pf, out, errp);
    if (!ok) {
        bool over = out->overflow;
        qs_results_reset(out);   /* no partial results: one failure fails all */
        out->overflow = over;    /* but the caller may tell the limit's failure */
    }

    release(&f->vcpus, &pf.vcpus);
    for (size_t i = 0; i < n; i++)
        release(&f->providers[i].names, &reqs[i].names);
    free(reqs);
    return ok;
}

bool qs_registry_query_schemas(qs_registry *reg, const char *provider,
                               qs_schemas *out, qs_error **errp)
{
    qs_schemas_reset(out);
    for (const qs_provider_entry *e = reg->head; e; e = e->next) {
        if (provider && strcmp(e->name, provider) != 0)
            continue;
        if (!e->schemas_fn(e->opaque, out, errp)) {
            qs_schemas_reset(out);
            return false;
        }
    }
    return true;
}
