/*
 * embed - libqstats inside a VMM: the registry, the kvm and balloon
 * providers and the QMP, HMP and metrics servers, all on the VMM's own
 * uv_loop_t, then torn down without leaks.  Build it against an installed
 * libqstats with
 *     cc embed.c $(pkg-config --cflags --libs qstats) -o embed
 * A real VMM passes the fds of its own VM (KVM_GET_STATS_FD on the VM and
 * on each vCPU fd); this example borrows the library's micro-VM for them.
 *
 * Usage: embed QMP_SOCKET [HMP_SOCKET [METRICS_HOST:PORT]]
 * Stops on the QMP/HMP quit command or on SIGINT/SIGTERM.
 */
#include <qstats.h>
#include <stdio.h>

typedef struct vmm {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    qs_registry *reg;
    qs_kvm_provider *kvm;
    qs_microvm *vm;
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

static bool fail(qs_error *err)
{
    fprintf(stderr, "embed: %s\n", err->msg);
    qs_error_free(err);
    return false;
}

/* Hands the VM's stats fds to the kvm provider, under QEMU's QOM paths. */
static bool add_kvm(vmm *v, unsigned nvcpus, qs_error **errp)
{
    int fd = qs_microvm_vm_stats_fd(v->vm, errp);
    if (fd < 0 || !qs_kvm_provider_set_vm(v->kvm, fd, errp))
        return false;
    for (unsigned i = 0; i < nvcpus; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/machine/unattached/device[%u]", i);
        if ((fd = qs_microvm_vcpu_stats_fd(v->vm, i, errp)) < 0 ||
            !qs_kvm_provider_add_vcpu(v->kvm, path, fd, errp))
            return false;
    }
    return true;
}

static bool start(vmm *v, int argc, char **argv, qs_error **errp)
{
    char spec[256];
    v->reg = qs_registry_new();
    v->kvm = qs_kvm_provider_new(v->reg);
    if (!(v->vm = qs_microvm_new(2, errp)) || !add_kvm(v, 2, errp))
        return false;
    v->balloon = qs_balloon_new(&v->loop, v->reg, qs_microvm_mem_size(v->vm));
    v->hmp = qs_hmp_new(&(qs_hmp_config){ .reg = v->reg, .balloon = v->balloon,
                                          .on_quit = on_quit, .opaque = v });
    v->qmp = qs_qmp_new(&v->loop, &(qs_qmp_config){ .reg = v->reg, .kvm = v->kvm,
                            .balloon = v->balloon, .hmp = v->hmp, .name = "embedded",
                            .on_quit = on_quit, .opaque = v }, errp);
    snprintf(spec, sizeof(spec), "unix:%s", argv[1]);
    if (!v->qmp || !qs_qmp_listen(v->qmp, spec, false, errp))
        return false;
    snprintf(spec, sizeof(spec), "unix:%s", argc > 2 ? argv[2] : "");
    if (argc > 2 && !(v->console = qs_hmp_console_new(&v->loop, v->hmp, spec, errp)))
        return false;
    if (argc > 3 && !(v->exporter = qs_exporter_new(&v->loop, &(qs_exporter_config){
                          .reg = v->reg, .vm_name = "embedded" }, argv[3], false, errp)))
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
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: embed QMP_SOCKET [HMP_SOCKET [METRICS_HOST:PORT]]\n");
        return 2;
    }
    uv_loop_init(&v.loop);
    uv_signal_init(&v.loop, &v.sigint);
    uv_signal_init(&v.loop, &v.sigterm);
    uv_signal_start(&v.sigint, on_signal, SIGINT);
    uv_signal_start(&v.sigterm, on_signal, SIGTERM);
    bool ok = start(&v, argc, argv, &err) || fail(err);
    if (ok)
        uv_run(&v.loop, UV_RUN_DEFAULT);

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
    qs_microvm_free(v.vm);
    qs_registry_free(v.reg);
    return uv_loop_close(&v.loop) == 0 && ok ? 0 : 1;
}
