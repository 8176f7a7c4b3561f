/*
 * qapi.c - the QMP schema (schemas/qapi-schema.json, QEMU's introspection
 * format) loaded into an index, and the argument validator driven by it.
 *
 * The validator walks a command's arguments the way QEMU's generated
 * marshaller walks them with the QObject input visitor, because only the
 * first error is reported and clients (libvirt, scripts, our tests) compare
 * texts: members in declaration order, a union's tag first (it is a base
 * member) and its branch members after the base, unexpected keys only once
 * a struct's members were all visited.  The texts and which name they carry
 * (full path such as 'providers[0].provider', or the bare member name for
 * enum and integer-range errors, 'null' for list elements) were checked
 * against a live QEMU 7.2.
 *
 * When a struct has several unexpected keys, QEMU names the first one left
 * in a GLib hash table; keyorder.c reproduces that order.
 *
 * The server (qmp/server.c) validates before dispatching, so command
 * handlers may rely on the shapes declared in the schema.
 */
#include "qapi.h"

#include <stdlib.h>
#include <string.h>

extern const char qs_schema_json[];
extern const size_t qs_schema_json_len;

typedef enum qk {
    QK_BUILTIN, QK_ENUM, QK_ARRAY, QK_OBJECT, QK_ALTERNATE, QK_COMMAND, QK_EVENT,
} qk;

/* How a builtin checks its value; the QObject visitor has one routine per
 * C type, each with its own error text. */
typedef enum qb {
    QB_STR, QB_INT, QB_INTN, QB_UINT64, QB_UINTN, QB_NUMBER, QB_BOOL, QB_NULL, QB_ANY,
} qb;

typedef struct qtype qtype;

typedef struct qmember {
    const char *name;
    qtype *type;
    bool optional;
} qmember;

typedef struct qvariant {
    const char *tag_case;
    qtype *type;
} qvariant;

struct qtype {
    const char *name;           /* borrowed from the schema document */
    qk kind;
    const json_t *info;
    /* builtin */
    qb b;
    int64_t min;
    uint64_t max;
    const char *ctype;          /* "uint8_t": what QEMU's range error names */
    /* enum */
    size_t nvalues;
    const char **values;
    /* array */
    qtype *elem;
    /* object */
    size_t nmembers;
    qmember *members;
    const char *tag;
    size_t nvariants;
    qvariant *variants;
    /* alternate */
    size_t nalts;
    qtype **alts;
    /* command, event */
    qtype *arg, *ret;
};

struct qs_qapi {
    json_t *root;
    size_t ntypes;
    qtype *types;
    qtype **by_name;            /* sorted by name, for bsearch */
    size_t ncmds;
    qtype **cmds;               /* schema order */
};

/* ---- loading ------------------------------------------------------------ */

static int qtype_ptr_cmp(const void *a, const void *b)
{
    return strcmp((*(qtype *const *)a)->name, (*(qtype *const *)b)->name);
}

static int qtype_key_cmp(const void *key, const void *elem)
{
    return strcmp(key, (*(qtype *const *)elem)->name);
}

static qtype *lookup(const qs_qapi *s, const char *name)
{
    qtype **p = bsearch(name, s->by_name, s->ntypes, sizeof(*s->by_name),
                        qtype_key_cmp);
    return p ? *p : NULL;
}

static const char *get_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Resolves the type named by o[key]. */
static qtype *ref(const qs_qapi *s, const qtype *t, const json_t *o,
                  const char *key, qs_error **errp)
{
    const char *name = get_str(o, key);
    qtype *r;

    if (!name) {
        qs_error_setg(errp, "QMP schema: '%s' lacks member '%s'", t->name, key);
        return NULL;
    }
    r = lookup(s, name);
    if (!r) {
        qs_error_setg(errp, "QMP schema: '%s' refers to unknown type '%s'",
                      t->name, name);
    }
    return r;
}

static const struct {
    const char *name;
    qb b;
    int64_t min;
    uint64_t max;
    const char *ctype;
} int_builtins[] = {
    { "int8", QB_INTN, INT8_MIN, INT8_MAX, "int8_t" },
    { "int16", QB_INTN, INT16_MIN, INT16_MAX, "int16_t" },
    { "int32", QB_INTN, INT32_MIN, INT32_MAX, "int32_t" },
    { "uint8", QB_UINTN, 0, UINT8_MAX, "uint8_t" },
    { "uint16", QB_UINTN, 0, UINT16_MAX, "uint16_t" },
    { "uint32", QB_UINTN, 0, UINT32_MAX, "uint32_t" },
    { "uint64", QB_UINT64, 0, UINT64_MAX, "uint64" },
};

static bool load_builtin(qtype *t, qs_error **errp)
{
    const char *jt = get_str(t->info, "json-type");

    if (!jt) {
        qs_error_setg(errp, "QMP schema: builtin '%s' lacks 'json-type'", t->name);
        return false;
    }
    if (!strcmp(jt, "int")) {
        t->b = QB_INT;          /* int, int64 and unknown integer names */
        for (size_t i = 0; i < sizeof(int_builtins) / sizeof(int_builtins[0]); i++) {
            if (!strcmp(t->name, int_builtins[i].name)) {
                t->b = int_builtins[i].b;
                t->min = int_builtins[i].min;
                t->max = int_builtins[i].max;
                t->ctype = int_builtins[i].ctype;
            }
        }
    } else if (!strcmp(jt, "string")) {
        t->b = QB_STR;
    } else if (!strcmp(jt, "number")) {
        t->b = QB_NUMBER;
    } else if (!strcmp(jt, "boolean")) {
        t->b = QB_BOOL;
    } else if (!strcmp(jt, "null")) {
        t->b = QB_NULL;
    } else if (!strcmp(jt, "value")) {
        t->b = QB_ANY;
    } else {
        qs_error_setg(errp, "QMP schema: builtin '%s' has unknown json-type '%s'",
                      t->name, jt);
        return false;
    }
    return true;
}

static bool load_enum(qtype *t, qs_error **errp)
{
    const json_t *vals = json_object_get(t->info, "values");
    const json_t *members = json_object_get(t->info, "members");
    const json_t *src = json_is_array(vals) ? vals : members;
    size_t i;
    json_t *v;

    if (!json_is_array(src)) {
        qs_error_setg(errp, "QMP schema: enum '%s' has no values", t->name);
        return false;
    }
    t->nvalues = json_array_size(src);
    t->values = qs_calloc(t->nvalues ? t->nvalues : 1, sizeof(*t->values));
    json_array_foreach(src, i, v) {
        t->values[i] = src == vals ? json_string_value(v) : get_str(v, "name");
        if (!t->values[i]) {
            qs_error_setg(errp, "QMP schema: enum '%s' has a bad value", t->name);
            return false;
        }
    }
    return true;
}

static bool load_members(const qs_qapi *s, qtype *t, qs_error **errp)
{
    const json_t *ms = json_object_get(t->info, "members");
    size_t i;
    json_t *m;

    if (!json_is_array(ms)) {
        qs_error_setg(errp, "QMP schema: object '%s' has no members", t->name);
        return false;
    }
    t->nmembers = json_array_size(ms);
    t->members = qs_calloc(t->nmembers ? t->nmembers : 1, sizeof(*t->members));
    json_array_foreach(ms, i, m) {
        t->members[i].name = get_str(m, "name");
        t->members[i].optional = json_object_get(m, "default") != NULL;
        if (!t->members[i].name) {
            qs_error_setg(errp, "QMP schema: object '%s' has a nameless member",
                          t->name);
            return false;
        }
        t->members[i].type = ref(s, t, m, "type", errp);
        if (!t->members[i].type) {
            return false;
        }
    }
    return true;
}

static const qmember *find_member(const qtype *t, const char *name)
{
    for (size_t i = 0; i < t->nmembers; i++) {
        if (!strcmp(t->members[i].name, name)) {
            return &t->members[i];
        }
    }
    return NULL;
}

/* A union: the tag must be a mandatory enum member of the base, every
 * branch an object. */
static bool load_variants(const qs_qapi *s, qtype *t, qs_error **errp)
{
    const json_t *vs = json_object_get(t->info, "variants");
    const qmember *tag;
    size_t i;
    json_t *v;

    t->tag = get_str(t->info, "tag");
    if (!t->tag) {
        return true;
    }
    tag = find_member(t, t->tag);
    if (!tag || tag->optional || tag->type->kind != QK_ENUM || !json_is_array(vs)) {
        qs_error_setg(errp, "QMP schema: union '%s' has a bad tag", t->name);
        return false;
    }
    t->nvariants = json_array_size(vs);
    t->variants = qs_calloc(t->nvariants ? t->nvariants : 1, sizeof(*t->variants));
    json_array_foreach(vs, i, v) {
        t->variants[i].tag_case = get_str(v, "case");
        t->variants[i].type = ref(s, t, v, "type", errp);
        if (!t->variants[i].type) {
            return false;
        }
        if (!t->variants[i].tag_case || t->variants[i].type->kind != QK_OBJECT) {
            qs_error_setg(errp, "QMP schema: union '%s' has a bad variant", t->name);
            return false;
        }
    }
    return true;
}

static bool load_alternate(const qs_qapi *s, qtype *t, qs_error **errp)
{
    const json_t *ms = json_object_get(t->info, "members");
    size_t i;
    json_t *m;

    if (!json_is_array(ms) || json_array_size(ms) == 0) {
        qs_error_setg(errp, "QMP schema: alternate '%s' has no members", t->name);
        return false;
    }
    t->nalts = json_array_size(ms);
    t->alts = qs_calloc(t->nalts, sizeof(*t->alts));
    json_array_foreach(ms, i, m) {
        t->alts[i] = ref(s, t, m, "type", errp);
        if (!t->alts[i]) {
            return false;
        }
    }
    return true;
}

static bool load_command(const qs_qapi *s, qtype *t, qs_error **errp)
{
    t->arg = ref(s, t, t->info, "arg-type", errp);
    if (!t->arg) {
        return false;
    }
    if (t->arg->kind != QK_OBJECT) {
        qs_error_setg(errp, "QMP schema: arguments of '%s' are not an object",
                      t->name);
        return false;
    }
    if (t->kind == QK_COMMAND) {
        t->ret = ref(s, t, t->info, "ret-type", errp);
        return t->ret != NULL;
    }
    return true;
}

static bool load_type(const qs_qapi *s, qtype *t, qs_error **errp)
{
    switch (t->kind) {
    case QK_BUILTIN:
        return load_builtin(t, errp);
    case QK_ENUM:
        return load_enum(t, errp);
    case QK_ARRAY:
        t->elem = ref(s, t, t->info, "element-type", errp);
        return t->elem != NULL;
    case QK_OBJECT:
        return load_members(s, t, errp) && load_variants(s, t, errp);
    case QK_ALTERNATE:
        return load_alternate(s, t, errp);
    case QK_COMMAND:
    case QK_EVENT:
        return load_command(s, t, errp);
    }
    return false;
}

static bool parse_kind(const char *mt, qk *out)
{
    static const char *const names[] = {
        [QK_BUILTIN] = "builtin", [QK_ENUM] = "enum", [QK_ARRAY] = "array",
        [QK_OBJECT] = "object", [QK_ALTERNATE] = "alternate",
        [QK_COMMAND] = "command", [QK_EVENT] = "event",
    };

    for (size_t i = 0; mt && i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcmp(mt, names[i])) {
            *out = (qk)i;
            return true;
        }
    }
    return false;
}

/* First pass: names and kinds, so that the second pass can resolve
 * references in any order. */
static bool index_types(qs_qapi *s, qs_error **errp)
{
    size_t i;
    json_t *e;

    s->ntypes = json_array_size(s->root);
    s->types = qs_calloc(s->ntypes ? s->ntypes : 1, sizeof(*s->types));
    s->by_name = qs_calloc(s->ntypes ? s->ntypes : 1, sizeof(*s->by_name));
    s->cmds = qs_calloc(s->ntypes ? s->ntypes : 1, sizeof(*s->cmds));
    json_array_foreach(s->root, i, e) {
        qtype *t = &s->types[i];

        t->info = e;
        t->name = get_str(e, "name");
        if (!t->name || !parse_kind(get_str(e, "meta-type"), &t->kind)) {
            qs_error_setg(errp, "QMP schema: entry %zu lacks a name or a known "
                          "meta-type", i);
            return false;
        }
        s->by_name[i] = t;
        if (t->kind == QK_COMMAND) {
            s->cmds[s->ncmds++] = t;
        }
    }
    qsort(s->by_name, s->ntypes, sizeof(*s->by_name), qtype_ptr_cmp);
    for (i = 1; i < s->ntypes; i++) {
        if (!strcmp(s->by_name[i - 1]->name, s->by_name[i]->name)) {
            qs_error_setg(errp, "QMP schema: '%s' is defined twice",
                          s->by_name[i]->name);
            return false;
        }
    }
    return true;
}

qs_qapi *qs_qapi_load(const char *json, size_t len, qs_error **errp)
{
    qs_qapi *s = qs_calloc(1, sizeof(*s));
    json_error_t jerr;

    s->root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!s->root || !json_is_array(s->root)) {
        if (s->root) {
            qs_error_setg(errp, "QMP schema: not a JSON array");
        } else {
            qs_error_setg(errp, "QMP schema: line %d: %s", jerr.line, jerr.text);
        }
        goto fail;
    }
    if (!index_types(s, errp)) {
        goto fail;
    }
    for (size_t i = 0; i < s->ntypes; i++) {
        if (!load_type(s, &s->types[i], errp)) {
            goto fail;
        }
    }
    return s;

fail:
    qs_qapi_free(s);
    return NULL;
}

qs_qapi *qs_qapi_load_builtin(qs_error **errp)
{
    return qs_qapi_load(qs_schema_json, qs_schema_json_len, errp);
}

void qs_qapi_free(qs_qapi *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->ntypes; i++) {
        free(s->types[i].values);
        free(s->types[i].members);
        free(s->types[i].variants);
        free(s->types[i].alts);
    }
    free(s->types);
    free(s->by_name);
    free(s->cmds);
    json_decref(s->root);
    free(s);
}

const json_t *qs_qapi_schema(const qs_qapi *s)
{
    return s->root;
}

bool qs_qapi_has_command(const qs_qapi *s, const char *name)
{
    const qtype *t = lookup(s, name);

    return t && t->kind == QK_COMMAND;
}

size_t qs_qapi_command_count(const qs_qapi *s)
{
    return s->ncmds;
}

const char *qs_qapi_command_name(const qs_qapi *s, size_t i)
{
    return i < s->ncmds ? s->cmds[i]->name : NULL;
}

/* ---- validation --------------------------------------------------------- */

typedef struct vctx {
    qs_buf path;                /* full name of the value being visited */
    qs_error **errp;
} vctx;

static bool visit(vctx *c, const qtype *t, const json_t *v, const char *bare);

static const char *path(vctx *c)
{
    qs_buf_reserve(&c->path, 1);
    c->path.data[c->path.len] = '\0';
    return c->path.data;
}

static size_t path_push_member(vctx *c, const char *name)
{
    size_t mark = c->path.len;

    if (mark) {
        qs_buf_putc(&c->path, '.');
    }
    qs_buf_puts(&c->path, name);
    return mark;
}

static bool type_error(vctx *c, const char *expected)
{
    qs_error_setg(c->errp, "Invalid parameter type for '%s', expected: %s",
                  c->path.len ? path(c) : "<anonymous>", expected);
    return false;
}

static bool visit_builtin(vctx *c, const qtype *t, const json_t *v, const char *bare)
{
    switch (t->b) {
    case QB_STR:
        return json_is_string(v) || type_error(c, "string");
    case QB_INT:
        return json_is_integer(v) || type_error(c, "integer");
    case QB_INTN:
        if (!json_is_integer(v)) {
            return type_error(c, "integer");
        }
        if (json_integer_value(v) < t->min || json_integer_value(v) > (int64_t)t->max) {
            qs_error_setg(c->errp, "Parameter '%s' expects %s", bare ? bare : "null",
                          t->ctype);
            return false;
        }
        return true;
    case QB_UINT64:
    case QB_UINTN:
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
    case QB_NUMBER:
        return json_is_number(v) || type_error(c, "number");
    case QB_BOOL:
        return json_is_boolean(v) || type_error(c, "boolean");
    case QB_NULL:
        return json_is_null(v) || type_error(c, "null");
    case QB_ANY:
        return true;
    }
    return false;
}

static bool visit_enum(vctx *c, const qtype *t, const json_t *v, const char *bare)
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

static bool visit_array(vctx *c, const qtype *t, const json_t *v)
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
static bool alt_accepts(const qtype *b, const json_t *v)
{
    switch (b->kind) {
    case QK_BUILTIN:
        switch (b->b) {
        case QB_STR:
            return json_is_string(v);
        case QB_BOOL:
            return json_is_boolean(v);
        case QB_NULL:
            return json_is_null(v);
        case QB_ANY:
            return true;
        default:
            return json_is_number(v);
        }
    case QK_ENUM:
        return json_is_string(v);
    case QK_ARRAY:
        return json_is_array(v);
    case QK_OBJECT:
        return json_is_object(v);
    default:
        return false;
    }
}

static bool visit_alternate(vctx *c, const qtype *t, const json_t *v,
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

static bool visit_members(vctx *c, const qtype *t, const json_t *v, consumed *used)
{
    for (size_t i = 0; i < t->nmembers; i++) {
        const qmember *m = &t->members[i];
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

static bool check_unexpected(vctx *c, const json_t *v, const consumed *used)
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

static bool visit_object(vctx *c, const qtype *t, const json_t *v)
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
static bool visit(vctx *c, const qtype *t, const json_t *v, const char *bare)
{
    switch (t->kind) {
    case QK_BUILTIN:
        return visit_builtin(c, t, v, bare);
    case QK_ENUM:
        return visit_enum(c, t, v, bare);
    case QK_ARRAY:
        return visit_array(c, t, v);
    case QK_OBJECT:
        return visit_object(c, t, v);
    case QK_ALTERNATE:
        return visit_alternate(c, t, v, bare);
    case QK_COMMAND:
    case QK_EVENT:
        break;
    }
    qs_error_setg(c->errp, "QMP schema: '%s' is not a data type", t->name);
    return false;
}

bool qs_qapi_validate_args(const qs_qapi *s, const char *command,
                           const json_t *args, qs_error **errp)
{
    const qtype *cmd = lookup(s, command);
    json_t *empty = NULL;
    vctx c = { .errp = errp };
    bool ok;

    if (!cmd || cmd->kind != QK_COMMAND) {
        qs_error_set(errp, QS_ERR_COMMAND_NOT_FOUND,
                     "The command %s has not been found", command);
        return false;
    }
    if (!args) {
        args = empty = json_object();
    }
    qs_buf_init(&c.path);
    ok = visit(&c, cmd->arg, args, NULL);
    qs_buf_free(&c.path);
    json_decref(empty);
    return ok;
}
