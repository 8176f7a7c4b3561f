/*
 * internal.h - what the hmp/ files share: the argument parser (parse.c),
 * the `info stats` formatter (format.c), the command table (commands.c,
 * qom.c) and the interpreter state.  Kept apart from qs-hmp.h so that the
 * unit tests can reach the pure parts without the rest of the program
 * depending on them.
 */
#ifndef QS_HMP_INTERNAL_H
#define QS_HMP_INTERNAL_H

#include "qs-common.h"
#include "qs-hmp.h"

/* ---- argument parser (parse.c) ----------------------------------------- */

/* Reads one word (whitespace-separated, or a "double-quoted" string with
 * \n \r \\ \' \" escapes) after skipping whitespace.  Returns false when
 * there is none, the quotes are unterminated or an escape is unknown;
 * QEMU reports all three as "<cmd>: string expected". */
bool qs_hmp_get_str(const char **pp, char **out);

/* QEMU's monitor expression: numbers (strtoull base 0), 'c', unary + - ~,
 * * / % & | ^ + - and parentheses.  On failure appends QEMU's message
 * ("unexpected end of expression", "invalid char 'x' in expression", ...). */
bool qs_hmp_get_expr(const char **pp, int64_t *val, qs_buf *err);

#define QS_HMP_MAX_ARGS 8

typedef struct qs_hmp_arg {
    const char *key;
    bool present;
    char *str;          /* 's' and 'S' */
    int64_t num;        /* 'i' */
} qs_hmp_arg;

typedef struct qs_hmp_args {
    size_t n;
    qs_hmp_arg v[QS_HMP_MAX_ARGS];
} qs_hmp_args;

/* Parses *pp (the text after the command name) against a QEMU args_type
 * string: comma-separated "key:T" with T one of
 *   s   a word (s? optional)       S   the rest of the line (S? optional)
 *   i   a 32-bit expression        -c  a flag written "-c"
 * On failure appends the error lines ("<cmd>: string expected", ...) to err
 * and returns false; the caller then prints the `Try "help ..."` line. */
bool qs_hmp_parse_args(const char *cmd, const char *spec, const char *p,
                       qs_hmp_args *out, qs_buf *err);
void qs_hmp_args_free(qs_hmp_args *a);

/* Splits s at every ',' keeping empty items, as g_strsplit(s, ",", -1).
 * Returns a NULL-terminated vector; free with qs_hmp_strv_free. */
char **qs_hmp_split_commas(const char *s, size_t *n);
void qs_hmp_strv_free(char **v);

/* ---- info stats formatter (format.c) ----------------------------------- */

typedef struct qs_hmp_format_opts {
    bool show_provider;   /* "provider: X" lines (no provider argument) */
    bool show_qom_path;   /* extension -a: "qom-path: P" lines */
    bool bounds;          /* extension -b: histogram buckets with bounds */
} qs_hmp_format_opts;

/* Appends `info stats` text (lines end in "\n") for every result, each
 * matched with the schema of its provider for `target`. */
void qs_hmp_format_stats(qs_buf *out, const qs_results *res,
                         const qs_schemas *schemas, qs_target target,
                         const qs_hmp_format_opts *o);
/* "<type>[, <scale/unit>][, bucket size=N]" of one schema entry. */
void qs_hmp_format_descr(qs_buf *out, const qs_schema_value *sv);
/* The -b form of bucket i (0-based) of n: "[lo,hi)unit" / "[lo unit,+inf)". */
void qs_hmp_format_bucket(qs_buf *out, const qs_schema_value *sv, size_t i, size_t n);


/* ---- interpreter ------------------------------------------------------- */

/* A command table: the top level, or the subcommands of `info`.  Kept
 * sorted by name, which is the order help lists them in. */
typedef struct qs_hmp_entry {
    qs_hmp_command cmd;
    void *opaque;
    const struct qs_hmp_table *sub;   /* "info": its subcommands */
} qs_hmp_entry;

typedef struct qs_hmp_table {
    qs_hmp_entry *v;
    size_t n;
} qs_hmp_table;

struct qs_hmp {
    qs_hmp_config cfg;
    qs_hmp_table top, info;
    qs_results results;   /* reused by every query: one loop, one query at a time */
    qs_schemas schemas;
};

struct qs_hmp_monitor {
    qs_hmp *h;
    char *cpu_path;       /* NULL: the first vCPU */
    bool quit;            /* quit ran: a console reads no further line */
};

/* QOM path of the monitor's current CPU (falls back to the first vCPU when
 * none was chosen or the chosen one is gone); NULL if there is no vCPU. */
char *qs_hmp_current_cpu(qs_hmp_monitor *m);

/* qom.c */
void qs_hmp_cmd_qom_list(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out);
void qs_hmp_cmd_qom_get(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out);
void qs_hmp_cmd_qom_set(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out);

/* stats.c */
void qs_hmp_cmd_info_stats(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a,
                           qs_buf *out);

#endif
