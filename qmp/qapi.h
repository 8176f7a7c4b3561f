/*
 * qapi.h - (qmp-internal) the QMP schema and the argument validator driven
 * by it.  The schema is written in QEMU's introspection format (SchemaInfo:
 * commands, objects, unions, enums, arrays, builtins), so one document
 * answers query-qmp-schema and validates arguments with QEMU's exact error
 * texts.  It is composed of parts: the framework's
 * (schemas/qapi-schema.json) and one per module that adds commands (the
 * balloon's query-balloon, a VMM's own).
 *
 *   qapi-schema.c    loading and composing the parts into an index of types
 *   qapi-validate.c  walking arguments against a command's arg-type
 *   keyorder.c       the order in which QEMU's hash tables visit keys
 */
#ifndef QS_QMP_QAPI_H
#define QS_QMP_QAPI_H

#include <jansson.h>
#include "qs-common.h"

typedef enum qapi_kind {
    QAPI_BUILTIN, QAPI_ENUM, QAPI_ARRAY, QAPI_OBJECT, QAPI_ALTERNATE, QAPI_COMMAND,
    QAPI_EVENT,
} qapi_kind;

/* How a builtin checks its value; the QObject visitor has one routine per
 * C type, each with its own error text. */
typedef enum qapi_builtin {
    QAPI_STR, QAPI_INT, QAPI_INTN, QAPI_UINT64, QAPI_UINTN, QAPI_NUMBER, QAPI_BOOL,
    QAPI_NULL, QAPI_ANY,
} qapi_builtin;

typedef struct qapi_type qapi_type;

typedef struct qapi_member {
    const char *name;
    qapi_type *type;
    bool optional;
} qapi_member;

typedef struct qapi_variant {
    const char *tag_case;
    qapi_type *type;
} qapi_variant;

/* One SchemaInfo entry, its references resolved.  Names and strings are
 * borrowed from the schema document. */
struct qapi_type {
    const char *name;
    qapi_kind kind;
    const json_t *info;
    /* builtin */
    qapi_builtin builtin;
    int64_t min;
    uint64_t max;
    const char *ctype;          /* "uint8_t": what QEMU's range error names */
    /* enum */
    size_t nvalues;
    const char **values;
    /* array */
    qapi_type *elem;
    /* object */
    size_t nmembers;
    qapi_member *members;
    const char *tag;
    size_t nvariants;
    qapi_variant *variants;
    /* alternate */
    size_t nalts;
    qapi_type **alts;
    /* command, event */
    qapi_type *arg, *ret;
};

typedef struct qs_qapi qs_qapi;

/* An empty schema; parts are added with qs_qapi_add. */
qs_qapi *qs_qapi_new(void);
/* Adds a part: a JSON array of SchemaInfo.  An entry whose name is already
 * in the schema must be identical to it (parts may share types such as
 * "q_empty"); every reference must resolve.  On failure the schema is left
 * as it was. */
bool qs_qapi_add(qs_qapi *s, const char *json, size_t len, qs_error **errp);
/* qs_qapi_new + qs_qapi_add of one document (the unit tests use it). */
qs_qapi *qs_qapi_load(const char *json, size_t len, qs_error **errp);
/* The framework's part, compiled into the library (schemas/qapi-schema.json). */
qs_qapi *qs_qapi_load_builtin(qs_error **errp);
void qs_qapi_free(qs_qapi *s);
/* Replaces the values of an enum (StatsProvider grows as VMMs register
 * providers), in the index and in what query-qmp-schema returns. */
bool qs_qapi_set_enum(qs_qapi *s, const char *name, const char *const *values,
                      size_t n, qs_error **errp);

/* The SchemaInfo array, as query-qmp-schema returns it (borrowed). */
const json_t *qs_qapi_schema(const qs_qapi *s);
/* A command's entry, or NULL.  Valid until the schema next changes. */
const qapi_type *qs_qapi_command(const qs_qapi *s, const char *name);
bool qs_qapi_has_command(const qs_qapi *s, const char *name);
/* Command names in schema order. */
size_t qs_qapi_command_count(const qs_qapi *s);
const char *qs_qapi_command_name(const qs_qapi *s, size_t i);

/* qapi-validate.c: validates `args` (a JSON object; NULL counts as {})
 * against the command's arg-type, with QEMU's texts ("Parameter 'target'
 * is missing", ...). */
bool qs_qapi_validate(const qapi_type *command, const json_t *args, qs_error **errp);
/* The same, by name; CommandNotFound when there is no such command. */
bool qs_qapi_validate_args(const qs_qapi *s, const char *command,
                           const json_t *args, qs_error **errp);

/* keyorder.c: the order in which QEMU's QDict iterates these keys (JSON
 * order in names): order[k] is the index of the k-th key visited. */
void qs_qapi_qdict_order(const char *const *names, size_t n, size_t *order);
/* keyorder.c: of a struct's keys (JSON order) after the members consumed
 * theirs (in visiting order), the index of the unexpected key QEMU names
 * first: an accident of GLib's hash tables, reproduced. */
size_t qs_qapi_unexpected_key(const char *const *names, size_t n,
                              const size_t *consumed, size_t nconsumed);

#endif
