/*
 * qs-common.h - (internal) what every module of libqstats and its programs
 * share that is not part of the public API: abort-on-failure allocation and
 * the JSON re-indenter of the monitors and the client.
 * A daemon that cannot allocate a few bytes has nothing better to do; an
 * embedding VMM keeps its own policy, so these are not exported.
 */
#ifndef QS_COMMON_H
#define QS_COMMON_H

#include <time.h>

#include "qs-core.h"

void *qs_malloc(size_t n);
void *qs_calloc(size_t n, size_t m);
void *qs_realloc(void *p, size_t n);
char *qs_strdup(const char *s);
char *qs_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* clock_gettime(id) in seconds: rates, timestamps and durations. */
double qs_clock_seconds(clockid_t id);

/* A set of strings (copied), each with a value; lookups in constant time
 * (strset.c). */
typedef struct qs_strset {
    size_t *slots;            /* arena offset + 1; 0 is empty */
    size_t *values;
    size_t cap, n;
    qs_buf arena;
} qs_strset;
void qs_strset_init(qs_strset *set);
void qs_strset_free(qs_strset *set);
void qs_strset_clear(qs_strset *set);
/* false (and nothing changed) when s is already in the set */
bool qs_strset_add(qs_strset *set, const char *s);
bool qs_strset_put(qs_strset *set, const char *s, size_t value);
bool qs_strset_contains(const qs_strset *set, const char *s);
/* true and *value (if non-NULL) set when s is in the set */
bool qs_strset_get(const qs_strset *set, const char *s, size_t *value);

/* A buffer that grew past this for one large reply is given back once it
 * is empty again (qs_buf_trim, qs_results_trim): memory returns near its
 * baseline after a large query. */
#define QS_KEEP_BYTES (1u << 20)

/* Decodes the UTF-8 sequence at *p (not at its NUL) and steps over it;
 * anything that is not a valid Unicode scalar value (bad or overlong
 * sequences, surrogates, noncharacters, > U+10FFFF) decodes as U+FFFD.
 * Text from outside (stat names, paths) goes through it wherever the
 * output must be valid UTF-8: JSON replies, the metrics exposition. */
unsigned qs_utf8_next(const unsigned char **p);

/* Re-indents JSON text token by token, one member or element a line,
 * `indent` spaces a level, so that numbers stay as they came (exact u64):
 * QEMU's pretty printer (HMP qom-get) is indent 4 with "{\n}" for an empty
 * container; jansson's JSON_INDENT(2) (the client's `qmp`) is indent 2 with
 * "{}" (empty_inline). */
void qs_json_reindent(qs_buf *out, const char *json, size_t len, int indent,
                      bool empty_inline);

/* stats-json.c: the return values of query-stats and query-stats-schemas,
 * written with w (QEMU's member order and rules: qom-path omitted for the
 * VM, base only with an exponent, bucket-size only for linear histograms). */
void qs_json_put_results(qs_jw *w, const qs_results *r);
void qs_json_put_schemas(qs_jw *w, const qs_schemas *s);
/* One StatsSchema, its stats limited to names (NULL: all). */
void qs_json_put_schema(qs_jw *w, const qs_schema *sc, const qs_strlist *names);
void qs_json_put_schema_value(qs_jw *w, const qs_schema_value *sv);

#endif
