/*
 * test_kvm_binary_stats.c - the KVM binary-stats file reader
 * (providers/kvm/binary_stats.c) against three kinds of input:
 *
 *   - real stats files captured on a Linux 6.18 host (tests/fixtures), with
 *     the expected decoding in kvm-binary-stats-decoded.json;
 *   - files crafted in a memfd, one per validation rule, each broken in
 *     exactly one way (the fx_* helpers below build them);
 *   - live fds from /dev/kvm when the machine has it.
 *
 * A refused file must name the broken rule and leave the fd open; an
 * accepted one must map every descriptor field and read values in kernel
 * order.  Run under the ASan build so any out-of-bounds read fails loudly.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <linux/kvm.h>

#include "binary_stats.h"

/* ---- crafted files ----------------------------------------------------- */

#define FX_MAX_DESC 8
#define FX_NAME_SIZE 32u

typedef struct fx_desc {
    uint32_t flags;
    int16_t exponent;
    uint16_t size;
    uint32_t offset;
    uint32_t bucket_size;
    const char *name;       /* copied into name[name_size], NUL only if it fits */
} fx_desc;

typedef struct fx_file {
    struct kvm_stats_header h;  /* written as is */
    const char *id;             /* NULL: not written */
    size_t ndesc;               /* descriptors written at h.desc_offset */
    fx_desc d[FX_MAX_DESC];
    uint64_t data[16];
    size_t data_bytes;          /* bytes of data written at h.data_offset */
    off_t file_size;            /* > 0: truncate (or extend) the file to this */
} fx_file;

/* Kernel order: header, id, descriptors, data, each right after the other. */
static void fx_layout(fx_file *fx)
{
    fx->h.id_offset = sizeof(fx->h);
    fx->h.desc_offset = fx->h.id_offset + fx->h.name_size;
    fx->h.data_offset = fx->h.desc_offset +
                        (uint32_t)fx->ndesc * (16 + fx->h.name_size);
    fx->h.num_desc = (uint32_t)fx->ndesc;
}

/*
 * A valid vCPU-like file with one stat of each kind:
 *   0 exits           cumulative                 data[0]
 *   1 halt_wait_ns    cumulative seconds 10^-9   data[1]
 *   2 halt_wait_hist  log2 hist  seconds 10^-9   data[2..5]   = 1 2 3 4
 *   3 dirty_hist      linear hist, bucket 10     data[6..8]   = 5 6 7
 *   4 guest_mode      instant boolean            data[9]
 *   5 mem_mib         instant bytes 2^20         data[10]     = UINT64_MAX
 */
static void fx_default(fx_file *fx)
{
    static const fx_desc d[] = {
        { KVM_STATS_TYPE_CUMULATIVE, 0, 1, 0, 0, "exits" },
        { KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_SECONDS, -9, 1, 8, 0,
          "halt_wait_ns" },
        { KVM_STATS_TYPE_LOG_HIST | KVM_STATS_UNIT_SECONDS, -9, 4, 16, 0,
          "halt_wait_hist" },
        { KVM_STATS_TYPE_LINEAR_HIST, 0, 3, 48, 10, "dirty_hist" },
        { KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_BOOLEAN, 0, 1, 72, 0,
          "guest_mode" },
        { KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_BYTES | KVM_STATS_BASE_POW2,
          20, 1, 80, 0, "mem_mib" },
    };
    static const uint64_t data[] = {
        42, 1000000, 1, 2, 3, 4, 5, 6, 7, 1, UINT64_MAX,
    };

    memset(fx, 0, sizeof(*fx));
    fx->h.name_size = FX_NAME_SIZE;
    fx->id = "kvm-1/vcpu-0";
    fx->ndesc = sizeof(d) / sizeof(d[0]);
    memcpy(fx->d, d, sizeof(d));
    memcpy(fx->data, data, sizeof(data));
    fx->data_bytes = sizeof(data);
    fx_layout(fx);
}

static void fx_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
}

/* name[name_size]: zero-filled, the string copied without its NUL when it
 * does not fit (that is how the no-NUL cases are built). */
static void fx_put_name(int fd, const char *s, uint32_t name_size, off_t off)
{
    char *field = calloc(1, name_size);
    size_t len = strlen(s);

    assert_non_null(field);
    memcpy(field, s, len < name_size ? len : name_size);
    fx_pwrite(fd, field, name_size, off);
    free(field);
}

static int fx_fd(const fx_file *fx)
{
    int fd = memfd_create("kvm-stats-fixture", MFD_CLOEXEC);
    off_t stride = 16 + fx->h.name_size;

    assert_true(fd >= 0);
    fx_pwrite(fd, &fx->h, sizeof(fx->h), 0);
    if (fx->id) {
        fx_put_name(fd, fx->id, fx->h.name_size, fx->h.id_offset);
    }
    for (size_t i = 0; i < fx->ndesc; i++) {
        const fx_desc *d = &fx->d[i];
        struct kvm_stats_desc kd = {
            .flags = d->flags, .exponent = d->exponent, .size = d->size,
            .offset = d->offset, .bucket_size = d->bucket_size,
        };
        off_t off = fx->h.desc_offset + (off_t)i * stride;

        fx_pwrite(fd, &kd, sizeof(kd), off);
        fx_put_name(fd, d->name, fx->h.name_size, off + (off_t)sizeof(kd));
    }
    if (fx->data_bytes) {
        fx_pwrite(fd, fx->data, fx->data_bytes, fx->h.data_offset);
    }
    if (fx->file_size > 0) {
        assert_int_equal(ftruncate(fd, fx->file_size), 0);
    }
    return fd;
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

/* The file must be refused with a message containing `needle`, and the fd
 * must still be open (the caller keeps it on failure). */
static void assert_refused(const fx_file *fx, const char *needle)
{
    int fd = fx_fd(fx);
    qs_error *err = NULL;
    qs_kvm_stats_file *f = qs_kvm_stats_file_open(fd, &err);

    assert_null(f);
    assert_non_null(err);
    if (strncmp(err->msg, "KVM stats: ", 11) != 0 || !strstr(err->msg, needle)) {
        fail_msg("error \"%s\" does not contain \"%s\"", err->msg, needle);
    }
    assert_true(fd_is_open(fd));
    qs_error_free(err);
    close(fd);
}

static qs_kvm_stats_file *open_accepted(const fx_file *fx)
{
    qs_error *err = NULL;
    int fd = fx_fd(fx);
    qs_kvm_stats_file *f = qs_kvm_stats_file_open(fd, &err);

    if (!f) {
        fail_msg("refused: %s", err ? err->msg : "(no error)");
    }
    assert_null(err);
    assert_int_equal(qs_kvm_stats_file_fd(f), fd);
    return f;
}

/* ---- accepted crafted files --------------------------------------------- */

static void test_crafted_file_maps_every_descriptor_field(void **state)
{
    fx_file fx;
    fx_default(&fx);
    qs_kvm_stats_file *f = open_accepted(&fx);
    const qs_schema_value *s = qs_kvm_stats_file_schema(f);
    const uint32_t *off = qs_kvm_stats_file_offsets(f);

    assert_string_equal(qs_kvm_stats_file_id(f), "kvm-1/vcpu-0");
    assert_int_equal(qs_kvm_stats_file_count(f), 6);
    assert_int_equal(qs_kvm_stats_file_data_words(f), 11);

    assert_string_equal(s[0].name, "exits");
    assert_int_equal(s[0].type, QS_TYPE_CUMULATIVE);
    assert_int_equal(s[0].unit, QS_UNIT_NONE);
    assert_int_equal(s[0].base, 0);          /* exponent 0: base omitted */
    assert_int_equal(s[0].size, 1);

    assert_int_equal(s[1].unit, QS_UNIT_SECONDS);
    assert_int_equal(s[1].exponent, -9);
    assert_int_equal(s[1].base, 10);

    assert_string_equal(s[2].name, "halt_wait_hist");
    assert_int_equal(s[2].type, QS_TYPE_LOG2_HIST);
    assert_int_equal(s[2].size, 4);
    assert_int_equal(s[2].bucket_size, 0);

    assert_int_equal(s[3].type, QS_TYPE_LINEAR_HIST);
    assert_int_equal(s[3].bucket_size, 10);
    assert_int_equal(s[3].size, 3);

    assert_int_equal(s[4].type, QS_TYPE_INSTANT);
    assert_int_equal(s[4].unit, QS_UNIT_BOOLEAN);

    assert_int_equal(s[5].unit, QS_UNIT_BYTES);
    assert_int_equal(s[5].base, 2);
    assert_int_equal(s[5].exponent, 20);

    const uint32_t want_off[] = { 0, 1, 2, 6, 9, 10 };
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(off[i], want_off[i]);
    }
    qs_kvm_stats_file_close(f);
}

static void test_read_returns_values_in_kernel_bucket_order(void **state)
{
    fx_file fx;
    fx_default(&fx);
    qs_kvm_stats_file *f = open_accepted(&fx);
    const uint32_t *off = qs_kvm_stats_file_offsets(f);
    uint64_t data[11];
    qs_error *err = NULL;

    memset(data, 0xa5, sizeof(data));
    assert_true(qs_kvm_stats_file_read(f, data, &err));
    assert_null(err);
    assert_int_equal(data[off[0]], 42);
    for (uint64_t k = 0; k < 4; k++) {       /* bucket 0 first, as the kernel */
        assert_int_equal(data[off[2] + k], k + 1);
    }
    for (uint64_t k = 0; k < 3; k++) {
        assert_int_equal(data[off[3] + k], k + 5);
    }
    assert_true(data[off[5]] == UINT64_MAX);
    qs_kvm_stats_file_close(f);
}

static void test_read_rereads_changed_data(void **state)
{
    fx_file fx;
    fx_default(&fx);
    qs_kvm_stats_file *f = open_accepted(&fx);
    int fd = qs_kvm_stats_file_fd(f);
    uint64_t data[11], v = 43;

    fx_pwrite(fd, &v, sizeof(v), fx.h.data_offset);
    assert_true(qs_kvm_stats_file_read(f, data, NULL));
    assert_int_equal(data[0], 43);
    qs_kvm_stats_file_close(f);
}

static void test_read_reports_short_data(void **state)
{
    fx_file fx;
    fx_default(&fx);
    qs_kvm_stats_file *f = open_accepted(&fx);
    uint64_t data[11];
    qs_error *err = NULL;

    assert_int_equal(ftruncate(qs_kvm_stats_file_fd(f), fx.h.data_offset + 40), 0);
    assert_false(qs_kvm_stats_file_read(f, data, &err));
    assert_non_null(err);
    assert_string_equal(err->msg,
                        "KVM stats: failed to read data: expected 88 actual 40");
    qs_error_free(err);
    qs_kvm_stats_file_close(f);
}

static void test_close_closes_the_fd(void **state)
{
    fx_file fx;
    fx_default(&fx);
    qs_kvm_stats_file *f = open_accepted(&fx);
    int fd = qs_kvm_stats_file_fd(f);

    qs_kvm_stats_file_close(f);
    assert_false(fd_is_open(fd));
}

/* The header's flags are reserved for extensions the kernel may add; QEMU
 * and the selftest ignore them, and so do we. */
static void test_header_flags_are_ignored(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.h.flags = 0x80000001;
    qs_kvm_stats_file_close(open_accepted(&fx));
}

static void test_unknown_type_and_unit_are_kept(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[0].flags = 5;                                   /* type 5 */
    fx.d[0].bucket_size = 3;             /* no bucket rule for unknown types */
    fx.d[1].flags = KVM_STATS_TYPE_CUMULATIVE | (7 << KVM_STATS_UNIT_SHIFT);
    fx.d[1].exponent = -3;                /* no sign rule for unknown units */
    fx.d[4].flags = 0xff000000 | KVM_STATS_TYPE_PEAK;    /* unknown high bits */
    qs_kvm_stats_file *f = open_accepted(&fx);
    const qs_schema_value *s = qs_kvm_stats_file_schema(f);

    assert_int_equal(qs_kvm_stats_file_count(f), 6);
    assert_string_equal(s[0].name, "exits");
    assert_int_equal(s[0].type, QS_TYPE_INSTANT);
    assert_int_equal(s[0].bucket_size, 0);
    assert_string_equal(s[1].name, "halt_wait_ns");
    assert_int_equal(s[1].unit, QS_UNIT_NONE);
    assert_int_equal(s[1].exponent, -3);
    assert_int_equal(s[1].base, 10);
    assert_int_equal(s[4].type, QS_TYPE_PEAK);
    qs_kvm_stats_file_close(f);
}

static void test_blocks_in_non_default_order_are_accepted(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.h.data_offset = 24;                               /* data first */
    fx.h.desc_offset = 24 + 88 + 8;                      /* a gap, then descs */
    fx.h.id_offset = fx.h.desc_offset + 6 * (16 + FX_NAME_SIZE);   /* id last */
    qs_kvm_stats_file *f = open_accepted(&fx);
    uint64_t data[11];

    assert_string_equal(qs_kvm_stats_file_id(f), "kvm-1/vcpu-0");
    assert_int_equal(qs_kvm_stats_file_count(f), 6);
    assert_true(qs_kvm_stats_file_read(f, data, NULL));
    assert_int_equal(data[0], 42);
    assert_true(data[10] == UINT64_MAX);
    qs_kvm_stats_file_close(f);
}

static void test_num_desc_zero_gives_no_stats(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.ndesc = 0;
    fx.data_bytes = 0;
    fx_layout(&fx);
    qs_kvm_stats_file *f = open_accepted(&fx);

    assert_int_equal(qs_kvm_stats_file_count(f), 0);
    assert_int_equal(qs_kvm_stats_file_data_words(f), 0);
    assert_true(qs_kvm_stats_file_read(f, NULL, NULL));
    qs_kvm_stats_file_close(f);
}

static void test_gaps_in_data_block_are_accepted(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[5].offset = 120;               /* words 11..14 belong to nobody */
    fx.data_bytes = 128;
    qs_kvm_stats_file *f = open_accepted(&fx);

    assert_int_equal(qs_kvm_stats_file_data_words(f), 16);
    assert_int_equal(qs_kvm_stats_file_offsets(f)[5], 15);
    qs_kvm_stats_file_close(f);
}

/* ---- header and id ------------------------------------------------------ */

static void test_truncated_header_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.file_size = 10;
    assert_refused(&fx, "KVM stats: failed to read stats header: "
                        "expected 24 actual 10");
}

static void test_name_size_zero_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.h.name_size = 0;
    fx.id = NULL;             /* no name fields to write */
    fx.ndesc = 0;
    assert_refused(&fx, "KVM stats: name size 0 is out of range (1..256)");
}

static void test_huge_name_size_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.h.name_size = 0xffffffff;
    fx.id = NULL;             /* no name fields to write */
    fx.ndesc = 0;
    assert_refused(&fx, "KVM stats: name size 4294967295 is out of range");
}

static void test_huge_num_desc_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.h.num_desc = 0xffffffff;     /* num_desc * 48 would overflow 32 bits */
    assert_refused(&fx, "KVM stats: too many descriptors: 4294967295 "
                        "(limit 4096)");
}

static void test_oversized_descriptor_block_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.h.name_size = 256;            /* both at their caps: 4096 x 272 bytes */
    fx.h.num_desc = 4096;
    fx.id = NULL;
    fx.ndesc = 0;
    fx.data_bytes = 0;
    assert_refused(&fx, "KVM stats: descriptor block of 1114112 bytes is "
                        "too large (limit 1048576)");
}

static void test_desc_offset_zero_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.h.desc_offset = 0;
    fx.ndesc = 0;
    assert_refused(&fx, "KVM stats: descriptor offset 0 is inside the "
                        "24-byte header");
}

static void test_data_offset_inside_header_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.h.data_offset = 16;
    fx.data_bytes = 0;
    assert_refused(&fx, "KVM stats: data offset 16 is inside the 24-byte header");
}

static void test_id_offset_inside_header_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.h.id_offset = 8;
    fx.id = NULL;
    assert_refused(&fx, "KVM stats: id offset 8 is inside the 24-byte header");
}

static void test_id_past_end_of_file_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.h.id_offset = 100000;
    fx.id = NULL;
    assert_refused(&fx, "KVM stats: failed to read id: expected 32 actual 0");
}

static void test_id_without_nul_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.id = "kvm-1234567890123456789012345678901234567890";
    assert_refused(&fx, "KVM stats: id is not NUL-terminated within 32 bytes");
}

static void test_id_not_starting_with_kvm_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.id = "qemu-1";
    assert_refused(&fx, "KVM stats: id \"qemu-1\" does not start with \"kvm\"");
}

/* ---- layout -------------------------------------------------------------- */

static void test_truncated_descriptor_block_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.data_bytes = 0;
    fx.file_size = fx.h.desc_offset + 50;
    assert_refused(&fx, "KVM stats: failed to read stats descriptors: "
                        "expected 288 actual 50");
}

static void test_descriptor_block_overlapping_data_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.h.data_offset = fx.h.desc_offset + 96;     /* inside descriptor 2 */
    fx.data_bytes = 0;
    fx.file_size = 4096;
    assert_refused(&fx, "KVM stats: descriptor block [56, 344) overlaps "
                        "data block [152, 240)");
}

static void test_id_overlapping_descriptors_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.h.desc_offset = fx.h.id_offset + 16;       /* the id's last 16 bytes */
    fx.h.data_offset = fx.h.desc_offset + 6 * (16 + FX_NAME_SIZE);
    assert_refused(&fx, "KVM stats: id block [24, 56) overlaps "
                        "descriptor block [40, 328)");
}

static void test_truncated_data_block_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.file_size = fx.h.data_offset + 20;
    assert_refused(&fx, "KVM stats: descriptor 5 (mem_mib): values end at "
                        "byte 88 of the data block, but only 20 bytes can be "
                        "read at offset 344");
}

static void test_descriptor_past_data_end_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[1].offset = 800;            /* the file's data block is 88 bytes */
    assert_refused(&fx, "KVM stats: descriptor 1 (halt_wait_ns): values end "
                        "at byte 808 of the data block, but only 88 bytes");
}

static void test_oversized_data_block_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[0].offset = 0xfffffff8;
    assert_refused(&fx, "KVM stats: data block of 4294967296 bytes is too "
                        "large (limit 1048576)");
}

static void test_data_smaller_than_a_word_per_descriptor_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    for (size_t i = 0; i < fx.ndesc; i++) {
        fx.d[i].offset = 0;
        fx.d[i].size = 1;
    }
    assert_refused(&fx, "KVM stats: data block of 8 bytes is smaller than "
                        "8 bytes per descriptor (6)");
}

/* ---- descriptors --------------------------------------------------------- */

static void test_name_without_nul_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[1].name = "a_name_that_is_longer_than_32_bytes_in_all";
    assert_refused(&fx, "KVM stats: descriptor 1: name is not NUL-terminated "
                        "within 32 bytes");
}

static void test_empty_name_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[2].name = "";
    assert_refused(&fx, "KVM stats: descriptor 2: name is empty");
}

static void test_duplicate_name_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[4].name = "exits";
    assert_refused(&fx, "KVM stats: descriptor 4 (exits): duplicate name "
                        "(also descriptor 0)");
}

static void test_unknown_base_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[5].flags = KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_BYTES |
                    (2 << KVM_STATS_BASE_SHIFT);
    assert_refused(&fx, "KVM stats: descriptor 5 (mem_mib): unknown base 2");
}

static void test_negative_exponent_for_counts_bytes_cycles_is_refused(void **state)
{
    static const struct { uint32_t unit; const char *msg; } cases[] = {
        { KVM_STATS_UNIT_NONE,
          "KVM stats: descriptor 0 (exits): exponent -1 must be >= 0 for unit none" },
        { KVM_STATS_UNIT_BYTES,
          "KVM stats: descriptor 0 (exits): exponent -1 must be >= 0 for unit bytes" },
        { KVM_STATS_UNIT_CYCLES,
          "KVM stats: descriptor 0 (exits): exponent -1 must be >= 0 for unit cycles" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fx_file fx;
        fx_default(&fx);
        fx.d[0].flags = KVM_STATS_TYPE_CUMULATIVE | cases[i].unit;
        fx.d[0].exponent = -1;
        assert_refused(&fx, cases[i].msg);
    }
}

static void test_positive_exponent_for_seconds_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[1].exponent = 3;
    assert_refused(&fx, "KVM stats: descriptor 1 (halt_wait_ns): exponent 3 "
                        "must be <= 0 for unit seconds");
}

static void test_nonzero_exponent_for_boolean_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[4].exponent = 1;
    assert_refused(&fx, "KVM stats: descriptor 4 (guest_mode): exponent 1 "
                        "must be 0 for unit boolean");
}

static void test_size_zero_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[0].size = 0;
    assert_refused(&fx, "KVM stats: descriptor 0 (exits): size is 0");
}

static void test_linear_histogram_without_bucket_size_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[3].bucket_size = 0;
    assert_refused(&fx, "KVM stats: descriptor 3 (dirty_hist): bucket_size "
                        "is 0 for a linear histogram");
}

static void test_bucket_size_on_other_type_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[2].bucket_size = 7;
    assert_refused(&fx, "KVM stats: descriptor 2 (halt_wait_hist): "
                        "bucket_size 7 set on a stat that is not a linear "
                        "histogram");
}

static void test_unaligned_offset_is_refused(void **state)
{
    fx_file fx;
    fx_default(&fx);
    fx.d[1].offset = 12;
    assert_refused(&fx, "KVM stats: descriptor 1 (halt_wait_ns): offset 12 "
                        "is not a multiple of 8");
}

/* ---- real files captured on a Linux 6.18 host ---------------------------- */

static qs_stat_type fixture_type(const char *s)
{
    static const char *const names[] = {
        [QS_TYPE_CUMULATIVE] = "cumulative", [QS_TYPE_INSTANT] = "instant",
        [QS_TYPE_PEAK] = "peak", [QS_TYPE_LINEAR_HIST] = "linear-hist",
        [QS_TYPE_LOG2_HIST] = "log-hist",
    };
    for (int i = 0; i < QS_TYPE__MAX; i++) {
        if (strcmp(s, names[i]) == 0) {
            return (qs_stat_type)i;
        }
    }
    fail_msg("unknown fixture type %s", s);
    return QS_TYPE__MAX;
}

static qs_unit fixture_unit(const char *s)
{
    static const char *const names[] = {
        [QS_UNIT_NONE] = "none", [QS_UNIT_BYTES] = "bytes",
        [QS_UNIT_SECONDS] = "seconds", [QS_UNIT_CYCLES] = "cycles",
        [QS_UNIT_BOOLEAN] = "boolean",
    };
    for (int i = 0; i < QS_UNIT__MAX; i++) {
        if (strcmp(s, names[i]) == 0) {
            return (qs_unit)i;
        }
    }
    fail_msg("unknown fixture unit %s", s);
    return QS_UNIT__MAX;
}

static json_t *fixture_fd_entry(json_t *root, const char *label)
{
    json_t *fds = json_object_get(root, "fds"), *e;
    size_t i;

    json_array_foreach(fds, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "label")), label) == 0) {
            return e;
        }
    }
    fail_msg("no fixture entry %s", label);
    return NULL;
}

static int64_t jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) {
        fail_msg("fixture member %s is not an integer", key);
    }
    return json_integer_value(v);
}

static void check_fixture_stat(json_t *js, const qs_schema_value *s,
                               const uint64_t *values)
{
    json_t *jv = json_object_get(js, "value");
    int16_t exponent = (int16_t)jint(js, "exponent");

    assert_string_equal(s->name, json_string_value(json_object_get(js, "name")));
    assert_int_equal(s->type, fixture_type(json_string_value(json_object_get(js, "type"))));
    assert_int_equal(s->unit, fixture_unit(json_string_value(json_object_get(js, "unit"))));
    assert_int_equal(s->exponent, exponent);
    /* The fixture decodes the raw base bit; QMP omits base at exponent 0. */
    assert_int_equal(s->base, exponent ? jint(js, "base") : 0);
    assert_int_equal(s->size, jint(js, "size"));
    assert_int_equal(s->bucket_size, jint(js, "bucket_size"));
    if (json_is_array(jv)) {
        assert_int_equal(json_array_size(jv), s->size);
        for (size_t k = 0; k < s->size; k++) {
            assert_int_equal(values[k], json_integer_value(json_array_get(jv, k)));
        }
    } else {
        assert_int_equal(s->size, 1);
        assert_int_equal(values[0], json_integer_value(jv));
    }
}

static void check_fixture(const char *label, const char *file, size_t want_n)
{
    const char *dir = getenv("QS_FIXTURES");
    char path[4096];
    json_error_t jerr;
    qs_error *err = NULL;
    struct stat st;

    assert_non_null(dir);
    snprintf(path, sizeof(path), "%s/kvm-binary-stats-decoded.json", dir);
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        fail_msg("%s: %s", path, jerr.text);
    }
    json_t *e = fixture_fd_entry(root, label);
    json_t *jstats = json_object_get(e, "stats");
    json_t *jh = json_object_get(e, "header");

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    qs_kvm_stats_file *f = qs_kvm_stats_file_open(fd, &err);
    if (!f) {
        fail_msg("%s refused: %s", file, err->msg);
    }

    size_t n = qs_kvm_stats_file_count(f);
    const qs_schema_value *s = qs_kvm_stats_file_schema(f);
    const uint32_t *off = qs_kvm_stats_file_offsets(f);
    size_t words = qs_kvm_stats_file_data_words(f);
    uint64_t *data = calloc(words, sizeof(*data));

    assert_string_equal(qs_kvm_stats_file_id(f),
                        json_string_value(json_object_get(e, "id")));
    assert_int_equal(n, want_n);
    assert_int_equal(n, json_array_size(jstats));
    /* The kernel puts the data block at the end of the file. */
    assert_int_equal(words * 8, st.st_size - jint(jh, "data_offset"));
    assert_true(qs_kvm_stats_file_read(f, data, &err));
    for (size_t i = 0; i < n; i++) {
        json_t *js = json_array_get(jstats, i);
        assert_int_equal((uint64_t)off[i] * 8, jint(js, "offset"));
        assert_true(off[i] + s[i].size <= words);
        check_fixture_stat(js, &s[i], data + off[i]);
    }
    free(data);
    qs_kvm_stats_file_close(f);
    json_decref(root);
}

static void test_fixture_vm_file_decodes_as_captured(void **state)
{
    check_fixture("vm", "recorded-linux-6.18/vm.bin", 16);
}

static void test_fixture_vcpu0_file_decodes_as_captured(void **state)
{
    check_fixture("vcpu0", "recorded-linux-6.18/vcpu0.bin", 47);
}

static void test_fixture_vcpu1_file_decodes_as_captured(void **state)
{
    check_fixture("vcpu1", "recorded-linux-6.18/vcpu1.bin", 47);
}

/* ---- live /dev/kvm ------------------------------------------------------- */

static int kvm_ioctl(int fd, unsigned long req, unsigned long arg)
{
    int r;
    do {
        r = ioctl(fd, req, arg);
    } while (r < 0 && errno == EINTR);
    return r;
}

static const qs_schema_value *find_stat(const qs_kvm_stats_file *f,
                                        const char *name)
{
    const qs_schema_value *s = qs_kvm_stats_file_schema(f);
    for (size_t i = 0; i < qs_kvm_stats_file_count(f); i++) {
        if (strcmp(s[i].name, name) == 0) {
            return &s[i];
        }
    }
    return NULL;
}

static qs_kvm_stats_file *open_live(int fd, const char *want_id)
{
    qs_error *err = NULL;
    qs_kvm_stats_file *f;
    uint64_t *data;

    assert_true(fd >= 0);
    f = qs_kvm_stats_file_open(fd, &err);
    if (!f) {
        fail_msg("live stats fd refused: %s", err->msg);
    }
    assert_string_equal(qs_kvm_stats_file_id(f), want_id);
    assert_true(qs_kvm_stats_file_count(f) > 0);
    data = calloc(qs_kvm_stats_file_data_words(f), sizeof(*data));
    assert_true(qs_kvm_stats_file_read(f, data, NULL));
    free(data);
    return f;
}

static void test_live_kvm_stats_files_are_accepted(void **state)
{
    char id[64];
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);

    if (kvm < 0) {
        print_message("skipped: /dev/kvm unavailable: %s\n", strerror(errno));
        skip();
    }
    if (kvm_ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD) <= 0) {
        close(kvm);
        print_message("skipped: /dev/kvm lacks KVM_CAP_BINARY_STATS_FD\n");
        skip();
    }
    int vm = kvm_ioctl(kvm, KVM_CREATE_VM, 0);
    assert_true(vm >= 0);
    int vcpu = kvm_ioctl(vm, KVM_CREATE_VCPU, 0);
    assert_true(vcpu >= 0);

    snprintf(id, sizeof(id), "kvm-%d", (int)getpid());
    qs_kvm_stats_file *vf = open_live(kvm_ioctl(vm, KVM_GET_STATS_FD, 0), id);
    snprintf(id, sizeof(id), "kvm-%d/vcpu-0", (int)getpid());
    qs_kvm_stats_file *cf = open_live(kvm_ioctl(vcpu, KVM_GET_STATS_FD, 0), id);

    const qs_schema_value *exits = find_stat(cf, "exits");
    assert_non_null(exits);
    assert_int_equal(exits->type, QS_TYPE_CUMULATIVE);
    assert_int_equal(exits->size, 1);
    assert_null(find_stat(vf, "exits"));

    qs_kvm_stats_file_close(cf);
    qs_kvm_stats_file_close(vf);
    close(vcpu);
    close(vm);
    close(kvm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crafted_file_maps_every_descriptor_field),
        cmocka_unit_test(test_read_returns_values_in_kernel_bucket_order),
        cmocka_unit_test(test_read_rereads_changed_data),
        cmocka_unit_test(test_read_reports_short_data),
        cmocka_unit_test(test_close_closes_the_fd),
        cmocka_unit_test(test_header_flags_are_ignored),
        cmocka_unit_test(test_unknown_type_and_unit_are_kept),
        cmocka_unit_test(test_blocks_in_non_default_order_are_accepted),
        cmocka_unit_test(test_num_desc_zero_gives_no_stats),
        cmocka_unit_test(test_gaps_in_data_block_are_accepted),
        cmocka_unit_test(test_truncated_header_is_refused),
        cmocka_unit_test(test_name_size_zero_is_refused),
        cmocka_unit_test(test_huge_name_size_is_refused),
        cmocka_unit_test(test_huge_num_desc_is_refused),
        cmocka_unit_test(test_oversized_descriptor_block_is_refused),
        cmocka_unit_test(test_desc_offset_zero_is_refused),
        cmocka_unit_test(test_data_offset_inside_header_is_refused),
        cmocka_unit_test(test_id_offset_inside_header_is_refused),
        cmocka_unit_test(test_id_past_end_of_file_is_refused),
        cmocka_unit_test(test_id_without_nul_is_refused),
        cmocka_unit_test(test_id_not_starting_with_kvm_is_refused),
        cmocka_unit_test(test_truncated_descriptor_block_is_refused),
        cmocka_unit_test(test_descriptor_block_overlapping_data_is_refused),
        cmocka_unit_test(test_id_overlapping_descriptors_is_refused),
        cmocka_unit_test(test_truncated_data_block_is_refused),
        cmocka_unit_test(test_descriptor_past_data_end_is_refused),
        cmocka_unit_test(test_oversized_data_block_is_refused),
        cmocka_unit_test(test_data_smaller_than_a_word_per_descriptor_is_refused),
        cmocka_unit_test(test_name_without_nul_is_refused),
        cmocka_unit_test(test_empty_name_is_refused),
        cmocka_unit_test(test_duplicate_name_is_refused),
        cmocka_unit_test(test_unknown_base_is_refused),
        cmocka_unit_test(test_negative_exponent_for_counts_bytes_cycles_is_refused),
        cmocka_unit_test(test_positive_exponent_for_seconds_is_refused),
        cmocka_unit_test(test_nonzero_exponent_for_boolean_is_refused),
        cmocka_unit_test(test_size_zero_is_refused),
        cmocka_unit_test(test_linear_histogram_without_bucket_size_is_refused),
        cmocka_unit_test(test_bucket_size_on_other_type_is_refused),
        cmocka_unit_test(test_unaligned_offset_is_refused),
        cmocka_unit_test(test_fixture_vm_file_decodes_as_captured),
        cmocka_unit_test(test_fixture_vcpu0_file_decodes_as_captured),
        cmocka_unit_test(test_fixture_vcpu1_file_decodes_as_captured),
        cmocka_unit_test(test_live_kvm_stats_files_are_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
