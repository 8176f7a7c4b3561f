/*
 * microvm.c - the built-in micro-VM: a real KVM VM whose only purpose is to
 * make real kernel statistics move, so that qstatsd has genuine VM and vCPU
 * binary-stats fds to serve without an external VMM.
 *
 * The guest is a few bytes of real-mode code (registers and segment caches
 * set directly with KVM_SET_REGS/KVM_SET_SREGS, no firmware).  Every vCPU
 * runs the same code: software-enable its own local APIC through FS, whose
 * cached base the host points at the APIC page, arm the LAPIC timer, then
 * `sti; hlt; jmp` forever.  The timer handler writes EOI, re-arms the timer
 * (one-shot: KVM only offers periodic mode once CPUID has been set) and
 * returns.  So each vCPU halts (halt_exits, halt_wait_ns and the halt
 * histograms move), is woken by an injected interrupt (irq_injections) and
 * exits on the APIC MMIO writes (exits), all inside the kernel: userspace
 * only sees KVM_RUN return when it asks for it.  The LAPIC and its timer are
 * KVM's in-kernel emulation (KVM_CREATE_IRQCHIP), whose APIC bus runs at
 * 1 GHz, so the timer count is simply nanoseconds.  The whole VM is held
 * to 1600 wake-ups per second (100 Hz per vCPU up to 16 vCPUs, then
 * 1600/N Hz each, but at least 5 Hz), so that idle CPU stays bounded as
 * the VM grows without slowing queries: bench/results-sample.md (measured
 * by scripts/bench.sh on a 2-core nested-KVM machine) shows about 0.4% of
 * one core for 1 vCPU and 6.6% for 64, where 100 Hz each would cost
 * about 64 times the single-vCPU figure.  scripts/bench.sh measures a
 * host of your own.
 *
 * One host thread per vCPU loops on KVM_RUN.  Threads run with every signal
 * blocked; KVM_SET_SIGNAL_MASK unblocks only the kick signal while inside
 * KVM_RUN.  Stopping is: set `stop`, pthread_kill the kick signal, join.  A
 * kick that arrives outside KVM_RUN stays pending (blocked) and makes the
 * next KVM_RUN return EINTR at once, so no wake-up can be lost and no signal
 * handler (process-global state) is needed.
 */
#include "qs-common.h"
#include "qs-microvm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef KVM_CAP_BINARY_STATS_FD
#define KVM_CAP_BINARY_STATS_FD 203
#endif
#ifndef KVM_GET_STATS_FD
#define KVM_GET_STATS_FD _IO(KVMIO, 0xce)
#endif

/* Guest physical layout (inside MEM_SIZE; real mode, so below 1 MiB). */
#define MEM_SIZE        (2u << 20)
#define CODE_ADDR       0x3000u
#define TIMER_ISR_ADDR  0x3040u
#define SPUR_ISR_ADDR   0x3060u
#define STACK_BASE      0x10000u
#define STACK_SIZE      512u      /* per vCPU; an interrupt frame is 6 bytes */
#define TIMER_VECTOR    0x20u
#define SPUR_VECTOR     0xffu
#define APIC_BASE       0xfee00000u
/* Intel needs a TSS address for real-mode emulation; keep it out of RAM. */
#define TSS_ADDR        0xfffbd000u

/* The timer budget: every vCPU ticks at BASE_HZ while the VM is small; above
 * TOTAL_HZ / BASE_HZ vCPUs the per-vCPU rate drops so that the whole VM
 * stays within TOTAL_HZ wake-ups per second, but never below MIN_HZ, so
 * that every vCPU's stats still move between two queries a second apart. */
#define BASE_HZ         100u
#define TOTAL_HZ        1600u
#define MIN_HZ          5u
#define APIC_BUS_HZ     1000000000ull

#define VCPU_THREAD_STACK (64u << 10)

typedef struct qs_microvm_vcpu {
    qs_microvm *vm;
    unsigned index;
    int fd;
    int stats_fd;            /* fetched before the thread starts; see below */
    struct kvm_run *run;
    pthread_t thread;
    atomic_long tid;         /* the thread's, once it runs */
    bool started;
} qs_microvm_vcpu;

struct qs_microvm {
    int kvm_fd;
    int vm_fd;
    uint8_t *mem;
    size_t run_size;
    unsigned nvcpus;
    uint32_t timer_count;
    int kick_sig;
    atomic_bool stop;
    atomic_flag reported;    /* only the first vCPU failure is logged */
    qs_microvm_vcpu *vcpus;
};

/* ioctl that retries when a signal interrupted it. */
static int kvm_ioctl(int fd, unsigned long req, void *arg)
{
    int r;
    do {
        r = ioctl(fd, req, arg);
    } while (r < 0 && errno == EINTR);
    return r;
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, sizeof(v));
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

/* `mov dword fs:[reg], imm32` in 16-bit code: FS points at the APIC page. */
static uint8_t *emit_apic_store_imm(uint8_t *p, uint16_t reg, uint32_t imm)
{
    static const uint8_t op[] = { 0x64, 0x66, 0xc7, 0x06 };
    memcpy(p, op, sizeof(op));
    put16(p + 4, reg);
    put32(p + 6, imm);
    return p + 10;
}

/* Real-mode interrupt vector table entry (offset, segment 0). */
static void write_vector(uint8_t *mem, unsigned vector, uint16_t handler)
{
    put16(mem + vector * 4, handler);
    put16(mem + vector * 4 + 2, 0);
}

/*
 * Lays the vector table and code into guest memory.  Entry: EBX = timer
 * initial count, FS base = the local APIC page.
 *
 * Real mode rather than protected mode because KVM may run the guest
 * through its instruction emulator (e.g. PVM hosts, or VMX without
 * unrestricted guest), which only emulates IRET in real mode.
 */
static void build_guest_image(uint8_t *mem)
{
    write_vector(mem, TIMER_VECTOR, TIMER_ISR_ADDR);
    write_vector(mem, SPUR_VECTOR, SPUR_ISR_ADDR);

    static const uint8_t rearm_timer[] = {
        0x64, 0x66, 0x89, 0x1e, 0x80, 0x03,  /* mov fs:[0x380], ebx (count) */
    };
    static const uint8_t idle_loop[] = {
        0xfb,                                /* 1: sti                      */
        0xf4,                                /*    hlt                      */
        0xeb, 0xfc,                          /*    jmp 1b                   */
    };
    uint8_t *p = mem + CODE_ADDR;
    p = emit_apic_store_imm(p, 0xf0, 0x100u | SPUR_VECTOR);    /* SVR: enable */
    p = emit_apic_store_imm(p, 0x3e0, 0xbu);                   /* divide by 1 */
    p = emit_apic_store_imm(p, 0x320, TIMER_VECTOR);           /* one-shot */
    memcpy(p, rearm_timer, sizeof(rearm_timer));
    memcpy(p + sizeof(rearm_timer), idle_loop, sizeof(idle_loop));

    p = emit_apic_store_imm(mem + TIMER_ISR_ADDR, 0xb0, 0);    /* EOI */
    memcpy(p, rearm_timer, sizeof(rearm_timer));
    p[sizeof(rearm_timer)] = 0xcf;                             /* iret */
    mem[SPUR_ISR_ADDR] = 0xcf;                                 /* iret */
}

static void real_segment(struct kvm_segment *s, uint16_t sel, uint32_t base,
                         uint8_t type)
{
    memset(s, 0, sizeof(*s));
    s->base = base;
    s->limit = 0xffff;
    s->selector = sel;
    s->type = type;
    s->present = 1;
    s->s = 1;
}

static bool setup_vcpu_state(qs_microvm *vm, qs_microvm_vcpu *v, qs_error **errp)
{
    struct kvm_sregs sregs;
    if (kvm_ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
        qs_error_setg(errp, "micro-VM: KVM_GET_SREGS on vCPU %u: %s",
                      v->index, strerror(errno));
        return false;
    }
    uint32_t stack = STACK_BASE + v->index * STACK_SIZE;
    real_segment(&sregs.cs, 0, 0, 0xb);
    real_segment(&sregs.ds, 0, 0, 0x3);
    sregs.es = sregs.gs = sregs.ds;
    real_segment(&sregs.ss, (uint16_t)(stack >> 4), stack, 0x3);
    /* Only the cached base matters: the guest never reloads FS. */
    real_segment(&sregs.fs, 0, APIC_BASE, 0x3);
    sregs.idt.base = 0;
    sregs.idt.limit = 0x3ff;
    if (kvm_ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0) {
        qs_error_setg(errp, "micro-VM: KVM_SET_SREGS on vCPU %u: %s",
                      v->index, strerror(errno));
        return false;
    }

    struct kvm_regs regs;
    memset(&regs, 0, sizeof(regs));
    regs.rip = CODE_ADDR;
    regs.rsp = STACK_SIZE;
    regs.rbx = vm->timer_count;
    regs.rflags = 0x2;
    if (kvm_ioctl(v->fd, KVM_SET_REGS, &regs) < 0) {
        qs_error_setg(errp, "micro-VM: KVM_SET_REGS on vCPU %u: %s",
                      v->index, strerror(errno));
        return false;
    }

    /* Under the in-kernel LAPIC the APs wait for INIT/SIPI; start them
     * directly instead of teaching the guest to send IPIs. */
    if (v->index > 0) {
        struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
        if (kvm_ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0) {
            qs_error_setg(errp, "micro-VM: KVM_SET_MP_STATE on vCPU %u: %s",
                          v->index, strerror(errno));
            return false;
        }
    }
    return true;
}

/* The mask in force during KVM_RUN: everything blocked but the kick. */
static bool set_run_sigmask(qs_microvm *vm, qs_microvm_vcpu *v, qs_error **errp)
{
    sigset_t set;
    sigfillset(&set);
    sigdelset(&set, vm->kick_sig);
    /* The kernel's sigset is 64 bits on every Linux arch KVM runs on. */
    union {
        struct kvm_signal_mask m;
        uint8_t buf[sizeof(struct kvm_signal_mask) + 8];
    } u;
    u.m.len = 8;
    memcpy(u.m.sigset, &set, 8);
    if (kvm_ioctl(v->fd, KVM_SET_SIGNAL_MASK, &u.m) < 0) {
        qs_error_setg(errp, "micro-VM: KVM_SET_SIGNAL_MASK on vCPU %u: %s",
                      v->index, strerror(errno));
        return false;
    }
    return true;
}

static bool create_vcpu(qs_microvm *vm, unsigned i, qs_error **errp)
{
    qs_microvm_vcpu *v = &vm->vcpus[i];
    v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
    if (v->fd < 0) {
        qs_error_setg(errp, "micro-VM: KVM_CREATE_VCPU %u: %s", i,
                      strerror(errno));
        return false;
    }
    void *run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                     v->fd, 0);
    if (run == MAP_FAILED) {
        qs_error_setg(errp, "micro-VM: mmap of vCPU %u run area: %s", i,
                      strerror(errno));
        return false;
    }
    v->run = run;
    /* KVM_GET_STATS_FD takes the vCPU mutex, which KVM_RUN holds for as
     * long as the vCPU is halted: asking a running vCPU would block.  So
     * the fd is fetched now and later requests get a dup of it. */
    v->stats_fd = ioctl(v->fd, KVM_GET_STATS_FD, NULL);
    if (v->stats_fd < 0) {
        qs_error_setg(errp, "KVM_GET_STATS_FD on vCPU %u: %s", i,
                      strerror(errno));
        return false;
    }
    return setup_vcpu_state(vm, v, errp) && set_run_sigmask(vm, v, errp);
}

static const char *exit_reason_name(uint32_t r)
{
    switch (r) {
    case KVM_EXIT_IO: return "unexpected port I/O";
    case KVM_EXIT_MMIO: return "unexpected MMIO";
    case KVM_EXIT_HLT: return "halt in userspace";
    case KVM_EXIT_SHUTDOWN: return "shutdown (triple fault)";
    case KVM_EXIT_FAIL_ENTRY: return "failed entry";
    case KVM_EXIT_INTERNAL_ERROR: return "internal error";
    default: return "unexpected exit";
    }
}

static void report_stop(qs_microvm_vcpu *v, const char *what, unsigned long detail)
{
    if (atomic_flag_test_and_set(&v->vm->reported)) {
        return;
    }
    fprintf(stderr, "qstats: micro-VM vCPU %u stopped: %s (%lu); "
            "further vCPU failures are not reported\n", v->index, what, detail);
}

static void *vcpu_thread(void *opaque)
{
    qs_microvm_vcpu *v = opaque;
    qs_microvm *vm = v->vm;

    atomic_store(&v->tid, (long)syscall(SYS_gettid));
    while (!atomic_load_explicit(&vm->stop, memory_order_acquire)) {
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;      /* kicked: look at `stop` again */
            }
            report_stop(v, strerror(errno), (unsigned long)errno);
            break;
        }
        if (v->run->exit_reason == KVM_EXIT_INTR) {
            continue;
        }
        report_stop(v, exit_reason_name(v->run->exit_reason),
                    (unsigned long)v->run->exit_reason);
        break;
    }
    return NULL;
}

/* Threads inherit a fully blocked mask: signals meant for the application
 * are never delivered to a vCPU thread, and the kick only ever interrupts
 * KVM_RUN. */
static bool start_threads(qs_microvm *vm, qs_error **errp)
{
    pthread_attr_t attr;
    sigset_t all, old;
    bool ok = true;
    size_t stack = VCPU_THREAD_STACK;

    if (stack < (size_t)PTHREAD_STACK_MIN) {
        stack = PTHREAD_STACK_MIN;
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, stack);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        qs_microvm_vcpu *v = &vm->vcpus[i];
        int r = pthread_create(&v->thread, &attr, vcpu_thread, v);
        if (r != 0) {
            qs_error_setg(errp, "micro-VM: cannot start vCPU %u thread: %s",
                          i, strerror(r));
            ok = false;
            break;
        }
        v->started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return ok;
}

static bool open_kvm(qs_microvm *vm, unsigned nvcpus, qs_error **errp)
{
    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) {
        qs_error_setg(errp, "kvm provider unavailable: /dev/kvm: %s",
                      strerror(errno));
        return false;
    }
    if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        qs_error_setg(errp, "kvm provider unavailable: /dev/kvm: "
                      "unsupported KVM API version");
        return false;
    }
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD) <= 0) {
        qs_error_set(errp, QS_ERR_KVM_MISSING_CAP, "kvm provider unavailable: "
                     "/dev/kvm: KVM_CAP_BINARY_STATS_FD missing");
        return false;
    }
    int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max <= 0) {
        max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    }
    if (max <= 0) {
        max = 1;
    }
    unsigned limit = (unsigned)max < QS_MICROVM_MAX_VCPUS
                     ? (unsigned)max : QS_MICROVM_MAX_VCPUS;
    if (nvcpus > limit) {
        qs_error_setg(errp, "invalid number of vCPUs %u: must be between 1 "
                      "and %u", nvcpus, limit);
        return false;
    }
    int sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (sz <= 0) {
        qs_error_setg(errp, "micro-VM: KVM_GET_VCPU_MMAP_SIZE: %s",
                      strerror(errno));
        return false;
    }
    vm->run_size = (size_t)sz;
    return true;
}

/* Halt-polling spins the host CPU for up to halt_poll_ns after each halt
 * hoping for a quick wake-up; our wake-ups are milliseconds apart, so it
 * would only burn CPU.  Best effort: older kernels lack the cap. */
static void disable_halt_polling(qs_microvm *vm)
{
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_HALT_POLL) <= 0) {
        return;
    }
    struct kvm_enable_cap cap = { .cap = KVM_CAP_HALT_POLL, .args = { 0 } };
    (void)kvm_ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap);
}

static bool create_machine(qs_microvm *vm, qs_error **errp)
{
    do {
        vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    } while (vm->vm_fd < 0 && errno == EINTR);
    if (vm->vm_fd < 0) {
        qs_error_setg(errp, "micro-VM: KVM_CREATE_VM: %s", strerror(errno));
        return false;
    }
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_TSS_ADDR) > 0 &&
        ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)TSS_ADDR) < 0) {
        qs_error_setg(errp, "micro-VM: KVM_SET_TSS_ADDR: %s", strerror(errno));
        return false;
    }
    disable_halt_polling(vm);
    if (kvm_ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, NULL) < 0) {
        qs_error_setg(errp, "micro-VM: KVM_CREATE_IRQCHIP: %s", strerror(errno));
        return false;
    }
    void *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
        qs_error_setg(errp, "micro-VM: cannot map guest memory: %s",
                      strerror(errno));
        return false;
    }
    vm->mem = mem;
    build_guest_image(vm->mem);
    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = MEM_SIZE,
        .userspace_addr = (uintptr_t)vm->mem,
    };
    if (kvm_ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
        qs_error_setg(errp, "micro-VM: KVM_SET_USER_MEMORY_REGION: %s",
                      strerror(errno));
        return false;
    }
    return true;
}

qs_microvm *qs_microvm_new(unsigned nvcpus, qs_error **errp)
{
    if (nvcpus == 0) {
        qs_error_setg(errp, "invalid number of vCPUs 0: must be between 1 "
                      "and the KVM limit");
        return NULL;
    }
    if (nvcpus > QS_MICROVM_MAX_VCPUS) {
        qs_error_setg(errp, "invalid number of vCPUs %u: must be between 1 "
                      "and %u", nvcpus, QS_MICROVM_MAX_VCPUS);
        return NULL;
    }
    qs_microvm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        qs_error_setg(errp, "micro-VM: out of memory");
        return NULL;
    }
    vm->kvm_fd = vm->vm_fd = -1;
    vm->kick_sig = SIGRTMAX - 1;
    atomic_init(&vm->stop, false);
    atomic_flag_clear(&vm->reported);

    uint64_t count = APIC_BUS_HZ * nvcpus / TOTAL_HZ;     /* the period in ns */
    if (count < APIC_BUS_HZ / BASE_HZ)
        count = APIC_BUS_HZ / BASE_HZ;
    if (count > APIC_BUS_HZ / MIN_HZ)
        count = APIC_BUS_HZ / MIN_HZ;
    vm->timer_count = count > UINT32_MAX ? UINT32_MAX : (uint32_t)count;

    if (!open_kvm(vm, nvcpus, errp) || !create_machine(vm, errp)) {
        qs_microvm_free(vm);
        return NULL;
    }
    vm->vcpus = calloc(nvcpus, sizeof(*vm->vcpus));
    if (!vm->vcpus) {
        qs_error_setg(errp, "micro-VM: out of memory");
        qs_microvm_free(vm);
        return NULL;
    }
    for (unsigned i = 0; i < nvcpus; i++) {
        vm->vcpus[i].vm = vm;
        vm->vcpus[i].index = i;
        vm->vcpus[i].fd = -1;
        vm->vcpus[i].stats_fd = -1;
    }
    vm->nvcpus = nvcpus;
    for (unsigned i = 0; i < nvcpus; i++) {
        if (!create_vcpu(vm, i, errp)) {
            qs_microvm_free(vm);
            return NULL;
        }
    }
    if (!start_threads(vm, errp)) {
        qs_microvm_free(vm);
        return NULL;
    }
    return vm;
}

static void stop_threads(qs_microvm *vm)
{
    atomic_store_explicit(&vm->stop, true, memory_order_release);
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        qs_microvm_vcpu *v = &vm->vcpus[i];
        if (v->started) {
            v->run->immediate_exit = 1;
            pthread_kill(v->thread, vm->kick_sig);
        }
    }
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        qs_microvm_vcpu *v = &vm->vcpus[i];
        if (v->started) {
            pthread_join(v->thread, NULL);
            v->started = false;
        }
    }
}

void qs_microvm_free(qs_microvm *vm)
{
    if (!vm) {
        return;
    }
    if (vm->vcpus) {
        stop_threads(vm);
        for (unsigned i = 0; i < vm->nvcpus; i++) {
            qs_microvm_vcpu *v = &vm->vcpus[i];
            if (v->run) {
                munmap(v->run, vm->run_size);
            }
            if (v->stats_fd >= 0) {
                close(v->stats_fd);
            }
            if (v->fd >= 0) {
                close(v->fd);
            }
        }
        free(vm->vcpus);
    }
    if (vm->vm_fd >= 0) {
        close(vm->vm_fd);
    }
    if (vm->mem) {
        munmap(vm->mem, MEM_SIZE);
    }
    if (vm->kvm_fd >= 0) {
        close(vm->kvm_fd);
    }
    free(vm);
}

unsigned qs_microvm_nvcpus(const qs_microvm *vm)
{
    return vm->nvcpus;
}

uint64_t qs_microvm_mem_size(const qs_microvm *vm)
{
    return MEM_SIZE;
}

int qs_microvm_vm_stats_fd(qs_microvm *vm, qs_error **errp)
{
    int sfd = ioctl(vm->vm_fd, KVM_GET_STATS_FD, NULL);
    if (sfd < 0) {
        qs_error_setg(errp, "KVM_GET_STATS_FD on the micro-VM: %s",
                      strerror(errno));
    }
    return sfd;
}

long qs_microvm_vcpu_thread_id(qs_microvm *vm, unsigned i)
{
    if (i >= vm->nvcpus || !vm->vcpus[i].started)
        return 0;
    long tid;
    while (!(tid = atomic_load(&vm->vcpus[i].tid)))
        sched_yield();       /* started: it publishes its id first thing */
    return tid;
}

int qs_microvm_vcpu_stats_fd(qs_microvm *vm, unsigned i, qs_error **errp)
{
    if (i >= vm->nvcpus) {
        qs_error_setg(errp, "micro-VM has no vCPU %u (it has %u)", i,
                      vm->nvcpus);
        return -1;
    }
    int sfd = fcntl(vm->vcpus[i].stats_fd, F_DUPFD_CLOEXEC, 0);
    if (sfd < 0) {
        qs_error_setg(errp, "stats fd of vCPU %u: %s", i, strerror(errno));
    }
    return sfd;
}
