/*
 * qs-hmp.h - the human monitor: QEMU's HMP command syntax and output for
 * `info stats` and the few other commands qstats has, plus the consoles
 * that carry it (stdio, unix sockets).  The QMP layer uses the same
 * interpreter for human-monitor-command.
 *
 *   qs_hmp           the command interpreter, shared by every monitor; it
 *                    reads the registry only (schemas, stats, object tree).
 *   qs_hmp_monitor   one monitor's state: its current CPU (`cpu N`).
 *   qs_hmp_console   a transport on the caller's uv loop; every unix client
 *                    gets its own monitor.
 *
 * Output uses "\r\n" line endings, as QEMU's monitor_puts produces them, so
 * that human-monitor-command can return it verbatim.
 */
#ifndef QS_HMP_H
#define QS_HMP_H

#include <uv.h>
#include "qs-core.h"


typedef struct qs_hmp qs_hmp;
typedef struct qs_hmp_monitor qs_hmp_monitor;

typedef struct qs_hmp_config {
    qs_registry *reg;
    /* Bytes of one command's output and of the results behind it (0:
     * QS_REPLY_MAX_DEFAULT); past it the command prints why instead. */
    size_t max_reply_bytes;
    /* The quit command.  It may close consoles at once, but must not free
     * the qs_hmp while the command runs (defer that to the loop). */
    void (*on_quit)(void *opaque);
    void *opaque;
} qs_hmp_config;

QS_EXPORT qs_hmp *qs_hmp_new(const qs_hmp_config *cfg);
QS_EXPORT void qs_hmp_free(qs_hmp *h);

QS_EXPORT qs_hmp_monitor *qs_hmp_monitor_new(qs_hmp *h);
QS_EXPORT void qs_hmp_monitor_free(qs_hmp_monitor *m);
/* Sets the monitor's current CPU (human-monitor-command's cpu-index);
 * false + errp if there is no such vCPU. */
QS_EXPORT bool qs_hmp_monitor_set_cpu(qs_hmp_monitor *m, int64_t index, qs_error **errp);
/* Runs one command line and appends its output, every line ending "\r\n". */
QS_EXPORT void qs_hmp_execute(qs_hmp_monitor *m, const char *line, qs_buf *out);

/* ---- commands added by modules ----------------------------------------- */

/* The parsed arguments of one command line. */
typedef struct qs_hmp_args qs_hmp_args;
/* NULL (false, 0) when absent. */
QS_EXPORT const char *qs_hmp_args_str(const qs_hmp_args *a, const char *key);
QS_EXPORT bool qs_hmp_args_flag(const qs_hmp_args *a, const char *key);
QS_EXPORT int64_t qs_hmp_args_int(const qs_hmp_args *a, const char *key);

/* Appends the command's output to out, each line ending in "\n". */
typedef void (*qs_hmp_command_fn)(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a,
                                  qs_buf *out);

/* A command as QEMU's monitor describes one; the strings must outlive the
 * qs_hmp. */
typedef struct qs_hmp_command {
    const char *name;      /* "quit|q": aliases separated by '|' */
    const char *args;      /* QEMU args_type: "key:s", "key:s?", "key:S", "key:i", "flag:-f" */
    const char *params;    /* shown by help: "[-f] path" */
    const char *help;
    qs_hmp_command_fn fn;
} qs_hmp_command;

/* Adds a top-level command, or (info true) an `info` subcommand.  A name
 * already taken is refused. */
QS_EXPORT bool qs_hmp_add_command(qs_hmp *h, bool info, const qs_hmp_command *c, void *opaque,
                                  qs_error **errp);

/* The prompt of the consoles. */
#define QS_HMP_PROMPT "(qstats) "

typedef struct qs_hmp_console qs_hmp_console;

/* spec: "stdio" or "unix:PATH" (a listening socket; each client is its own
 * monitor; works with `socat - UNIX-CONNECT:PATH`). */
QS_EXPORT qs_hmp_console *qs_hmp_console_new(uv_loop_t *loop, qs_hmp *h, const char *spec,
                                             qs_error **errp);
/* Closes the handles (memory goes in their close callbacks, so run the loop
 * afterwards) and unlinks the unix socket. */
QS_EXPORT void qs_hmp_console_free(qs_hmp_console *c);

#endif
