/*
 * qapi-validate.c - the argument validator: walks a command's arguments
 * the way QEMU's generated marshaller walks them with the QObject input
 * visitor, because only the first error is reported and clients (libvirt,
 * scripts, our tests) compare texts: members in declaration order, a
 * union's tag first (it is a base member) and its branch members after the
 * base, unexpected keys only once a struct's members were all visited.  The
 * texts and which name they carry (full path such as
 * 'providers[0].provider', or the bare member name for enum and
 * integer-range errors, 'null' for list elements) were checked against a
 * live QEMU 7.2 (docs/qemu-behaviour.md#argument-errors).
 *
 * When a struct has several unexpected keys, QEMU names the first one left
 * in a GLib hash table; keyorder.c reproduces that order.  The server
 * validates before dispatching, so command handlers may rely on the shapes
 * declared in the schema.
 */
#include "qapi.h"

#include <stdlib.h>
#include <string.h>

typedef struct visit_ctx {
    qs_buf path;                /* full name of the value being visited */
    qs_error **errp;
} visit_ctx;

static bool visit(visit_ctx *c, const qapi_type *t, const json_t *v, const char *bare);

static const char *path(visit_ctx *c)
{
    qs_buf_reserve(&c->path, 1);
    c->path.data[c->path.len] = '\0';
    return c->path.data;
}

static size_t path_push_member(visit_ctx *c, const char *name)
{
    size_t mark = c->path.len;

    if (mark) {
        qs_buf_putc(&c->path, '.');
    }
    qs_buf_puts(&c->path, name);
    return mark;
}

static bool type_error(visit_ctx *c, const char *expected)
{
    qs_error_setg(c->errp, "Invalid parameter type for '%s', expected: %s",
                  c->path.len ? path(c) : "<anonymous>", expected);
    return false;
}

static bool visit_builtin(visit_ctx *c, const qapi_type *t, const json_t *v, const char *bare)
{
    switch (t->builtin) {
    case QAPI_STR:
        return json_is_string(v) || type_error(c, "string");
    case QAPI_INT:
        return json_is_integer(v) || type_error(c, "integer");
    case QAPI_INTN:
        if (!json_is_integer(v)) {
            return type_error(c, "integer");
        }
        if (json_integer_value(v) < t->min || json_integer_value(v) > (int64_t)t->max) {
            qs_error_setg(c->errp, "Parameter '%s' expects %s", bare ? bare : "null",
                          t->ctype);
            return false;
        }
        return true;
    case QAPI_UINT64:
    case QAPI_UINTN:
        /* negative integers are accepted as their two's complement */
        if (!json_is_integer(v)) {
            qs_error_setg(c->errp, "Parameter '%s' expects uint64", path(c));
            return false;
        }
        if ((uint64_t)json_integer_value(v) > t->max) {
            qs_error_setg(c->errp, "Parameter '%s' expects %s", bare ? bare : "null",
                          t->ctype);
            return false;
        }
        return true;
    case QAPI_NUMBER:
        return json_is_number(v) || type_error(c, "number");
    case QAPI_BOOL:
        return json_is_boolean(v) || type_error(c, "boolean");
    case QAPI_NULL:
        return json_is_null(v) || type_error(c, "null");
    case QAPI_ANY:
        return true;
    }
    return false;
}

static bool visit_enum(visit_ctx *c, const qapi_type *t, const json_t *v, const char *bare)
{
    const char *s = json_string_value(v);

    if (!s) {
        return type_error(c, "string");
    }
    for (size_t i = 0; i < t->nvalues; i++) {
        if (!strcmp(s, t->values[i])) {
            return true;
        }
    }
    qs_error_setg(c->errp, "Parameter '%s' does not accept value '%s'",
                  bare ? bare : "null", s);
    return false;
}

static bool visit_array(visit_ctx *c, const qapi_type *t, const json_t *v)
{
    size_t i, mark = c->path.len;
    json_t *e;

    if (!json_is_array(v)) {
        return type_error(c, "array");
    }
    json_array_foreach(v, i, e) {
        qs_buf_printf(&c->path, "[%zu]", i);
        bool ok = visit(c, t->elem, e, NULL);
        c->path.len = mark;
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Which JSON types an alternate branch takes (QEMU picks by QType). */
static bool alt_accepts(const qapi_type *b, const json_t *v)
{
    switch (b->kind) {
    case QAPI_BUILTIN:
        switch (b->builtin) {
        case QAPI_STR:
            return json_is_string(v);
        case QAPI_BOOL:
            return json_is_boolean(v);
        case QAPI_NULL:
            return json_is_null(v);
        case QAPI_ANY:
            return true;
        default:
            return json_is_number(v);
        }
    case QAPI_ENUM:
        return json_is_string(v);
    case QAPI_ARRAY:
        return json_is_array(v);
    case QAPI_OBJECT:
        return json_is_object(v);
    default:
        return false;
    }
}

static bool visit_alternate(visit_ctx *c, const qapi_type *t, const json_t *v,
                            const char *bare)
{
    for (size_t i = 0; i < t->nalts; i++) {
        if (alt_accepts(t->alts[i], v)) {
            return visit(c, t->alts[i], v, bare);
        }
    }
    qs_error_setg(c->errp, "Invalid parameter type for '%s', expected: %s",
                  bare ? bare : "null", t->name);
    return false;
}

/* The keys a struct visit has consumed so far, in visiting order. */
typedef struct consumed {
    const char **names;
    size_t n;
} consumed;

static bool visit_members(visit_ctx *c, const qapi_type *t, const json_t *v, consumed *used)
{
    for (size_t i = 0; i < t->nmembers; i++) {
        const qapi_member *m = &t->members[i];
        const json_t *mv = json_object_get(v, m->name);
        size_t mark = path_push_member(c, m->name);
        bool ok = true;

        if (mv) {
            used->names[used->n++] = m->name;
            ok = visit(c, m->type, mv, m->name);
        } else if (!m->optional) {
            qs_error_setg(c->errp, "Parameter '%s' is missing", path(c));
            ok = false;
        }
        c->path.len = mark;
        if (!ok) {
            return false;
        }
    }
    if (t->tag) {
        const char *tag = json_string_value(json_object_get(v, t->tag));

        for (size_t i = 0; tag && i < t->nvariants; i++) {
            if (!strcmp(tag, t->variants[i].tag_case)) {
                return visit_members(c, t->variants[i].type, v, used);
            }
        }
    }
    return true;
}

static bool check_unexpected(visit_ctx *c, const json_t *v, const consumed *used)
{
    size_t n = json_object_size(v), k = 0, *idx, report;
    const char **names;
    const char *key;
    json_t *val;

    if (used->n == n) {
        return true;
    }
    names = qs_calloc(n, sizeof(*names));
    idx = qs_calloc(used->n ? used->n : 1, sizeof(*idx));
    json_object_foreach((json_t *)v, key, val) {
        names[k++] = key;
    }
    for (size_t i = 0; i < used->n; i++) {
        for (size_t j = 0; j < n; j++) {
            if (!strcmp(names[j], used->names[i])) {
                idx[i] = j;
            }
        }
    }
    report = qs_qapi_unexpected_key(names, n, idx, used->n);
    size_t mark = path_push_member(c, report < n ? names[report] : "?");
    qs_error_setg(c->errp, "Parameter '%s' is unexpected", path(c));
    c->path.len = mark;
    free(names);
    free(idx);
    return false;
}

static bool visit_object(visit_ctx *c, const qapi_type *t, const json_t *v)
{
    consumed used = { 0 };
    bool ok;

    if (!json_is_object(v)) {
        return type_error(c, "object");
    }
    used.names = qs_calloc(json_object_size(v) + 1, sizeof(*used.names));
    ok = visit_members(c, t, v, &used) && check_unexpected(c, v, &used);
    free(used.names);
    return ok;
}

/* bare: the member name for errors that QEMU reports without the path
 * (enum values, integer ranges, alternates); NULL for list elements. */
static bool visit(visit_ctx *c, const qapi_type *t, const json_t *v, const char *bare)
{
    switch (t->kind) {
    case QAPI_BUILTIN:
        return visit_builtin(c, t, v, bare);
    case QAPI_ENUM:
        return visit_enum(c, t, v, bare);
    case QAPI_ARRAY:
        return visit_array(c, t, v);
    case QAPI_OBJECT:
        return visit_object(c, t, v);
    case QAPI_ALTERNATE:
        return visit_alternate(c, t, v, bare);
    case QAPI_COMMAND:
    case QAPI_EVENT:
        break;
    }
    qs_error_setg(c->errp, "QMP schema: '%s' is not a data type", t->name);
    return false;
}

bool qs_qapi_validate(const qapi_type *command, const json_t *args, qs_error **errp)
{
    json_t *empty = NULL;
    visit_ctx c = { .errp = errp };
    bool ok;

    if (!args) {
        args = empty = json_object();
    }
    qs_buf_init(&c.path);
    ok = visit(&c, command->arg, args, NULL);
    qs_buf_free(&c.path);
    json_decref(empty);
    return ok;
}

bool qs_qapi_validate_args(const qs_qapi *s, const char *command,
                           const json_t *args, qs_error **errp)
{
    const qapi_type *cmd = qs_qapi_command(s, command);

    if (!cmd) {
        qs_error_set(errp, QS_ERR_COMMAND_NOT_FOUND,
                     "The command %s has not been found", command);
        return false;
    }
    return qs_qapi_validate(cmd, args, errp);
}
