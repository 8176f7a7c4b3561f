/* internal.h - core-private definitions shared by registry.c and object.c. */
#ifndef QS_CORE_INTERNAL_H
#define QS_CORE_INTERNAL_H

#include "qs-common.h"

#define QS_CONTAINER_TYPE "container"

struct qs_provider_entry {
    char *name;
    qs_stats_fn stats_fn;
    qs_schemas_fn schemas_fn;
    qs_add_fd_fn add_fd;
    qs_remove_fd_fn remove_fd;
    void *opaque;
    qs_provider_entry *next;
};

struct qs_object {
    char *path;
    char *type_name;
    const qs_property *props;
    size_t nprops;
    void *opaque;
    qs_object *next;
};

typedef struct qs_vcpu_entry {
    char *path;
    unsigned refs;            /* providers with data for this vCPU */
    long tid;                 /* host thread, 0 when unknown */
} qs_vcpu_entry;

typedef struct qs_watch qs_watch;

struct qs_registry {
    qs_watch *watches;
    unsigned schema_generation;
    qs_source_failure *failing;
    size_t nfailing;
    qs_vcpu_entry *vcpus;     /* natural order of path */
    size_t nvcpus, cap_vcpus;
    qs_provider_entry *head;
    char **names;             /* StatsProvider values: built-ins, then registered */
    size_t nnames;
    unsigned names_generation;
    qs_object *objects;       /* in insertion order */
};

void qs_registry_objects_free(qs_registry *reg);
void qs_registry_vcpus_free(qs_registry *reg);
void qs_registry_events_free(qs_registry *reg);

#endif
