/*
 * qs-kvm.h - provider "kvm": KVM binary-stats fds (a VM's and each vCPU's,
 * from KVM_GET_STATS_FD) turned into registry results.  A VMM that embeds
 * libqstats hands its fds over here; qstatsd also takes them over QMP
 * (add-stats-fd) or from a recorded VM's files.  Each fd is validated as the
 * kernel's binary-stats format when it is registered and then read with one
 * pread per query.
 */
#ifndef QS_KVM_H
#define QS_KVM_H

#include "qs-core.h"

/* ---- provider (provider.c) --------------------------------------------- */

typedef struct qs_kvm_provider qs_kvm_provider;

QS_EXPORT qs_kvm_provider *qs_kvm_provider_new(qs_registry *reg);
QS_EXPORT void qs_kvm_provider_free(qs_kvm_provider *p);
/* Validates and registers a VM stats fd; takes fd on success only. */
QS_EXPORT bool qs_kvm_provider_set_vm(qs_kvm_provider *p, int fd, qs_error **errp);
QS_EXPORT bool qs_kvm_provider_remove_vm(qs_kvm_provider *p, qs_error **errp);
/* Validates and registers a vCPU stats fd under qom_path (the vCPU object
 * appears in the registry's object tree); takes fd on success only. */
QS_EXPORT bool qs_kvm_provider_add_vcpu(qs_kvm_provider *p, const char *qom_path, int fd,
                                        qs_error **errp);
QS_EXPORT bool qs_kvm_provider_remove_vcpu(qs_kvm_provider *p, const char *qom_path,
                                           qs_error **errp);
/* ---- recorded VM (recording.c) ---------------------------------------- */

#define QS_RECORDING_MAX_VCPUS 4096

/* Registers DIR/vm.bin and DIR/vcpu0.bin ... vcpuN-1.bin (contiguous), each
 * validated like a handed-over fd, vCPU i at qs_vcpu_qom_path(i).  All or
 * nothing: on failure nothing stays registered and *errp names the file and
 * the broken rule. */
QS_EXPORT bool qs_kvm_provider_add_recording(qs_kvm_provider *p, const char *dir,
                                             unsigned *nvcpus, qs_error **errp);

#endif
