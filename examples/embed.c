/*
 * embed - libqstats inside a VMM: the registry, the kvm and balloon
 * providers and the QMP, HMP and metrics servers, all on the VMM's own
 * uv_loop_t, then torn down without leaks.  Build it against an installed
 * libqstats with
 *     cc embed.c $(pkg-config --cflags --libs qstats) -o embed
 * A real VMM hands the kvm provider the stats fds of its own VM
 * (KVM_GET_STATS_FD on the VM fd and on each vCPU fd).  This example has no
 * VM, so it opens the files of a VM recorded in that format instead, laid
 * out as `qstatsd --recorded` reads them: STATS_DIR/vm.bin and
 * STATS_DIR/vcpu0.bin, vcpu1.bin ... (tests/fixtures/recorded-linux-6.18).
 * The files are read at every query, so rewriting one is seen live.
 *
 * Usage: embed STATS_DIR QMP_SOCKET [HMP_SOCKET [METRICS_HOST:PORT]]
 * Stops on the QMP/HMP quit command or on SIGINT/SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <qstats.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct vmm {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    qs_registry *reg;
    qs_kvm_provider *kvm;
    qs_balloon *balloon;
    qs_hmp *hmp;
    qs_hmp_console *console;
    qs_qmp *qmp;
    qs_exporter *exporter;
} vmm;

/* quit and signals only stop the loop: main closes the servers afterwards,
 * never from inside one of their callbacks. */
static void on_quit(void *opaque) { uv_stop(&((vmm *)opaque)->loop); }
static void on_signal(uv_signal_t *h, int sig) { (void)sig; uv_stop(h->loop); }

/* The VM's stats fd, then vCPU N's for N = 0, 1, ... while STATS_DIR/vcpuN.bin
 * exists, vCPU N under QEMU's QOM path for cpu-index N.  A real VMM gets
 * the fds from KVM_GET_STATS_FD on its VM and vCPU fds instead of open().
 * The provider takes an fd on success only. */
static bool add_kvm(vmm *v, const char *dir, qs_error **errp)
{
    char file[PATH_MAX], path[QS_VCPU_PATH_MAX];
    qs_error *err = NULL;
    for (int i = -1; !err; i++) {
        snprintf(file, sizeof(file), i < 0 ? "%s/vm.bin" : "%s/vcpu%d.bin", dir, i);
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && i > 0)
            return true;
        if (fd < 0)
            qs_error_setg(&err, "%s", strerror(errno));
        else if (i < 0 ? !qs_kvm_provider_set_vm(v->kvm, fd, &err)
                       : !qs_kvm_provider_add_vcpu(v->kvm, qs_vcpu_qom_path(i, path), fd, &err))
            close(fd);
    }
    qs_error_setg(errp, "%s: %s", file, err->msg);
    qs_error_free(err);
    return false;
}

static bool start(vmm *v, int argc, char **argv, qs_error **errp)
{
    char spec[256];
    v->reg = qs_registry_new();
    v->kvm = qs_kvm_provider_new(v->reg);
    if (!add_kvm(v, argv[1], errp))
        return false;
    v->balloon = qs_balloon_new(&v->loop, v->reg, 128u << 20);    /* the guest's RAM */
    v->hmp = qs_hmp_new(&(qs_hmp_config){ .reg = v->reg, .on_quit = on_quit, .opaque = v });
    v->qmp = qs_qmp_new(&v->loop, &(qs_qmp_config){ .reg = v->reg, .hmp = v->hmp,
                            .name = "embedded", .on_quit = on_quit, .opaque = v }, errp);
    snprintf(spec, sizeof(spec), "unix:%s", argv[2]);
    if (!v->qmp || !qs_balloon_add_commands(v->balloon, v->qmp, v->hmp, errp) ||
        !qs_qmp_listen(v->qmp, spec, false, errp))
        return false;
    snprintf(spec, sizeof(spec), "unix:%s", argc > 3 ? argv[3] : "");
    if (argc > 3 && !(v->console = qs_hmp_console_new(&v->loop, v->hmp, spec, errp)))
        return false;
    if (argc > 4 && !(v->exporter = qs_exporter_new(&v->loop, &(qs_exporter_config){
                          .reg = v->reg, .vm_name = "embedded" }, argv[4], false, errp)))
        return false;
    if (v->exporter)
        printf("metrics on port %d\n", qs_exporter_port(v->exporter));
    printf("ready\n");
    fflush(stdout);
    return true;
}

int main(int argc, char **argv)
{
    vmm v = { 0 };
    qs_error *err = NULL;
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: embed STATS_DIR QMP_SOCKET [HMP_SOCKET [METRICS_HOST:PORT]]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);   /* a client may leave before its reply is written */
    uv_loop_init(&v.loop);
    uv_signal_init(&v.loop, &v.sigint);
    uv_signal_init(&v.loop, &v.sigterm);
    uv_signal_start(&v.sigint, on_signal, SIGINT);
    uv_signal_start(&v.sigterm, on_signal, SIGTERM);
    bool ok = start(&v, argc, argv, &err);
    if (ok)
        uv_run(&v.loop, UV_RUN_DEFAULT);
    else
        fprintf(stderr, "embed: %s\n", err->msg);
    qs_error_free(err);

    /* Servers close their handles; one more loop run releases them. */
    qs_exporter_free(v.exporter);
    qs_hmp_console_free(v.console);
    qs_qmp_free(v.qmp);
    qs_balloon_free(v.balloon);
    uv_close((uv_handle_t *)&v.sigint, NULL);
    uv_close((uv_handle_t *)&v.sigterm, NULL);
    uv_run(&v.loop, UV_RUN_DEFAULT);
    qs_hmp_free(v.hmp);
    qs_kvm_provider_free(v.kvm);
    qs_registry_free(v.reg);
    return uv_loop_close(&v.loop) == 0 && ok ? 0 : 1;
}
