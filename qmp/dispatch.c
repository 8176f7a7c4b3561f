/*
 * dispatch.c - the command table: the framework's commands and those that
 * modules add (qs_qmp_add_command), each with its part of the QMP schema,
 * found by one lookup that yields both the handler and the schema entry
 * the arguments are validated against.  The StatsProvider enum follows the
 * registry, so a provider a VMM registers at run time is accepted from its
 * next request on.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int command_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const qs_qmp_command *)elem)->name);
}

const qs_qmp_command *qs_qmp_find_command(const qs_qmp *q, const char *name)
{
    return q->ncmds ? bsearch(name, q->cmds, q->ncmds, sizeof(*q->cmds), command_cmp) : NULL;
}

/* Schema entries move when the schema grows: look them up again. */
static void resolve_types(qs_qmp *q)
{
    for (size_t i = 0; i < q->ncmds; i++)
        q->cmds[i].type = qs_qapi_command(q->qapi, q->cmds[i].name);
}

static bool insert(qs_qmp *q, const qs_qmp_command *c, qs_error **errp)
{
    size_t at = 0;
    while (at < q->ncmds && strcmp(q->cmds[at].name, c->name) < 0)
        at++;
    if (at < q->ncmds && strcmp(q->cmds[at].name, c->name) == 0) {
        qs_error_setg(errp, "QMP command '%s' is already registered", c->name);
        return false;
    }
    q->cmds = qs_realloc(q->cmds, (q->ncmds + 1) * sizeof(*q->cmds));
    memmove(&q->cmds[at + 1], &q->cmds[at], (q->ncmds - at) * sizeof(*q->cmds));
    q->cmds[at] = *c;
    q->cmds[at].name = qs_strdup(c->name);
    q->ncmds++;
    return true;
}

/* Adds a command whose schema entry is already in the schema. */
bool qs_qmp_add_session_command(qs_qmp *q, const char *name, qs_qmp_cmd_fn fn,
                                qs_error **errp)
{
    if (!qs_qapi_command(q->qapi, name)) {
        qs_error_setg(errp, "QMP schema: no command '%s'", name);
        return false;
    }
    if (!insert(q, &(qs_qmp_command){ .name = (char *)name, .session_fn = fn }, errp))
        return false;
    resolve_types(q);
    return true;
}

bool qs_qmp_add_command(qs_qmp *q, const char *name, const char *schema,
                        qs_qmp_command_fn fn, void *opaque, qs_error **errp)
{
    if (qs_qmp_find_command(q, name)) {
        qs_error_setg(errp, "QMP command '%s' is already registered", name);
        return false;
    }
    if (!qs_qapi_add(q->qapi, schema, strlen(schema), errp))
        return false;
    if (!qs_qapi_command(q->qapi, name)) {
        qs_error_setg(errp, "QMP schema of '%s' does not describe the command", name);
        return false;
    }
    insert(q, &(qs_qmp_command){ .name = (char *)name, .fn = fn, .opaque = opaque }, NULL);
    resolve_types(q);
    return true;
}

void qs_qmp_commands_free(qs_qmp *q)
{
    for (size_t i = 0; i < q->ncmds; i++)
        free(q->cmds[i].name);
    free(q->cmds);
}

void qs_qmp_sync_providers(qs_qmp *q)
{
    const char *const *names;
    unsigned gen;
    size_t n = qs_registry_provider_names(q->cfg.reg, &names, &gen);
    if (gen != q->providers_seen &&
        qs_qapi_set_enum(q->qapi, "StatsProvider", names, n, NULL))
        q->providers_seen = gen;
}

/* ---- arguments: the validated JSON object ------------------------------ */

static const json_t *member(const qs_qmp_args *a, const char *name)
{
    return json_object_get((const json_t *)a, name);
}

bool qs_qmp_args_has(const qs_qmp_args *a, const char *name)
{
    return member(a, name) != NULL;
}

const char *qs_qmp_args_str(const qs_qmp_args *a, const char *name)
{
    return json_string_value(member(a, name));
}

int64_t qs_qmp_args_int(const qs_qmp_args *a, const char *name)
{
    return json_integer_value(member(a, name));
}

bool qs_qmp_args_bool(const qs_qmp_args *a, const char *name)
{
    return json_is_true(member(a, name));
}
