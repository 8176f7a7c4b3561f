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

typedef struct string_list {
    char **v;
    size_t n, cap;
} string_list;

typedef struct hmp_console {
    qs_qmp_client *qmp;
    long cpu;                          /* -1: the daemon's default */
    char *history_path;
} hmp_console;

static void string_list_add(string_list *s, const char *str)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = qs_realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = qs_strdup(str);
}

static void string_list_free(string_list *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i]);
    }
    free(s->v);
    *s = (string_list){ 0 };
}

static void string_list_add_all(string_list *s, const char *const *list)
{
    for (; *list; list++) {
        string_list_add(s, *list);
    }
}

/* What query-stats-schemas has for one target now: the names of its stats,
 * or the providers that have any.  Asked at each Tab rather than once,
 * because providers are open-ended and come and go (a VMM hands over stats
 * fds, registers its own provider); the StatsProvider enum of
 * query-qmp-schema would also offer names that have no stats, which
 * `info stats` answers with nothing. */
static void schema_candidates(hmp_console *console, qs_target target, bool providers,
                              string_list *out)
{
    qs_error *err = NULL;
    json_t *schemas = qs_qmp_client_call(console->qmp, "query-stats-schemas", NULL, &err);
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
            string_list_add(out, provider);
            continue;
        }
        json_array_foreach(stats, j, stat) {
            const char *name = json_string_value(json_object_get(stat, "name"));
            if (name) {
                string_list_add(out, name);
            }
        }
    }
    json_decref(schemas);
}

/* qom-list of `path`: children or properties. */
static void qom_candidates(hmp_console *console, const char *path, bool children,
                           string_list *out)
{
    qs_error *err = NULL;
    json_t *args = json_pack("{s:s}", "path", path);
    json_t *list = qs_qmp_client_call(console->qmp, "qom-list", args, &err);
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
            string_list_add(out, full);
            free(full);
        } else if (!children) {
            string_list_add(out, name);
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
static void info_stats_candidates(hmp_console *console, char **words, int nwords,
                                  const char *cur, string_list *out, bool *comma_list)
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
        string_list_add_all(out, stats_options);
    } else if (pos == 0) {
        for (int t = 0; t < QS_TARGET__MAX; t++) {
            string_list_add(out, qs_target_name((qs_target)t));
        }
    } else if (pos == 1 && target >= 0) {
        schema_candidates(console, (qs_target)target, false, out);
        string_list_add(out, "*");
        *comma_list = true;
    } else if (pos == 2 && target >= 0) {
        schema_candidates(console, (qs_target)target, true, out);
    }
}

/* Candidates for `qom-list PATH`, `qom-get PATH PROPERTY`, `qom-set ...`:
 * children of the directory typed so far, then the path's properties. */
static void qom_word_candidates(hmp_console *console, char **words, int nwords,
                                const char *cur, string_list *out)
{
    int pos = 0;
    for (int i = 1; i < nwords; i++) {
        pos += words[i][0] != '-';
    }
    if (pos == 0) {
        char *dir = qs_strdup(cur[0] == '/' ? cur : "/");
        *strrchr(dir, '/') = '\0';
        qom_candidates(console, *dir ? dir : "/", true, out);
        free(dir);
    } else if (pos == 1 && strcmp(words[0], "qom-list")) {
        qom_candidates(console, words[nwords - 1], false, out);
    }
}

/* Fills `out` with the candidates for the word at the cursor; `*word_start`
 * is where that word begins in `line`, `*suffix` what follows a unique
 * match. */
static void completion_candidates(hmp_console *console, const char *line, size_t *word_start,
                                  string_list *out, const char **suffix)
{
    char *copy = qs_strdup(line);
    char *words[MAX_WORDS];
    size_t start = strlen(line);
    while (start && line[start - 1] != ' ' && line[start - 1] != '\t') {
        start--;
    }
    const char *cur = line + start;
    copy[start] = '\0';
    int n = split_words(copy, words);
    bool comma_list = false;
    *suffix = " ";
    if (n == 0 || (n == 1 && (!strcmp(words[0], "help") || !strcmp(words[0], "?")))) {
        string_list_add_all(out, commands);
    } else if (!strcmp(words[0], "info") && n == 1) {
        string_list_add_all(out, info_commands);
    } else if (!strcmp(words[0], "info") && !strcmp(words[1], "stats")) {
        info_stats_candidates(console, words, n, cur, out, &comma_list);
    } else if (!strncmp(words[0], "qom-", 4) && cur[0] != '-') {
        qom_word_candidates(console, words, n, cur, out);
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

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The candidates that start with prefix, sorted, each once. */
static void matching(string_list *all, const char *prefix, string_list *match)
{
    size_t len = strlen(prefix);
    if (all->n) {
        qsort(all->v, all->n, sizeof(*all->v), compare_strings);
    }
    for (size_t i = 0; i < all->n; i++) {
        bool seen = match->n && !strcmp(match->v[match->n - 1], all->v[i]);
        if (!strncmp(all->v[i], prefix, len) && !seen) {
            string_list_add(match, all->v[i]);
        }
    }
}

static size_t common_prefix_length(const string_list *match)
{
    size_t common = strlen(match->v[0]);
    for (size_t i = 1; i < match->n; i++) {
        size_t k = 0;
        while (k < common && match->v[i][k] == match->v[0][k]) {
            k++;
        }
        common = k;
    }
    return common;
}

/* What Tab does with the matches of a word whose first `typed` characters
 * are on the line: complete a unique one (with suffix, unless it is a
 * directory to go on in), extend to their common prefix, or list them. */
static unsigned char insert_completion(EditLine *el, const string_list *match, size_t typed,
                                       const char *suffix)
{
    if (match->n == 0) {
        return CC_REFRESH_BEEP;
    }
    const char *first = match->v[0];
    size_t common = match->n == 1 ? strlen(first) : common_prefix_length(match);
    if (match->n > 1 && common <= typed) {
        print_matches(match->v, match->n);
        return CC_REDISPLAY;
    }
    bool directory = match->n == 1 && first[strlen(first) - 1] == '/';
    char *insertion = qs_strdup_printf("%.*s%s", (int)(common - typed), first + typed,
                                       match->n == 1 && !directory ? suffix : "");
    el_insertstr(el, insertion);
    free(insertion);
    return CC_REFRESH;
}

/* libedit's Tab: completes the word before the cursor. */
static unsigned char complete_word(EditLine *el, int ch)
{
    hmp_console *console = NULL;
    el_get(el, EL_CLIENTDATA, &console);
    const LineInfo *li = el_line(el);
    char *line = strndup(li->buffer, (size_t)(li->cursor - li->buffer));
    size_t start;
    const char *suffix;
    string_list all = { 0 }, match = { 0 };
    completion_candidates(console, line, &start, &all, &suffix);
    matching(&all, line + start, &match);
    unsigned char rc = insert_completion(el, &match, strlen(line + start), suffix);
    string_list_free(&all);
    string_list_free(&match);
    free(line);
    return rc;
}

/* QMP forgets `cpu N` with its temporary monitor: the console keeps it,
 * once the daemon took it (answered nothing). */
static void remember_cpu(hmp_console *console, char **words, int nwords, const char *out)
{
    char *end;
    long cpu = nwords == 2 ? strtol(words[1], &end, 0) : -1;
    if (!strcmp(words[0], "cpu") && !*out && cpu >= 0 && !*end) {
        console->cpu = cpu;
    }
}

/* Runs one line; false when the console should end (quit or lost). */
static bool run_line(hmp_console *console, const char *line, int *rc)
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
    char *out = qs_client_hmp(console->qmp, line, console->cpu, &err);
    if (!out) {
        if (qs_qmp_client_lost(console->qmp)) {
            *rc = 1;
            go_on = false;
        }
        qs_client_report(err);
    } else {
        fputs(out, stdout);
        fflush(stdout);
        remember_cpu(console, words, n, out);
        free(out);
    }
    free(copy);
    return go_on;
}

static char *prompt_text(EditLine *el)
{
    return (char *)QS_HMP_PROMPT_TEXT;
}

static EditLine *editor_new(hmp_console *console, History *hist)
{
    EditLine *el = el_init(QS_CLIENT_NAME, stdin, stdout, stderr);
    el_set(el, EL_CLIENTDATA, console);
    el_set(el, EL_PROMPT, prompt_text);
    el_set(el, EL_EDITOR, "emacs");
    el_set(el, EL_SIGNAL, 1);
    el_set(el, EL_HIST, history, hist);
    /* The wide variant: the narrow one leaks its copies of the strings. */
    el_wset(el, EL_ADDFN, L"qs-complete", L"complete a qstats command", complete_word);
    el_set(el, EL_BIND, "^I", "qs-complete", NULL);
    el_source(el, NULL);
    return el;
}

/* The interactive loop, with libedit. */
static int run_tty(hmp_console *console)
{
    HistEvent ev;
    History *hist = history_init();
    history(hist, &ev, H_SETSIZE, HISTORY_SIZE);
    history(hist, &ev, H_SETUNIQUE, 1);
    const char *home = getenv("HOME");
    if (home && *home) {
        console->history_path = qs_strdup_printf("%s/" HISTORY_FILE, home);
        history(hist, &ev, H_LOAD, console->history_path);
    }
    EditLine *el = editor_new(console, hist);
    int rc = 0, count;
    const char *line;
    while ((line = el_gets(el, &count)) != NULL) {
        char *l = strndup(line, strcspn(line, "\r\n"));
        if (l[strspn(l, " \t")]) {
            history(hist, &ev, H_ENTER, l);
        }
        bool go_on = run_line(console, l, &rc);
        free(l);
        if (!go_on) {
            break;
        }
    }
    if (!line) {
        putchar('\n');
    }
    if (console->history_path) {
        history(hist, &ev, H_SAVE, console->history_path);
    }
    el_end(el);
    history_end(hist);
    return rc;
}

/* Scripted use: plain lines, no prompt. */
static int run_pipe(hmp_console *console)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!run_line(console, line, &rc)) {
            break;
        }
    }
    free(line);
    return rc;
}

int qs_client_console(qs_qmp_client *client, long cpu)
{
    hmp_console console = { .qmp = client, .cpu = cpu };
    int rc;
    if (isatty(STDIN_FILENO)) {
        rc = run_tty(&console);
    } else {
        rc = run_pipe(&console);
    }
    free(console.history_path);
    return rc;
}
