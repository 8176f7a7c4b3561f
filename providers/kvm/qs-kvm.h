/*
 * qs-kvm.h - the KVM statistics provider: the binary-stats file reader,
 * the provider that registers KVM fds with the registry, and the built-in
 * micro-VM that gives qstatsd real fds to read.
 *
 *   qs_kvm_stats_file   one KVM binary-stats fd (VM or vCPU): header, id and
 *                       descriptors parsed and validated once; then one
 *                       pread of the data block per query.
 *   qs_kvm_provider     provider "kvm": one VM file and any number of vCPU
 *                       files, each under its QOM path.
 *   recording           a VM recorded on a KVM host: DIR/vm.bin and
 *                       DIR/vcpu0.bin ... served like live fds.
 *   qs_microvm          a real KVM VM with N halting vCPUs.
 */
#ifndef QS_KVM_H
#define QS_KVM_H

#include "qs-core.h"

/* ---- binary stats file (binary_stats.c) -------------------------------- */

typedef struct qs_kvm_stats_file qs_kvm_stats_file;

/* Reads and validates header, id and descriptors of a KVM binary-stats fd.
 * On success the file owns fd.  On failure fd is left open (the caller
 * decides) and *errp names the rule that was broken. */
qs_kvm_stats_file *qs_kvm_stats_file_open(int fd, qs_error **errp);
void qs_kvm_stats_file_close(qs_kvm_stats_file *f);

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

/* ---- provider (provider.c) --------------------------------------------- */

typedef struct qs_kvm_provider qs_kvm_provider;

qs_kvm_provider *qs_kvm_provider_new(qs_registry *reg);
void qs_kvm_provider_free(qs_kvm_provider *p);
/* Validates and registers a VM stats fd; takes fd on success only. */
bool qs_kvm_provider_set_vm(qs_kvm_provider *p, int fd, qs_error **errp);
bool qs_kvm_provider_remove_vm(qs_kvm_provider *p, qs_error **errp);
/* Validates and registers a vCPU stats fd under qom_path (the vCPU object
 * appears in the registry's object tree); takes fd on success only. */
bool qs_kvm_provider_add_vcpu(qs_kvm_provider *p, const char *qom_path, int fd,
                              qs_error **errp);
bool qs_kvm_provider_remove_vcpu(qs_kvm_provider *p, const char *qom_path,
                                 qs_error **errp);
/* ---- recorded VM (recording.c) ---------------------------------------- */

#define QS_RECORDING_MAX_VCPUS 4096

/* Registers DIR/vm.bin and DIR/vcpu0.bin ... vcpuN-1.bin (contiguous), each
 * validated like a handed-over fd, vCPU i at qs_vcpu_qom_path(i).  All or
 * nothing: on failure nothing stays registered and *errp names the file and
 * the broken rule. */
bool qs_kvm_provider_add_recording(qs_kvm_provider *p, const char *dir,
                                   unsigned *nvcpus, qs_error **errp);

/* ---- micro-VM (microvm.c) ---------------------------------------------- */

typedef struct qs_microvm qs_microvm;

#define QS_MICROVM_MAX_VCPUS 1024

/* Creates the VM, its memory and nvcpus vCPU threads running the halting
 * guest loop.  Fails with a clear message when /dev/kvm is missing or
 * lacks KVM_CAP_BINARY_STATS_FD. */
qs_microvm *qs_microvm_new(unsigned nvcpus, qs_error **errp);
/* Stops the vCPU threads and closes every fd. */
void qs_microvm_free(qs_microvm *vm);
unsigned qs_microvm_nvcpus(const qs_microvm *vm);
uint64_t qs_microvm_mem_size(const qs_microvm *vm);
/* New stats fds (KVM_GET_STATS_FD); the caller owns them. -1 + errp on error. */
int qs_microvm_vm_stats_fd(qs_microvm *vm, qs_error **errp);
int qs_microvm_vcpu_stats_fd(qs_microvm *vm, unsigned i, qs_error **errp);

#endif
