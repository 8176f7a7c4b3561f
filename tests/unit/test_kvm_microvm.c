/*
 * test_kvm_microvm.c - the built-in micro-VM (providers/kvm/microvm.c) on the
 * real /dev/kvm: its whole point is that real kernel statistics move on
 * every vCPU at little CPU cost, so the tests read the vCPUs' own binary
 * stats files (through providers/kvm/binary_stats.c) twice and compare.
 *
 * Also pinned: argument checking, the clear error when /dev/kvm is missing
 * (in a private mount namespace where /dev is an empty tmpfs), stats fds
 * that belong to the caller and outlive the VM, and create/free cycles that
 * leak no fd.  Every test that needs KVM skips with a message without it.
 *
 * QS_MICROVM_LARGE=1 additionally runs 64 and 1024 vCPUs and prints the CPU
 * cost (too heavy for every run on a 2-core machine).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/kvm.h>

#include "qs-kvm.h"
#include "qs-microvm.h"
#include "binary_stats.h"

/* The stats every vCPU of the micro-VM must see move. */
enum { ST_EXITS, ST_HALT_EXITS, ST_HALT_WAIT_NS, ST_IRQ_INJECTIONS, ST__N };
static const char *const moving_stats[ST__N] = {
    "exits", "halt_exits", "halt_wait_ns", "irq_injections",
};

static bool have_kvm(void)
{
    if (access("/dev/kvm", R_OK | W_OK) == 0) {
        return true;
    }
    print_message("skipped: /dev/kvm not usable here (%s)\n", strerror(errno));
    return false;
}

#define REQUIRE_KVM() do { if (!have_kvm()) { skip(); } } while (0)

static qs_microvm *new_vm(unsigned n)
{
    qs_error *err = NULL;
    qs_microvm *vm = qs_microvm_new(n, &err);
    if (!vm) {
        fail_msg("qs_microvm_new(%u): %s", n, err ? err->msg : "(no error)");
    }
    assert_null(err);
    return vm;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static void sleep_ms(unsigned ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) < 0 && errno == EINTR) {
    }
}

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

/* ---- one vCPU's stats file, with the words of the stats we compare ---- */

typedef struct probe {
    qs_kvm_stats_file *f;
    uint64_t *data;
    size_t word[ST__N];
} probe;

static void probe_open(probe *p, qs_microvm *vm, unsigned i)
{
    qs_error *err = NULL;
    int fd = qs_microvm_vcpu_stats_fd(vm, i, &err);
    assert_null(err);
    assert_true(fd >= 0);
    p->f = qs_kvm_stats_file_open(fd, &err);
    if (!p->f) {
        fail_msg("vCPU %u stats fd refused: %s", i, err->msg);
    }
    size_t n = qs_kvm_stats_file_count(p->f);
    const qs_schema_value *sv = qs_kvm_stats_file_schema(p->f);
    const uint32_t *off = qs_kvm_stats_file_offsets(p->f);
    for (int s = 0; s < ST__N; s++) {
        size_t k = 0;
        while (k < n && strcmp(sv[k].name, moving_stats[s]) != 0) {
            k++;
        }
        if (k == n) {
            fail_msg("vCPU %u has no stat %s", i, moving_stats[s]);
        }
        p->word[s] = off[k];
    }
    p->data = calloc(qs_kvm_stats_file_data_words(p->f), sizeof(uint64_t));
    assert_non_null(p->data);
}

static void probe_read(const probe *p, uint64_t out[ST__N])
{
    qs_error *err = NULL;
    assert_true(qs_kvm_stats_file_read(p->f, p->data, &err));
    for (int s = 0; s < ST__N; s++) {
        out[s] = p->data[p->word[s]];
    }
}

static void probe_close(probe *p)
{
    qs_kvm_stats_file_close(p->f);
    free(p->data);
}

/* Creates n vCPUs and checks that every stat in moving_stats grows on
 * every vCPU over 300 ms (the guest ticks at 100 Hz up to 16 vCPUs). */
static void check_all_vcpus_move(unsigned n)
{
    qs_microvm *vm = new_vm(n);
    assert_int_equal(qs_microvm_nvcpus(vm), n);
    assert_true(qs_microvm_mem_size(vm) > 0);

    probe *p = calloc(n, sizeof(*p));
    uint64_t (*before)[ST__N] = calloc(n, sizeof(*before));
    uint64_t (*after)[ST__N] = calloc(n, sizeof(*after));
    assert_true(p && before && after);
    for (unsigned i = 0; i < n; i++) {
        probe_open(&p[i], vm, i);
        probe_read(&p[i], before[i]);
    }
    sleep_ms(300);
    for (unsigned i = 0; i < n; i++) {
        probe_read(&p[i], after[i]);
        for (int s = 0; s < ST__N; s++) {
            if (after[i][s] <= before[i][s]) {
                fail_msg("%u vCPUs: vCPU %u: %s did not grow (%llu -> %llu)",
                         n, i, moving_stats[s],
                         (unsigned long long)before[i][s],
                         (unsigned long long)after[i][s]);
            }
        }
        /* Halted for most of the 300 ms, not spinning. */
        assert_true(after[i][ST_HALT_WAIT_NS] - before[i][ST_HALT_WAIT_NS] >
                    100 * 1000 * 1000ull);
        probe_close(&p[i]);
    }
    free(p);
    free(before);
    free(after);
    qs_microvm_free(vm);
}

static void test_one_vcpu_halts_wakes_and_takes_interrupts(void **state)
{
    REQUIRE_KVM();
    check_all_vcpus_move(1);
}

static void test_two_vcpus_all_halt_wake_and_take_interrupts(void **state)
{
    REQUIRE_KVM();
    check_all_vcpus_move(2);
}

static void test_four_vcpus_all_halt_wake_and_take_interrupts(void **state)
{
    REQUIRE_KVM();
    check_all_vcpus_move(4);
}

/* The fd for vCPU i is vCPU i's own file ("kvm-<pid>/vcpu-<i>"), and the
 * VM fd is the VM's ("kvm-<pid>", no vCPU part). */
static void test_stats_fds_are_those_of_the_vm_and_each_vcpu(void **state)
{
    REQUIRE_KVM();
    qs_microvm *vm = new_vm(3);
    qs_error *err = NULL;

    int fd = qs_microvm_vm_stats_fd(vm, &err);
    assert_true(fd >= 0);
    qs_kvm_stats_file *f = qs_kvm_stats_file_open(fd, &err);
    assert_non_null(f);
    char want[64];
    snprintf(want, sizeof(want), "kvm-%d", (int)getpid());
    assert_string_equal(qs_kvm_stats_file_id(f), want);
    assert_true(qs_kvm_stats_file_count(f) > 0);
    qs_kvm_stats_file_close(f);

    for (unsigned i = 0; i < 3; i++) {
        fd = qs_microvm_vcpu_stats_fd(vm, i, &err);
        assert_true(fd >= 0);
        f = qs_kvm_stats_file_open(fd, &err);
        assert_non_null(f);
        snprintf(want, sizeof(want), "kvm-%d/vcpu-%u", (int)getpid(), i);
        assert_string_equal(qs_kvm_stats_file_id(f), want);
        qs_kvm_stats_file_close(f);
    }
    assert_null(err);
    qs_microvm_free(vm);
}

/* Each call gives a distinct fd the caller owns: closing one leaves the
 * others working, and they keep reading after the VM is freed. */
static void test_stats_fds_belong_to_the_caller_and_outlive_the_vm(void **state)
{
    REQUIRE_KVM();
    qs_microvm *vm = new_vm(2);
    qs_error *err = NULL;
    int a = qs_microvm_vcpu_stats_fd(vm, 1, &err);
    int b = qs_microvm_vcpu_stats_fd(vm, 1, &err);
    int v = qs_microvm_vm_stats_fd(vm, &err);
    assert_null(err);
    assert_true(a >= 0 && b >= 0 && v >= 0);
    assert_int_not_equal(a, b);
    close(a);
    qs_microvm_free(vm);

    qs_kvm_stats_file *fb = qs_kvm_stats_file_open(b, &err);
    qs_kvm_stats_file *fv = qs_kvm_stats_file_open(v, &err);
    assert_non_null(fb);
    assert_non_null(fv);
    uint64_t *data = calloc(qs_kvm_stats_file_data_words(fb), sizeof(uint64_t));
    assert_true(qs_kvm_stats_file_read(fb, data, &err));
    free(data);
    qs_kvm_stats_file_close(fb);
    qs_kvm_stats_file_close(fv);
}

static void expect_refused(unsigned n, const char *needle)
{
    qs_error *err = NULL;
    qs_microvm *vm = qs_microvm_new(n, &err);
    assert_null(vm);
    assert_non_null(err);
    if (!strstr(err->msg, needle)) {
        fail_msg("nvcpus %u: message \"%s\" lacks \"%s\"", n, err->msg, needle);
    }
    qs_error_free(err);
}

static void test_zero_vcpus_is_refused_with_a_message(void **state)
{
    expect_refused(0, "invalid number of vCPUs 0");
}

static void test_vcpus_above_the_limit_are_refused_with_a_message(void **state)
{
    expect_refused(QS_MICROVM_MAX_VCPUS + 1, "must be between 1 and");
    REQUIRE_KVM();
    int kfd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    assert_true(kfd >= 0);
    int max = ioctl(kfd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    close(kfd);
    if (max > 0 && max < QS_MICROVM_MAX_VCPUS) {
        char want[64];
        snprintf(want, sizeof(want), "between 1 and %d", max);
        expect_refused((unsigned)max + 1, want);
    }
}

static void test_vcpu_index_out_of_range_is_refused(void **state)
{
    REQUIRE_KVM();
    qs_microvm *vm = new_vm(2);
    qs_error *err = NULL;
    assert_int_equal(qs_microvm_vcpu_stats_fd(vm, 2, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err->msg, "no vCPU 2"));
    qs_error_free(err);
    qs_microvm_free(vm);
}

/* In a private mount namespace, hide /dev/kvm under an empty tmpfs and check
 * the message a daemon without KVM prints.  Needs CAP_SYS_ADMIN. */
static void test_missing_dev_kvm_gives_a_clear_message(void **state)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        char msg[256] = "";
        if (unshare(CLONE_NEWNS) < 0 ||
            mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("none", "/dev", "tmpfs", 0, NULL) < 0) {
            snprintf(msg, sizeof(msg), "SKIP %s", strerror(errno));
        } else {
            qs_error *err = NULL;
            qs_microvm *vm = qs_microvm_new(1, &err);
            snprintf(msg, sizeof(msg), "%s", vm ? "created" : err->msg);
            qs_error_free(err);
        }
        ssize_t w = write(pipefd[1], msg, strlen(msg));
        _exit(w < 0);
    }
    close(pipefd[1]);
    char buf[256] = "";
    ssize_t r = read(pipefd[0], buf, sizeof(buf) - 1);
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(r > 0);
    if (strncmp(buf, "SKIP", 4) == 0) {
        print_message("skipped: no private mount namespace (%s)\n", buf + 5);
        skip();
    }
    assert_string_equal(buf, "kvm provider unavailable: /dev/kvm: "
                        "No such file or directory");
}

static void test_create_free_twenty_times_leaks_no_fd(void **state)
{
    REQUIRE_KVM();
    int before = count_open_fds();
    double t0 = now_s();
    for (int i = 0; i < 20; i++) {
        qs_microvm *vm = new_vm(2);
        if (i % 2) {
            sleep_ms(20);     /* free while vCPUs are halted in the kernel */
        }
        qs_microvm_free(vm);
    }
    double took = now_s() - t0;
    assert_int_equal(count_open_fds(), before);
    /* Stopping must not wait for a timer tick or a timeout per vCPU. */
    print_message("20 create/free cycles of 2 vCPUs: %.3f s\n", took);
    assert_true(took < 10.0);
}

static double measure_cpu(unsigned n, unsigned ms)
{
    qs_microvm *vm = new_vm(n);
    sleep_ms(200);
    double c0 = cpu_s(), w0 = now_s();
    sleep_ms(ms);
    double pct = 100.0 * (cpu_s() - c0) / (now_s() - w0);
    qs_microvm_free(vm);
    print_message("%u vCPUs: %.2f%% of one core (%.3f%% per vCPU)\n",
                  n, pct, pct / n);
    return pct;
}

/* Loose bound: only a busy loop (100% per spinning vCPU) should trip it. */
static void test_four_idle_vcpus_cost_little_cpu(void **state)
{
    REQUIRE_KVM();
    assert_true(measure_cpu(4, 2000) < 50.0);
}

static void test_large_vms_cost(void **state)
{
    const char *e = getenv("QS_MICROVM_LARGE");
    if (!e || strcmp(e, "1") != 0) {
        print_message("skipped: set QS_MICROVM_LARGE=1 for 64 and 1024 vCPUs\n");
        skip();
    }
    REQUIRE_KVM();
    check_all_vcpus_move(64);
    assert_true(measure_cpu(64, 3000) < 100.0);
    check_all_vcpus_move(1024);
    assert_true(measure_cpu(1024, 3000) < 100.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_vcpu_halts_wakes_and_takes_interrupts),
        cmocka_unit_test(test_two_vcpus_all_halt_wake_and_take_interrupts),
        cmocka_unit_test(test_four_vcpus_all_halt_wake_and_take_interrupts),
        cmocka_unit_test(test_stats_fds_are_those_of_the_vm_and_each_vcpu),
        cmocka_unit_test(test_stats_fds_belong_to_the_caller_and_outlive_the_vm),
        cmocka_unit_test(test_zero_vcpus_is_refused_with_a_message),
        cmocka_unit_test(test_vcpus_above_the_limit_are_refused_with_a_message),
        cmocka_unit_test(test_vcpu_index_out_of_range_is_refused),
        cmocka_unit_test(test_missing_dev_kvm_gives_a_clear_message),
        cmocka_unit_test(test_create_free_twenty_times_leaks_no_fd),
        cmocka_unit_test(test_four_idle_vcpus_cost_little_cpu),
        cmocka_unit_test(test_large_vms_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
