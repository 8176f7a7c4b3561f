/*
 * util.c - allocation, errors and the growable buffer every module builds
 * its output in.  Allocation failure aborts: a statistics daemon that cannot
 * get a few bytes has nothing sensible left to report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qs-common.h"

static void *check_alloc(void *p)
{
    if (!p) {
        fputs("qstats: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *qs_malloc(size_t n) { return check_alloc(malloc(n ? n : 1)); }
void *qs_calloc(size_t n, size_t m) { return check_alloc(calloc(n ? n : 1, m ? m : 1)); }
void *qs_realloc(void *p, size_t n) { return check_alloc(realloc(p, n ? n : 1)); }
char *qs_strdup(const char *s) { return check_alloc(strdup(s)); }

double qs_clock_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *qs_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    va_start(ap, fmt);
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    return check_alloc(r < 0 ? NULL : s);
}

/* ---- errors ------------------------------------------------------------ */

void qs_error_vset(qs_error **errp, qs_error_class cls, const char *fmt, va_list ap)
{
    if (!errp || *errp)
        return;
    qs_error *e = qs_malloc(sizeof(*e));
    e->cls = cls;
    if (vasprintf(&e->msg, fmt, ap) < 0)
        check_alloc(NULL);
    *errp = e;
}

void qs_error_set(qs_error **errp, qs_error_class cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qs_error_vset(errp, cls, fmt, ap);
    va_end(ap);
}

void qs_error_free(qs_error *err)
{
    if (err) {
        free(err->msg);
        free(err);
    }
}

const char *qs_error_class_name(qs_error_class cls)
{
    static const char *const names[] = {
        [QS_ERR_GENERIC] = "GenericError",
        [QS_ERR_COMMAND_NOT_FOUND] = "CommandNotFound",
        [QS_ERR_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
        [QS_ERR_DEVICE_NOT_FOUND] = "DeviceNotFound",
        [QS_ERR_KVM_MISSING_CAP] = "KVMMissingCap",
    };
    return (unsigned)cls < sizeof(names) / sizeof(names[0]) ? names[cls] : "GenericError";
}

/* ---- qs_buf ------------------------------------------------------------ */

void qs_buf_init(qs_buf *b) { memset(b, 0, sizeof(*b)); }

void qs_buf_free(qs_buf *b)
{
    size_t limit = b->limit;
    free(b->data);
    qs_buf_init(b);
    b->limit = limit;
}

void qs_buf_reset(qs_buf *b)
{
    b->len = 0;
    b->overflow = false;
    if (b->data)
        b->data[0] = 0;
}

bool qs_buf_reserve(qs_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    if (b->overflow || need < extra || (b->limit && need > b->limit + 1)) {
        b->overflow = true;     /* checked before a byte is spent */
        return false;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (b->limit && cap > b->limit + 1)
        cap = b->limit + 1;
    b->data = qs_realloc(b->data, cap);
    b->cap = cap;
    return true;
}

void qs_buf_trim(qs_buf *b, size_t keep)
{
    if (b->len == 0 && b->cap > keep)
        qs_buf_free(b);
}

void qs_buf_puts(qs_buf *b, const char *s) { qs_buf_append(b, s, strlen(s)); }

void qs_buf_printf(qs_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0 && qs_buf_reserve(b, (size_t)n)) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

/* Hand-written rather than printf: this is the inner loop of query-stats
 * encoding (tens of thousands of numbers per reply at 1024 vCPUs), where
 * snprintf's format parsing dominated a profile.  Two digits per step. */
void qs_buf_put_u64(qs_buf *b, uint64_t v)
{
    static const char pairs[201] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    char tmp[20];
    int i = 20;
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100) * 2;
        v /= 100;
        tmp[--i] = pairs[d + 1];
        tmp[--i] = pairs[d];
    }
    if (v >= 10) {
        tmp[--i] = pairs[v * 2 + 1];
        tmp[--i] = pairs[v * 2];
    } else {
        tmp[--i] = (char)('0' + v);
    }
    qs_buf_append(b, tmp + i, (size_t)(20 - i));
}

void qs_buf_put_i64(qs_buf *b, int64_t v)
{
    if (v < 0) {
        qs_buf_putc(b, '-');
        qs_buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        qs_buf_put_u64(b, (uint64_t)v);
    }
}

char *qs_buf_steal(qs_buf *b)
{
    char *s = b->data ? b->data : qs_strdup("");
    qs_buf_init(b);
    return s;
}
