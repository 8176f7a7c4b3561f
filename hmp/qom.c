/*
 * qom.c - qom-list, qom-get and qom-set over the registry's object tree,
 * printed as QEMU's HMP prints them: "name (type)" lines, the value as
 * pretty JSON, errors as "Error: <text>".  qom-set converts its text the
 * way QEMU does: by the property's declared type (string input visitor),
 * or as JSON with -j.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void print_error(qs_buf *out, qs_error *err)
{
    qs_buf_printf(out, "Error: %s\n", err->msg);
    qs_error_free(err);
}

void qs_hmp_cmd_qom_list(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out)
{
    const char *path = qs_hmp_args_str(a, "path");
    qs_prop_info *props;
    size_t n;
    qs_error *err = NULL;

    if (!path) {
        qs_buf_puts(out, "/\n");       /* QEMU's answer to a bare qom-list */
        return;
    }
    if (!qs_registry_qom_list(m->h->cfg.reg, path, &props, &n, &err)) {
        print_error(out, err);
        return;
    }
    for (size_t i = 0; i < n; i++)
        qs_buf_printf(out, "%s (%s)\n", props[i].name, props[i].type);
    qs_prop_info_free(props, n);
}

void qs_hmp_cmd_qom_get(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out)
{
    qs_buf json;
    qs_jw w;
    qs_error *err = NULL;

    qs_buf_init(&json);
    qs_jw_init(&w, &json);
    if (qs_registry_qom_get(m->h->cfg.reg, qs_hmp_args_str(a, "path"),
                            qs_hmp_args_str(a, "property"), &w, &err)) {
        qs_json_reindent(out, json.data ? json.data : "", json.len, 4, false);
        qs_buf_putc(out, '\n');
    } else {
        print_error(out, err);
    }
    qs_buf_free(&json);
}

/* ---- qom-set value conversion ----------------------------------------- */

/* The declared type of a property, or NULL (then the setter gets text). */
static char *prop_type(qs_registry *reg, const char *path, const char *prop)
{
    qs_prop_info *props;
    size_t n;
    char *type = NULL;
    if (!qs_registry_qom_list(reg, path, &props, &n, NULL))
        return NULL;
    for (size_t i = 0; i < n && !type; i++)
        if (strcmp(props[i].name, prop) == 0)
            type = qs_strdup(props[i].type);
    qs_prop_info_free(props, n);
    return type;
}

static bool full_number(const char *s, const char *end)
{
    return end != s && *end == '\0' && errno == 0;
}

static bool parse_bool_word(const char *s, bool *b)
{
    static const char *const yes[] = { "on", "yes", "true", "y" };
    static const char *const no[] = { "off", "no", "false", "n" };
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *b = strcmp(s, yes[i]) == 0;
            return true;
        }
    }
    return false;
}

/* QEMU's string input visitor: the text is read as the property's type. */
static bool convert_text(const char *type, const char *prop, const char *s,
                         qs_input *in, qs_error **errp)
{
    char *end;
    *in = (qs_input){ .kind = QS_IN_STRING, .s = s };
    if (!type)
        return true;
    errno = 0;
    if (strncmp(type, "int", 3) == 0) {
        in->kind = QS_IN_INT;
        in->i = strtoll(s, &end, 0);
        if (!full_number(s, end)) {
            qs_error_setg(errp, "Parameter '%s' expects int64", prop);
            return false;
        }
    } else if (strncmp(type, "uint", 4) == 0 || strcmp(type, "size") == 0) {
        in->kind = QS_IN_UINT;
        in->u = strtoull(s, &end, 0);
        if (!full_number(s, end)) {
            qs_error_setg(errp, "Parameter '%s' expects uint64", prop);
            return false;
        }
        if (in->u <= INT64_MAX) {
            in->kind = QS_IN_INT;
            in->i = (int64_t)in->u;
        }
    } else if (strcmp(type, "bool") == 0) {
        in->kind = QS_IN_BOOL;
        if (!parse_bool_word(s, &in->b)) {
            qs_error_setg(errp, "Parameter '%s' expects 'on' or 'off'", prop);
            return false;
        }
    }
    return true;
}

/* -j: a JSON scalar (containers are passed by kind only).  Integers above
 * INT64_MAX are read here, since jansson cannot hold them. */
static bool convert_json(const char *s, qs_input *in, json_t **keep, qs_error **errp)
{
    json_error_t jerr;
    char *end;

    errno = 0;
    unsigned long long u = strtoull(s, &end, 10);
    if (*s >= '0' && *s <= '9' && full_number(s, end) && u > INT64_MAX) {
        *in = (qs_input){ .kind = QS_IN_UINT, .u = u };
        return true;
    }
    json_t *j = json_loads(s, JSON_DECODE_ANY, &jerr);
    if (!j) {
        if ((size_t)jerr.position >= strlen(s))
            qs_error_setg(errp, "JSON parse error, premature EOI");
        else
            qs_error_setg(errp, "JSON parse error, %s", jerr.text);
        return false;
    }
    *keep = j;
    switch (json_typeof(j)) {
    case JSON_INTEGER: *in = (qs_input){ .kind = QS_IN_INT, .i = json_integer_value(j) }; break;
    case JSON_REAL: *in = (qs_input){ .kind = QS_IN_REAL, .d = json_real_value(j) }; break;
    case JSON_STRING: *in = (qs_input){ .kind = QS_IN_STRING, .s = json_string_value(j) }; break;
    case JSON_TRUE: *in = (qs_input){ .kind = QS_IN_BOOL, .b = true }; break;
    case JSON_FALSE: *in = (qs_input){ .kind = QS_IN_BOOL, .b = false }; break;
    case JSON_OBJECT: *in = (qs_input){ .kind = QS_IN_OBJECT }; break;
    case JSON_ARRAY: *in = (qs_input){ .kind = QS_IN_ARRAY }; break;
    default: *in = (qs_input){ .kind = QS_IN_NULL }; break;
    }
    return true;
}

void qs_hmp_cmd_qom_set(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out)
{
    qs_registry *reg = m->h->cfg.reg;
    const char *path = qs_hmp_args_str(a, "path");
    const char *prop = qs_hmp_args_str(a, "property");
    const char *value = qs_hmp_args_str(a, "value");
    qs_error *err = NULL;
    json_t *keep = NULL;
    qs_input in;
    bool ok;

    if (qs_hmp_args_flag(a, "json")) {
        ok = convert_json(value, &in, &keep, &err);
    } else {
        char *type = prop_type(reg, path, prop);
        ok = convert_text(type, prop, value, &in, &err);
        free(type);
    }
    if (ok)
        ok = qs_registry_qom_set(reg, path, prop, &in, &err);
    if (!ok)
        print_error(out, err);
    json_decref(keep);
}
