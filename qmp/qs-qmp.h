/*
 * qs-qmp.h - the QMP server: libuv listeners on unix and TCP sockets,
 * QEMU's protocol (greeting, capabilities negotiation, id echo, one reply
 * per line), argument validation from the QMP schema, and the framework's
 * commands (stats, schemas, QOM, fd passing, introspection).  Modules add
 * their own commands with qs_qmp_add_command, each with its part of the
 * schema.  Everything runs on the caller's uv_loop_t.
 */
#ifndef QS_QMP_H
#define QS_QMP_H

#include <uv.h>
#include "qs-core.h"

typedef struct qs_hmp qs_hmp;

typedef struct qs_qmp_config {
    qs_registry *reg;
    qs_hmp *hmp;              /* human-monitor-command; may be NULL */
    const char *name;         /* query-name; may be NULL */
    /* Sessions served at once, over all listeners (0: 64).  One more gets a
     * GenericError line "Too many QMP sessions (limit N)" and is closed. */
    size_t max_sessions;
    /* Bytes of one reply, and of the results behind a query-stats (0:
     * QS_REPLY_MAX_DEFAULT).  A larger one is refused with a GenericError
     * before more than this is spent. */
    size_t max_reply_bytes;
    /* Bytes all sessions' buffers may hold beyond 1 MiB each (0: 96 MiB).
     * A client whose input would pass its share is dropped; a reply that
     * would, fails with a GenericError (its client reads, or retries). */
    size_t max_buffer_bytes;
    /* A session that has not negotiated capabilities by then is closed
     * (0: 10000 ms). */
    uint64_t negotiation_timeout_ms;
    /* Called for the quit command, after its reply has been sent. */
    void (*on_quit)(void *opaque);
    void *opaque;
} qs_qmp_config;

typedef struct qs_qmp qs_qmp;

QS_EXPORT qs_qmp *qs_qmp_new(uv_loop_t *loop, const qs_qmp_config *cfg, qs_error **errp);
/* "unix:PATH" (created mode 0600) or "tcp:HOST:PORT".  A TCP host other
 * than loopback is refused unless allow_remote. */
QS_EXPORT bool qs_qmp_listen(qs_qmp *q, const char *spec, bool allow_remote, qs_error **errp);
/* ---- commands added by modules ----------------------------------------- */

/* The arguments of one command, validated against its schema before the
 * handler runs: a handler may rely on the declared types. */
typedef struct qs_qmp_args qs_qmp_args;
QS_EXPORT bool qs_qmp_args_has(const qs_qmp_args *a, const char *name);
/* NULL, 0 or false when the member is absent. */
QS_EXPORT const char *qs_qmp_args_str(const qs_qmp_args *a, const char *name);
QS_EXPORT int64_t qs_qmp_args_int(const qs_qmp_args *a, const char *name);
QS_EXPORT bool qs_qmp_args_bool(const qs_qmp_args *a, const char *name);

/* Writes the command's return value with `ret` (the "return" member), or
 * sets *errp and returns false. */
typedef bool (*qs_qmp_command_fn)(void *opaque, const qs_qmp_args *args, qs_jw *ret,
                                  qs_error **errp);

/* Adds a command.  schema is its part of the QMP schema: a JSON array of
 * SchemaInfo entries in QEMU's introspection format holding the command
 * ({"name": NAME, "meta-type": "command", "arg-type": ..., "ret-type": ...})
 * and every type it refers to that the schema lacks; query-qmp-schema and
 * query-commands list it from then on.  Refused: a name already taken, a
 * schema that does not describe the command or conflicts with an entry of
 * the same name. */
QS_EXPORT bool qs_qmp_add_command(qs_qmp *q, const char *name, const char *schema,
                                  qs_qmp_command_fn fn, void *opaque, qs_error **errp);

/* Closes listeners and clients (unlinking unix sockets); memory is released
 * from close callbacks, so run the loop afterwards until it is idle. */
QS_EXPORT void qs_qmp_free(qs_qmp *q);

#endif
