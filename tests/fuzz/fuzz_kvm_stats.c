/*
 * fuzz_kvm_stats.c - libFuzzer target for the KVM binary-stats reader, the
 * one parser in qstats that reads a layout chosen by someone else (any fd
 * handed over with add-stats-fd).  The input bytes become a memfd; the
 * reader must refuse it with a message or accept it such that every stat's
 * values lie inside the data block it reads, and the kvm provider must
 * then answer query-stats and query-stats-schemas from it.
 *
 * Oracles beyond the sanitizers: an accepted file's offsets + sizes fit in
 * data_words, names are non-empty and unique-looking strings, a refusal
 * always carries a message, and the provider returns exactly the file's
 * stat count for an unfiltered query.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qs-core.h"
#include "binary_stats.h"

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

/* The provider on top: one unfiltered query must return every stat. */
static void check_provider(const uint8_t *data, size_t size, size_t nstats)
{
    qs_registry *reg = qs_registry_new();
    qs_kvm_provider *p = qs_kvm_provider_new(reg);
    qs_error *err = NULL;
    int fd = memfd_of(data, size);

    if (!qs_kvm_provider_set_vm(p, fd, &err))
        abort();            /* the same bytes were just accepted */
    qs_results r;
    qs_results_init(&r);
    qs_filter f = { .target = QS_TARGET_VM };
    if (!qs_registry_query_stats(reg, &f, &r, &err))
        abort();
    size_t got = r.nres ? r.res[0].count : 0;
    if (got != nstats)
        abort();
    qs_results_destroy(&r);

    qs_schemas s;
    qs_schemas_init(&s);
    if (!qs_registry_query_schemas(reg, NULL, &s, &err))
        abort();
    qs_schemas_destroy(&s);
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
    qs_kvm_stats_file_close(f);
    check_provider(data, size, n);
    return 0;
}
