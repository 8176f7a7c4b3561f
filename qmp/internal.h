/* internal.h - qmp-private: the server, its sessions and the command table. */
#ifndef QS_QMP_INTERNAL_H
#define QS_QMP_INTERNAL_H

#include <jansson.h>
#include <uv.h>

#include "qs-common.h"
#include "qs-net.h"
#include "qs-qmp.h"
#include "qapi.h"

#define QS_QMP_MAX_FDS 16            /* fds received but not yet claimed by getfd */
#define QS_QMP_MAX_INPUT (64u << 20) /* QEMU's token size limit */
#define QS_QMP_MAX_DEPTH 1024
#define QS_QMP_MAX_TOKENS (2u << 20) /* QEMU's token count limit */
#define QS_QMP_OUT_HIGH (8u << 20)   /* stop serving a client that does not read */
#define QS_QMP_DEFAULT_SESSIONS 64
#define QS_QMP_NEGOTIATION_MS 10000
/* Buffers of all sessions (input not yet parsed, the text being split,
 * replies not yet sent): each session may always hold QS_QMP_FLOOR bytes;
 * beyond that they share one pool, so N clients cannot multiply the
 * per-client limits.  The pool lets one client reach QEMU's 64 MiB token. */
#define QS_QMP_FLOOR (1u << 20)
#define QS_QMP_POOL_DEFAULT (96u << 20)

/* Splits a byte stream into top-level JSON texts, as QEMU's streamer does:
 * by balanced brackets outside strings. */
typedef struct qs_json_splitter {
    qs_buf acc;
    int depth;
    char quote;          /* 0, '"' or '\'' while inside a string */
    bool escape;
    bool overflow;       /* the current text went over a limit; skip it */
    bool in_token;       /* a top-level scalar token is being collected */
    bool in_scalar;      /* inside a value: a number or keyword is being read */
    size_t tokens;       /* JSON tokens of the current text, as QEMU counts them */
    bool paused;         /* set by the text callback: stop after this text */
    bool over_budget;    /* acc hit its ceiling (acc.limit): give up */
} qs_json_splitter;

/* text is one complete top-level JSON text (single-quoted strings already
 * rewritten to double quotes), or NULL with `error` set when a limit was
 * exceeded; the splitter then skips to the end of that value. */
typedef void (*qs_json_text_fn)(void *opaque, const char *text, size_t len,
                                const char *error);
void qs_json_splitter_init(qs_json_splitter *sp);
void qs_json_splitter_free(qs_json_splitter *sp);
/* Returns the bytes consumed: all of them, unless the callback paused the
 * splitter, which then stops right after that text. */
size_t qs_json_splitter_feed(qs_json_splitter *sp, const char *data, size_t len,
                             qs_json_text_fn fn, void *opaque);

typedef struct qs_named_fd {
    char *name;
    int fd;
} qs_named_fd;

typedef struct qs_qmp_session {
    qs_qmp *server;
    int fd;
    bool is_unix;
    bool negotiated;
    bool closing;
    uv_poll_t poll;
    int poll_events;
    qs_json_splitter splitter;
    qs_buf in;                /* received, not yet split (while paused) */
    size_t in_off;
    qs_buf out;               /* pending output */
    size_t out_sent;
    uint64_t accepted_ms;     /* loop time of accept: negotiation deadline */
    int passed_fds[QS_QMP_MAX_FDS];   /* received with SCM_RIGHTS, not yet claimed */
    size_t npassed;
    qs_named_fd *fds;         /* getfd table */
    size_t nfds;
    struct qs_qmp_session *next;
} qs_qmp_session;

typedef struct qs_qmp_listener {
    qs_qmp *server;
    qs_acceptor *acceptor;
    struct qs_qmp_listener *next;
} qs_qmp_listener;

/* A command handler of the framework writes its return value with `ret`. */
typedef bool (*qs_qmp_cmd_fn)(qs_qmp_session *s, const json_t *args, qs_jw *ret,
                              qs_error **errp);

/* One entry of the command table: the framework's commands get the
 * session, a module's (qs_qmp_add_command) its opaque pointer. */
typedef struct qs_qmp_command {
    char *name;
    qs_qmp_cmd_fn session_fn;
    qs_qmp_command_fn fn;
    void *opaque;
    const qapi_type *type;    /* schema entry; re-resolved when the schema grows */
} qs_qmp_command;

struct qs_qmp {
    uv_loop_t *loop;
    qs_qmp_config cfg;
    qs_qapi *qapi;
    qs_qmp_command *cmds;     /* sorted by name */
    size_t ncmds;
    unsigned providers_seen;  /* registry generation the StatsProvider enum reflects */
    qs_results results;       /* reused by every query-stats */
    qs_schemas schemas;
    qs_qmp_listener *listeners;
    qs_qmp_session *sessions;
    size_t nsessions, max_sessions;
    uint64_t negotiation_timeout_ms;
    uv_timer_t negotiation_timer;
    uv_timer_t events_timer;  /* coalesced STATS_SCHEMA_CHANGED, next iteration */
    struct pending_change *pending;
    size_t npending;
    qs_watch *watch;
    size_t reply_max;
    size_t pool;              /* bytes shared beyond each session's floor */
    char refusal[128], refused_log[96];
    qs_ratelimit log_limit;
    bool quitting;
    int pending_closes;
    bool freed;
};

/* commands.c: registers the framework's commands (at qs_qmp_new). */
bool qs_qmp_add_builtin_commands(qs_qmp *q, qs_error **errp);
/* dispatch.c: a framework command, described by the schema already. */
bool qs_qmp_add_session_command(qs_qmp *q, const char *name, qs_qmp_cmd_fn fn,
                                qs_error **errp);
void qs_qmp_commands_free(qs_qmp *q);
/* The command named so, or NULL (one lookup: handler and schema entry). */
const qs_qmp_command *qs_qmp_find_command(const qs_qmp *q, const char *name);
/* Brings StatsProvider up to the registry's providers. */
void qs_qmp_sync_providers(qs_qmp *q);

/* A string argument (validated already; NULL when an optional one is absent). */
static inline const char *qs_qmp_arg_str(const json_t *args, const char *key)
{
    return json_string_value(json_object_get(args, key));
}

/* The {} that commands without a value return. */
static inline void qs_qmp_return_empty(qs_jw *ret)
{
    qs_jw_begin_object(ret);
    qs_jw_end_object(ret);
}

/* protocol.c */
void qs_qmp_session_handle_text(qs_qmp_session *s, const char *text, size_t len,
                                const char *error);
void qs_qmp_send_greeting(qs_qmp_session *s);
/* server.c */
void qs_qmp_session_flush(qs_qmp_session *s);
void qs_qmp_session_close(qs_qmp_session *s);
/* A handle of the server was closed (its memory goes with the last). */
void qs_qmp_handle_closed(qs_qmp *q);
/* Operator lines ("qstats: MSG" on stderr), rate-limited by the caller. */
void qs_qmp_log(void *opaque, const char *msg);
/* events.c */
void qs_qmp_events_start(qs_qmp *q);
void qs_qmp_events_stop(qs_qmp *q);
void qs_qmp_watch_negotiation(qs_qmp *q);
/* How many bytes s's buffers may hold in all, given the others' use of
 * the shared pool; `other` is what s holds outside the buffer asking. */
size_t qs_qmp_session_allowance(const qs_qmp_session *s, size_t other);
size_t qs_qmp_session_held(const qs_qmp_session *s);
int qs_qmp_session_take_passed_fd(qs_qmp_session *s);
void qs_qmp_request_quit(qs_qmp_session *s);

#endif
