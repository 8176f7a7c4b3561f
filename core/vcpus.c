/*
 * vcpus.c - the VM's vCPUs as the registry knows them.  Several providers
 * have data for one vCPU (kvm: its stats fd; sched: its host thread), and
 * the human monitor (`cpu N`, the default CPU of `info stats vcpu`) and
 * query-cpus-fast need the list without knowing any provider.  So a vCPU
 * is a QOM path here, counted by the providers that reference it, with the
 * host thread where one is known.
 *
 * vCPU N lives at /machine/unattached/device[N], the container where
 * QEMU's x86 machines put their CPUs, numbered contiguously by cpu-index
 * (QEMU's own numbering has gaps: docs/qemu-behaviour.md#vcpu-paths);
 * qs_vcpu_qom_path is the one place that spells it.  A VMM may register
 * vCPUs at other paths: they have no cpu-index.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define VCPU_DIR "/machine/unattached/device["

const char *qs_vcpu_qom_path(unsigned index, char buf[QS_VCPU_PATH_MAX])
{
    snprintf(buf, QS_VCPU_PATH_MAX, VCPU_DIR "%u]", index);
    return buf;
}

long qs_vcpu_index(const char *qom_path)
{
    const char *p = qom_path + strlen(VCPU_DIR);
    char *end;
    if (strncmp(qom_path, VCPU_DIR, strlen(VCPU_DIR)) != 0 || *p < '0' || *p > '9' ||
        (*p == '0' && p[1] != ']'))
        return -1;
    long n = strtol(p, &end, 10);
    return strcmp(end, "]") == 0 && n <= QS_VCPU_INDEX_MAX ? n : -1;
}

static ssize_t find(const qs_registry *reg, const char *path)
{
    for (size_t i = 0; i < reg->nvcpus; i++)
        if (strcmp(reg->vcpus[i].path, path) == 0)
            return (ssize_t)i;
    return -1;
}

void qs_registry_vcpu_ref(qs_registry *reg, const char *path)
{
    ssize_t i = find(reg, path);
    if (i >= 0) {
        reg->vcpus[i].refs++;
        return;
    }
    if (reg->nvcpus == reg->cap_vcpus) {
        reg->cap_vcpus = reg->cap_vcpus ? 2 * reg->cap_vcpus : 16;
        reg->vcpus = qs_realloc(reg->vcpus, reg->cap_vcpus * sizeof(*reg->vcpus));
    }
    /* natural order: device[2] before device[10] */
    size_t at = reg->nvcpus;
    while (at > 0 && strverscmp(reg->vcpus[at - 1].path, path) > 0)
        at--;
    memmove(&reg->vcpus[at + 1], &reg->vcpus[at], (reg->nvcpus - at) * sizeof(*reg->vcpus));
    reg->vcpus[at] = (qs_vcpu_entry){ .path = qs_strdup(path), .refs = 1 };
    reg->nvcpus++;
}

void qs_registry_vcpu_unref(qs_registry *reg, const char *path)
{
    ssize_t i = find(reg, path);
    if (i < 0 || --reg->vcpus[i].refs > 0)
        return;
    free(reg->vcpus[i].path);
    memmove(&reg->vcpus[i], &reg->vcpus[i + 1],
            (reg->nvcpus - (size_t)i - 1) * sizeof(*reg->vcpus));
    reg->nvcpus--;
}

void qs_registry_vcpu_set_thread(qs_registry *reg, const char *path, long tid)
{
    ssize_t i = find(reg, path);
    if (i >= 0)
        reg->vcpus[i].tid = tid;
}

size_t qs_registry_vcpu_count(const qs_registry *reg)
{
    return reg->nvcpus;
}

const char *qs_registry_vcpu_path(const qs_registry *reg, size_t i)
{
    return i < reg->nvcpus ? reg->vcpus[i].path : NULL;
}

long qs_registry_vcpu_thread(const qs_registry *reg, size_t i)
{
    return i < reg->nvcpus ? reg->vcpus[i].tid : 0;
}

bool qs_registry_vcpu_known(const qs_registry *reg, const char *path)
{
    return find(reg, path) >= 0;
}

void qs_registry_vcpus_free(qs_registry *reg)
{
    for (size_t i = 0; i < reg->nvcpus; i++)
        free(reg->vcpus[i].path);
    free(reg->vcpus);
}
