/*
 * qs-balloon.h - the balloon provider: guest memory statistics with the
 * semantics of QEMU's virtio-balloon device (docs/qemu-behaviour.md,
 * #balloon-properties and the sections after it), fed by
 * a guest agent over a socket instead of a virtqueue.
 *
 *   device    the 16 virtio-balloon stats, the QOM object
 *             /machine/peripheral-anon/device[0] with guest-stats and
 *             guest-stats-polling-interval, the poll cycle (re-armed only
 *             when the guest answers) and the stats provider "balloon"
 *             (target vm) for query-stats / query-stats-schemas.
 *   channel   "unix:PATH" or "vsock:PORT": one guest agent at a time; the
 *             framing is described at the top of channel.c.
 *   commands  query-balloon and `info balloon`, added to the monitors.
 * The wire format and the guest side live in qs-balloon-guest.h.
 */
#ifndef QS_BALLOON_H
#define QS_BALLOON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "qs-core.h"

/* The QOM path and type of the device.  As in QEMU, the object at that
 * path is the PCI proxy, whose properties alias the backend device's: error
 * texts name the proxy for unknown properties and the device for the
 * aliased ones ("virtio-balloon-device.guest-stats' is not writable"). */
#define QS_BALLOON_QOM_PATH "/machine/peripheral-anon/device[0]"
#define QS_BALLOON_QOM_TYPE "virtio-balloon-pci"
#define QS_BALLOON_DEVICE_TYPE "virtio-balloon-device"

/* ---- the provider with its channel ------------------------------------- */

typedef struct qs_balloon qs_balloon;

/* Registers provider "balloon" (target vm) and the QOM object at
 * QS_BALLOON_QOM_PATH.  actual_bytes is the guest memory size that
 * query-balloon and "info balloon" report. */
QS_EXPORT qs_balloon *qs_balloon_new(uv_loop_t *loop, qs_registry *reg, uint64_t actual_bytes);
/* "unix:PATH" (created mode 0600; a stale socket is replaced) or
 * "vsock:PORT" (any CID): accepts one guest agent at a time.  One listener
 * per qs_balloon. */
QS_EXPORT bool qs_balloon_listen(qs_balloon *b, const char *spec, qs_error **errp);
QS_EXPORT uint64_t qs_balloon_actual(const qs_balloon *b);
/* Adds QMP query-balloon and HMP `info balloon` (either server may be
 * NULL), answered by b; with b NULL they answer QEMU's "No balloon device
 * has been activated", as a VM without one does. */
typedef struct qs_qmp qs_qmp;
typedef struct qs_hmp qs_hmp;
QS_EXPORT bool qs_balloon_add_commands(qs_balloon *b, qs_qmp *qmp, qs_hmp *hmp,
                                       qs_error **errp);
/* Unregisters, closes every handle and unlinks the socket.  Memory is
 * released in close callbacks: the owner runs the loop afterwards. */
QS_EXPORT void qs_balloon_free(qs_balloon *b);

/* One line per event worth telling an operator (agent connected, dropped
 * and why).  Default: "qstats: balloon: MSG" on stderr. */
typedef void (*qs_balloon_log_fn)(void *opaque, const char *msg);
QS_EXPORT void qs_balloon_set_log(qs_balloon *b, qs_balloon_log_fn fn, void *opaque);
/* How long an agent may take to complete an answer (default 5000 ms). */
QS_EXPORT void qs_balloon_set_answer_timeout(qs_balloon *b, uint64_t ms);
/* Whether a guest agent is connected right now. */
QS_EXPORT bool qs_balloon_agent_connected(const qs_balloon *b);

#endif
