/*
 * commands.c - the HMP interpreter: the command table that modules add
 * to (qs_hmp_add_command; the balloon adds `info balloon`), dispatch with
 * QEMU's "unknown command" and `Try "help ..."` texts
 * (docs/qemu-behaviour.md#hmp-syntax), help, cpu, quit, info version, and
 * the per-monitor current CPU.  Output is produced with "\n" and turned
 * into "\r\n" on the way out, as QEMU's monitor_puts does.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- interpreter and monitors ----------------------------------------- */

static void add_builtin_commands(qs_hmp *h);

qs_hmp *qs_hmp_new(const qs_hmp_config *cfg)
{
    qs_hmp *h = qs_calloc(1, sizeof(*h));
    h->cfg = *cfg;
    if (!h->cfg.max_reply_bytes)
        h->cfg.max_reply_bytes = QS_REPLY_MAX_DEFAULT;
    qs_results_init(&h->results);
    h->results.limit = h->cfg.max_reply_bytes;
    qs_schemas_init(&h->schemas);
    add_builtin_commands(h);
    return h;
}

void qs_hmp_free(qs_hmp *h)
{
    if (!h)
        return;
    qs_results_destroy(&h->results);
    qs_schemas_destroy(&h->schemas);
    free(h->top.v);
    free(h->info.v);
    free(h);
}

qs_hmp_monitor *qs_hmp_monitor_new(qs_hmp *h)
{
    qs_hmp_monitor *m = qs_calloc(1, sizeof(*m));
    m->h = h;
    return m;
}

void qs_hmp_monitor_free(qs_hmp_monitor *m)
{
    if (!m)
        return;
    free(m->cpu_path);
    free(m);
}

char *qs_hmp_current_cpu(qs_hmp_monitor *m)
{
    qs_registry *reg = m->h->cfg.reg;
    /* Like QEMU's monitor: a CPU that went away falls back to the first. */
    if (m->cpu_path && qs_registry_vcpu_known(reg, m->cpu_path))
        return qs_strdup(m->cpu_path);
    const char *first = qs_registry_vcpu_path(reg, 0);
    return first ? qs_strdup(first) : NULL;
}

/* `cpu N` and cpu-index: the vCPU at QEMU's path for cpu-index N. */
static bool set_cpu(qs_hmp_monitor *m, int64_t index)
{
    char path[QS_VCPU_PATH_MAX];
    if (index < 0 || index > QS_VCPU_INDEX_MAX ||
        !qs_registry_vcpu_known(m->h->cfg.reg, qs_vcpu_qom_path((unsigned)index, path)))
        return false;
    free(m->cpu_path);
    m->cpu_path = qs_strdup(path);
    return true;
}

bool qs_hmp_monitor_set_cpu(qs_hmp_monitor *m, int64_t index, qs_error **errp)
{
    if (!set_cpu(m, index)) {
        qs_error_setg(errp, "Parameter 'cpu-index' expects a CPU number");
        return false;
    }
    return true;
}

/* ---- simple commands --------------------------------------------------- */

static void cmd_cpu(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out)
{
    if (!set_cpu(m, qs_hmp_args_int(a, "index")))
        qs_buf_puts(out, "invalid CPU index\n");
}

static void cmd_quit(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out)
{
    m->quit = true;
    if (m->h->cfg.on_quit)
        m->h->cfg.on_quit(m->h->cfg.opaque);
}

static void cmd_info_version(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out)
{
    /* QEMU prints "<version><package>"; qstats' package is "(qstats)". */
    qs_buf_puts(out, QS_VERSION_STRING " (qstats)\n");
}

static void cmd_help(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out);
static void cmd_info(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out);

/* ---- the tables ------------------------------------------------------- */

static const qs_hmp_command info_builtin[] = {
    { "stats", "all:-a,bounds:-b,target:s,names:s?,provider:s?",
      "[-a] [-b] target [names] [provider]",
      "show statistics for the given target (vm or vcpu); optionally filter by "
      "name (comma-separated list, or * for all) and provider (-a: every vCPU, "
      "each under its qom-path; -b: histogram buckets with their bounds)",
      qs_hmp_cmd_info_stats },
    { "version", "", "", "show the version of qstats", cmd_info_version },
};

static const qs_hmp_command top_builtin[] = {
    { "cpu", "index:i", "index", "set the default CPU", cmd_cpu },
    { "help|?", "name:S?", "[cmd]", "show the help", cmd_help },
    { "info", "item:s?", "[subcommand]",
      "show various information about the system state", cmd_info },
    { "qom-get", "path:s,property:s", "path property", "print QOM property",
      qs_hmp_cmd_qom_get },
    { "qom-list", "path:s?", "path", "list QOM properties", qs_hmp_cmd_qom_list },
    { "qom-set", "json:-j,path:s,property:s,value:S", "[-j] path property value",
      "set QOM property.\n\t\t\t-j: the value is specified in json format.",
      qs_hmp_cmd_qom_set },
    { "quit|q", "", "", "quit qstats", cmd_quit },
};

/* "quit|q" matches "quit" and "q". */
static bool name_matches(const char *names, const char *word, size_t len)
{
    for (const char *s = names; *s;) {
        size_t n = strcspn(s, "|");
        if (n == len && strncmp(s, word, len) == 0)
            return true;
        s += n + (s[n] == '|');
    }
    return false;
}

static const qs_hmp_entry *find_cmd(const qs_hmp_table *t, const char *word, size_t len)
{
    for (size_t i = 0; i < t->n; i++)
        if (name_matches(t->v[i].cmd.name, word, len))
            return &t->v[i];
    return NULL;
}

bool qs_hmp_add_command(qs_hmp *h, bool info, const qs_hmp_command *c, void *opaque,
                        qs_error **errp)
{
    qs_hmp_table *t = info ? &h->info : &h->top;
    for (const char *s = c->name; *s;) {      /* every alias must be free */
        size_t n = strcspn(s, "|");
        if (find_cmd(t, s, n)) {
            qs_error_setg(errp, "HMP command '%.*s' is already registered", (int)n, s);
            return false;
        }
        s += n + (s[n] == '|');
    }
    size_t at = 0;
    while (at < t->n && strcmp(t->v[at].cmd.name, c->name) < 0)
        at++;
    t->v = qs_realloc(t->v, (t->n + 1) * sizeof(*t->v));
    memmove(&t->v[at + 1], &t->v[at], (t->n - at) * sizeof(*t->v));
    t->v[at] = (qs_hmp_entry){ .cmd = *c, .opaque = opaque,
                               .sub = strcmp(c->name, "info") == 0 && !info ? &h->info : NULL };
    t->n++;
    return true;
}

static void add_builtin_commands(qs_hmp *h)
{
    for (size_t i = 0; i < sizeof(top_builtin) / sizeof(top_builtin[0]); i++)
        qs_hmp_add_command(h, false, &top_builtin[i], NULL, NULL);
    for (size_t i = 0; i < sizeof(info_builtin) / sizeof(info_builtin[0]); i++)
        qs_hmp_add_command(h, true, &info_builtin[i], NULL, NULL);
}

/* ---- help ------------------------------------------------------------- */

static void help_one(qs_buf *out, char *const *prefix, size_t nprefix, const qs_hmp_command *c)
{
    for (size_t i = 0; i < nprefix; i++)
        qs_buf_printf(out, "%s ", prefix[i]);
    qs_buf_printf(out, "%s %s -- %s\n", c->name, c->params, c->help);
}

/* QEMU's help_cmd_dump: descend while words name commands with subtables. */
static void help_dump(qs_buf *out, const qs_hmp_table *t, char *const *words, size_t n,
                      size_t i)
{
    if (i >= n) {
        for (size_t k = 0; k < t->n; k++)
            help_one(out, words, i, &t->v[k].cmd);
        return;
    }
    const qs_hmp_entry *c = find_cmd(t, words[i], strlen(words[i]));
    if (c && c->sub) {
        help_dump(out, c->sub, words, n, i + 1);
    } else if (c) {
        help_one(out, words, i, &c->cmd);
    } else {
        qs_buf_puts(out, "unknown command: '");
        for (size_t k = 0; k <= i; k++)
            qs_buf_printf(out, "%s%s", words[k], k == i ? "'\n" : " ");
    }
}

static void cmd_help(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out)
{
    const char *p = qs_hmp_args_str(a, "name");
    char **words = NULL;
    size_t n = 0;
    char *w;

    while (p && qs_hmp_get_str(&p, &w)) {
        words = qs_realloc(words, (n + 2) * sizeof(char *));
        words[n++] = w;
        words[n] = NULL;
    }
    help_dump(out, &m->h->top, words, n, 0);
    qs_hmp_strv_free(words);
}

static void cmd_info(void *opaque, qs_hmp_monitor *m, const qs_hmp_args *a, qs_buf *out)
{
    char info[] = "info";
    char *words[] = { info };
    help_dump(out, &m->h->info, words, 1, 1);
}

/* ---- dispatch --------------------------------------------------------- */

static void run_line(qs_hmp_monitor *m, const char *line, qs_buf *out)
{
    const qs_hmp_table *t = &m->h->top;
    const qs_hmp_entry *c = NULL;
    const char *p = line;

    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;              /* empty line; "info " with nothing after is silent in QEMU too */
        const char *name = p;
        while (*p && *p != '/' && !isspace((unsigned char)*p))
            p++;
        c = find_cmd(t, name, (size_t)(p - name));
        if (!c) {
            qs_buf_printf(out, "unknown command: '%.*s'\n", (int)(p - line), line);
            return;
        }
        if (!c->sub || !*p)
            break;
        t = c->sub;
        c = NULL;
    }
    if (!c)
        return;

    qs_hmp_args args;
    if (qs_hmp_parse_args(c->cmd.name, c->cmd.args, p, &args, out)) {
        c->cmd.fn(c->opaque, m, &args, out);
    } else {
        size_t len = (size_t)(p - line);
        while (len && isspace((unsigned char)line[len - 1]))
            len--;
        qs_buf_printf(out, "Try \"help %.*s\" for more information\n", (int)len, line);
    }
    qs_hmp_args_free(&args);
}

void qs_hmp_execute(qs_hmp_monitor *m, const char *line, qs_buf *out)
{
    qs_buf tmp;
    qs_buf_init(&tmp);
    tmp.limit = m->h->cfg.max_reply_bytes;
    run_line(m, line, &tmp);
    size_t lines = 0;                  /* each becomes one more byte below */
    for (size_t i = 0; i < tmp.len; i++)
        lines += tmp.data[i] == '\n';
    if (tmp.overflow || (tmp.limit && tmp.len + lines > tmp.limit)) {
        qs_buf_free(&tmp);
        qs_buf_printf(&tmp, "the output would exceed %zu bytes (qstats' reply limit); "
                      "ask for less\n", m->h->cfg.max_reply_bytes);
    }
    /* monitor_puts: every "\n" leaves as "\r\n". */
    for (size_t i = 0; i < tmp.len; i++) {
        if (tmp.data[i] == '\n')
            qs_buf_putc(out, '\r');
        qs_buf_putc(out, tmp.data[i]);
    }
    qs_buf_free(&tmp);
}
