/*
 * recording.c - a recorded VM: the binary-stats files of a VM and its vCPUs
 * saved from a real KVM host, served through the kvm provider exactly as
 * live fds are.  This is how qstatsd runs where /dev/kvm is missing
 * (qstatsd --recorded DIR), and how tests and benchmarks get real
 * descriptors on any Linux.
 *
 * Directory layout, one file per KVM stats fd, in the kernel's own format
 * (see binary_stats.c):
 *
 *     DIR/vm.bin                 the VM's stats fd
 *     DIR/vcpu0.bin              vCPU 0, served at /machine/unattached/device[0]
 *     ...
 *     DIR/vcpuN-1.bin            numbered contiguously from 0
 *
 * Each file is validated as a handed-over fd is (qs_kvm_provider_set_vm /
 * _add_vcpu) and stays open: every query preads its data block, so a file
 * rewritten in place is seen at the next query.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qs-common.h"
#include "qs-kvm.h"

/* The N of "vcpuN.bin" (no sign, no leading zero), or -1. */
static long vcpu_index(const char *name)
{
    if (strncmp(name, "vcpu", 4) != 0 || name[4] < '0' || name[4] > '9')
        return -1;
    if (name[4] == '0' && name[5] != '.')
        return -1;
    char *end;
    long n = strtol(name + 4, &end, 10);
    return strcmp(end, ".bin") == 0 && n < QS_RECORDING_MAX_VCPUS ? n : -1;
}

/* Counts the vCPU files and checks that they are numbered 0..n-1. */
static bool count_vcpus(const char *dir, unsigned *n, qs_error **errp)
{
    DIR *d = opendir(dir);
    if (!d) {
        qs_error_setg(errp, "%s: %s", dir, strerror(errno));
        return false;
    }
    unsigned char *seen = qs_calloc(QS_RECORDING_MAX_VCPUS, 1);
    long max = -1;
    unsigned count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        long i = vcpu_index(e->d_name);
        if (i >= 0) {
            seen[i] = 1;
            count++;
            max = i > max ? i : max;
        }
    }
    closedir(d);
    long hole = 0;
    while (hole <= max && seen[hole])
        hole++;
    free(seen);
    if (count == 0 || hole <= max) {
        qs_error_setg(errp, "%s: vcpu%ld.bin is missing (vCPU files are "
                      "numbered contiguously from vcpu0.bin)", dir, hole);
        return false;
    }
    *n = count;
    return true;
}

/* Opens DIR/NAME read-only; the message names the file. */
static int open_member(const char *dir, const char *name, qs_error **errp)
{
    char *path = qs_strdup_printf("%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        qs_error_setg(errp, "%s: %s", path, strerror(errno));
    free(path);
    return fd;
}

/* Validates and registers one file; the message names it and the rule. */
static bool add_member(qs_kvm_provider *p, const char *dir, const char *name,
                       const char *qom_path, qs_error **errp)
{
    int fd = open_member(dir, name, errp);
    if (fd < 0)
        return false;
    qs_error *err = NULL;
    bool ok = qom_path ? qs_kvm_provider_add_vcpu(p, qom_path, fd, &err)
                       : qs_kvm_provider_set_vm(p, fd, &err);
    if (!ok) {
        close(fd);
        qs_error_setg(errp, "%s/%s: %s", dir, name, err->msg);
        qs_error_free(err);
    }
    return ok;
}

bool qs_kvm_provider_add_recording(qs_kvm_provider *p, const char *dir,
                                   unsigned *nvcpus, qs_error **errp)
{
    unsigned n;
    if (!count_vcpus(dir, &n, errp) || !add_member(p, dir, "vm.bin", NULL, errp))
        return false;
    for (unsigned i = 0; i < n; i++) {
        char name[32], path[QS_VCPU_PATH_MAX];
        snprintf(name, sizeof(name), "vcpu%u.bin", i);
        if (!add_member(p, dir, name, qs_vcpu_qom_path(i, path), errp)) {
            while (i-- > 0)      /* all or nothing */
                qs_kvm_provider_remove_vcpu(p, qs_vcpu_qom_path(i, path), NULL);
            qs_kvm_provider_remove_vm(p, NULL);
            return false;
        }
    }
    *nvcpus = n;
    return true;
}
