/*
 * getfd.c - file descriptors over QMP: getfd/closefd keep fds received with
 * SCM_RIGHTS in the session's table under a name, as QEMU does, and
 * add-stats-fd hands a named fd to the provider named in the request (kvm
 * validates it as a KVM binary-stats file, sched as a thread pidfd) before
 * anything reads it.  This is how a VMM other than qstatsd's own micro-VM
 * gets its VM into query-stats (the kernel lets only the owning process
 * call KVM_GET_STATS_FD).
 */
#include <ctype.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static ssize_t find_named(const qs_qmp_session *s, const char *name)
{
    for (size_t i = 0; i < s->nfds; i++)
        if (strcmp(s->fds[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

/* Removes the named fd from the table and returns it (the caller owns it). */
static int take_named(qs_qmp_session *s, const char *name, qs_error **errp)
{
    ssize_t i = find_named(s, name);
    if (i < 0) {
        qs_error_setg(errp, "File descriptor named '%s' not found", name);
        return -1;
    }
    int fd = s->fds[i].fd;
    free(s->fds[i].name);
    s->fds[i] = s->fds[--s->nfds];
    return fd;
}

bool qs_qmp_cmd_getfd(qs_qmp_session *s, const json_t *args, qs_jw *ret, qs_error **errp)
{
    const char *name = qs_qmp_arg_str(args, "fdname");
    if (!s->is_unix) {
        qs_error_setg(errp, "No file descriptor supplied via SCM_RIGHTS "
                      "(file descriptors can only be passed over a unix socket)");
        return false;
    }
    int fd = qs_qmp_session_take_passed_fd(s);
    if (fd < 0) {
        qs_error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
        return false;
    }
    if (isdigit((unsigned char)name[0])) {
        close(fd);
        qs_error_setg(errp, "Parameter 'fdname' expects a name not starting with a digit");
        return false;
    }
    ssize_t i = find_named(s, name);
    if (i >= 0) {                      /* a new fd replaces the old one */
        close(s->fds[i].fd);
        s->fds[i].fd = fd;
    } else {
        s->fds = qs_realloc(s->fds, (s->nfds + 1) * sizeof(*s->fds));
        s->fds[s->nfds++] = (qs_named_fd){ .name = qs_strdup(name), .fd = fd };
    }
    qs_qmp_return_empty(ret);
    return true;
}

bool qs_qmp_cmd_closefd(qs_qmp_session *s, const json_t *args, qs_jw *ret, qs_error **errp)
{
    int fd = take_named(s, qs_qmp_arg_str(args, "fdname"), errp);
    if (fd < 0)
        return false;
    close(fd);
    qs_qmp_return_empty(ret);
    return true;
}

static bool check_stats_fd_args(qs_qmp_session *s, const json_t *args, qs_target *target,
                                qs_error **errp)
{
    const char *path = qs_qmp_arg_str(args, "qom-path");
    *target = qs_target_lookup(qs_qmp_arg_str(args, "target"));
    if (*target == QS_TARGET_VCPU && !path) {
        qs_error_setg(errp, "Parameter 'qom-path' is missing");
        return false;
    }
    if (*target == QS_TARGET_VM && path) {
        qs_error_setg(errp, "Parameter 'qom-path' is unexpected for target 'vm'");
        return false;
    }
    if (*target == QS_TARGET_CRYPTODEV) {
        qs_error_setg(errp, "Target 'cryptodev' does not take stats fds");
        return false;
    }
    return true;
}

bool qs_qmp_cmd_add_stats_fd(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                             qs_error **errp)
{
    qs_target target;
    if (!check_stats_fd_args(s, args, &target, errp))
        return false;
    int fd = take_named(s, qs_qmp_arg_str(args, "fdname"), errp);
    if (fd < 0)
        return false;
    if (!qs_registry_add_fd(s->server->cfg.reg, qs_qmp_arg_str(args, "provider"), target,
                            qs_qmp_arg_str(args, "qom-path"), fd, errp)) {
        close(fd);               /* refused: the fd is not kept anywhere */
        return false;
    }
    qs_qmp_return_empty(ret);
    return true;
}

bool qs_qmp_cmd_remove_stats_fd(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                                qs_error **errp)
{
    qs_target target;
    if (!check_stats_fd_args(s, args, &target, errp))
        return false;
    /* remove-stats-fd without a provider is kvm's, as it was before sched */
    const char *prov = qs_qmp_arg_str(args, "provider");
    bool ok = qs_registry_remove_fd(s->server->cfg.reg, prov ? prov : "kvm", target,
                                    qs_qmp_arg_str(args, "qom-path"), errp);
    if (ok)
        qs_qmp_return_empty(ret);
    return ok;
}
