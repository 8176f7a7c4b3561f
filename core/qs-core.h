/*
 * qs-core.h - the qstats core: errors, the stats model, the provider
 * registry and the query-stats filter semantics.
 *
 * Data flows one way:  provider -> registry -> formatter -> transport.
 *
 *   provider        registers a stats callback and a schema callback
 *                   (qs_registry_add) with an opaque pointer.
 *   registry        runs them for a filter (qs_registry_query_stats) with
 *                   exactly QEMU's semantics (absent vs empty lists,
 *                   duplicates answer twice, unknown names give nothing).
 *   formatter       (qmp/, hmp/, exporter/) walks the qs_results and
 *                   qs_schemas the registry filled.
 *
 * The core does no I/O and knows nothing of sockets, transports or KVM.
 * Its one piece of JSON is a writer of text into memory (qs_jw: QEMU's
 * separators, ASCII, exact u64) that every formatter shares; parsing JSON
 * is the QMP module's business.  The design is in docs/design.md, the
 * embedding contract of each function in docs/embedding.md.
 *
 * Memory model of a query, chosen so that the steady-state query path does
 * no heap allocation per stat: a qs_results is reused across queries; its
 * arrays only grow.  Values live in one u64 arena; a provider reserves a
 * block (qs_results_reserve), fills it (e.g. with a single pread) and then
 * adds stats that point into it by offset.  Names, schema entries and
 * qom-paths are borrowed from the provider and must stay valid until the
 * results are reset; since everything runs on one event loop, a provider
 * only has to not free them during a query.
 */
#ifndef QS_CORE_H
#define QS_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QS_VERSION_MAJOR 0
#define QS_VERSION_MINOR 1
#define QS_VERSION_MICRO 0
#define QS_VERSION_STRING "0.1.0"

/* What libqstats.so exports: the functions of the public headers, and
 * nothing else (the library is built with hidden visibility; the list is
 * pinned in debian/libqstats0.symbols). */
#define QS_EXPORT __attribute__((visibility("default")))

/* ---- errors: the message is the user-visible text -------------------- */

typedef enum qs_error_class {
    QS_ERR_GENERIC,
    QS_ERR_COMMAND_NOT_FOUND,
    QS_ERR_DEVICE_NOT_ACTIVE,
    QS_ERR_DEVICE_NOT_FOUND,
    QS_ERR_KVM_MISSING_CAP,
} qs_error_class;

typedef struct qs_error {
    qs_error_class cls;
    char *msg;
} qs_error;

/* Sets *errp (if errp is non-NULL and *errp is still NULL: first error
 * wins, as QEMU's error_setg would assert otherwise). */
QS_EXPORT void qs_error_set(qs_error **errp, qs_error_class cls, const char *fmt, ...)
              __attribute__((format(printf, 3, 4)));
#define qs_error_setg(errp, ...) qs_error_set((errp), QS_ERR_GENERIC, __VA_ARGS__)
QS_EXPORT void qs_error_vset(qs_error **errp, qs_error_class cls, const char *fmt, va_list ap);
QS_EXPORT void qs_error_free(qs_error *err);
/* QMP class name: "GenericError", "CommandNotFound", ... */
QS_EXPORT const char *qs_error_class_name(qs_error_class cls);

/* ---- enumerations (QAPI spelling via the *_name functions) ------------ */

typedef enum qs_stat_type {
    QS_TYPE_CUMULATIVE,
    QS_TYPE_INSTANT,
    QS_TYPE_PEAK,
    QS_TYPE_LINEAR_HIST,
    QS_TYPE_LOG2_HIST,
    QS_TYPE__MAX
} qs_stat_type;

typedef enum qs_unit {
    QS_UNIT_NONE,       /* no "unit" member */
    QS_UNIT_BYTES,
    QS_UNIT_SECONDS,
    QS_UNIT_CYCLES,
    QS_UNIT_BOOLEAN,
    QS_UNIT__MAX
} qs_unit;

typedef enum qs_target {
    QS_TARGET_VM,
    QS_TARGET_VCPU,
    QS_TARGET_CRYPTODEV,
    QS_TARGET__MAX
} qs_target;

/* "cumulative", "log2-histogram"; qs_unit_name is NULL for QS_UNIT_NONE. */
QS_EXPORT const char *qs_stat_type_name(qs_stat_type t);
QS_EXPORT const char *qs_unit_name(qs_unit u);
QS_EXPORT const char *qs_target_name(qs_target t);
/* Exact, case-sensitive lookups; return -1 when unknown. */
QS_EXPORT int qs_stat_type_lookup(const char *s);
QS_EXPORT int qs_unit_lookup(const char *s);
QS_EXPORT int qs_target_lookup(const char *s);

/* Providers are named (QAPI StatsProvider): QEMU's "kvm" and "cryptodev",
 * qstats' "balloon" and "sched", and any name a VMM registers.  A name is
 * 1 to QS_PROVIDER_NAME_MAX characters of [a-z0-9_-], starting with a
 * letter (so that it is a QAPI enum value and a metric name part). */
#define QS_PROVIDER_NAME_MAX 63
QS_EXPORT bool qs_provider_name_valid(const char *name);

/* ---- schema model ------------------------------------------------------ */

/* One statistic's metadata.  `size` is the number of u64 values it has
 * (1 for scalars, the bucket count for histograms).  base is 0 when absent
 * (QMP omits it when exponent == 0). */
typedef struct qs_schema_value {
    const char *name;
    qs_stat_type type;
    qs_unit unit;
    int8_t base;
    int16_t exponent;
    uint32_t bucket_size;   /* linear histograms only */
    uint32_t size;
    /* One sentence for people (metrics # HELP), or NULL.  Not part of QMP:
     * QEMU's StatsSchemaValue has no such member. */
    const char *description;
} qs_schema_value;

/* How a value of this schema entry is represented (StatsValue alternate). */
typedef enum qs_value_kind {
    QS_VALUE_SCALAR,
    QS_VALUE_BOOLEAN,
    QS_VALUE_LIST,
} qs_value_kind;

QS_EXPORT qs_value_kind qs_schema_value_kind(const qs_schema_value *sv);

/* raw * base^exponent: a value in the stat's unit to the base unit (seconds,
 * bytes).  A negative exponent divides by the exact power, so 1 ns is
 * exactly 1e-9; an absent base counts as 10. */
QS_EXPORT double qs_schema_value_scale(const qs_schema_value *sv, double raw);
/* Raw bounds of bucket i (0-based) of a histogram, by the KVM rules: log2
 * bucket 0 is [0,1), bucket i is [2^(i-1), 2^i); linear bucket i is
 * [bucket_size*i, bucket_size*(i+1)); the last bucket (size-1) is open:
 * its upper bound is +inf.  Every formatter (HMP -b, metrics, top) uses
 * these, so they cannot disagree. */
QS_EXPORT double qs_schema_bucket_lower(const qs_schema_value *sv, uint32_t i);
QS_EXPORT double qs_schema_bucket_upper(const qs_schema_value *sv, uint32_t i);

/* Whether two entries describe the same statistic: name, type, unit,
 * base, exponent, size and bucket size (not the description). */
QS_EXPORT bool qs_schema_value_equal(const qs_schema_value *a, const qs_schema_value *b);
/* Whether the entry is a histogram (linear or log2): a list of buckets. */
QS_EXPORT bool qs_schema_is_histogram(const qs_schema_value *sv);

/* How people read a quantity of a unit: steps of base units, smallest
 * first, ending with { 0, NULL }: seconds ps ns us ms s, bytes B KiB ... EiB,
 * cycles cycles Kcycles ... Pcycles.  NULL for unit-less and boolean stats.
 * HMP (-b bucket bounds) and top format values with the same steps. */
typedef struct qs_unit_step {
    double factor;          /* base units per step unit: 1e-9 for "ns" */
    const char *suffix;
} qs_unit_step;
QS_EXPORT const qs_unit_step *qs_unit_steps(qs_unit u);
/* The largest step whose factor does not exceed |v| (the first one for
 * smaller values); the comparison forgives rounding, so that 1000 ns
 * (0.999999...e-6 s) reads as 1 us.  NULL as for qs_unit_steps. */
QS_EXPORT const qs_unit_step *qs_unit_step_for(qs_unit u, double v);

typedef struct qs_schema {
    const char *provider;             /* borrowed from the provider */
    qs_target target;
    size_t n;
    const qs_schema_value *stats;     /* borrowed from the provider */
} qs_schema;

typedef struct qs_schemas {
    qs_schema *v;
    size_t n, cap;
} qs_schemas;

QS_EXPORT void qs_schemas_init(qs_schemas *s);
QS_EXPORT void qs_schemas_reset(qs_schemas *s);
QS_EXPORT void qs_schemas_destroy(qs_schemas *s);
QS_EXPORT void qs_schemas_add(qs_schemas *s, const char *provider, qs_target t,
                              const qs_schema_value *stats, size_t n);
/* First schema for (provider, target), or NULL. */
QS_EXPORT const qs_schema *qs_schemas_find(const qs_schemas *s, const char *provider,
                                           qs_target t);

/* ---- results ----------------------------------------------------------- */

typedef struct qs_stat {
    const qs_schema_value *desc;  /* name, kind and size come from here */
    size_t off;                   /* index of the first value in the arena */
} qs_stat;

typedef struct qs_result {
    const char *provider;         /* borrowed from the provider */
    const char *qom_path;         /* NULL: member omitted (target vm) */
    size_t first, count;          /* range in qs_results.stats */
} qs_result;

/* What a query may hold: its results' arrays are budgeted in bytes, and
 * growth past the budget is refused before anything is allocated (the
 * query then fails as too large). */
typedef struct qs_results {
    qs_result *res;
    size_t nres, cap_res;
    qs_stat *stats;
    size_t nstats, cap_stats;
    uint64_t *arena;
    size_t narena, cap_arena;
    size_t limit;             /* bytes of the three arrays; 0: no limit */
    bool overflow;            /* a growth was refused since the last reset */
} qs_results;

QS_EXPORT void qs_results_init(qs_results *r);
QS_EXPORT void qs_results_reset(qs_results *r);      /* keeps the capacity */
/* Frees the arrays of empty results whose capacity grew above keep bytes. */
QS_EXPORT void qs_results_trim(qs_results *r, size_t keep);
QS_EXPORT void qs_results_destroy(qs_results *r);
/* Reserves n u64 values; returns their arena offset, or QS_RESULTS_FULL
 * when the budget would be exceeded (the provider then stops and returns
 * true: the registry fails the query).  The pointer to the arena
 * (qs_results_values) is only valid until the next reserve. */
#define QS_RESULTS_FULL ((size_t)-1)
QS_EXPORT size_t qs_results_reserve(qs_results *r, size_t n);
static inline uint64_t *qs_results_values(const qs_results *r, size_t off)
{
    return r->arena + off;
}
/* Starts a result; stats added afterwards belong to it. */
QS_EXPORT void qs_results_begin(qs_results *r, const char *provider, const char *qom_path);
QS_EXPORT void qs_results_add(qs_results *r, const qs_schema_value *desc, size_t off);
/* Ends the current result; an empty one is dropped when drop_empty. */
QS_EXPORT void qs_results_end(qs_results *r, bool drop_empty);
/* Drops every result from index `nres` on (used when a provider fails). */
QS_EXPORT void qs_results_truncate(qs_results *r, size_t nres);

/* ---- filters ----------------------------------------------------------- */

/* A list of strings; a NULL qs_strlist pointer means "no filter".  The
 * registry sorts long lists once per query (sorted = true) so that lookups
 * stay cheap however many names a request carries. */
typedef struct qs_strlist {
    size_t n;
    const char *const *v;
    bool sorted;
} qs_strlist;

/* true when l is NULL or contains s exactly (QEMU's apply_str_list_filter) */
QS_EXPORT bool qs_strlist_match(const qs_strlist *l, const char *s);

typedef struct qs_stats_request {
    const char *provider;
    bool has_names;
    qs_strlist names;
} qs_stats_request;

typedef struct qs_filter {
    qs_target target;
    bool has_providers;
    size_t nproviders;
    const qs_stats_request *providers;
    bool has_vcpus;                   /* only meaningful for target vcpu */
    qs_strlist vcpus;
} qs_filter;

/* ---- registry ---------------------------------------------------------- */

/* Appends the provider's results for `target` to `out`.  names/targets
 * NULL mean all; a provider ignores targets it does not serve.  Returns
 * false with *errp set on failure. */
typedef bool (*qs_stats_fn)(void *opaque, qs_results *out, qs_target target,
                            const qs_strlist *names, const qs_strlist *targets,
                            qs_error **errp);
/* Appends the provider's schemas (vm first, then vcpu). */
typedef bool (*qs_schemas_fn)(void *opaque, qs_schemas *out, qs_error **errp);

typedef struct qs_registry qs_registry;
typedef struct qs_provider_entry qs_provider_entry;

QS_EXPORT qs_registry *qs_registry_new(void);
QS_EXPORT void qs_registry_free(qs_registry *reg);
/* Registers a provider under `provider` (copied; see qs_provider_name_valid).
 * Registration order is query order; registering twice runs twice.  A name
 * not seen before becomes a value of StatsProvider from then on, also after
 * the provider is removed.  NULL + errp for an invalid name. */
QS_EXPORT qs_provider_entry *qs_registry_add(qs_registry *reg, const char *provider,
                                             qs_stats_fn stats_fn, qs_schemas_fn schemas_fn,
                                             void *opaque, qs_error **errp);
QS_EXPORT void qs_registry_remove(qs_registry *reg, qs_provider_entry *entry);
/* A provider whose sources are handed over as fds (kvm: binary-stats fds;
 * sched: thread pidfds) takes them through add-stats-fd / remove-stats-fd.
 * add_fd owns fd only when it succeeds. */
typedef bool (*qs_add_fd_fn)(void *opaque, qs_target target, const char *qom_path,
                             int fd, qs_error **errp);
typedef bool (*qs_remove_fd_fn)(void *opaque, qs_target target, const char *qom_path,
                                qs_error **errp);
QS_EXPORT void qs_provider_set_fd_handlers(qs_provider_entry *entry, qs_add_fd_fn add,
                                           qs_remove_fd_fn remove);
/* Hands fd to the first provider of that name that takes fds. */
QS_EXPORT bool qs_registry_add_fd(qs_registry *reg, const char *provider, qs_target target,
                                  const char *qom_path, int fd, qs_error **errp);
QS_EXPORT bool qs_registry_remove_fd(qs_registry *reg, const char *provider, qs_target target,
                                     const char *qom_path, qs_error **errp);
/* The StatsProvider values: the built-in names first, then every name
 * registered since, in registration order.  The array stays valid until
 * the next qs_registry_add; `generation` changes whenever it grows. */
QS_EXPORT size_t qs_registry_provider_names(const qs_registry *reg, const char *const **names,
                                            unsigned *generation);
QS_EXPORT bool qs_registry_provider_known(const qs_registry *reg, const char *name);

/* The default byte ceiling of one reply (QMP, HMP, metrics) and of the
 * results behind it.  QEMU has none: a request repeating a provider 100000
 * times would need gigabytes.  Far above any real VM: query-stats target
 * vcpu of 1024 vCPUs is 2.3 MB of JSON and 1.2 MB of results. */
#define QS_REPLY_MAX_DEFAULT (16u << 20)

/* QEMU's qmp_query_stats: on error `out` is left empty.  Results past
 * out->limit fail the query with a GenericError naming the limit (and
 * out->overflow set). */
QS_EXPORT bool qs_registry_query_stats(qs_registry *reg, const qs_filter *f,
                                       qs_results *out, qs_error **errp);
/* QEMU's qmp_query_stats_schemas; provider NULL means all. */
QS_EXPORT bool qs_registry_query_schemas(qs_registry *reg, const char *provider,
                                         qs_schemas *out, qs_error **errp);

/* ---- what changes: schemas and failing sources (events.c) ------------- */

typedef enum qs_event_kind {
    QS_EVENT_SCHEMA_CHANGED,     /* a provider's schema for a target changed */
    QS_EVENT_SOURCE_FAILED,      /* a source started failing: it is skipped */
    QS_EVENT_SOURCE_RECOVERED,   /* it reads again */
} qs_event_kind;

typedef struct qs_event {
    qs_event_kind kind;
    const char *provider;
    qs_target target;
    const char *qom_path;        /* the source's vCPU, or NULL */
    const char *error;           /* QS_EVENT_SOURCE_FAILED: why */
} qs_event;

typedef void (*qs_event_fn)(void *opaque, const qs_event *ev);
typedef struct qs_watch qs_watch;
/* Calls fn for every event from now on, in the registry's thread, right
 * when the provider reports it (fn must not modify the registry). */
QS_EXPORT qs_watch *qs_registry_watch(qs_registry *reg, qs_event_fn fn, void *opaque);
QS_EXPORT void qs_registry_unwatch(qs_registry *reg, qs_watch *w);

/* Providers report a schema change (a stats file, a thread, a newly
 * reported stat came or went) so that clients refetch schemas only then;
 * the generation counts them. */
QS_EXPORT void qs_registry_schema_changed(qs_registry *reg, const char *provider,
                                          qs_target target);
QS_EXPORT unsigned qs_registry_schema_generation(const qs_registry *reg);

/* A source (a stats fd, a thread, a device) whose read fails is skipped,
 * not fatal: its provider reports the error (err NULL: it reads again),
 * once per change of state, and says when the source is removed. */
QS_EXPORT void qs_registry_source_status(qs_registry *reg, const char *provider,
                                         qs_target target, const char *qom_path,
                                         const qs_error *err);
QS_EXPORT void qs_registry_source_gone(qs_registry *reg, const char *provider,
                                       qs_target target, const char *qom_path);
typedef struct qs_source_failure {
    const char *provider;
    qs_target target;
    const char *qom_path;        /* NULL for a VM-wide source */
    const char *error;
    int64_t since;               /* wall clock, Unix seconds */
} qs_source_failure;
/* The sources failing now (borrowed until the registry changes). */
QS_EXPORT size_t qs_registry_failing_sources(const qs_registry *reg,
                                             const qs_source_failure **out);

/* ---- vCPUs ------------------------------------------------------------ */

/* The QOM path of cpu-index N, "/machine/unattached/device[N]", written
 * into buf: QEMU's container for x86 CPUs, numbered by cpu-index without
 * QEMU's gaps (docs/qemu-behaviour.md#vcpu-paths). */
#define QS_VCPU_PATH_MAX 48
#define QS_VCPU_INDEX_MAX 65535
QS_EXPORT const char *qs_vcpu_qom_path(unsigned index, char buf[QS_VCPU_PATH_MAX]);
/* The cpu-index of such a path, or -1 for any other path. */
QS_EXPORT long qs_vcpu_index(const char *qom_path);

/* The vCPUs known to the registry: a provider references a vCPU's path
 * while it has data for it (the first reference adds it, the last removes
 * it), so that the monitor and query-cpus-fast list vCPUs without knowing
 * the providers.  Listed in natural path order. */
QS_EXPORT void qs_registry_vcpu_ref(qs_registry *reg, const char *path);
QS_EXPORT void qs_registry_vcpu_unref(qs_registry *reg, const char *path);
/* The vCPU's host thread id (0: unknown), for query-cpus-fast. */
QS_EXPORT void qs_registry_vcpu_set_thread(qs_registry *reg, const char *path, long tid);
QS_EXPORT size_t qs_registry_vcpu_count(const qs_registry *reg);
QS_EXPORT const char *qs_registry_vcpu_path(const qs_registry *reg, size_t i);
QS_EXPORT long qs_registry_vcpu_thread(const qs_registry *reg, size_t i);
QS_EXPORT bool qs_registry_vcpu_known(const qs_registry *reg, const char *path);

/* ---- small helpers shared by the modules ------------------------------- */

/* Growable byte buffer (also used as a string builder).  A buffer may have
 * a ceiling: an append that would take it past `limit` bytes allocates
 * nothing, appends nothing and sets `overflow`, so that a reply is refused
 * at the cost of the ceiling rather than built whole (0: no ceiling). */
typedef struct qs_buf {
    char *data;
    size_t len, cap;
    size_t limit;
    bool overflow;
} qs_buf;

QS_EXPORT void qs_buf_init(qs_buf *b);
QS_EXPORT void qs_buf_free(qs_buf *b);
/* Empties the buffer (and clears overflow); keeps the capacity. */
QS_EXPORT void qs_buf_reset(qs_buf *b);
/* Room for `extra` more bytes and a NUL; false (overflow set) past the
 * ceiling. */
QS_EXPORT bool qs_buf_reserve(qs_buf *b, size_t extra);
/* Frees the memory of an empty buffer whose capacity grew above `keep`
 * bytes: what one large reply needed is given back. */
QS_EXPORT void qs_buf_trim(qs_buf *b, size_t keep);
QS_EXPORT void qs_buf_puts(qs_buf *b, const char *s);

/* Inline: these two carry every byte of a query-stats reply; the call
 * overhead of out-of-line versions was a third of the encoding profile. */
static inline void qs_buf_append(qs_buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap && !qs_buf_reserve(b, n))
        return;
    __builtin_memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
}

static inline void qs_buf_putc(qs_buf *b, char c)
{
    if (b->len + 2 > b->cap && !qs_buf_reserve(b, 1))
        return;
    b->data[b->len++] = c;
    b->data[b->len] = 0;
}
QS_EXPORT void qs_buf_printf(qs_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Exact decimal text of a u64 / i64 (the JSON and HMP hot paths). */
QS_EXPORT void qs_buf_put_u64(qs_buf *b, uint64_t v);
QS_EXPORT void qs_buf_put_i64(qs_buf *b, int64_t v);
/* Detaches the NUL-terminated contents; the buffer is left empty. */
QS_EXPORT char *qs_buf_steal(qs_buf *b);

/* ---- JSON text writer (pure memory; QEMU's ", " and ": " separators,
 *      ASCII output, exact u64) ------------------------------------------ */

#define QS_JW_MAX_DEPTH 64

typedef struct qs_jw {
    qs_buf *b;
    int depth;
    bool first[QS_JW_MAX_DEPTH];
    bool after_key;
} qs_jw;

QS_EXPORT void qs_jw_init(qs_jw *w, qs_buf *b);
QS_EXPORT void qs_jw_begin_object(qs_jw *w);
QS_EXPORT void qs_jw_end_object(qs_jw *w);
QS_EXPORT void qs_jw_begin_array(qs_jw *w);
QS_EXPORT void qs_jw_end_array(qs_jw *w);
QS_EXPORT void qs_jw_key(qs_jw *w, const char *key);
QS_EXPORT void qs_jw_str(qs_jw *w, const char *s);
QS_EXPORT void qs_jw_u64(qs_jw *w, uint64_t v);
QS_EXPORT void qs_jw_i64(qs_jw *w, int64_t v);
QS_EXPORT void qs_jw_bool(qs_jw *w, bool v);
QS_EXPORT void qs_jw_null(qs_jw *w);
/* A value that is already JSON text. */
QS_EXPORT void qs_jw_raw(qs_jw *w, const char *json, size_t len);
/* Appends s as a quoted, escaped, ASCII-only JSON string. */
QS_EXPORT void qs_json_put_string(qs_buf *b, const char *s);

/* ---- objects: the subset of QOM that qstats exposes -------------------- */

/* An input value handed to a property setter (decoded by the transport). */
typedef enum qs_input_kind {
    QS_IN_NULL, QS_IN_BOOL, QS_IN_INT, QS_IN_UINT, QS_IN_REAL,
    QS_IN_STRING, QS_IN_OBJECT, QS_IN_ARRAY,
} qs_input_kind;

typedef struct qs_input {
    qs_input_kind kind;
    bool b;
    int64_t i;        /* QS_IN_INT */
    uint64_t u;       /* QS_IN_UINT: integers above INT64_MAX */
    double d;
    const char *s;
} qs_input;

typedef bool (*qs_prop_get_fn)(void *opaque, qs_jw *out, qs_error **errp);
typedef bool (*qs_prop_set_fn)(void *opaque, const qs_input *in, qs_error **errp);

typedef struct qs_property {
    const char *name;
    const char *type;          /* QOM type string: "int", "guest statistics" */
    qs_prop_get_fn get;        /* NULL: not readable */
    qs_prop_set_fn set;        /* NULL: not writable */
    /* The type that really defines the property when the object only
     * aliases it (QEMU's virtio-balloon-pci forwards to the device): the
     * not-readable/not-writable errors name it.  NULL: the object's type. */
    const char *owner_type;
} qs_property;

typedef struct qs_object qs_object;

/* Adds an object at an absolute canonical path ("/machine/unattached/
 * device[0]").  props must outlive the object. */
QS_EXPORT qs_object *qs_registry_add_object(qs_registry *reg, const char *path,
                                            const char *type_name,
                                            const qs_property *props, size_t nprops,
                                            void *opaque);
QS_EXPORT void qs_registry_remove_object(qs_registry *reg, qs_object *obj);
/* Whether a new object may take `path`: canonical ("/a/b", no empty
 * component), not already an object or a container, and not below an
 * object (that would break qom-list / qom-get for both). */
QS_EXPORT bool qs_registry_path_free(qs_registry *reg, const char *path, qs_error **errp);

typedef struct qs_prop_info {
    const char *name;
    char *type;                /* owned */
} qs_prop_info;

/* qom-list: properties of an object, or children of a container path.
 * Returns the number of entries (caller frees with qs_prop_info_free). */
QS_EXPORT bool qs_registry_qom_list(qs_registry *reg, const char *path,
                                    qs_prop_info **out, size_t *n, qs_error **errp);
QS_EXPORT void qs_prop_info_free(qs_prop_info *v, size_t n);
QS_EXPORT bool qs_registry_qom_get(qs_registry *reg, const char *path, const char *prop,
                                   qs_jw *out, qs_error **errp);
QS_EXPORT bool qs_registry_qom_set(qs_registry *reg, const char *path, const char *prop,
                                   const qs_input *in, qs_error **errp);

#endif
