/*
 * qstats-client-console.c - `qstats -s SOCK hmp`: an interactive human
 * monitor over QMP.  Each line becomes one human-monitor-command; since QMP
 * runs every HMP line on a fresh monitor, the current CPU (`cpu N`) is kept
 * here and sent as cpu-index.  Line editing, history and completion come
 * from libedit's native API (its client-data pointer carries our state, so
 * no global is needed).  Completion knows the commands, the stats targets,
 * and asks the daemon for the rest when Tab is pressed: the stat names and
 * providers of query-stats-schemas, QOM paths and properties of qom-list.
 *
 * Without a terminal on stdin the console reads plain lines and prints no
 * prompt, so that it can be scripted.
 */
#include <errno.h>
#include <histedit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "qstats-client.h"

#define HISTORY_FILE ".qstats_history"
#define HISTORY_SIZE 1000
#define MAX_WORDS 16
#define QS_HMP_PROMPT_TEXT "(qstats) "

static const char *const commands[] = {
    "help", "info", "cpu", "qom-list", "qom-get", "qom-set", "quit", NULL
};
static const char *const info_commands[] = { "stats", "version", "balloon", NULL };
static const char *const stats_options[] = { "-a", "-b", NULL };

typedef struct strvec {
    char **v;
    size_t n, cap;
} strvec;

typedef struct console {
    qs_qmpc *qmp;
    long cpu;                          /* -1: the daemon's default */
    char *history_path;
} console;

static void strvec_add(strvec *s, const char *str)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = qs_realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = qs_strdup(str);
}

static void strvec_free(strvec *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i]);
    }
    free(s->v);
    *s = (strvec){ 0 };
}

static void strvec_add_all(strvec *s, const char *const *list)
{
    for (; *list; list++) {
        strvec_add(s, *list);
    }
}

/* What query-stats-schemas has for one target now: the names of its stats,
 * or the providers that have any.  Asked at each Tab rather than once,
 * because providers are open-ended and come and go (a VMM hands over stats
 * fds, registers its own provider); the StatsProvider enum of
 * query-qmp-schema would also offer names that have no stats, which
 * `info stats` answers with nothing. */
static void schema_candidates(console *con, qs_target target, bool providers, strvec *out)
{
    qs_error *err = NULL;
    json_t *schemas = qs_qmpc_call(con->qmp, "query-stats-schemas", NULL, &err);
    qs_error_free(err);
    size_t i, j;
    json_t *schema, *stat;
    json_array_foreach(schemas, i, schema) {
        const char *provider = json_string_value(json_object_get(schema, "provider"));
        const char *t = json_string_value(json_object_get(schema, "target"));
        json_t *stats = json_object_get(schema, "stats");
        if (!provider || qs_target_lookup(t ?: "") != (int)target || !json_array_size(stats)) {
            continue;
        }
        if (providers) {
            strvec_add(out, provider);
            continue;
        }
        json_array_foreach(stats, j, stat) {
            const char *name = json_string_value(json_object_get(stat, "name"));
            if (name) {
                strvec_add(out, name);
            }
        }
    }
    json_decref(schemas);
}

/* qom-list of `path`: children or properties. */
static void qom_candidates(console *con, const char *path, bool children, strvec *out)
{
    qs_error *err = NULL;
    json_t *list = qs_qmpc_call(con->qmp, "qom-list", json_pack("{s:s}", "path", path), &err);
    qs_error_free(err);
    size_t i;
    json_t *prop;
    const char *sep = path[strlen(path) - 1] == '/' ? "" : "/";
    json_array_foreach(list, i, prop) {
        const char *name = json_string_value(json_object_get(prop, "name"));
        const char *type = json_string_value(json_object_get(prop, "type"));
        if (!name || !type) {
            continue;
        }
        bool child = strncmp(type, "child<", 6) == 0 || strncmp(type, "link<", 5) == 0;
        if (children && child) {
            /* Containers end in '/' so that completion can go on. */
            bool container = !strcmp(type, "child<container>");
            char *full = qs_strdup_printf("%s%s%s%s", path, sep, name, container ? "/" : "");
            strvec_add(out, full);
            free(full);
        } else if (!children) {
            strvec_add(out, name);
        }
    }
    json_decref(list);
}

/* Splits text into words; the last one is the word being completed. */
static int split_words(char *text, char **words)
{
    int n = 0;
    char *save = NULL;
    for (char *w = strtok_r(text, " \t", &save); w && n < MAX_WORDS;
         w = strtok_r(NULL, " \t", &save)) {
        words[n++] = w;
    }
    return n;
}

/* Candidates for `info stats [-a] [-b] TARGET NAMES PROVIDER`. */
static void info_stats_candidates(console *con, char **words, int nwords,
                                  const char *cur, strvec *out, bool *comma_list)
{
    int pos = 0, target = -1;
    for (int i = 2; i < nwords; i++) {
        if (words[i][0] == '-') {
            continue;
        }
        if (pos == 0) {
            target = qs_target_lookup(words[i]);
        }
        pos++;
    }
    if (cur[0] == '-') {
        strvec_add_all(out, stats_options);
    } else if (pos == 0) {
        for (int t = 0; t < QS_TARGET__MAX; t++) {
            strvec_add(out, qs_target_name((qs_target)t));
        }
    } else if (pos == 1 && target >= 0) {
        schema_candidates(con, (qs_target)target, false, out);
        strvec_add(out, "*");
        *comma_list = true;
    } else if (pos == 2 && target >= 0) {
        schema_candidates(con, (qs_target)target, true, out);
    }
}

/* Fills `out` with the candidates for the word at the cursor; `*word_start`
 * is where that word begins in `line`, `*suffix` what follows a unique
 * match. */
static void candidates(console *con, const char *line, size_t *word_start,
                       strvec *out, const char **suffix)
{
    char *copy = qs_strdup(line);
    char *words[MAX_WORDS];
    size_t len = strlen(line);
    size_t start = len;
    while (start && line[start - 1] != ' ' && line[start - 1] != '\t') {
        start--;
    }
    const char *cur = line + start;
    copy[start] = '\0';
    int n = split_words(copy, words);
    bool comma_list = false;
    *suffix = " ";
    if (n == 0 || (n == 1 && (!strcmp(words[0], "help") || !strcmp(words[0], "?")))) {
        strvec_add_all(out, commands);
    } else if (!strcmp(words[0], "info") && n == 1) {
        strvec_add_all(out, info_commands);
    } else if (!strcmp(words[0], "info") && !strcmp(words[1], "stats")) {
        info_stats_candidates(con, words, n, cur, out, &comma_list);
    } else if (!strncmp(words[0], "qom-", 4) && cur[0] != '-') {
        int pos = 0;
        for (int i = 1; i < n; i++) {
            pos += words[i][0] != '-';
        }
        if (pos == 0) {
            char *dir = qs_strdup(cur[0] == '/' ? cur : "/");
            *strrchr(dir, '/') = '\0';
            qom_candidates(con, *dir ? dir : "/", true, out);
            free(dir);
        } else if (pos == 1 && strcmp(words[0], "qom-list")) {
            qom_candidates(con, words[n - 1], false, out);
        }
    }
    if (comma_list && strrchr(cur, ',')) {
        start = (size_t)(strrchr(cur, ',') - line) + 1;
    }
    *word_start = start;
    free(copy);
}

static void print_matches(char **m, size_t n)
{
    struct winsize ws = { 0 };
    size_t width = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
    size_t colw = 0;
    for (size_t i = 0; i < n; i++) {
        colw = strlen(m[i]) > colw ? strlen(m[i]) : colw;
    }
    colw += 2;
    size_t cols = width / colw ? width / colw : 1;
    putchar('\n');
    for (size_t i = 0; i < n; i++) {
        printf("%-*s", (int)colw, m[i]);
        if ((i + 1) % cols == 0 || i + 1 == n) {
            putchar('\n');
        }
    }
    fflush(stdout);
}

static int compare_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static unsigned char complete(EditLine *el, int ch)
{
    console *con = NULL;
    el_get(el, EL_CLIENTDATA, &con);
    const LineInfo *li = el_line(el);
    char *line = qs_malloc((size_t)(li->cursor - li->buffer) + 1);
    memcpy(line, li->buffer, (size_t)(li->cursor - li->buffer));
    line[li->cursor - li->buffer] = '\0';
    size_t start;
    const char *suffix;
    strvec all = { 0 }, match = { 0 };
    candidates(con, line, &start, &all, &suffix);
    if (all.n) {
        qsort(all.v, all.n, sizeof(*all.v), compare_str);
    }
    const char *prefix = line + start;
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < all.n; i++) {
        bool dup = match.n && !strcmp(match.v[match.n - 1], all.v[i]);
        if (!strncmp(all.v[i], prefix, plen) && !dup) {
            strvec_add(&match, all.v[i]);
        }
    }
    unsigned char rc = CC_REFRESH;
    if (match.n == 0) {
        rc = CC_REFRESH_BEEP;
    } else if (match.n == 1) {
        char *ins = qs_strdup_printf("%s%s", match.v[0] + plen,
                                     match.v[0][strlen(match.v[0]) - 1] == '/' ? "" : suffix);
        el_insertstr(el, ins);
        free(ins);
    } else {
        size_t common = strlen(match.v[0]);
        for (size_t i = 1; i < match.n; i++) {
            size_t k = 0;
            while (k < common && match.v[i][k] == match.v[0][k]) {
                k++;
            }
            common = k;
        }
        if (common > plen) {
            char *ins = strndup(match.v[0] + plen, common - plen);
            el_insertstr(el, ins);
            free(ins);
        } else {
            print_matches(match.v, match.n);
            rc = CC_REDISPLAY;
        }
    }
    strvec_free(&all);
    strvec_free(&match);
    free(line);
    return rc;
}

/* Runs one line; false when the console should end (quit or lost). */
static bool execute(console *con, const char *line, int *rc)
{
    char *copy = qs_strdup(line);
    char *words[MAX_WORDS];
    int n = split_words(copy, words);
    bool go_on = true;
    if (n == 0) {
        free(copy);
        return true;
    }
    if (!strcmp(words[0], "quit") || !strcmp(words[0], "q")) {
        free(copy);
        return false;
    }
    qs_error *err = NULL;
    char *out = qs_client_hmp(con->qmp, line, con->cpu, &err);
    if (!out) {
        if (qs_qmpc_lost(con->qmp)) {
            *rc = 1;
            go_on = false;
        }
        qs_client_report(err);
    } else {
        fputs(out, stdout);
        fflush(stdout);
        /* QMP forgets `cpu N` with its temporary monitor: remember it. */
        char *end;
        long cpu = n == 2 ? strtol(words[1], &end, 0) : -1;
        if (!strcmp(words[0], "cpu") && !*out && cpu >= 0 && !*end) {
            con->cpu = cpu;
        }
        free(out);
    }
    free(copy);
    return go_on;
}

static char *prompt(EditLine *el)
{
    return (char *)QS_HMP_PROMPT_TEXT;
}

static EditLine *editor_new(console *con, History *hist)
{
    EditLine *el = el_init(QS_CLIENT_NAME, stdin, stdout, stderr);
    el_set(el, EL_CLIENTDATA, con);
    el_set(el, EL_PROMPT, prompt);
    el_set(el, EL_EDITOR, "emacs");
    el_set(el, EL_SIGNAL, 1);
    el_set(el, EL_HIST, history, hist);
    /* The wide variant: the narrow one leaks its copies of the strings. */
    el_wset(el, EL_ADDFN, L"qs-complete", L"complete a qstats command", complete);
    el_set(el, EL_BIND, "^I", "qs-complete", NULL);
    el_source(el, NULL);
    return el;
}

/* The interactive loop, with libedit. */
static int run_tty(console *con)
{
    HistEvent ev;
    History *hist = history_init();
    history(hist, &ev, H_SETSIZE, HISTORY_SIZE);
    history(hist, &ev, H_SETUNIQUE, 1);
    const char *home = getenv("HOME");
    if (home && *home) {
        con->history_path = qs_strdup_printf("%s/" HISTORY_FILE, home);
        history(hist, &ev, H_LOAD, con->history_path);
    }
    EditLine *el = editor_new(con, hist);
    int rc = 0, count;
    const char *line;
    while ((line = el_gets(el, &count)) != NULL) {
        char *l = strndup(line, strcspn(line, "\r\n"));
        if (l[strspn(l, " \t")]) {
            history(hist, &ev, H_ENTER, l);
        }
        bool go_on = execute(con, l, &rc);
        free(l);
        if (!go_on) {
            break;
        }
    }
    if (!line) {
        putchar('\n');
    }
    if (con->history_path) {
        history(hist, &ev, H_SAVE, con->history_path);
    }
    el_end(el);
    history_end(hist);
    return rc;
}

/* Scripted use: plain lines, no prompt. */
static int run_pipe(console *con)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!execute(con, line, &rc)) {
            break;
        }
    }
    free(line);
    return rc;
}

int qs_client_console(qs_qmpc *c, long cpu)
{
    console con = { .qmp = c, .cpu = cpu };
    int rc;
    if (isatty(STDIN_FILENO)) {
        rc = run_tty(&con);
    } else {
        rc = run_pipe(&con);
    }
    free(con.history_path);
    return rc;
}
