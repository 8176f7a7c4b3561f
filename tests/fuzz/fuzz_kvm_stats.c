/*
 * fuzz_kvm_stats.c - libFuzzer target for the KVM binary-stats reader, the
 * one parser in qstats that reads a layout chosen by someone else (any fd
 * handed over with add-stats-fd).  The input bytes become a memfd; the
 * reader must refuse it with a message or accept it such that every stat's
 * values lie inside the data block it reads, and the kvm provider must
 * then answer query-stats and query-stats-schemas from it.  Accepted files
 * go on to the formatters, since a file's names, types, units, exponents
 * and bucket sizes are what the metrics renderer and HMP's `info stats`
 * turn into text.
 *
 * Oracles beyond the sanitizers: an accepted file's offsets + sizes fit in
 * data_words, names are non-empty strings, a refusal always carries a
 * message; the same file is accepted as the VM's and as two vCPUs'; each
 * unfiltered query returns exactly the file's stat count per result; the
 * metrics exposition of it, in both formats and with the file's id as the
 * vm label (any bytes, as a --name may be), is one Prometheus accepts
 * (fuzz_exposition.c); `info stats` is lines; and once the VM file stops
 * reading it is skipped and listed among the failing sources, the vCPUs
 * still answering, until it reads again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qs-core.h"
#include "binary_stats.h"
#include "hmp/internal.h"
#include "qs-exporter.h"
#include "qs-kvm.h"
#include "fuzz_exposition.h"

static int memfd_of(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-kvm-stats", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (size && pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    return fd;
}

/* The reader's own promises about an accepted file. */
static void check_file(const qs_kvm_stats_file *f)
{
    size_t n = qs_kvm_stats_file_count(f);
    size_t words = qs_kvm_stats_file_data_words(f);
    const qs_schema_value *schema = qs_kvm_stats_file_schema(f);
    const uint32_t *offsets = qs_kvm_stats_file_offsets(f);
    uint64_t *data = calloc(words ? words : 1, sizeof(*data));
    qs_error *err = NULL;

    if (strncmp(qs_kvm_stats_file_id(f), "kvm", 3) != 0)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (!schema[i].name[0] || schema[i].size == 0 ||
            (uint64_t)offsets[i] + schema[i].size > words)
            abort();
    }
    if (!qs_kvm_stats_file_read(f, data, &err))
        abort();            /* open() checked the whole block is readable */
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        for (uint32_t k = 0; k < schema[i].size; k++)
            sum += data[offsets[i] + k];
    free(data);
    (void)sum;
}

static qs_results *query(qs_registry *reg, qs_target t)
{
    qs_error *err = NULL;
    qs_results *r = qs_calloc(1, sizeof(*r));
    qs_results_init(r);
    qs_filter f = { .target = t };
    if (!qs_registry_query_stats(reg, &f, r, &err))
        abort();            /* a failing source is skipped, never fatal */
    return r;
}

static void drop(qs_results *r)
{
    qs_results_destroy(r);
    free(r);
}

/* Each result holds every stat of the file (an empty one is dropped). */
static void expect_results(const qs_results *r, size_t nres, size_t nstats)
{
    if (r->nres != (nstats ? nres : 0))
        abort();
    for (size_t i = 0; i < r->nres; i++)
        if (r->res[i].count != nstats)
            abort();
}

/* What the file's names, types, units and exponents become for people
 * and for Prometheus: the exposition stays valid, whatever the file says,
 * and the monitor's `info stats` text is lines. */
static void check_formatters(qs_registry *reg, const qs_results *vm, const qs_results *vcpu,
                             const char *vm_name)
{
    qs_error *err = NULL;
    qs_schemas s;
    qs_schemas_init(&s);
    if (!qs_registry_query_schemas(reg, NULL, &s, &err))
        abort();
    /* every vCPU on its own, and every family aggregated over the vCPUs */
    qs_metrics_view aggregated;
    qs_metrics_view_init(&aggregated);
    for (int k = 0; k < QS_METRICS_NKINDS; k++)
        aggregated.per_vcpu_max[k] = 0;
    for (int i = 0; i < 4; i++) {
        int fmt = i % 2 ? QS_METRICS_OPENMETRICS : QS_METRICS_PROMETHEUS_TEXT;
        qs_buf out;
        size_t line;
        qs_buf_init(&out);
        qs_metrics_render(&out, (qs_metrics_format)fmt, vm_name, &s, vm, vcpu, 1.7e9,
                          i < 2 ? NULL : &aggregated);
        const char *why = fuzz_exposition_error(out.data ? out.data : "", out.len,
                                                (qs_metrics_format)fmt, &line);
        if (why) {
            fprintf(stderr, "fuzz_kvm_stats: %s exposition, line %zu: %s\n%s",
                    fmt ? "OpenMetrics" : "text", line, why, out.data);
            abort();
        }
        qs_buf_free(&out);
    }
    for (int bounds = 0; bounds < 2; bounds++) {
        qs_hmp_format_opts o = { .show_provider = true, .show_qom_path = true,
                                 .bounds = bounds };
        qs_buf out;
        qs_buf_init(&out);
        qs_hmp_format_stats(&out, vm, &s, QS_TARGET_VM, &o);
        qs_hmp_format_stats(&out, vcpu, &s, QS_TARGET_VCPU, &o);
        if (out.len && out.data[out.len - 1] != '\n')
            abort();
        qs_buf_free(&out);
    }
    qs_schemas_destroy(&s);
}

/* The provider on top: the file as the VM's and as two vCPUs' (a vCPU
 * file like the first is accepted); unfiltered queries return every stat
 * of each; the formatters take them; and once the VM file stops reading
 * (truncated), it is skipped and listed as failing while the vCPUs still
 * answer, until it reads again. */
static void check_provider(const uint8_t *data, size_t size, size_t nstats, size_t words,
                           const char *id)
{
    qs_registry *reg = qs_registry_new();
    qs_kvm_provider *p = qs_kvm_provider_new(reg);
    qs_error *err = NULL;
    int fd = memfd_of(data, size);
    int keep = dup(fd);

    if (!qs_kvm_provider_set_vm(p, fd, &err) ||
        !qs_kvm_provider_add_vcpu(p, "/machine/unattached/device[0]", memfd_of(data, size), &err) ||
        !qs_kvm_provider_add_vcpu(p, "/machine/unattached/device[1]", memfd_of(data, size), &err))
        abort();            /* the same bytes were just accepted */
    qs_results *vm = query(reg, QS_TARGET_VM), *vcpu = query(reg, QS_TARGET_VCPU);
    expect_results(vm, 1, nstats);
    expect_results(vcpu, 2, nstats);
    check_formatters(reg, vm, vcpu, id);
    drop(vm);
    drop(vcpu);

    if (words && ftruncate(keep, 0) == 0) {
        const qs_source_failure *failing;
        vm = query(reg, QS_TARGET_VM);
        vcpu = query(reg, QS_TARGET_VCPU);
        expect_results(vm, 0, nstats);
        expect_results(vcpu, 2, nstats);
        if (qs_registry_failing_sources(reg, &failing) != 1 ||
            strcmp(failing[0].provider, "kvm") || failing[0].target != QS_TARGET_VM)
            abort();
        drop(vm);
        drop(vcpu);
        if (pwrite(keep, data, size, 0) != (ssize_t)size)
            abort();
        vm = query(reg, QS_TARGET_VM);
        expect_results(vm, 1, nstats);
        if (qs_registry_failing_sources(reg, &failing) != 0)
            abort();
        drop(vm);
    }
    close(keep);
    qs_kvm_provider_free(p);
    qs_registry_free(reg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qs_error *err = NULL;
    int fd = memfd_of(data, size);
    qs_kvm_stats_file *f = qs_kvm_stats_file_open(fd, &err);

    if (!f) {
        if (!err || !err->msg || strncmp(err->msg, "KVM stats: ", 11) != 0)
            abort();
        qs_error_free(err);
        close(fd);
        return 0;
    }
    check_file(f);
    size_t n = qs_kvm_stats_file_count(f);
    size_t words = qs_kvm_stats_file_data_words(f);
    char *id = qs_strdup(qs_kvm_stats_file_id(f));
    qs_kvm_stats_file_close(f);
    check_provider(data, size, n, words, id);
    free(id);
    return 0;
}
