/*
 * qapi-schema.c - the QMP schema: parts in QEMU's introspection format
 * (SchemaInfo arrays) composed into one document and indexed by name, with
 * every reference resolved, so that the validator (qapi-validate.c) and
 * query-qmp-schema read the same thing.
 *
 * The framework's part is schemas/qapi-schema.json, compiled in; modules
 * that add commands (the balloon, a VMM's own) add theirs through
 * qs_qmp_add_command.  The index is rebuilt from the document whenever a
 * part is added, which happens while a program sets itself up, never on
 * the request path.
 */
#include "qapi.h"

#include <stdlib.h>
#include <string.h>

extern const char qs_schema_json[];
extern const size_t qs_schema_json_len;

struct qs_qapi {
    json_t *root;               /* the composed SchemaInfo array */
    size_t ntypes;
    qapi_type *types;
    qapi_type **by_name;        /* sorted by name, for bsearch */
    size_t ncmds;
    qapi_type **cmds;           /* schema order */
};

/* ---- loading ------------------------------------------------------------ */

static int qapi_type_ptr_cmp(const void *a, const void *b)
{
    return strcmp((*(qapi_type *const *)a)->name, (*(qapi_type *const *)b)->name);
}

static int qapi_type_key_cmp(const void *key, const void *elem)
{
    return strcmp(key, (*(qapi_type *const *)elem)->name);
}

static qapi_type *lookup(const qs_qapi *s, const char *name)
{
    if (!s->ntypes)                 /* bsearch takes no NULL array */
        return NULL;
    qapi_type **p = bsearch(name, s->by_name, s->ntypes, sizeof(*s->by_name),
                            qapi_type_key_cmp);
    return p ? *p : NULL;
}

static const char *get_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Resolves the type named by o[key]. */
static qapi_type *ref(const qs_qapi *s, const qapi_type *t, const json_t *o,
                  const char *key, qs_error **errp)
{
    const char *name = get_str(o, key);
    qapi_type *r;

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
    qapi_builtin b;
    int64_t min;
    uint64_t max;
    const char *ctype;
} int_builtins[] = {
    { "int8", QAPI_INTN, INT8_MIN, INT8_MAX, "int8_t" },
    { "int16", QAPI_INTN, INT16_MIN, INT16_MAX, "int16_t" },
    { "int32", QAPI_INTN, INT32_MIN, INT32_MAX, "int32_t" },
    { "uint8", QAPI_UINTN, 0, UINT8_MAX, "uint8_t" },
    { "uint16", QAPI_UINTN, 0, UINT16_MAX, "uint16_t" },
    { "uint32", QAPI_UINTN, 0, UINT32_MAX, "uint32_t" },
    { "uint64", QAPI_UINT64, 0, UINT64_MAX, "uint64" },
};

static bool load_builtin(qapi_type *t, qs_error **errp)
{
    const char *jt = get_str(t->info, "json-type");

    if (!jt) {
        qs_error_setg(errp, "QMP schema: builtin '%s' lacks 'json-type'", t->name);
        return false;
    }
    if (!strcmp(jt, "int")) {
        t->builtin = QAPI_INT;          /* int, int64 and unknown integer names */
        for (size_t i = 0; i < sizeof(int_builtins) / sizeof(int_builtins[0]); i++) {
            if (!strcmp(t->name, int_builtins[i].name)) {
                t->builtin = int_builtins[i].b;
                t->min = int_builtins[i].min;
                t->max = int_builtins[i].max;
                t->ctype = int_builtins[i].ctype;
            }
        }
    } else if (!strcmp(jt, "string")) {
        t->builtin = QAPI_STR;
    } else if (!strcmp(jt, "number")) {
        t->builtin = QAPI_NUMBER;
    } else if (!strcmp(jt, "boolean")) {
        t->builtin = QAPI_BOOL;
    } else if (!strcmp(jt, "null")) {
        t->builtin = QAPI_NULL;
    } else if (!strcmp(jt, "value")) {
        t->builtin = QAPI_ANY;
    } else {
        qs_error_setg(errp, "QMP schema: builtin '%s' has unknown json-type '%s'",
                      t->name, jt);
        return false;
    }
    return true;
}

static bool load_enum(qapi_type *t, qs_error **errp)
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

static bool load_members(const qs_qapi *s, qapi_type *t, qs_error **errp)
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

static const qapi_member *find_member(const qapi_type *t, const char *name)
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
static bool load_variants(const qs_qapi *s, qapi_type *t, qs_error **errp)
{
    const json_t *vs = json_object_get(t->info, "variants");
    const qapi_member *tag;
    size_t i;
    json_t *v;

    t->tag = get_str(t->info, "tag");
    if (!t->tag) {
        return true;
    }
    tag = find_member(t, t->tag);
    if (!tag || tag->optional || tag->type->kind != QAPI_ENUM || !json_is_array(vs)) {
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
        if (!t->variants[i].tag_case || t->variants[i].type->kind != QAPI_OBJECT) {
            qs_error_setg(errp, "QMP schema: union '%s' has a bad variant", t->name);
            return false;
        }
    }
    return true;
}

static bool load_alternate(const qs_qapi *s, qapi_type *t, qs_error **errp)
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

static bool load_command(const qs_qapi *s, qapi_type *t, qs_error **errp)
{
    t->arg = ref(s, t, t->info, "arg-type", errp);
    if (!t->arg) {
        return false;
    }
    if (t->arg->kind != QAPI_OBJECT) {
        qs_error_setg(errp, "QMP schema: arguments of '%s' are not an object",
                      t->name);
        return false;
    }
    if (t->kind == QAPI_COMMAND) {
        t->ret = ref(s, t, t->info, "ret-type", errp);
        return t->ret != NULL;
    }
    return true;
}

static bool load_type(const qs_qapi *s, qapi_type *t, qs_error **errp)
{
    switch (t->kind) {
    case QAPI_BUILTIN:
        return load_builtin(t, errp);
    case QAPI_ENUM:
        return load_enum(t, errp);
    case QAPI_ARRAY:
        t->elem = ref(s, t, t->info, "element-type", errp);
        return t->elem != NULL;
    case QAPI_OBJECT:
        return load_members(s, t, errp) && load_variants(s, t, errp);
    case QAPI_ALTERNATE:
        return load_alternate(s, t, errp);
    case QAPI_COMMAND:
    case QAPI_EVENT:
        return load_command(s, t, errp);
    }
    return false;
}

static bool parse_kind(const char *mt, qapi_kind *out)
{
    static const char *const names[] = {
        [QAPI_BUILTIN] = "builtin", [QAPI_ENUM] = "enum", [QAPI_ARRAY] = "array",
        [QAPI_OBJECT] = "object", [QAPI_ALTERNATE] = "alternate",
        [QAPI_COMMAND] = "command", [QAPI_EVENT] = "event",
    };

    for (size_t i = 0; mt && i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcmp(mt, names[i])) {
            *out = (qapi_kind)i;
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
        qapi_type *t = &s->types[i];

        t->info = e;
        t->name = get_str(e, "name");
        if (!t->name || !parse_kind(get_str(e, "meta-type"), &t->kind)) {
            qs_error_setg(errp, "QMP schema: entry %zu lacks a name or a known "
                          "meta-type", i);
            return false;
        }
        s->by_name[i] = t;
        if (t->kind == QAPI_COMMAND) {
            s->cmds[s->ncmds++] = t;
        }
    }
    qsort(s->by_name, s->ntypes, sizeof(*s->by_name), qapi_type_ptr_cmp);
    for (i = 1; i < s->ntypes; i++) {
        if (!strcmp(s->by_name[i - 1]->name, s->by_name[i]->name)) {
            qs_error_setg(errp, "QMP schema: '%s' is defined twice",
                          s->by_name[i]->name);
            return false;
        }
    }
    return true;
}

static void index_free(qs_qapi *s)
{
    for (size_t i = 0; i < s->ntypes; i++) {
        free(s->types[i].values);
        free(s->types[i].members);
        free(s->types[i].variants);
        free(s->types[i].alts);
    }
    free(s->types);
    free(s->by_name);
    free(s->cmds);
    s->types = NULL;
    s->by_name = s->cmds = NULL;
    s->ntypes = s->ncmds = 0;
}

/* (Re)builds the index from the document. */
static bool build_index(qs_qapi *s, qs_error **errp)
{
    index_free(s);
    if (!index_types(s, errp)) {
        return false;
    }
    for (size_t i = 0; i < s->ntypes; i++) {
        if (!load_type(s, &s->types[i], errp)) {
            return false;
        }
    }
    return true;
}

qs_qapi *qs_qapi_new(void)
{
    qs_qapi *s = qs_calloc(1, sizeof(*s));
    s->root = json_array();
    return s;
}

/* Appends the entries of `part` that the schema lacks; an entry it has
 * must be the same.  Returns how many were appended, or -1. */
static long merge(qs_qapi *s, const json_t *part, qs_error **errp)
{
    size_t i;
    json_t *e;
    long added = 0;

    json_array_foreach(part, i, e) {
        const char *name = get_str(e, "name");
        const qapi_type *have = name ? lookup(s, name) : NULL;
        if (have && !json_equal((json_t *)have->info, e)) {
            qs_error_setg(errp, "QMP schema: '%s' is defined twice, differently", name);
            return -1;
        }
        if (!have) {
            json_array_append(s->root, e);
            added++;
        }
    }
    return added;
}

bool qs_qapi_add(qs_qapi *s, const char *json, size_t len, qs_error **errp)
{
    json_error_t jerr;
    json_t *part = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);

    if (!part || !json_is_array(part)) {
        if (part) {
            qs_error_setg(errp, "QMP schema: not a JSON array");
        } else {
            qs_error_setg(errp, "QMP schema: line %d: %s", jerr.line, jerr.text);
        }
        json_decref(part);
        return false;
    }
    size_t before = json_array_size(s->root);
    long added = merge(s, part, errp);
    json_decref(part);
    if (added >= 0 && build_index(s, errp)) {
        return true;
    }
    while (json_array_size(s->root) > before) {      /* as it was */
        json_array_remove(s->root, json_array_size(s->root) - 1);
    }
    build_index(s, NULL);
    return false;
}

qs_qapi *qs_qapi_load(const char *json, size_t len, qs_error **errp)
{
    qs_qapi *s = qs_qapi_new();
    if (!qs_qapi_add(s, json, len, errp)) {
        qs_qapi_free(s);
        return NULL;
    }
    return s;
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
    index_free(s);
    json_decref(s->root);
    free(s);
}

bool qs_qapi_set_enum(qs_qapi *s, const char *name, const char *const *values,
                      size_t n, qs_error **errp)
{
    qapi_type *t = lookup(s, name);
    if (!t || t->kind != QAPI_ENUM) {
        qs_error_setg(errp, "QMP schema: no enum '%s'", name);
        return false;
    }
    json_t *vals = json_array(), *members = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(vals, json_string(values[i]));
        json_array_append_new(members, json_pack("{s:s}", "name", values[i]));
    }
    json_object_set_new((json_t *)t->info, "values", vals);
    json_object_set_new((json_t *)t->info, "members", members);
    free(t->values);
    return load_enum(t, errp);
}

const json_t *qs_qapi_schema(const qs_qapi *s)
{
    return s->root;
}

const qapi_type *qs_qapi_command(const qs_qapi *s, const char *name)
{
    const qapi_type *t = lookup(s, name);

    return t && t->kind == QAPI_COMMAND ? t : NULL;
}

bool qs_qapi_has_command(const qs_qapi *s, const char *name)
{
    return qs_qapi_command(s, name) != NULL;
}

size_t qs_qapi_command_count(const qs_qapi *s)
{
    return s->ncmds;
}

const char *qs_qapi_command_name(const qs_qapi *s, size_t i)
{
    return i < s->ncmds ? s->cmds[i]->name : NULL;
}

