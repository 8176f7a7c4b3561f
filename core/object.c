/*
 * object.c - the small part of QOM that qstats exposes: objects at
 * canonical paths (vCPUs, the balloon device) with named properties, and
 * the containers implied by those paths ("/machine/unattached").  It gives
 * qom-list / qom-get / qom-set QEMU's path resolution (absolute or a unique
 * partial path) and error texts.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

qs_object *qs_registry_add_object(qs_registry *reg, const char *path,
                                  const char *type_name,
                                  const qs_property *props, size_t nprops,
                                  void *opaque)
{
    qs_object *o = qs_calloc(1, sizeof(*o));
    o->path = qs_strdup(path);
    o->type_name = qs_strdup(type_name);
    o->props = props;
    o->nprops = nprops;
    o->opaque = opaque;
    qs_object **tail = &reg->objects;
    while (*tail)
        tail = &(*tail)->next;
    *tail = o;
    return o;
}

static void object_free(qs_object *o)
{
    free(o->path);
    free(o->type_name);
    free(o);
}

void qs_registry_remove_object(qs_registry *reg, qs_object *obj)
{
    for (qs_object **p = &reg->objects; *p; p = &(*p)->next) {
        if (*p == obj) {
            *p = obj->next;
            object_free(obj);
            return;
        }
    }
}

void qs_registry_objects_free(qs_registry *reg)
{
    while (reg->objects) {
        qs_object *o = reg->objects;
        reg->objects = o->next;
        object_free(o);
    }
}

/* A resolved path: an object, or a container implied by object paths. */
typedef struct node {
    qs_object *obj;       /* NULL for a container */
    char *path;           /* canonical path (owned) */
} node;

static bool is_prefix_dir(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return path[0] == '/' && path[1];
    return strncmp(dir, path, n) == 0 && path[n] == '/';
}

static bool is_container(const qs_registry *reg, const char *path)
{
    for (const qs_object *o = reg->objects; o; o = o->next)
        if (is_prefix_dir(path, o->path))
            return true;
    return strcmp(path, "/") == 0;
}

static qs_object *find_exact(const qs_registry *reg, const char *path)
{
    for (qs_object *o = reg->objects; o; o = o->next)
        if (strcmp(o->path, path) == 0)
            return o;
    return NULL;
}

/* Adds `path` to the candidate set once (a container matches many times). */
static void add_candidate(char ***cands, size_t *n, const char *path, size_t len)
{
    for (size_t i = 0; i < *n; i++)
        if (strlen((*cands)[i]) == len && strncmp((*cands)[i], path, len) == 0)
            return;
    *cands = qs_realloc(*cands, (*n + 1) * sizeof(char *));
    (*cands)[(*n)++] = strndup(path, len);
}

/* Partial path: every canonical path (of an object or a container) that
 * ends with "/<partial>". */
static size_t partial_candidates(const qs_registry *reg, const char *partial, char ***out)
{
    size_t plen = strlen(partial), n = 0;
    *out = NULL;
    for (const qs_object *o = reg->objects; o; o = o->next) {
        for (const char *s = o->path; (s = strchr(s, '/')); s++) {
            const char *end = s + 1 + plen;
            if (strncmp(s + 1, partial, plen) == 0 && (*end == 0 || *end == '/'))
                add_candidate(out, &n, o->path, (size_t)(end - o->path));
        }
    }
    return n;
}

static bool resolve(const qs_registry *reg, const char *path, node *out, bool *ambiguous)
{
    *ambiguous = false;
    if (path[0] == '/') {
        out->obj = find_exact(reg, path);
        if (!out->obj && !is_container(reg, path))
            return false;
        out->path = qs_strdup(path);
        return true;
    }
    char **cands;
    size_t n = path[0] ? partial_candidates(reg, path, &cands) : 0;
    bool ok = n == 1;
    *ambiguous = n > 1;
    for (size_t i = 0; i < n; i++) {
        if (ok) {
            out->path = cands[i];
            out->obj = find_exact(reg, cands[i]);
        } else {
            free(cands[i]);
        }
    }
    if (n)
        free(cands);
    return ok;
}

static const char *node_type(const node *nd)
{
    return nd->obj ? nd->obj->type_name : QS_CONTAINER_TYPE;
}

bool qs_registry_path_free(qs_registry *reg, const char *path, qs_error **errp)
{
    if (path[0] != '/' || !path[1] || strstr(path, "//") || path[strlen(path) - 1] == '/') {
        qs_error_setg(errp, "Parameter 'qom-path' expects an absolute QOM path");
        return false;
    }
    const qs_object *o = find_exact(reg, path);
    if (o || is_container(reg, path)) {
        qs_error_setg(errp, "QOM path '%s' is already in use (type '%s')", path,
                      o ? o->type_name : QS_CONTAINER_TYPE);
        return false;
    }
    for (o = reg->objects; o; o = o->next) {
        if (is_prefix_dir(o->path, path) && strcmp(o->type_name, QS_CONTAINER_TYPE) != 0) {
            qs_error_setg(errp, "QOM path '%s' is below '%s', which is not a container "
                          "(type '%s')", path, o->path, o->type_name);
            return false;
        }
    }
    return true;
}

static const char *prop_owner(const node *nd, const qs_property *prop)
{
    return prop && prop->owner_type ? prop->owner_type : node_type(nd);
}

/* Direct children of a container, each once, as "child<type>". */
static void list_children(const qs_registry *reg, const char *dir,
                          qs_prop_info **out, size_t *n)
{
    size_t dlen = strcmp(dir, "/") == 0 ? 0 : strlen(dir);
    for (const qs_object *o = reg->objects; o; o = o->next) {
        if (!is_prefix_dir(dir, o->path))
            continue;
        const char *name = o->path + dlen + 1;
        size_t len = strcspn(name, "/");
        bool seen = false;
        for (size_t i = 0; i < *n && !seen; i++)
            seen = strlen((*out)[i].name) == len && strncmp((*out)[i].name, name, len) == 0;
        if (seen)
            continue;
        *out = qs_realloc(*out, (*n + 1) * sizeof(**out));
        (*out)[*n].name = strndup(name, len);
        (*out)[*n].type = qs_strdup_printf("child<%s>",
                                           name[len] ? QS_CONTAINER_TYPE : o->type_name);
        (*n)++;
    }
}

bool qs_registry_qom_list(qs_registry *reg, const char *path,
                          qs_prop_info **out, size_t *n, qs_error **errp)
{
    node nd;
    bool ambiguous;
    if (!resolve(reg, path, &nd, &ambiguous)) {
        if (ambiguous)
            qs_error_setg(errp, "Path '%s' is ambiguous", path);
        else
            qs_error_set(errp, QS_ERR_DEVICE_NOT_FOUND, "Device '%s' not found", path);
        return false;
    }
    *n = 1;
    *out = qs_malloc(sizeof(**out));
    (*out)[0] = (qs_prop_info){ .name = qs_strdup("type"), .type = qs_strdup("string") };
    if (nd.obj) {
        *out = qs_realloc(*out, (1 + nd.obj->nprops) * sizeof(**out));
        for (size_t i = 0; i < nd.obj->nprops; i++)
            (*out)[(*n)++] = (qs_prop_info){ .name = qs_strdup(nd.obj->props[i].name),
                                             .type = qs_strdup(nd.obj->props[i].type) };
    }
    list_children(reg, nd.path, out, n);
    free(nd.path);
    return true;
}

void qs_prop_info_free(qs_prop_info *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)v[i].name);
        free(v[i].type);
    }
    free(v);
}

/* Resolves path and property for qom-get/qom-set; NULL prop means "type". */
static bool find_prop(qs_registry *reg, const char *path, const char *name,
                      node *nd, const qs_property **prop, qs_error **errp)
{
    bool ambiguous;
    *prop = NULL;
    if (!resolve(reg, path, nd, &ambiguous)) {
        qs_error_set(errp, QS_ERR_DEVICE_NOT_FOUND, "Device '%s' not found", path);
        return false;
    }
    if (strcmp(name, "type") == 0)
        return true;
    for (size_t i = 0; nd->obj && i < nd->obj->nprops; i++)
        if (strcmp(nd->obj->props[i].name, name) == 0)
            *prop = &nd->obj->props[i];
    if (!*prop) {
        qs_error_setg(errp, "Property '%s.%s' not found", node_type(nd), name);
        free(nd->path);
        return false;
    }
    return true;
}

bool qs_registry_qom_get(qs_registry *reg, const char *path, const char *name,
                         qs_jw *out, qs_error **errp)
{
    node nd;
    const qs_property *prop;
    if (!find_prop(reg, path, name, &nd, &prop, errp))
        return false;
    bool ok = true;
    if (!prop)
        qs_jw_str(out, node_type(&nd));
    else if (!prop->get) {
        qs_error_setg(errp, "Property '%s.%s' is not readable", prop_owner(&nd, prop), name);
        ok = false;
    } else
        ok = prop->get(nd.obj->opaque, out, errp);
    free(nd.path);
    return ok;
}

bool qs_registry_qom_set(qs_registry *reg, const char *path, const char *name,
                         const qs_input *in, qs_error **errp)
{
    node nd;
    const qs_property *prop;
    if (!find_prop(reg, path, name, &nd, &prop, errp))
        return false;
    bool ok = false;
    if (!prop || !prop->set)
        qs_error_setg(errp, "Property '%s.%s' is not writable", prop_owner(&nd, prop), name);
    else
        ok = prop->set(nd.obj->opaque, in, errp);
    free(nd.path);
    return ok;
}
