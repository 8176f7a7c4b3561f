/*
 * binary_stats.h - (kvm-internal) the reader of one KVM binary-stats file,
 * binary_stats.c, and the descriptions of the well-known stats.  The
 * provider, the unit tests and the fuzz target use it; embedders use the
 * provider (qs-kvm.h).
 */
#ifndef QS_KVM_BINARY_STATS_H
#define QS_KVM_BINARY_STATS_H

#include "qs-common.h"

/* ---- binary stats file (binary_stats.c) -------------------------------- */

typedef struct qs_kvm_stats_file qs_kvm_stats_file;

/* Reads and validates header, id and descriptors of a KVM binary-stats fd.
 * On success the file owns fd.  On failure fd is left open (the caller
 * decides) and *errp names the rule that was broken. */
qs_kvm_stats_file *qs_kvm_stats_file_open(int fd, qs_error **errp);
void qs_kvm_stats_file_close(qs_kvm_stats_file *f);
/* Frees f but leaves its fd open (the caller still owns it). */
void qs_kvm_stats_file_forget(qs_kvm_stats_file *f);

const char *qs_kvm_stats_file_id(const qs_kvm_stats_file *f);
int qs_kvm_stats_file_fd(const qs_kvm_stats_file *f);
/* Descriptors mapped to schema entries, in descriptor order. */
size_t qs_kvm_stats_file_count(const qs_kvm_stats_file *f);
const qs_schema_value *qs_kvm_stats_file_schema(const qs_kvm_stats_file *f);
/* Where stat i's values start, in u64 words from the start of the data
 * block (its descriptor offset / 8). */
const uint32_t *qs_kvm_stats_file_offsets(const qs_kvm_stats_file *f);
/* Size of the data block in u64 words: max(offset + size*8) / 8. */
size_t qs_kvm_stats_file_data_words(const qs_kvm_stats_file *f);
/* One pread of the whole data block into data[data_words]. */
bool qs_kvm_stats_file_read(const qs_kvm_stats_file *f, uint64_t *data,
                            qs_error **errp);
/* Sets each schema entry's description to describe(name) (the file itself
 * carries no text). */
void qs_kvm_stats_file_describe(qs_kvm_stats_file *f,
                                const char *(*describe)(const char *name));

/* descriptions.c: what a well-known KVM statistic means, or NULL. */
const char *qs_kvm_stat_description(const char *name);

#endif
