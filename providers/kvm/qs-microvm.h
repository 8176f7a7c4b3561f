/*
 * qs-microvm.h - qstatsd's built-in micro-VM: a real KVM VM with N halting
 * vCPUs whose stats move, so that the daemon has live fds to serve on a KVM
 * host.  It is a demonstration and test vehicle, not part of the embedding
 * API (not installed, not exported from libqstats.so): a VMM has its own VM.
 */
#ifndef QS_MICROVM_H
#define QS_MICROVM_H

#include "qs-core.h"

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
/* The host thread id of vCPU i (0 if there is no such vCPU). */
long qs_microvm_vcpu_thread_id(qs_microvm *vm, unsigned i);

#endif
