/*
 * qs-qmp.h - the QMP server: libuv listeners on unix and TCP sockets,
 * QEMU's protocol (greeting, capabilities negotiation, id echo, one reply
 * per line), argument validation from schemas/qapi-schema.json, and the
 * commands of the contract.  Everything runs on the caller's uv_loop_t.
 */
#ifndef QS_QMP_H
#define QS_QMP_H

#include <uv.h>
#include "qs-core.h"

typedef struct qs_kvm_provider qs_kvm_provider;
typedef struct qs_balloon qs_balloon;
typedef struct qs_hmp qs_hmp;

typedef struct qs_qmp_config {
    qs_registry *reg;
    qs_kvm_provider *kvm;     /* add-stats-fd / remove-stats-fd; may be NULL */
    qs_balloon *balloon;      /* query-balloon; may be NULL */
    qs_hmp *hmp;              /* human-monitor-command; may be NULL */
    const char *name;         /* query-name; may be NULL */
    /* Called for the quit command, after its reply has been sent. */
    void (*on_quit)(void *opaque);
    void *opaque;
} qs_qmp_config;

typedef struct qs_qmp qs_qmp;

qs_qmp *qs_qmp_new(uv_loop_t *loop, const qs_qmp_config *cfg, qs_error **errp);
/* "unix:PATH" (created mode 0600) or "tcp:HOST:PORT".  A TCP host other
 * than loopback is refused unless allow_remote. */
bool qs_qmp_listen(qs_qmp *q, const char *spec, bool allow_remote, qs_error **errp);
/* Closes listeners and clients (unlinking unix sockets); memory is released
 * from close callbacks, so run the loop afterwards until it is idle. */
void qs_qmp_free(qs_qmp *q);

#endif
