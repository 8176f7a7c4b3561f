/*
 * exporter/help.c - one-line descriptions for the # HELP lines of the
 * well-known KVM and balloon statistics.  The schemas carry no text, so
 * this table is the only hand-maintained part of the exporter; a stat that
 * is missing here still gets exported, with a neutral generated help line.
 */
#include <string.h>

#include "internal.h"

typedef struct help_entry {
    qs_provider provider;
    const char *stat;
    const char *help;
} help_entry;

#define KVM(s, h) { QS_PROVIDER_KVM, s, h }
#define BAL(s, h) { QS_PROVIDER_BALLOON, s, h }

static const help_entry help_table[] = {
    /* KVM, VM-wide */
    KVM("remote_tlb_flush", "TLB flushes of all vCPUs requested by the host MMU."),
    KVM("remote_tlb_flush_requests", "Requests to flush the TLBs of all vCPUs."),
    KVM("mmu_shadow_zapped", "Shadow page-table pages zapped."),
    KVM("mmu_pte_write", "Guest page-table writes trapped by the shadow MMU."),
    KVM("mmu_pde_zapped", "Shadow page-directory entries zapped."),
    KVM("mmu_flooded", "Shadow pages dropped because the guest wrote to them too often."),
    KVM("mmu_recycled", "Shadow pages reclaimed to stay under the MMU page limit."),
    KVM("mmu_cache_miss", "Shadow page lookups that had to allocate a new page."),
    KVM("mmu_unsync", "Shadow pages currently out of sync with the guest page tables."),
    KVM("pages_4k", "Guest memory mapped with 4 KiB pages in the host page tables."),
    KVM("pages_2m", "Guest memory mapped with 2 MiB pages in the host page tables."),
    KVM("pages_1g", "Guest memory mapped with 1 GiB pages in the host page tables."),
    KVM("nx_lpage_splits", "Huge pages split to keep executable guest memory on small pages."),
    KVM("max_mmu_rmap_size", "Longest reverse-mapping chain seen."),
    KVM("max_mmu_page_hash_collisions", "Most collisions seen in one shadow-page hash bucket."),
    /* KVM, per vCPU: halting */
    KVM("halt_successful_poll", "Halts ended by a wake-up while polling."),
    KVM("halt_attempted_poll", "Halts in which polling was tried."),
    KVM("halt_poll_invalid", "Halt polls abandoned because the vCPU could not be woken by polling."),
    KVM("halt_wakeup", "Wake-ups of the halted vCPU."),
    KVM("halt_poll_success_ns", "Time spent polling in halts that ended with a wake-up."),
    KVM("halt_poll_fail_ns", "Time spent polling in halts that ended without a wake-up."),
    KVM("halt_wait_ns", "Time the halted vCPU slept waiting for a wake-up."),
    KVM("halt_poll_success_hist", "Distribution of successful halt-poll durations."),
    KVM("halt_poll_fail_hist", "Distribution of failed halt-poll durations."),
    KVM("halt_wait_hist", "Distribution of halt wait (sleep) durations."),
    KVM("blocking", "1 while the vCPU is blocked waiting for an event, else 0."),
    /* KVM, per vCPU: faults, exits, events */
    KVM("pf_taken", "Guest page faults handled by KVM."),
    KVM("pf_fixed", "Page faults fixed by installing a mapping."),
    KVM("pf_emulate", "Page faults resolved by emulating the faulting instruction."),
    KVM("pf_spurious", "Page faults that needed no change."),
    KVM("pf_fast", "Page faults fixed on the lockless fast path."),
    KVM("pf_mmio_spte_created", "MMIO page-table entries created."),
    KVM("pf_guest", "Page faults reflected back into the guest."),
    KVM("tlb_flush", "TLB flushes of this vCPU."),
    KVM("invlpg", "INVLPG instructions handled."),
    KVM("exits", "VM exits of this vCPU, all reasons."),
    KVM("io_exits", "VM exits for port I/O handled in user space."),
    KVM("mmio_exits", "VM exits for MMIO handled in user space."),
    KVM("signal_exits", "VM exits because a signal was pending for the vCPU thread."),
    KVM("irq_window_exits", "VM exits to open an interrupt window."),
    KVM("nmi_window_exits", "VM exits to open an NMI window."),
    KVM("l1d_flush", "L1 data cache flushes on VM entry."),
    KVM("halt_exits", "VM exits caused by a guest HLT."),
    KVM("request_irq_exits", "VM exits because user space asked for an interrupt window."),
    KVM("irq_exits", "VM exits caused by external interrupts."),
    KVM("host_state_reload", "Full reloads of host state after running the guest."),
    KVM("fpu_reload", "FPU state reloads."),
    KVM("insn_emulation", "Instructions emulated by KVM."),
    KVM("insn_emulation_fail", "Instructions KVM failed to emulate."),
    KVM("hypercalls", "Hypercalls made by the guest."),
    KVM("irq_injections", "Interrupts injected into the vCPU."),
    KVM("nmi_injections", "NMIs injected into the vCPU."),
    KVM("req_event", "Event-injection requests processed."),
    KVM("nested_run", "Runs of a nested guest."),
    KVM("directed_yield_attempted", "Directed yields to another vCPU attempted."),
    KVM("directed_yield_successful", "Directed yields to another vCPU that succeeded."),
    KVM("preemption_reported", "Host preemptions reported to the guest."),
    KVM("preemption_other", "Host preemptions not reported to the guest."),
    KVM("guest_mode", "1 while the vCPU runs a nested guest, else 0."),
    KVM("notify_window_exits", "VM exits because the guest stayed too long without an exit window."),
    /* balloon: what the guest reported */
    BAL("swap-in", "Memory swapped in by the guest."),
    BAL("swap-out", "Memory swapped out by the guest."),
    BAL("major-faults", "Guest page faults that needed I/O."),
    BAL("minor-faults", "Guest page faults served without I/O."),
    BAL("free-memory", "Memory the guest reports as unused."),
    BAL("total-memory", "Memory available to the guest kernel."),
    BAL("available-memory", "Memory the guest estimates it could use without swapping."),
    BAL("disk-caches", "Guest memory used for disk caches."),
    BAL("htlb-pgalloc", "Huge-page allocations in the guest."),
    BAL("htlb-pgfail", "Failed huge-page allocations in the guest."),
    BAL("oom-kills", "Processes the guest killed for lack of memory."),
    BAL("alloc-stalls", "Guest memory allocations that stalled for reclaim."),
    BAL("async-scans", "Pages scanned by the guest's background reclaim."),
    BAL("direct-scans", "Pages scanned by the guest's direct reclaim."),
    BAL("async-reclaims", "Pages reclaimed by the guest's background reclaim."),
    BAL("direct-reclaims", "Pages reclaimed by the guest's direct reclaim."),
    BAL("last-update", "Wall-clock time (Unix seconds) of the guest's last statistics report."),
};

const char *qs_metrics_help_lookup(qs_provider p, const char *stat)
{
    for (size_t i = 0; i < sizeof(help_table) / sizeof(help_table[0]); i++) {
        if (help_table[i].provider == p && !strcmp(help_table[i].stat, stat))
            return help_table[i].help;
    }
    return NULL;
}
