/*
 * descriptions.c - one-line descriptions of the well-known KVM statistics,
 * for the # HELP lines of the metrics endpoint and anyone else who shows a
 * schema to people.  The kernel's binary stats carry no text, so this is the
 * one hand-maintained table of the kvm provider; a stat missing here (a
 * newer kernel's) is still served, with no description.
 */
#include <string.h>

#include "binary_stats.h"

static const struct {
    const char *name;
    const char *text;
} descriptions[] = {
    { "remote_tlb_flush", "TLB flushes of all vCPUs requested by the host MMU." },
    { "remote_tlb_flush_requests", "Requests to flush the TLBs of all vCPUs." },
    { "mmu_shadow_zapped", "Shadow page-table pages zapped." },
    { "mmu_pte_write", "Guest page-table writes trapped by the shadow MMU." },
    { "mmu_pde_zapped", "Shadow page-directory entries zapped." },
    { "mmu_flooded", "Shadow pages dropped because the guest wrote to them too often." },
    { "mmu_recycled", "Shadow pages reclaimed to stay under the MMU page limit." },
    { "mmu_cache_miss", "Shadow page lookups that had to allocate a new page." },
    { "mmu_unsync", "Shadow pages currently out of sync with the guest page tables." },
    { "pages_4k", "Guest memory mapped with 4 KiB pages in the host page tables." },
    { "pages_2m", "Guest memory mapped with 2 MiB pages in the host page tables." },
    { "pages_1g", "Guest memory mapped with 1 GiB pages in the host page tables." },
    { "nx_lpage_splits", "Huge pages split to keep executable guest memory on small pages." },
    { "max_mmu_rmap_size", "Longest reverse-mapping chain seen." },
    { "max_mmu_page_hash_collisions", "Most collisions seen in one shadow-page hash bucket." },
    { "halt_successful_poll", "Halts ended by a wake-up while polling." },
    { "halt_attempted_poll", "Halts in which polling was tried." },
    { "halt_poll_invalid", "Halt polls abandoned because the vCPU could not be woken by polling." },
    { "halt_wakeup", "Wake-ups of the halted vCPU." },
    { "halt_poll_success_ns", "Time spent polling in halts that ended with a wake-up." },
    { "halt_poll_fail_ns", "Time spent polling in halts that ended without a wake-up." },
    { "halt_wait_ns", "Time the halted vCPU slept waiting for a wake-up." },
    { "halt_poll_success_hist", "Distribution of successful halt-poll durations." },
    { "halt_poll_fail_hist", "Distribution of failed halt-poll durations." },
    { "halt_wait_hist", "Distribution of halt wait (sleep) durations." },
    { "blocking", "1 while the vCPU is blocked waiting for an event, else 0." },
    { "pf_taken", "Guest page faults handled by KVM." },
    { "pf_fixed", "Page faults fixed by installing a mapping." },
    { "pf_emulate", "Page faults resolved by emulating the faulting instruction." },
    { "pf_spurious", "Page faults that needed no change." },
    { "pf_fast", "Page faults fixed on the lockless fast path." },
    { "pf_mmio_spte_created", "MMIO page-table entries created." },
    { "pf_guest", "Page faults reflected back into the guest." },
    { "tlb_flush", "TLB flushes of this vCPU." },
    { "invlpg", "INVLPG instructions handled." },
    { "exits", "VM exits of this vCPU, all reasons." },
    { "io_exits", "VM exits for port I/O handled in user space." },
    { "mmio_exits", "VM exits for MMIO handled in user space." },
    { "signal_exits", "VM exits because a signal was pending for the vCPU thread." },
    { "irq_window_exits", "VM exits to open an interrupt window." },
    { "nmi_window_exits", "VM exits to open an NMI window." },
    { "l1d_flush", "L1 data cache flushes on VM entry." },
    { "halt_exits", "VM exits caused by a guest HLT." },
    { "request_irq_exits", "VM exits because user space asked for an interrupt window." },
    { "irq_exits", "VM exits caused by external interrupts." },
    { "host_state_reload", "Full reloads of host state after running the guest." },
    { "fpu_reload", "FPU state reloads." },
    { "insn_emulation", "Instructions emulated by KVM." },
    { "insn_emulation_fail", "Instructions KVM failed to emulate." },
    { "hypercalls", "Hypercalls made by the guest." },
    { "irq_injections", "Interrupts injected into the vCPU." },
    { "nmi_injections", "NMIs injected into the vCPU." },
    { "req_event", "Event-injection requests processed." },
    { "nested_run", "Runs of a nested guest." },
    { "directed_yield_attempted", "Directed yields to another vCPU attempted." },
    { "directed_yield_successful", "Directed yields to another vCPU that succeeded." },
    { "preemption_reported", "Host preemptions reported to the guest." },
    { "preemption_other", "Host preemptions not reported to the guest." },
    { "guest_mode", "1 while the vCPU runs a nested guest, else 0." },
    { "notify_window_exits", "VM exits because the guest stayed too long without an exit window." },
};

const char *qs_kvm_stat_description(const char *name)
{
    for (size_t i = 0; i < sizeof(descriptions) / sizeof(descriptions[0]); i++)
        if (strcmp(descriptions[i].name, name) == 0)
            return descriptions[i].text;
    return NULL;
}
