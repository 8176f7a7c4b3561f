/*
 * provider.c - provider "kvm": turns KVM binary-stats files into registry
 * results.  It owns one VM file and any number of vCPU files (from the
 * built-in micro-VM or handed over with add-stats-fd), each vCPU also being
 * an object at its QOM path.  A query is one pread per file straight into
 * the results arena; stats then point into it, so nothing is allocated per
 * stat and nothing is copied.
 *
 * Every vCPU file must describe the same stats as the first (the provider
 * publishes one vCPU schema, which query-stats-schemas, HMP and metrics
 * trust).  A file that stops reading is skipped and reported to the
 * registry (failing sources), never failing the query for the others.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binary_stats.h"
#include "qs-kvm.h"

typedef struct kvm_source {
    qs_kvm_stats_file *file;
    char *qom_path;            /* NULL for the VM */
    qs_object *obj;
    bool failing;              /* its last read failed (reported once) */
} kvm_source;

struct qs_kvm_provider {
    qs_registry *reg;
    qs_provider_entry *entry;
    kvm_source vm;
    kvm_source **vcpus;        /* sorted by QOM path, naturally (device[2] < device[10]) */
    size_t nvcpus, cap;
};

static bool get_stats_id(void *opaque, qs_jw *out, qs_error **errp)
{
    kvm_source *src = opaque;
    qs_jw_str(out, qs_kvm_stats_file_id(src->file));
    return true;
}

static const qs_property vcpu_props[] = {
    { .name = "stats-id", .type = "string", .get = get_stats_id },
};

/* Appends one file's values as a result; names NULL means all. */
static bool read_source(const kvm_source *src, qs_results *out,
                        const qs_strlist *names, qs_error **errp)
{
    const qs_kvm_stats_file *f = src->file;
    size_t base = qs_results_reserve(out, qs_kvm_stats_file_data_words(f));
    if (base == QS_RESULTS_FULL)
        return true;            /* over budget: the registry fails the query */
    if (!qs_kvm_stats_file_read(f, qs_results_values(out, base), errp))
        return false;
    const qs_schema_value *schema = qs_kvm_stats_file_schema(f);
    const uint32_t *offsets = qs_kvm_stats_file_offsets(f);
    size_t n = qs_kvm_stats_file_count(f);

    qs_results_begin(out, "kvm", src->qom_path);
    for (size_t i = 0; i < n; i++)
        if (qs_strlist_match(names, schema[i].name))
            qs_results_add(out, &schema[i], base + offsets[i]);
    qs_results_end(out, true);      /* QEMU drops an empty kvm result */
    return true;
}

/* Reads one source; a failure skips it and is reported once, and so is
 * its recovery. */
static void read_or_skip(qs_kvm_provider *p, kvm_source *src, qs_results *out,
                         const qs_strlist *names)
{
    qs_error *err = NULL;
    size_t mark = out->nres;
    bool ok = read_source(src, out, names, &err);
    qs_target target = src->qom_path ? QS_TARGET_VCPU : QS_TARGET_VM;
    if (!ok)
        qs_results_truncate(out, mark);
    if (ok == src->failing)
        qs_registry_source_status(p->reg, "kvm", target, src->qom_path, err);
    src->failing = !ok;
    qs_error_free(err);
}

static bool kvm_stats(void *opaque, qs_results *out, qs_target target,
                      const qs_strlist *names, const qs_strlist *targets,
                      qs_error **errp)
{
    qs_kvm_provider *p = opaque;

    if (target == QS_TARGET_VM && p->vm.file)
        read_or_skip(p, &p->vm, out, names);
    for (size_t i = 0; target == QS_TARGET_VCPU && i < p->nvcpus; i++)
        if (qs_strlist_match(targets, p->vcpus[i]->qom_path))
            read_or_skip(p, p->vcpus[i], out, names);
    return true;
}

static bool kvm_schemas(void *opaque, qs_schemas *out, qs_error **errp)
{
    qs_kvm_provider *p = opaque;
    if (p->vm.file)
        qs_schemas_add(out, "kvm", QS_TARGET_VM,
                       qs_kvm_stats_file_schema(p->vm.file),
                       qs_kvm_stats_file_count(p->vm.file));
    if (p->nvcpus)
        qs_schemas_add(out, "kvm", QS_TARGET_VCPU,
                       qs_kvm_stats_file_schema(p->vcpus[0]->file),
                       qs_kvm_stats_file_count(p->vcpus[0]->file));
    return true;
}

static bool kvm_add_fd(void *opaque, qs_target target, const char *qom_path, int fd,
                       qs_error **errp)
{
    return target == QS_TARGET_VM ? qs_kvm_provider_set_vm(opaque, fd, errp)
                                  : qs_kvm_provider_add_vcpu(opaque, qom_path, fd, errp);
}

static bool kvm_remove_fd(void *opaque, qs_target target, const char *qom_path,
                          qs_error **errp)
{
    return target == QS_TARGET_VM ? qs_kvm_provider_remove_vm(opaque, errp)
                                  : qs_kvm_provider_remove_vcpu(opaque, qom_path, errp);
}

qs_kvm_provider *qs_kvm_provider_new(qs_registry *reg)
{
    qs_kvm_provider *p = qs_calloc(1, sizeof(*p));
    p->reg = reg;
    p->entry = qs_registry_add(reg, "kvm", kvm_stats, kvm_schemas, p, NULL);
    qs_provider_set_fd_handlers(p->entry, kvm_add_fd, kvm_remove_fd);
    return p;
}

static void source_clear(qs_kvm_provider *p, kvm_source *src)
{
    qs_target target = src->qom_path ? QS_TARGET_VCPU : QS_TARGET_VM;
    qs_registry_source_gone(p->reg, "kvm", target, src->qom_path);
    if (src->obj)
        qs_registry_remove_object(p->reg, src->obj);
    if (src->qom_path)
        qs_registry_vcpu_unref(p->reg, src->qom_path);
    qs_kvm_stats_file_close(src->file);
    free(src->qom_path);
    memset(src, 0, sizeof(*src));
}

void qs_kvm_provider_free(qs_kvm_provider *p)
{
    if (!p)
        return;
    qs_registry_remove(p->reg, p->entry);
    if (p->vm.file)
        source_clear(p, &p->vm);
    for (size_t i = 0; i < p->nvcpus; i++) {
        source_clear(p, p->vcpus[i]);
        free(p->vcpus[i]);
    }
    free(p->vcpus);
    free(p);
}

static qs_kvm_stats_file *open_described(int fd, qs_error **errp)
{
    qs_kvm_stats_file *f = qs_kvm_stats_file_open(fd, errp);
    if (f)
        qs_kvm_stats_file_describe(f, qs_kvm_stat_description);
    return f;
}

bool qs_kvm_provider_set_vm(qs_kvm_provider *p, int fd, qs_error **errp)
{
    qs_kvm_stats_file *f = open_described(fd, errp);
    if (!f)
        return false;
    if (p->vm.file)
        source_clear(p, &p->vm);
    p->vm.file = f;
    qs_registry_schema_changed(p->reg, "kvm", QS_TARGET_VM);
    return true;
}

bool qs_kvm_provider_remove_vm(qs_kvm_provider *p, qs_error **errp)
{
    if (!p->vm.file) {
        qs_error_setg(errp, "No KVM stats fd registered for target 'vm'");
        return false;
    }
    source_clear(p, &p->vm);
    qs_registry_schema_changed(p->reg, "kvm", QS_TARGET_VM);
    return true;
}

static ssize_t find_vcpu(const qs_kvm_provider *p, const char *qom_path)
{
    for (size_t i = 0; i < p->nvcpus; i++)
        if (strcmp(p->vcpus[i]->qom_path, qom_path) == 0)
            return (ssize_t)i;
    return -1;
}

static void describe_entry(char *buf, size_t len, const qs_schema_value *sv)
{
    snprintf(buf, len, "'%s' (%s, unit %s, %d^%d, %u value%s)", sv->name,
             qs_stat_type_name(sv->type), sv->unit ? qs_unit_name(sv->unit) : "none",
             sv->base ? sv->base : 10, sv->exponent, sv->size, sv->size == 1 ? "" : "s");
}

/* A vCPU file must describe exactly the stats of the published vCPU
 * schema (the first vCPU's), or clients would be told one thing by
 * query-stats-schemas and read another from query-stats. */
static bool same_vcpu_schema(const qs_kvm_provider *p, const qs_kvm_stats_file *f,
                             qs_error **errp)
{
    if (!p->nvcpus)
        return true;
    const qs_kvm_stats_file *ref = p->vcpus[0]->file;
    size_t n = qs_kvm_stats_file_count(f), want = qs_kvm_stats_file_count(ref);
    const qs_schema_value *a = qs_kvm_stats_file_schema(f), *b = qs_kvm_stats_file_schema(ref);
    for (size_t i = 0; i < n || i < want; i++) {
        char got[160] = "nothing", expect[160] = "nothing";
        if (i < n && i < want && qs_schema_value_equal(&a[i], &b[i]))
            continue;
        if (i < n)
            describe_entry(got, sizeof(got), &a[i]);
        if (i < want)
            describe_entry(expect, sizeof(expect), &b[i]);
        qs_error_setg(errp, "KVM stats: this vCPU's stats differ from the other vCPUs' "
                      "(those of %s): descriptor %zu is %s where they have %s",
                      p->vcpus[0]->qom_path, i, got, expect);
        return false;
    }
    return true;
}

bool qs_kvm_provider_add_vcpu(qs_kvm_provider *p, const char *qom_path, int fd,
                              qs_error **errp)
{
    if (find_vcpu(p, qom_path) >= 0) {
        qs_error_setg(errp, "A vCPU is already registered at '%s'", qom_path);
        return false;
    }
    if (!qs_registry_path_free(p->reg, qom_path, errp))
        return false;
    qs_kvm_stats_file *f = open_described(fd, errp);
    if (!f)
        return false;
    if (!same_vcpu_schema(p, f, errp)) {
        qs_kvm_stats_file_forget(f);     /* the fd stays the caller's */
        return false;
    }
    if (p->nvcpus == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 8;
        p->vcpus = qs_realloc(p->vcpus, p->cap * sizeof(*p->vcpus));
    }
    kvm_source *src = qs_calloc(1, sizeof(*src));
    src->file = f;
    src->qom_path = qs_strdup(qom_path);
    src->obj = qs_registry_add_object(p->reg, qom_path, "kvm-vcpu", vcpu_props, 1, src);
    qs_registry_vcpu_ref(p->reg, qom_path);
    size_t at = p->nvcpus;
    while (at > 0 && strverscmp(p->vcpus[at - 1]->qom_path, qom_path) > 0)
        at--;
    memmove(&p->vcpus[at + 1], &p->vcpus[at], (p->nvcpus - at) * sizeof(*p->vcpus));
    p->vcpus[at] = src;
    p->nvcpus++;
    qs_registry_schema_changed(p->reg, "kvm", QS_TARGET_VCPU);
    return true;
}

bool qs_kvm_provider_remove_vcpu(qs_kvm_provider *p, const char *qom_path,
                                 qs_error **errp)
{
    ssize_t i = find_vcpu(p, qom_path);
    if (i < 0) {
        qs_error_setg(errp, "No KVM stats fd registered for vCPU '%s'", qom_path);
        return false;
    }
    kvm_source *src = p->vcpus[i];
    source_clear(p, src);
    free(src);
    memmove(&p->vcpus[i], &p->vcpus[i + 1], (p->nvcpus - (size_t)i - 1) * sizeof(*p->vcpus));
    p->nvcpus--;
    qs_registry_schema_changed(p->reg, "kvm", QS_TARGET_VCPU);
    return true;
}
