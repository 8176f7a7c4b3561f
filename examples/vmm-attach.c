/*
 * vmm-attach - a minimal external VMM that gets qstats for its VM by handing
 * its KVM stats fds to a running qstatsd (`qstatsd --no-vm`) over QMP.
 *
 * The kernel only lets the process that owns a VM call KVM_GET_STATS_FD, so
 * a VMM that wants its VM in qstatsd's query-stats, `info stats` and
 * /metrics sends the fds itself: `getfd` with the fd in the SCM_RIGHTS data
 * of the same message, then `add-stats-fd`.  This program does exactly that
 * and nothing a real VMM would not do; it deliberately links only libc,
 * pthreads and jansson (not libqstats) to show that the protocol is all a
 * VMM needs.
 *
 * The VM: 64 KiB of real-mode memory, the in-kernel PIC and PIT, vCPU 0
 * programming the PIT at 100 Hz and halting between ticks (the PIC is in
 * auto-EOI mode, so the handler is a bare iret).  The other vCPUs stay in
 * wait-for-SIPI inside KVM_RUN, which costs nothing.  One thread per vCPU.
 *
 * Pausing kicks every thread out of KVM_RUN (immediate_exit + a signal, set
 * under the same mutex the thread checks, so no kick is lost) and parks it:
 * with the vCPUs stopped their stats are frozen, and the `dump` command
 * reads the same fds with a small independent parser, which lets a test
 * compare what qstatsd reports with what the VMM itself reads.
 *
 * stdin carries one command per line; each answer is one JSON line on
 * stdout:  pause | resume | dump | remove I | add I | quit
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MEM_SIZE   0x10000
#define CODE_ADDR  0x1000
#define MAX_VCPUS  256
#define KICK_SIG   SIGUSR1

typedef struct vmm vmm;

typedef struct vcpu {
    vmm *vm;
    unsigned index;
    int fd, stats_fd;
    struct kvm_run *run;
    pthread_t thread;
    bool failed;
} vcpu;

struct vmm {
    int kvm_fd, vm_fd, vm_stats_fd;
    void *mem;
    size_t run_size;
    unsigned nvcpus;
    vcpu vcpus[MAX_VCPUS];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool paused, quit;
    unsigned parked;              /* threads waiting while paused */
    int qmp;                      /* connected QMP socket */
    char rbuf[1 << 16];
    size_t rlen;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vmm-attach: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- the guest ---------------------------------------------------------- */

/* 16-bit real-mode code at CODE_ADDR; IRQ0 arrives as vector 8. */
static const uint8_t guest_code[] = {
    0xfa,                   /* cli                                       */
    0xb0, 0x11, 0xe6, 0x20, /* ICW1: edge triggered, ICW4 follows        */
    0xb0, 0x08, 0xe6, 0x21, /* ICW2: IRQ0-7 -> vectors 8-15              */
    0xb0, 0x04, 0xe6, 0x21, /* ICW3: slave on IRQ2                       */
    0xb0, 0x03, 0xe6, 0x21, /* ICW4: 8086 mode, auto-EOI                 */
    0xb0, 0xfe, 0xe6, 0x21, /* OCW1: only IRQ0 (the PIT) unmasked        */
    0xb0, 0x34, 0xe6, 0x43, /* PIT channel 0, lo/hi byte, rate generator */
    0xb0, 0x9c, 0xe6, 0x40, /* divisor 11932 = 1193182 Hz / 100          */
    0xb0, 0x2e, 0xe6, 0x40,
    0xfb,                   /* loop: sti                                 */
    0xf4,                   /*       hlt                                 */
    0xeb, 0xfc,             /*       jmp loop                            */
    0xcf,                   /* handler: iret                             */
};
#define HANDLER_ADDR (CODE_ADDR + sizeof(guest_code) - 1)

static int xioctl(int fd, unsigned long req, void *arg, const char *what)
{
    int r;
    do
        r = ioctl(fd, req, arg);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        die("%s: %s", what, strerror(errno));
    return r;
}

static void setup_memory(vmm *vm)
{
    vm->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (vm->mem == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    memcpy((uint8_t *)vm->mem + CODE_ADDR, guest_code, sizeof(guest_code));
    uint16_t ivt8[2] = { HANDLER_ADDR, 0 };        /* offset, segment */
    memcpy((uint8_t *)vm->mem + 8 * 4, ivt8, sizeof(ivt8));
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
        .userspace_addr = (uintptr_t)vm->mem,
    };
    xioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
}

/* Only the BSP's registers matter: the APs wait for a SIPI that never comes. */
static void setup_bsp(vcpu *v)
{
    struct kvm_sregs sregs;
    xioctl(v->fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    xioctl(v->fd, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
    struct kvm_regs regs = { .rip = CODE_ADDR, .rsp = 0x8000, .rflags = 0x2 };
    xioctl(v->fd, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

static void create_vm(vmm *vm)
{
    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0)
        die("/dev/kvm: %s", strerror(errno));
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD) <= 0)
        die("KVM lacks KVM_CAP_BINARY_STATS_FD");
    vm->vm_fd = xioctl(vm->kvm_fd, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
    xioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (void *)0xfffbd000ul, "KVM_SET_TSS_ADDR");
    xioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, NULL, "KVM_CREATE_IRQCHIP");
    struct kvm_pit_config pit = { .flags = 0 };
    xioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");
    setup_memory(vm);
    vm->run_size = (size_t)xioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL,
                                  "KVM_GET_VCPU_MMAP_SIZE");
    vm->vm_stats_fd = xioctl(vm->vm_fd, KVM_GET_STATS_FD, NULL, "KVM_GET_STATS_FD (vm)");
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        vcpu *v = &vm->vcpus[i];
        v->vm = vm;
        v->index = i;
        v->fd = xioctl(vm->vm_fd, KVM_CREATE_VCPU, (void *)(uintptr_t)i, "KVM_CREATE_VCPU");
        v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
        if (v->run == MAP_FAILED)
            die("mmap kvm_run: %s", strerror(errno));
        /* Now, before any thread runs: on a vCPU inside KVM_RUN this
         * ioctl would wait for the vCPU mutex. */
        v->stats_fd = xioctl(v->fd, KVM_GET_STATS_FD, NULL, "KVM_GET_STATS_FD (vcpu)");
    }
    setup_bsp(&vm->vcpus[0]);
}

/* ---- vCPU threads ------------------------------------------------------- */

static void on_kick(int sig) { (void)sig; }

/* Parks while paused; false when the VMM is quitting. */
static bool wait_runnable(vcpu *v)
{
    vmm *vm = v->vm;
    pthread_mutex_lock(&vm->lock);
    if (vm->paused && !vm->quit) {
        vm->parked++;
        pthread_cond_broadcast(&vm->cond);
        while (vm->paused && !vm->quit)
            pthread_cond_wait(&vm->cond, &vm->lock);
        vm->parked--;
    }
    bool go = !vm->quit;
    if (go)
        v->run->immediate_exit = 0;   /* under the lock: a kick set later stays */
    pthread_mutex_unlock(&vm->lock);
    return go;
}

static void *vcpu_thread(void *opaque)
{
    vcpu *v = opaque;
    while (wait_runnable(v)) {
        if (ioctl(v->fd, KVM_RUN, NULL) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            fprintf(stderr, "vmm-attach: vCPU %u: KVM_RUN: %s\n", v->index, strerror(errno));
            break;
        }
        /* Port I/O, halts and interrupts all stay in the kernel. */
        if (v->run->exit_reason != KVM_EXIT_INTR) {
            fprintf(stderr, "vmm-attach: vCPU %u: unexpected exit %u\n", v->index,
                    v->run->exit_reason);
            break;
        }
    }
    pthread_mutex_lock(&v->vm->lock);
    v->failed = !v->vm->quit;     /* a pause must not wait for a dead thread */
    pthread_cond_broadcast(&v->vm->cond);
    pthread_mutex_unlock(&v->vm->lock);
    return NULL;
}

static void kick_all(vmm *vm)
{
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        vm->vcpus[i].run->immediate_exit = 1;
        pthread_kill(vm->vcpus[i].thread, KICK_SIG);
    }
}

static unsigned live_threads(const vmm *vm)
{
    unsigned n = 0;
    for (unsigned i = 0; i < vm->nvcpus; i++)
        n += !vm->vcpus[i].failed;
    return n;
}

/* Returns once every vCPU thread is out of KVM_RUN and parked. */
static void pause_vcpus(vmm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->paused = true;
    kick_all(vm);
    while (vm->parked < live_threads(vm))
        pthread_cond_wait(&vm->cond, &vm->lock);
    pthread_mutex_unlock(&vm->lock);
}

static void resume_vcpus(vmm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->paused = false;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

static void start_vcpus(vmm *vm)
{
    struct sigaction sa = { .sa_handler = on_kick };   /* no SA_RESTART */
    sigaction(KICK_SIG, &sa, NULL);
    for (unsigned i = 0; i < vm->nvcpus; i++)
        if (pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]))
            die("pthread_create failed");
}

static bool stop_vm(vmm *vm)
{
    bool ok = true;
    pthread_mutex_lock(&vm->lock);
    vm->quit = true;
    kick_all(vm);
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        vcpu *v = &vm->vcpus[i];
        pthread_join(v->thread, NULL);
        ok &= !v->failed;
        munmap(v->run, vm->run_size);
        close(v->stats_fd);
        close(v->fd);
    }
    close(vm->vm_stats_fd);
    close(vm->vm_fd);
    close(vm->kvm_fd);
    munmap(vm->mem, MEM_SIZE);
    return ok;
}

/* ---- the VMM's own reading of a stats fd -------------------------------- */

/* Prints {"name": value | [values], ...} for one binary-stats fd.  This is
 * deliberately a separate, minimal parser (the VMM trusts its own kernel),
 * so that comparing it with qstatsd's answers checks qstatsd's reader.
 * Values are printed with PRIu64: exact for the whole u64 range. */
static bool dump_fd(int fd, FILE *out)
{
    struct kvm_stats_header h;
    if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
        return false;
    size_t stride = sizeof(struct kvm_stats_desc) + h.name_size;
    char *descs = malloc(stride * h.num_desc + 1);
    size_t data_len = 0;
    bool ok = descs && pread(fd, descs, stride * h.num_desc, h.desc_offset) ==
                           (ssize_t)(stride * h.num_desc);
    for (uint32_t i = 0; ok && i < h.num_desc; i++) {
        const struct kvm_stats_desc *d = (const void *)(descs + i * stride);
        size_t end = d->offset + d->size * 8u;
        data_len = end > data_len ? end : data_len;
    }
    uint64_t *data = ok ? malloc(data_len + 8) : NULL;
    ok = data && pread(fd, data, data_len, h.data_offset) == (ssize_t)data_len;
    fputc('{', out);
    for (uint32_t i = 0; ok && i < h.num_desc; i++) {
        const struct kvm_stats_desc *d = (const void *)(descs + i * stride);
        fprintf(out, "%s\"%.*s\": ", i ? ", " : "", (int)h.name_size, d->name);
        bool list = d->size > 1;
        fputs(list ? "[" : "", out);
        for (uint32_t k = 0; k < d->size; k++)
            fprintf(out, "%s%" PRIu64, k ? ", " : "", data[d->offset / 8 + k]);
        fputs(list ? "]" : "", out);
    }
    fputc('}', out);
    free(descs);
    free(data);
    return ok;
}

static void cmd_dump(vmm *vm)
{
    bool ok = true;
    printf("{\"vm\": ");
    ok &= dump_fd(vm->vm_stats_fd, stdout);
    printf(", \"vcpus\": [");
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        fputs(i ? ", " : "", stdout);
        ok &= dump_fd(vm->vcpus[i].stats_fd, stdout);
    }
    printf("], \"ok\": %s}\n", ok ? "true" : "false");
}

/* ---- QMP client --------------------------------------------------------- */

static void qmp_connect(vmm *vm, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        die("QMP socket path too long");
    strcpy(sa.sun_path, path);
    vm->qmp = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (vm->qmp < 0 || connect(vm->qmp, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("connect %s: %s", path, strerror(errno));
}

/* Next message that is not an event; NULL when the connection ends. */
static json_t *qmp_recv(vmm *vm)
{
    for (;;) {
        char *nl = memchr(vm->rbuf, '\n', vm->rlen);
        if (nl) {
            json_t *msg = json_loadb(vm->rbuf, (size_t)(nl - vm->rbuf), 0, NULL);
            vm->rlen -= (size_t)(nl + 1 - vm->rbuf);
            memmove(vm->rbuf, nl + 1, vm->rlen);
            if (msg && !json_object_get(msg, "event"))
                return msg;
            json_decref(msg);
            continue;
        }
        if (vm->rlen == sizeof(vm->rbuf))
            die("QMP reply too long");
        ssize_t n = recv(vm->qmp, vm->rbuf + vm->rlen, sizeof(vm->rbuf) - vm->rlen, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        vm->rlen += (size_t)n;
    }
}

/* Sends {"execute": name, "arguments": args} (args is stolen), with fd in
 * SCM_RIGHTS when fd >= 0, and returns the reply. */
static json_t *qmp_cmd(vmm *vm, const char *name, json_t *args, int fd)
{
    json_t *req = json_pack("{s:s}", "execute", name);
    if (args)
        json_object_set_new(req, "arguments", args);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
    struct iovec iov = { .iov_base = text, .iov_len = strlen(text) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        *c = (struct cmsghdr){ .cmsg_len = CMSG_LEN(sizeof(int)),
                               .cmsg_level = SOL_SOCKET, .cmsg_type = SCM_RIGHTS };
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t n = sendmsg(vm->qmp, &msg, MSG_NOSIGNAL);
    if (n >= 0 && (size_t)n < iov.iov_len)     /* the rest, without the fd */
        n = send(vm->qmp, text + n, iov.iov_len - (size_t)n, MSG_NOSIGNAL);
    free(text);
    json_t *reply = n < 0 ? NULL : qmp_recv(vm);
    if (!reply)
        die("QMP connection lost");
    return reply;
}

static bool is_ok(const json_t *reply)
{
    return json_object_get(reply, "return") != NULL;
}

static char *vcpu_path(unsigned i)
{
    char *p;
    if (asprintf(&p, "/machine/unattached/device[%u]", i) < 0)
        die("out of memory");
    return p;
}

/* getfd + add-stats-fd; returns the first failing reply or the last one. */
static json_t *hand_over(vmm *vm, int fd, const char *fdname, const char *target,
                         const char *qom_path)
{
    json_t *r = qmp_cmd(vm, "getfd", json_pack("{s:s}", "fdname", fdname), fd);
    if (!is_ok(r))
        return r;
    json_decref(r);
    json_t *args = json_pack("{s:s, s:s, s:s}", "fdname", fdname, "provider", "kvm",
                             "target", target);
    if (qom_path)
        json_object_set_new(args, "qom-path", json_string(qom_path));
    return qmp_cmd(vm, "add-stats-fd", args, -1);
}

static json_t *add_vcpu(vmm *vm, unsigned i)
{
    char name[32], *path = vcpu_path(i);
    snprintf(name, sizeof(name), "vcpu%u", i);
    json_t *r = hand_over(vm, vm->vcpus[i].stats_fd, name, "vcpu", path);
    free(path);
    return r;
}

static json_t *remove_vcpu(vmm *vm, unsigned i)
{
    char *path = vcpu_path(i);
    json_t *r = qmp_cmd(vm, "remove-stats-fd",
                        json_pack("{s:s, s:s}", "target", "vcpu", "qom-path", path), -1);
    free(path);
    return r;
}

static void expect_ok(json_t *reply, const char *what)
{
    if (!is_ok(reply)) {
        char *t = json_dumps(reply, JSON_COMPACT);
        die("%s: %s", what, t);
    }
    json_decref(reply);
}

static void register_all(vmm *vm)
{
    json_t *greeting = qmp_recv(vm);
    if (!json_object_get(greeting, "QMP"))
        die("no QMP greeting");
    json_decref(greeting);
    expect_ok(qmp_cmd(vm, "qmp_capabilities", NULL, -1), "qmp_capabilities");
    expect_ok(hand_over(vm, vm->vm_stats_fd, "vm", "vm", NULL), "VM stats fd");
    for (unsigned i = 0; i < vm->nvcpus; i++)
        expect_ok(add_vcpu(vm, i), "vCPU stats fd");
}

/* ---- command loop ------------------------------------------------------- */

static void print_reply(json_t *reply)
{
    char *t = json_dumps(reply, JSON_COMPACT);
    puts(t);
    free(t);
    json_decref(reply);
}

static bool parse_index(const vmm *vm, const char *arg, unsigned *i)
{
    char *end;
    unsigned long v = strtoul(arg, &end, 10);
    if (end == arg || *end || v >= vm->nvcpus)
        return false;
    *i = (unsigned)v;
    return true;
}

/* One stdin command; false for quit. */
static bool run_command(vmm *vm, char *line)
{
    char *arg = strchr(line, ' ');
    unsigned i;
    if (arg)
        *arg++ = '\0';
    if (strcmp(line, "quit") == 0)
        return false;
    if (strcmp(line, "pause") == 0) {
        pause_vcpus(vm);
        puts("{\"return\": \"paused\"}");
    } else if (strcmp(line, "resume") == 0) {
        resume_vcpus(vm);
        puts("{\"return\": \"running\"}");
    } else if (strcmp(line, "dump") == 0) {
        cmd_dump(vm);
    } else if ((strcmp(line, "add") == 0 || strcmp(line, "remove") == 0) && arg &&
               parse_index(vm, arg, &i)) {
        print_reply(line[0] == 'a' ? add_vcpu(vm, i) : remove_vcpu(vm, i));
    } else {
        puts("{\"error\": \"usage: pause | resume | dump | add I | remove I | quit\"}");
    }
    return true;
}

static void usage(FILE *f)
{
    fputs("Usage: vmm-attach --qmp PATH [--vcpus N] [--pause] [--dump]\n"
          "Run a small KVM VM and hand its stats fds to qstatsd over QMP.\n"
          "Then read commands on stdin: pause, resume, dump, add I, remove I, quit.\n", f);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "qmp", required_argument, 0, 'q' }, { "vcpus", required_argument, 0, 'n' },
        { "pause", no_argument, 0, 'p' }, { "dump", no_argument, 0, 'd' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    static vmm vm = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
                      .nvcpus = 4 };
    const char *qmp_path = NULL;
    bool pause = false, dump = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'q': qmp_path = optarg; break;
        case 'n': vm.nvcpus = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'p': pause = true; break;
        case 'd': dump = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!qmp_path || vm.nvcpus < 1 || vm.nvcpus > MAX_VCPUS) {
        usage(stderr);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    create_vm(&vm);
    start_vcpus(&vm);
    qmp_connect(&vm, qmp_path);
    register_all(&vm);
    if (pause)
        pause_vcpus(&vm);
    printf("{\"return\": \"ready\", \"vcpus\": %u}\n", vm.nvcpus);
    if (dump)
        cmd_dump(&vm);

    char line[256];
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!run_command(&vm, line))
            break;
    }
    close(vm.qmp);
    bool ok = stop_vm(&vm);
    puts("{\"return\": \"bye\"}");
    return ok ? 0 : 1;
}
