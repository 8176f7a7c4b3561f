/*
 * events.c - what changes in the registry, told to whoever watches it.
 * Providers say when their schemas change (a stats file or a thread added
 * or removed, a balloon stat reported for the first time) and when one of
 * their sources starts or stops failing; the registry keeps the schema
 * generation and the list of failing sources, and calls its watchers: the
 * QMP server turns schema changes into STATS_SCHEMA_CHANGED events, qstatsd
 * logs failing sources once, the metrics endpoint counts them.  Data still
 * flows one way: providers report, watchers are told, nobody calls back.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

struct qs_watch {
    qs_event_fn fn;
    void *opaque;
    qs_watch *next;
};

qs_watch *qs_registry_watch(qs_registry *reg, qs_event_fn fn, void *opaque)
{
    qs_watch *w = qs_calloc(1, sizeof(*w));
    w->fn = fn;
    w->opaque = opaque;
    qs_watch **tail = &reg->watches;
    while (*tail)
        tail = &(*tail)->next;
    *tail = w;
    return w;
}

void qs_registry_unwatch(qs_registry *reg, qs_watch *w)
{
    for (qs_watch **p = &reg->watches; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            free(w);
            return;
        }
    }
}

static void tell(qs_registry *reg, const qs_event *ev)
{
    for (qs_watch *w = reg->watches, *next; w; w = next) {
        next = w->next;          /* a watcher may unwatch itself */
        w->fn(w->opaque, ev);
    }
}

void qs_registry_schema_changed(qs_registry *reg, const char *provider, qs_target target)
{
    reg->schema_generation++;
    tell(reg, &(qs_event){ .kind = QS_EVENT_SCHEMA_CHANGED, .provider = provider,
                           .target = target });
}

unsigned qs_registry_schema_generation(const qs_registry *reg)
{
    return reg->schema_generation;
}

/* ---- failing sources ---------------------------------------------------- */

static bool same_source(const qs_source_failure *f, const char *provider, qs_target target,
                        const char *qom_path)
{
    return f->target == target && strcmp(f->provider, provider) == 0 &&
           ((!f->qom_path && !qom_path) ||
            (f->qom_path && qom_path && strcmp(f->qom_path, qom_path) == 0));
}

static void failure_free(qs_source_failure *f)
{
    free((char *)f->provider);
    free((char *)f->qom_path);
    free((char *)f->error);
}

static ssize_t find_failure(const qs_registry *reg, const char *provider, qs_target target,
                            const char *qom_path)
{
    for (size_t i = 0; i < reg->nfailing; i++)
        if (same_source(&reg->failing[i], provider, target, qom_path))
            return (ssize_t)i;
    return -1;
}

void qs_registry_source_status(qs_registry *reg, const char *provider, qs_target target,
                               const char *qom_path, const qs_error *err)
{
    ssize_t i = find_failure(reg, provider, target, qom_path);
    qs_event ev = { .provider = provider, .target = target, .qom_path = qom_path };
    if (!err && i >= 0) {
        failure_free(&reg->failing[i]);
        reg->failing[i] = reg->failing[--reg->nfailing];
        ev.kind = QS_EVENT_SOURCE_RECOVERED;
        tell(reg, &ev);
    } else if (err && i < 0) {
        reg->failing = qs_realloc(reg->failing, (reg->nfailing + 1) * sizeof(*reg->failing));
        reg->failing[reg->nfailing++] = (qs_source_failure){
            .provider = qs_strdup(provider), .target = target,
            .qom_path = qom_path ? qs_strdup(qom_path) : NULL,
            .error = qs_strdup(err->msg), .since = (int64_t)time(NULL) };
        ev.kind = QS_EVENT_SOURCE_FAILED;
        ev.error = err->msg;
        tell(reg, &ev);
    }
}

void qs_registry_source_gone(qs_registry *reg, const char *provider, qs_target target,
                             const char *qom_path)
{
    ssize_t i = find_failure(reg, provider, target, qom_path);
    if (i >= 0) {
        failure_free(&reg->failing[i]);
        reg->failing[i] = reg->failing[--reg->nfailing];
    }
}

size_t qs_registry_failing_sources(const qs_registry *reg, const qs_source_failure **out)
{
    *out = reg->failing;
    return reg->nfailing;
}

void qs_registry_events_free(qs_registry *reg)
{
    while (reg->watches)
        qs_registry_unwatch(reg, reg->watches);
    for (size_t i = 0; i < reg->nfailing; i++)
        failure_free(&reg->failing[i]);
    free(reg->failing);
}
