/*
 * qstats-client.h - the pieces of the `qstats` client program, shared by its
 * source files (tools/qstats-client*.c):
 *
 *   qstats-client.c          main: options, one-shot HMP lines and raw QMP
 *   qstats-client-qmp.c      a small blocking QMP client (unix or tcp)
 *   qstats-client-console.c  the interactive HMP console (libedit)
 *   qstats-client-top*.c     `top`: a live view and batch modes
 *                            (its parts: qstats-client-top.h)
 *
 * The client talks to qstatsd only through QMP, exactly as it would talk to
 * QEMU, so everything it shows comes from query-stats, query-stats-schemas
 * and human-monitor-command.
 */
#ifndef QSTATS_CLIENT_H
#define QSTATS_CLIENT_H

#include <stdbool.h>
#include <jansson.h>

#include "qs-common.h"

#define QS_CLIENT_NAME "qstats"

/* ---- QMP client ---------------------------------------------------------- */

typedef struct qs_qmp_client qs_qmp_client;

/* Connects to "PATH", "unix:PATH" or "tcp:HOST:PORT", reads the greeting and
 * negotiates capabilities.  Error texts: "cannot connect to SPEC: <strerror>",
 * "SPEC is not a QMP server", ... */
qs_qmp_client *qs_qmp_client_connect(const char *spec, qs_error **errp);
void qs_qmp_client_close(qs_qmp_client *client);
const char *qs_qmp_client_spec(const qs_qmp_client *client);

/* Sends one request (any JSON value; an "id" is added to objects that lack
 * one) and returns the matching reply object (new reference), skipping
 * events.  NULL + errp when the transport fails; qs_qmp_client_lost() then tells
 * whether the daemon went away. */
json_t *qs_qmp_client_request(qs_qmp_client *client, json_t *req, qs_error **errp);

/* Sends req exactly as given (no id added) and returns the first reply
 * that is not an event, parsed, with its exact text in *text (malloc'd):
 * numbers above INT64_MAX survive only in the text. */
json_t *qs_qmp_client_request_text(qs_qmp_client *client, const json_t *req, char **text,
                                   qs_error **errp);

/* json_loads that also takes integers above INT64_MAX (as reals). */
json_t *qs_client_parse_json(const char *text, size_t flags, json_error_t *jerr);

/* Runs `cmd` with `args` (stolen; may be NULL) and returns the "return"
 * value (new reference), or NULL + errp with the error reply's "desc". */
json_t *qs_qmp_client_call(qs_qmp_client *client, const char *cmd, json_t *args, qs_error **errp);

/* true once the connection is gone (EOF, reset, timeout). */
bool qs_qmp_client_lost(const qs_qmp_client *client);

/* The text of "connection lost", shared so that every mode says the same. */
#define QS_QMP_CLIENT_LOST_MSG "connection to qstatsd lost"

/* Runs one HMP line through human-monitor-command; cpu < 0 omits
 * cpu-index.  Returns the output with "\r\n" turned into "\n" (malloc'd). */
char *qs_client_hmp(qs_qmp_client *client, const char *line, long cpu, qs_error **errp);

/* ---- modes ---------------------------------------------------------------- */

/* Each returns the process exit status. */
/* The interactive console; cpu < 0: the daemon's default CPU. */
int qs_client_console(qs_qmp_client *client, long cpu);

/* `top`: options are parsed before connecting, so that usage errors need
 * no daemon.  qs_top_new returns NULL with *exit_rc set when the program
 * should exit (bad options, --help). */
typedef struct qs_top qs_top;
qs_top *qs_top_new(int argc, char **argv, int *exit_rc);
int qs_top_run(qs_top *top, qs_qmp_client *client);
void qs_top_free(qs_top *top);

/* Prints "qstats: MSG" on stderr and frees err. */
void qs_client_report(qs_error *err);

#endif
