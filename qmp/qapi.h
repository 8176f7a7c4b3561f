/*
 * qapi.h - (qmp-internal) the QMP schema and the argument validator driven
 * by it.  schemas/qapi-schema.json is written in QEMU's introspection format
 * (SchemaInfo: commands, objects, unions, enums, arrays, builtins), so the
 * same document answers query-qmp-schema and validates arguments with
 * QEMU's exact error texts.
 */
#ifndef QS_QMP_QAPI_H
#define QS_QMP_QAPI_H

#include <jansson.h>
#include "qs-core.h"

typedef struct qs_qapi qs_qapi;

/* Loads the schema compiled into the library (qs_schema_json). */
qs_qapi *qs_qapi_load_builtin(qs_error **errp);
qs_qapi *qs_qapi_load(const char *json, size_t len, qs_error **errp);
void qs_qapi_free(qs_qapi *s);

/* The SchemaInfo array, as query-qmp-schema returns it (borrowed). */
const json_t *qs_qapi_schema(const qs_qapi *s);
bool qs_qapi_has_command(const qs_qapi *s, const char *name);
/* Command names in schema order. */
size_t qs_qapi_command_count(const qs_qapi *s);
const char *qs_qapi_command_name(const qs_qapi *s, size_t i);

/* Validates `args` (a JSON object, never NULL) against the command's
 * arg-type, with QEMU's texts ("Parameter 'target' is missing", ...).
 * The command must exist. */
bool qs_qapi_validate_args(const qs_qapi *s, const char *command,
                           const json_t *args, qs_error **errp);

/* keyorder.c: of a struct's keys (JSON order) after the members consumed
 * theirs (in visiting order), the index of the unexpected key QEMU names
 * first: an accident of GLib's hash tables, reproduced. */
/* keyorder.c: the order in which QEMU's QDict iterates these keys (JSON
 * order in names): order[k] is the index of the k-th key visited. */
void qs_qapi_qdict_order(const char *const *names, size_t n, size_t *order);
size_t qs_qapi_unexpected_key(const char *const *names, size_t n,
                              const size_t *consumed, size_t nconsumed);

#endif
