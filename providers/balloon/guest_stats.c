/*
 * guest_stats.c - the guest side of balloon statistics: turns a Linux
 * /proc tree into virtio-balloon records, as the kernel's virtio_balloon
 * driver (update_balloon_stats) fills its stats buffer.  It lives in the
 * library rather than in the agent program so that unit tests can run it
 * against fixture trees.
 *
 * Mapping (PAGE = the page size of the machine running the agent):
 *
 *   tag  stat                 source                                 unit
 *   0    swap-in              vmstat pswpin * PAGE                   bytes
 *   1    swap-out             vmstat pswpout * PAGE                  bytes
 *   2    major-faults         vmstat pgmajfault                      count
 *   3    minor-faults         vmstat pgfault (the driver sends the
 *                             whole fault count, majors included)    count
 *   10   oom-kills            vmstat oom_kill                        count
 *   11   alloc-stalls         sum of vmstat allocstall* (one per
 *                             zone on Linux >= 4.8)                  count
 *   12   async-scans          vmstat pgscan_kswapd * PAGE            bytes
 *   13   direct-scans         vmstat pgscan_direct * PAGE            bytes
 *   14   async-reclaims       vmstat pgsteal_kswapd * PAGE           bytes
 *   15   direct-reclaims      vmstat pgsteal_direct * PAGE           bytes
 *   8    htlb-pgalloc         vmstat htlb_buddy_alloc_success        count
 *   9    htlb-pgfail          vmstat htlb_buddy_alloc_fail           count
 *   4    free-memory          meminfo MemFree * 1024                 bytes
 *   5    total-memory         meminfo MemTotal * 1024                bytes
 *   6    available-memory     meminfo MemAvailable * 1024            bytes
 *   7    disk-caches          vmstat nr_file_pages * PAGE (the
 *                             driver's NR_FILE_PAGES); without it
 *                             meminfo Buffers+Cached+SwapCached      bytes
 *
 * Records go out in the driver's order (the vmstat events first, then the
 * sysinfo values).  A field the tree lacks (an older kernel, a kernel built
 * without hugetlb or vm event counters) is not sent, so the host keeps that
 * stat unset, as it would for a driver that does not know the tag.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qs-common.h"
#include "qs-balloon-guest.h"

#define PROC_FILE_MAX (256 * 1024)

/* The whole file as a string, or NULL. */
static char *slurp(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = qs_malloc(PROC_FILE_MAX + 1);
    size_t n = fread(buf, 1, PROC_FILE_MAX, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

static const char *next_line(const char *line)
{
    const char *nl = strchr(line, '\n');
    return nl && nl[1] ? nl + 1 : NULL;
}

/* Finds "KEY<sep>value" at the start of a line; with prefix, sums every
 * line whose key starts with KEY.  Returns false when no line matched. */
static bool lookup(const char *text, const char *key, bool prefix, uint64_t *out)
{
    size_t klen = strlen(key);
    bool found = false;
    uint64_t sum = 0;
    for (const char *line = text; line; line = next_line(line)) {
        if (strncmp(line, key, klen) != 0)
            continue;
        const char *p = line + klen;
        if (prefix)
            p += strcspn(p, " :\t\n");
        if (*p == ':')
            p++;
        if (*p != ' ' && *p != '\t')
            continue;
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p)
            continue;
        sum += v;
        found = true;
        if (!prefix)
            break;
    }
    *out = sum;
    return found;
}

typedef struct filler {
    uint8_t *buf;
    size_t max, len;
} filler;

static void put(filler *f, unsigned tag, uint64_t val)
{
    if (f->max - f->len < QS_BALLOON_RECORD_SIZE)
        return;
    uint8_t *p = f->buf + f->len;
    p[0] = (uint8_t)tag;
    p[1] = (uint8_t)(tag >> 8);
    for (int i = 0; i < 8; i++)
        p[2 + i] = (uint8_t)(val >> (8 * i));
    f->len += QS_BALLOON_RECORD_SIZE;
}

/* Sends the field if present, multiplied by scale. */
static void put_field(filler *f, unsigned tag, const char *text, const char *key,
                      bool prefix, uint64_t scale)
{
    uint64_t v;
    if (text && lookup(text, key, prefix, &v))
        put(f, tag, v * scale);
}

static void fill_caches(filler *f, const char *vmstat, const char *meminfo, uint64_t page)
{
    uint64_t v, buffers = 0, swapcached = 0;
    if (vmstat && lookup(vmstat, "nr_file_pages", false, &v)) {
        put(f, QS_BALLOON_S_CACHES, v * page);
        return;
    }
    if (meminfo && lookup(meminfo, "Cached", false, &v)) {
        lookup(meminfo, "Buffers", false, &buffers);
        lookup(meminfo, "SwapCached", false, &swapcached);
        put(f, QS_BALLOON_S_CACHES, (v + buffers + swapcached) * 1024);
    }
}

size_t qs_balloon_guest_fill(const char *proc_dir, uint8_t *records, size_t max)
{
    char *vm = slurp(proc_dir, "vmstat");
    char *mi = slurp(proc_dir, "meminfo");
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    filler f = { .buf = records, .max = max };

    put_field(&f, QS_BALLOON_S_SWAP_IN, vm, "pswpin", false, page);
    put_field(&f, QS_BALLOON_S_SWAP_OUT, vm, "pswpout", false, page);
    put_field(&f, QS_BALLOON_S_MAJFLT, vm, "pgmajfault", false, 1);
    put_field(&f, QS_BALLOON_S_MINFLT, vm, "pgfault", false, 1);
    put_field(&f, QS_BALLOON_S_OOM_KILL, vm, "oom_kill", false, 1);
    put_field(&f, QS_BALLOON_S_ALLOC_STALL, vm, "allocstall", true, 1);
    put_field(&f, QS_BALLOON_S_ASYNC_SCAN, vm, "pgscan_kswapd", false, page);
    put_field(&f, QS_BALLOON_S_DIRECT_SCAN, vm, "pgscan_direct", false, page);
    put_field(&f, QS_BALLOON_S_ASYNC_RECLAIM, vm, "pgsteal_kswapd", false, page);
    put_field(&f, QS_BALLOON_S_DIRECT_RECLAIM, vm, "pgsteal_direct", false, page);
    put_field(&f, QS_BALLOON_S_HTLB_PGALLOC, vm, "htlb_buddy_alloc_success", false, 1);
    put_field(&f, QS_BALLOON_S_HTLB_PGFAIL, vm, "htlb_buddy_alloc_fail", false, 1);
    put_field(&f, QS_BALLOON_S_MEMFREE, mi, "MemFree", false, 1024);
    put_field(&f, QS_BALLOON_S_MEMTOT, mi, "MemTotal", false, 1024);
    put_field(&f, QS_BALLOON_S_AVAIL, mi, "MemAvailable", false, 1024);
    fill_caches(&f, vm, mi, page);

    free(vm);
    free(mi);
    return f.len;
}
