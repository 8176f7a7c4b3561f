/*
 * binary_stats.c - reader for one KVM binary-stats file, the fd that
 * KVM_GET_STATS_FD returns for a VM or a vCPU.
 *
 * The kvm provider answers every query with a single pread of the data
 * block, so everything else in the file (header, id, descriptors) is read
 * and validated here once, when the fd is handed to us.  A file that breaks
 * a rule is refused with a message naming that rule; a file that is accepted
 * can never make the query path read outside the block checked here.
 *
 * File layout (host-endian).  Every offset is from the start of the file and
 * comes from the header.  The kernel writes the blocks in this order, but
 * they may come in any order as long as they do not overlap:
 *
 *            0 +--------------------------------+
 *              | header, 6 x u32 = 24 bytes:    |
 *              |   flags  name_size  num_desc   |
 *              |   id_offset  desc_offset       |
 *              |   data_offset                  |
 *              +--------------------------------+
 *    id_offset | id: name_size bytes, NUL-term. |  "kvm-<pid>[/vcpu-<n>]"
 *              +--------------------------------+
 *  desc_offset | desc 0:  u32 flags             |  \
 *              |          s16 exponent          |   | 16 bytes
 *              |          u16 size (u64 count)  |   |
 *              |          u32 offset            |   |
 *              |          u32 bucket_size       |  /
 *              |          name[name_size]       |  NUL-terminated
 *              | desc 1 .. desc num_desc-1      |  stride 16 + name_size
 *              +--------------------------------+
 *  data_offset | u64 values: desc i owns the    |
 *              | size words at byte desc.offset |
 *              | of this block                  |
 *              +--------------------------------+
 *
 *   desc.flags: bits 0-3 type, 4-7 unit, 8-11 base (KVM_STATS_*).
 *   data block size = max over descriptors of (offset + size * 8).
 *
 * Use:
 *   f = qs_kvm_stats_file_open(fd, &err);      validates; takes fd on success
 *   buf = a u64 array of qs_kvm_stats_file_data_words(f), allocated once
 *   qs_kvm_stats_file_read(f, buf, &err);       one pread, per query
 *   stat i is described by schema[i]; its values are
 *     buf[offsets[i]] .. buf[offsets[i] + schema[i].size - 1]
 *   qs_kvm_stats_file_close(f);                 closes fd
 *
 * The rules are those of the kernel's kvm_binary_stats_test
 * (docs/qemu-behaviour.md#kvm-validation), with two deliberate exceptions
 * (docs/qemu-behaviour.md#differences, 3): a type or unit this code does
 * not know yet is kept rather than refused, because newer kernels may add
 * them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "binary_stats.h"

#define HDR_SIZE      ((uint32_t)sizeof(struct kvm_stats_header))   /* 24 */
#define DESC_SIZE     ((uint32_t)sizeof(struct kvm_stats_desc))     /* 16 */
/* Caps far above any kernel (Linux 6.18: name_size 48, 47 vCPU stats, a
 * data block of 1.1 KiB), so that a hostile file cannot make registration
 * or a query allocate much: name_size 256 (5x), 4096 descriptors (87x), a
 * data block of 1 MiB (900x; one histogram of 65535 buckets fits). */
#define MAX_NAME_SIZE 256u
#define MAX_DESC      4096u
#define MAX_BLOCK     (1u << 20)

struct qs_kvm_stats_file {
    int fd;
    uint32_t data_offset;
    size_t data_words;
    size_t n;
    char *id;                   /* name_size bytes, NUL-terminated */
    char *descs;                /* the raw descriptor block; names point here */
    qs_schema_value *schema;
    uint32_t *offsets;
};

/* Unit names for messages, indexed by the kernel's unit value. */
static const char *const kvm_unit_names[] = {
    "none", "bytes", "seconds", "cycles", "boolean",
};

static void stats_file_free(qs_kvm_stats_file *f)
{
    free(f->id);
    free(f->descs);
    free(f->schema);
    free(f->offsets);
    free(f);
}

static bool read_exact(int fd, void *buf, size_t len, uint64_t off,
                       const char *what, qs_error **errp)
{
    ssize_t r = pread(fd, buf, len, (off_t)off);

    if (r < 0) {
        qs_error_setg(errp, "KVM stats: failed to read %s: %s", what,
                      strerror(errno));
        return false;
    }
    if ((size_t)r != len) {
        qs_error_setg(errp, "KVM stats: failed to read %s: expected %zu actual %zd",
                      what, len, r);
        return false;
    }
    return true;
}

/* Header flags are not checked: the kernel reserves them for extensions,
 * and neither QEMU nor the kernel selftest looks at them. */
static bool check_header(const struct kvm_stats_header *h, qs_error **errp)
{
    const struct { const char *what; uint32_t off; } offs[] = {
        { "id", h->id_offset },
        { "descriptor", h->desc_offset },
        { "data", h->data_offset },
    };
    /* Both factors are 32-bit, so the product cannot overflow 64 bits. */
    uint64_t desc_bytes = (uint64_t)h->num_desc * (DESC_SIZE + h->name_size);

    if (h->name_size == 0 || h->name_size > MAX_NAME_SIZE) {
        qs_error_setg(errp, "KVM stats: name size %" PRIu32 " is out of range "
                      "(1..%u)", h->name_size, MAX_NAME_SIZE);
        return false;
    }
    if (h->num_desc > MAX_DESC) {
        qs_error_setg(errp, "KVM stats: too many descriptors: %" PRIu32
                      " (limit %u)", h->num_desc, MAX_DESC);
        return false;
    }
    if (desc_bytes > MAX_BLOCK) {
        qs_error_setg(errp, "KVM stats: descriptor block of %" PRIu64
                      " bytes is too large (limit %u)", desc_bytes, MAX_BLOCK);
        return false;
    }
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        if (offs[i].off < HDR_SIZE) {
            qs_error_setg(errp, "KVM stats: %s offset %" PRIu32 " is inside "
                          "the %" PRIu32 "-byte header", offs[i].what,
                          offs[i].off, HDR_SIZE);
            return false;
        }
    }
    return true;
}

static bool read_id(qs_kvm_stats_file *f, const struct kvm_stats_header *h,
                    qs_error **errp)
{
    f->id = qs_malloc(h->name_size);
    if (!read_exact(f->fd, f->id, h->name_size, h->id_offset, "id", errp)) {
        return false;
    }
    if (!memchr(f->id, '\0', h->name_size)) {
        qs_error_setg(errp, "KVM stats: id is not NUL-terminated within %"
                      PRIu32 " bytes", h->name_size);
        return false;
    }
    if (strncmp(f->id, "kvm", 3) != 0) {
        qs_error_setg(errp, "KVM stats: id \"%s\" does not start with \"kvm\"",
                      f->id);
        return false;
    }
    return true;
}

/* The exponent signs the selftest allows per known unit: counts, bytes and
 * cycles only scale up, seconds only down, booleans not at all.  Units this
 * code does not know have no rule.  NULL when e is allowed. */
static const char *exponent_rule(uint32_t unit, int16_t e)
{
    switch (unit) {
    case KVM_STATS_UNIT_NONE:
    case KVM_STATS_UNIT_BYTES:
    case KVM_STATS_UNIT_CYCLES:
        return e < 0 ? "must be >= 0" : NULL;
    case KVM_STATS_UNIT_SECONDS:
        return e > 0 ? "must be <= 0" : NULL;
    case KVM_STATS_UNIT_BOOLEAN:
        return e != 0 ? "must be 0" : NULL;
    default:
        return NULL;
    }
}

/* An unknown type is reported as "instant": it promises the least (a value
 * as of now, no monotonicity a consumer could rely on, no buckets), so a
 * future kernel's stat stays visible without being misread as a counter. */
static qs_stat_type map_type(uint32_t type)
{
    switch (type) {
    case KVM_STATS_TYPE_CUMULATIVE:  return QS_TYPE_CUMULATIVE;
    case KVM_STATS_TYPE_PEAK:        return QS_TYPE_PEAK;
    case KVM_STATS_TYPE_LINEAR_HIST: return QS_TYPE_LINEAR_HIST;
    case KVM_STATS_TYPE_LOG_HIST:    return QS_TYPE_LOG2_HIST;
    default:                         return QS_TYPE_INSTANT;
    }
}

/* An unknown unit is omitted, as NONE is. */
static qs_unit map_unit(uint32_t unit)
{
    switch (unit) {
    case KVM_STATS_UNIT_BYTES:   return QS_UNIT_BYTES;
    case KVM_STATS_UNIT_SECONDS: return QS_UNIT_SECONDS;
    case KVM_STATS_UNIT_CYCLES:  return QS_UNIT_CYCLES;
    case KVM_STATS_UNIT_BOOLEAN: return QS_UNIT_BOOLEAN;
    default:                     return QS_UNIT_NONE;
    }
}

#define DESC_FAIL(fmt, ...)                                                  \
    (qs_error_setg(errp, "KVM stats: descriptor %zu (%s): " fmt, i, name,    \
                   ##__VA_ARGS__), false)

/* Validates descriptor i and fills schema[i] and offsets[i]; *end is the
 * byte of the data block where its values end. */
static bool parse_desc(qs_kvm_stats_file *f, uint32_t name_size, size_t i,
                       uint64_t *end, qs_error **errp)
{
    const char *p = f->descs + i * (size_t)(DESC_SIZE + name_size);
    const char *name = p + DESC_SIZE;
    struct kvm_stats_desc d;
    uint32_t type, unit, base;
    const char *rule;

    memcpy(&d, p, DESC_SIZE);
    type = d.flags & KVM_STATS_TYPE_MASK;
    unit = d.flags & KVM_STATS_UNIT_MASK;
    base = d.flags & KVM_STATS_BASE_MASK;
    if (!memchr(name, '\0', name_size)) {
        qs_error_setg(errp, "KVM stats: descriptor %zu: name is not "
                      "NUL-terminated within %" PRIu32 " bytes", i, name_size);
        return false;
    }
    if (name[0] == '\0') {
        qs_error_setg(errp, "KVM stats: descriptor %zu: name is empty", i);
        return false;
    }
    if (base > KVM_STATS_BASE_MAX) {
        return DESC_FAIL("unknown base %" PRIu32, base >> KVM_STATS_BASE_SHIFT);
    }
    rule = exponent_rule(unit, d.exponent);
    if (rule) {
        return DESC_FAIL("exponent %d %s for unit %s", d.exponent, rule,
                         kvm_unit_names[unit >> KVM_STATS_UNIT_SHIFT]);
    }
    if (d.size == 0) {
        return DESC_FAIL("size is 0");
    }
    if (type == KVM_STATS_TYPE_LINEAR_HIST && d.bucket_size == 0) {
        return DESC_FAIL("bucket_size is 0 for a linear histogram");
    }
    /* An unknown type may be a future histogram with a bucket size. */
    if (type != KVM_STATS_TYPE_LINEAR_HIST && type <= KVM_STATS_TYPE_MAX &&
        d.bucket_size != 0) {
        return DESC_FAIL("bucket_size %" PRIu32 " set on a stat that is not "
                         "a linear histogram", d.bucket_size);
    }
    if (d.offset % 8 != 0) {
        return DESC_FAIL("offset %" PRIu32 " is not a multiple of 8", d.offset);
    }
    *end = (uint64_t)d.offset + (uint64_t)d.size * 8;
    f->offsets[i] = d.offset / 8;
    f->schema[i] = (qs_schema_value) {
        .name = name,
        .type = map_type(type),
        .unit = map_unit(unit),
        .base = d.exponent == 0 ? 0 : base == KVM_STATS_BASE_POW2 ? 2 : 10,
        .exponent = d.exponent,
        .bucket_size = type == KVM_STATS_TYPE_LINEAR_HIST ? d.bucket_size : 0,
        .size = d.size,
    };
    return true;
}

static int cmp_schema_name(const void *a, const void *b)
{
    const qs_schema_value *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Sorting keeps this O(n log n) for any num_desc the header may claim. */
static bool check_duplicates(const qs_kvm_stats_file *f, qs_error **errp)
{
    const qs_schema_value **v = qs_calloc(f->n ? f->n : 1, sizeof(*v));
    bool ok = true;

    for (size_t i = 0; i < f->n; i++) {
        v[i] = &f->schema[i];
    }
    qsort(v, f->n, sizeof(*v), cmp_schema_name);
    for (size_t k = 1; ok && k < f->n; k++) {
        if (strcmp(v[k - 1]->name, v[k]->name) == 0) {
            size_t a = (size_t)(v[k - 1] - f->schema);
            size_t b = (size_t)(v[k] - f->schema);
            qs_error_setg(errp, "KVM stats: descriptor %zu (%s): duplicate "
                          "name (also descriptor %zu)", a > b ? a : b,
                          v[k]->name, a > b ? b : a);
            ok = false;
        }
    }
    free(v);
    return ok;
}

typedef struct block {
    const char *what;
    uint64_t start, len;
} block;

/* The id, descriptor and data blocks must not overlap (the header is
 * already excluded by check_header).  Empty blocks overlap nothing. */
static bool check_overlaps(const block b[3], qs_error **errp)
{
    for (int i = 0; i < 3; i++) {
        for (int j = i + 1; j < 3; j++) {
            if (b[i].len && b[j].len && b[i].start < b[j].start + b[j].len &&
                b[j].start < b[i].start + b[i].len) {
                qs_error_setg(errp, "KVM stats: %s block [%" PRIu64 ", %" PRIu64
                              ") overlaps %s block [%" PRIu64 ", %" PRIu64 ")",
                              b[i].what, b[i].start, b[i].start + b[i].len,
                              b[j].what, b[j].start, b[j].start + b[j].len);
                return false;
            }
        }
    }
    return true;
}

/* Descriptors, data block size and layout; `last` is the descriptor whose
 * values end the data block, blamed if the block turns out unreadable. */
static bool parse_descs(qs_kvm_stats_file *f, const struct kvm_stats_header *h,
                        size_t *last, qs_error **errp)
{
    uint64_t desc_bytes = (uint64_t)h->num_desc * (DESC_SIZE + h->name_size);
    uint64_t size_data = 0, end;

    f->descs = qs_malloc(desc_bytes ? desc_bytes : 1);
    f->schema = qs_calloc(h->num_desc ? h->num_desc : 1, sizeof(*f->schema));
    f->offsets = qs_calloc(h->num_desc ? h->num_desc : 1, sizeof(*f->offsets));
    if (!read_exact(f->fd, f->descs, desc_bytes, h->desc_offset,
                    "stats descriptors", errp)) {
        return false;
    }
    for (f->n = 0; f->n < h->num_desc; f->n++) {
        if (!parse_desc(f, h->name_size, f->n, &end, errp)) {
            return false;
        }
        if (end > size_data) {
            size_data = end;
            *last = f->n;
        }
    }
    if (!check_duplicates(f, errp)) {
        return false;
    }
    if (size_data > MAX_BLOCK) {
        qs_error_setg(errp, "KVM stats: data block of %" PRIu64 " bytes is too "
                      "large (limit %u)", size_data, MAX_BLOCK);
        return false;
    }
    if (size_data < (uint64_t)h->num_desc * 8) {
        qs_error_setg(errp, "KVM stats: data block of %" PRIu64 " bytes is "
                      "smaller than 8 bytes per descriptor (%" PRIu32 ")",
                      size_data, h->num_desc);
        return false;
    }
    f->data_words = size_data / 8;
    return check_overlaps((block[3]) {
        { "id", h->id_offset, h->name_size },
        { "descriptor", h->desc_offset, desc_bytes },
        { "data", h->data_offset, size_data },
    }, errp);
}

/* The selftest's bulk read: the whole data block must be there now, or
 * every later query would fail. */
static bool check_data_readable(const qs_kvm_stats_file *f, size_t last,
                                qs_error **errp)
{
    size_t len = f->data_words * 8;
    void *buf = qs_malloc(len ? len : 1);
    ssize_t r = pread(f->fd, buf, len, f->data_offset);
    int saved = errno;

    free(buf);
    if (r < 0) {
        qs_error_setg(errp, "KVM stats: failed to read data: %s",
                      strerror(saved));
        return false;
    }
    if ((size_t)r != len) {
        qs_error_setg(errp, "KVM stats: descriptor %zu (%s): values end at "
                      "byte %zu of the data block, but only %zd bytes can be "
                      "read at offset %" PRIu32, last, f->schema[last].name,
                      len, r, f->data_offset);
        return false;
    }
    return true;
}

qs_kvm_stats_file *qs_kvm_stats_file_open(int fd, qs_error **errp)
{
    qs_kvm_stats_file *f = qs_calloc(1, sizeof(*f));
    struct kvm_stats_header h;
    size_t last = 0;

    f->fd = fd;
    if (!read_exact(fd, &h, sizeof(h), 0, "stats header", errp) ||
        !check_header(&h, errp) ||
        !read_id(f, &h, errp)) {
        goto fail;
    }
    f->data_offset = h.data_offset;
    if (!parse_descs(f, &h, &last, errp) ||
        !check_data_readable(f, last, errp)) {
        goto fail;
    }
    return f;

fail:
    stats_file_free(f);     /* fd stays open: the caller still owns it */
    return NULL;
}

void qs_kvm_stats_file_forget(qs_kvm_stats_file *f)
{
    if (f) {
        stats_file_free(f);
    }
}

void qs_kvm_stats_file_close(qs_kvm_stats_file *f)
{
    if (f) {
        close(f->fd);
        stats_file_free(f);
    }
}

const char *qs_kvm_stats_file_id(const qs_kvm_stats_file *f)
{
    return f->id;
}

int qs_kvm_stats_file_fd(const qs_kvm_stats_file *f)
{
    return f->fd;
}

size_t qs_kvm_stats_file_count(const qs_kvm_stats_file *f)
{
    return f->n;
}

const qs_schema_value *qs_kvm_stats_file_schema(const qs_kvm_stats_file *f)
{
    return f->schema;
}

const uint32_t *qs_kvm_stats_file_offsets(const qs_kvm_stats_file *f)
{
    return f->offsets;
}

size_t qs_kvm_stats_file_data_words(const qs_kvm_stats_file *f)
{
    return f->data_words;
}

void qs_kvm_stats_file_describe(qs_kvm_stats_file *f,
                                const char *(*describe)(const char *name))
{
    for (size_t i = 0; i < f->n; i++) {
        f->schema[i].description = describe(f->schema[i].name);
    }
}

bool qs_kvm_stats_file_read(const qs_kvm_stats_file *f, uint64_t *data,
                            qs_error **errp)
{
    if (f->data_words == 0) {
        return true;
    }
    return read_exact(f->fd, data, f->data_words * 8, f->data_offset, "data",
                      errp);
}
