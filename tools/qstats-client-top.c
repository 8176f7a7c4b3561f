/*
 * qstats-client-top.c - `qstats -s SOCK top`: a live statistics view in the
 * spirit of kvm_stat, but built from query-stats and query-stats-schemas
 * (so it needs no debugfs, knows every stat's unit and works for any
 * provider), plus its batch modes --once and --log.
 *
 * The screen is drawn with plain ANSI escapes on the alternate screen with
 * the terminal in non-canonical mode; one poll() loop waits for keys, for
 * the refresh deadline and for signals, which arrive through a signalfd
 * (SIGINT/SIGTERM/SIGHUP quit, SIGWINCH redraws, SIGTSTP suspends) so that
 * the terminal is always restored and no global state is needed.  The
 * numbers themselves come from qstats-client-topstats.c.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "qstats-client.h"

#define EXIT_USAGE 2
#define MIN_INTERVAL 0.1

enum { SORT_RATE, SORT_TOTAL, SORT_NAME, SORT__MAX };
static const char *const sort_names[SORT__MAX] = { "rate", "total", "name" };

enum { MODE_LIVE, MODE_ONCE, MODE_LOG };
enum { PROMPT_NONE, PROMPT_FILTER, PROMPT_INTERVAL };

struct qs_top {
    /* options */
    double interval;
    int sort;
    char *filter_text;
    regex_t re;
    bool has_re;
    char *provider;            /* NULL: all */
    long vcpu;                 /* -1: all */
    bool skip_zero;
    int mode;
    long count;                /* --log intervals; -1: forever */
    /* runtime */
    qs_qmpc *qmp;
    qs_top_model m;
    char *vm_label;
    /* terminal */
    struct termios saved;
    bool term_active;
    int rows, cols;
    int prompt;
    qs_buf input;
    char message[256];
};

typedef struct vis {
    size_t row;
    qs_top_agg a;
} vis;

/* ---- options ------------------------------------------------------------- */

static bool set_filter(qs_top *t, const char *text, char *err, size_t errlen)
{
    regex_t re;
    if (*text) {
        int rc = regcomp(&re, text, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char why[128];
            regerror(rc, &re, why, sizeof(why));
            snprintf(err, errlen, "invalid regex '%s': %s", text, why);
            return false;
        }
    }
    if (t->has_re) {
        regfree(&t->re);
    }
    free(t->filter_text);
    t->filter_text = NULL;
    t->has_re = *text != '\0';
    if (t->has_re) {
        t->re = re;
        t->filter_text = qs_strdup(text);
    }
    return true;
}

static bool parse_interval(const char *s, double *out)
{
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end || !(d >= MIN_INTERVAL) || d > 86400) {
        return false;
    }
    *out = d;
    return true;
}

static int lookup_word(const char *const *words, int n, const char *s)
{
    for (int i = 0; i < n; i++) {
        if (!strcmp(words[i], s)) {
            return i;
        }
    }
    return -1;
}

static bool parse_vcpu(const char *s, long *out)
{
    char *end;
    if (!strcmp(s, "all")) {
        *out = -1;
        return true;
    }
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 0) {
        return false;
    }
    *out = v;
    return true;
}

/* One option; false (after saying why) on a bad value. */
static bool apply_option(qs_top *t, int opt, const char *arg)
{
    char err[256] = "";
    switch (opt) {
    case 'd':
        if (!parse_interval(arg, &t->interval)) {
            snprintf(err, sizeof(err), "invalid interval %s (seconds, at least %g)", arg,
                     MIN_INTERVAL);
        }
        break;
    case 'o':
        if ((t->sort = lookup_word(sort_names, SORT__MAX, arg)) < 0) {
            snprintf(err, sizeof(err), "invalid sort key %s (rate, total or name)", arg);
        }
        break;
    case 'f':
        set_filter(t, arg, err, sizeof(err));
        break;
    case 'p':
        free(t->provider);
        t->provider = strcmp(arg, "all") ? qs_strdup(arg) : NULL;
        if (t->provider && !qs_provider_name_valid(arg)) {
            snprintf(err, sizeof(err), "invalid provider %s", arg);
        }
        break;
    case 'c':
        if (!parse_vcpu(arg, &t->vcpu)) {
            snprintf(err, sizeof(err), "invalid vCPU %s (a number or all)", arg);
        }
        break;
    case 'n':
        t->count = strtol(arg, NULL, 10);
        if (t->count <= 0) {
            snprintf(err, sizeof(err), "invalid count %s", arg);
        }
        break;
    }
    if (*err) {
        fprintf(stderr, QS_CLIENT_NAME ": %s\n", err);
        return false;
    }
    return true;
}

qs_top *qs_top_new(int argc, char **argv, int *exit_rc)
{
    static const struct option longopts[] = {
        { "delay", required_argument, NULL, 'd' },
        { "sort", required_argument, NULL, 'o' },
        { "filter", required_argument, NULL, 'f' },
        { "provider", required_argument, NULL, 'p' },
        { "vcpu", required_argument, NULL, 'c' },
        { "skip-zero", no_argument, NULL, 'z' },
        { "once", no_argument, NULL, '1' },
        { "log", no_argument, NULL, 'l' },
        { "count", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { 0 }
    };
    qs_top *t = qs_calloc(1, sizeof(*t));
    *t = (qs_top){ .interval = 2, .vcpu = -1, .count = -1 };
    qs_buf_init(&t->input);
    int opt;
    optind = 0;
    opterr = 0;
    *exit_rc = EXIT_USAGE;
    while ((opt = getopt_long(argc, argv, "d:o:f:p:c:zln:h", longopts, NULL)) != -1) {
        bool ok = true;
        if (opt == 'z') {
            t->skip_zero = true;
        } else if (opt == '1' || opt == 'l') {
            t->mode = opt == 'l' ? MODE_LOG : MODE_ONCE;
        } else if (opt == 'h') {
            *exit_rc = 0;
            ok = false;
        } else if (opt == '?') {
            fprintf(stderr, QS_CLIENT_NAME ": top: invalid option or missing value: %s\n",
                    argv[optind - 1]);
            ok = false;
        } else {
            ok = apply_option(t, opt, optarg);
        }
        if (!ok) {
            qs_top_free(t);
            return NULL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, QS_CLIENT_NAME ": top: unexpected argument %s\n", argv[optind]);
        qs_top_free(t);
        return NULL;
    }
    return t;
}

void qs_top_free(qs_top *t)
{
    if (!t) {
        return;
    }
    if (t->has_re) {
        regfree(&t->re);
    }
    free(t->filter_text);
    free(t->provider);
    free(t->vm_label);
    qs_buf_free(&t->input);
    qs_top_model_destroy(&t->m);
    free(t);
}

/* ---- rows ------------------------------------------------------------------ */

static int vis_cmp(const void *a, const void *b, void *opaque)
{
    const qs_top *t = opaque;
    const vis *x = a, *y = b;
    const qs_top_row *rx = &t->m.rows[x->row], *ry = &t->m.rows[y->row];
    if (t->sort == SORT_RATE && x->a.has_rate != y->a.has_rate) {
        return x->a.has_rate ? -1 : 1;
    }
    double kx = t->sort == SORT_RATE ? x->a.rate : x->a.value;
    double ky = t->sort == SORT_RATE ? y->a.rate : y->a.value;
    if (t->sort != SORT_NAME && kx != ky) {
        return kx > ky ? -1 : 1;
    }
    int c = strcmp(rx->name, ry->name);
    return c ? c : (x->row < y->row ? -1 : x->row > y->row);
}

/* The rows to show, aggregated (and sorted for the screen; --log keeps
 * schema order and all-zero stats); returns their number. */
static size_t visible(qs_top *t, vis **out, bool screen)
{
    vis *v = qs_calloc(t->m.nrows + 1, sizeof(*v));
    size_t n = 0;
    for (size_t r = 0; r < t->m.nrows; r++) {
        const qs_top_row *row = &t->m.rows[r];
        if ((t->provider && strcmp(row->provider, t->provider) != 0) ||
            (t->has_re && regexec(&t->re, row->name, 0, NULL, 0) != 0)) {
            continue;
        }
        qs_top_model_agg(&t->m, r, t->vcpu, &v[n].a);
        bool zero = v[n].a.value == 0 && (!v[n].a.has_rate || v[n].a.rate == 0);
        if (v[n].a.present && !(screen && t->skip_zero && zero)) {
            v[n++].row = r;
        }
    }
    if (screen) {
        qsort_r(v, n, sizeof(*v), vis_cmp, t);
    }
    *out = v;
    return n;
}

static void format_count(char *buf, size_t len, double v, bool rate)
{
    qs_top_row plain = { .unit = QS_UNIT_NONE };
    qs_top_format(buf, len, &plain, v, rate);
}

/* The histogram summary column. */
static void format_dist(char *buf, size_t len, const qs_top_row *r, const qs_top_agg *a)
{
    char mean[32], p50[32], p99[32];
    if (!a->has_dist) {
        snprintf(buf, len, "-");
        return;
    }
    qs_top_format(mean, sizeof(mean), r, a->mean, false);
    qs_top_format(p50, sizeof(p50), r, a->p50, false);
    qs_top_format(p99, sizeof(p99), r, a->p99, false);
    snprintf(buf, len, "mean %s  p50 %s  p99 %s", mean, p50, p99);
}

/* Column widths that fit the visible rows: the stat names and the
 * "provider/target" strings (a VMM's own provider, "virtio-net/vm", is
 * longer than "kvm/vcpu"), within limits. */
typedef struct widths {
    int name, where;
} widths;

static void render_row(const qs_top *t, const vis *v, widths w, qs_buf *out)
{
    const qs_top_row *r = &t->m.rows[v->row];
    const qs_top_agg *a = &v->a;
    char value[48], rate[48], dist[160] = "", where[48];
    bool hist = qs_top_is_hist(r->type);
    if (r->unit == QS_UNIT_BOOLEAN && a->ninst > 1) {
        snprintf(value, sizeof(value), "%u/%u", a->ntrue, a->ninst);
    } else if (r->unit == QS_UNIT_BOOLEAN) {
        snprintf(value, sizeof(value), "%s", a->ntrue ? "yes" : "no");
    } else if (hist) {
        format_count(value, sizeof(value), a->value, false);
        format_dist(dist, sizeof(dist), r, a);
    } else {
        qs_top_format(value, sizeof(value), r, a->value, false);
    }
    if (!a->has_rate) {
        snprintf(rate, sizeof(rate), "%s", r->type == QS_TYPE_CUMULATIVE || hist ? "-" : "");
    } else if (hist) {
        format_count(rate, sizeof(rate), a->rate, true);
    } else {
        qs_top_format(rate, sizeof(rate), r, a->rate, true);
    }
    snprintf(where, sizeof(where), "%s/%s", r->provider,
             qs_target_name(r->target));
    qs_buf_printf(out, "%-*.*s %-*.*s %14s %14s  %s", w.name, w.name, r->name, w.where,
                  w.where, where, value, rate, dist);
}

static widths column_widths(const qs_top *t, const vis *v, size_t n)
{
    size_t name = 20, where = 12;
    for (size_t i = 0; i < n; i++) {
        const qs_top_row *r = &t->m.rows[v[i].row];
        size_t l = strlen(r->name);
        size_t p = strlen(r->provider) + 1 + strlen(qs_target_name(r->target));
        name = l > name ? l : name;
        where = p > where ? p : where;
    }
    return (widths){ (int)(name > 40 ? 40 : name), (int)(where > 40 ? 40 : where) };
}

static void render_header(const qs_top *t, qs_buf *out)
{
    char vcpu[64];
    size_t nv = t->m.cur.ninst[QS_TARGET_VCPU];
    if (t->vcpu < 0) {
        snprintf(vcpu, sizeof(vcpu), "all of %zu", nv);
    } else {
        snprintf(vcpu, sizeof(vcpu), "%ld of %zu", t->vcpu, nv);
    }
    qs_buf_printf(out, "qstats top - vm: %s  interval: %gs  sort: %s  filter: %s  vcpu: %s"
                  "  provider: %s", t->vm_label, t->interval, sort_names[t->sort],
                  t->has_re ? t->filter_text : "none", vcpu,
                  t->provider ? t->provider : "all");
}

static void render_titles(widths w, qs_buf *out)
{
    qs_buf_printf(out, "%-*s %-*s %14s %14s  %s", w.name, "NAME", w.where, "WHERE", "VALUE/TOTAL",
                  "RATE/s", "HISTOGRAM (last interval)");
}

/* ---- batch modes ------------------------------------------------------------- */

static void sleep_until(double deadline)
{
    struct timespec ts = { .tv_sec = (time_t)deadline,
                           .tv_nsec = (long)((deadline - floor(deadline)) * 1e9) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int report_sample_error(qs_error *err)
{
    qs_client_report(err);
    return 1;
}

static int run_once(qs_top *t)
{
    qs_error *err = NULL;
    if (!qs_top_model_sample(&t->m, t->qmp, &err)) {
        return report_sample_error(err);
    }
    sleep_until(t->m.cur.mono + t->interval);
    if (!qs_top_model_sample(&t->m, t->qmp, &err)) {
        return report_sample_error(err);
    }
    vis *v;
    size_t n = visible(t, &v, true);
    widths w = column_widths(t, v, n);
    qs_buf out;
    qs_buf_init(&out);
    render_header(t, &out);
    qs_buf_putc(&out, '\n');
    render_titles(w, &out);
    qs_buf_putc(&out, '\n');
    for (size_t i = 0; i < n; i++) {
        render_row(t, &v[i], w, &out);
        qs_buf_putc(&out, '\n');
    }
    fwrite(out.data, 1, out.len, stdout);
    qs_buf_free(&out);
    free(v);
    return 0;
}

typedef struct log_col {
    char *provider;
    qs_target target;
    char *name;
} log_col;

/* The CSV value of a column: rates for what counts, values otherwise. */
static void log_value(const qs_top *t, const log_col *c, qs_buf *out, bool *nonzero)
{
    long r = qs_top_model_find(&t->m, c->provider, c->target, c->name);
    qs_top_agg a = { 0 };
    if (r >= 0) {
        qs_top_model_agg(&t->m, (size_t)r, t->vcpu, &a);
    }
    const qs_top_row *row = r >= 0 ? &t->m.rows[r] : NULL;
    bool counts = row && (row->type == QS_TYPE_CUMULATIVE || qs_top_is_hist(row->type));
    double v = counts ? a.rate : a.value;
    if (!a.present || (counts && !a.has_rate)) {
        qs_buf_puts(out, ",");
        return;
    }
    *nonzero |= v != 0;
    qs_buf_printf(out, v == floor(v) && fabs(v) < 1e15 ? ",%.0f" : ",%.3f", v);
}

static size_t log_header(qs_top *t, log_col **cols)
{
    vis *v;
    size_t n = visible(t, &v, false);
    *cols = qs_calloc(n + 1, sizeof(**cols));
    printf("timestamp");
    for (size_t i = 0; i < n; i++) {
        const qs_top_row *r = &t->m.rows[v[i].row];
        (*cols)[i] = (log_col){ qs_strdup(r->provider), r->target, qs_strdup(r->name) };
        printf(",%s", r->column);
    }
    printf("\n");
    fflush(stdout);
    free(v);
    return n;
}

static int run_log(qs_top *t)
{
    qs_error *err = NULL;
    if (!qs_top_model_sample(&t->m, t->qmp, &err)) {
        return report_sample_error(err);
    }
    log_col *cols;
    size_t ncols = log_header(t, &cols);
    qs_buf line;
    qs_buf_init(&line);
    int rc = 0;
    for (long i = 0; t->count < 0 || i < t->count; i++) {
        sleep_until(t->m.cur.mono + t->interval);
        if (!qs_top_model_sample(&t->m, t->qmp, &err)) {
            rc = report_sample_error(err);
            break;
        }
        bool nonzero = false;
        qs_buf_reset(&line);
        qs_buf_printf(&line, "%.3f", t->m.cur.wall);
        for (size_t k = 0; k < ncols; k++) {
            log_value(t, &cols[k], &line, &nonzero);
        }
        if (nonzero || !t->skip_zero) {
            printf("%s\n", line.data);
            fflush(stdout);
        }
    }
    for (size_t k = 0; k < ncols; k++) {
        free(cols[k].name);
        free(cols[k].provider);
    }
    free(cols);
    qs_buf_free(&line);
    return rc;
}

/* ---- the live screen ---------------------------------------------------------- */

static void write_all(const char *data, size_t len)
{
    while (len) {
        ssize_t w = write(STDOUT_FILENO, data, len);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        data += w;
        len -= (size_t)w;
    }
}

static void term_size(qs_top *t)
{
    struct winsize ws = { 0 };
    bool ok = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col;
    t->rows = ok ? ws.ws_row : 24;
    t->cols = ok ? ws.ws_col : 80;
}

static void term_enter(qs_top *t)
{
    struct termios raw = t->saved;
    raw.c_lflag &= (tcflag_t)~(ICANON | ECHO);
    raw.c_iflag &= (tcflag_t)~(IXON | ICRNL);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
    static const char enter[] = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
    write_all(enter, sizeof(enter) - 1);
    t->term_active = true;
    term_size(t);
}

static void term_leave(qs_top *t)
{
    if (!t->term_active) {
        return;
    }
    static const char leave[] = "\x1b[0m\x1b[?25h\x1b[?1049l";
    write_all(leave, sizeof(leave) - 1);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
    t->term_active = false;
}

/* Appends one screen line, cut to the terminal width. */
static void screen_line(const qs_top *t, qs_buf *screen, const qs_buf *text, const char *attr)
{
    size_t n = text->len < (size_t)t->cols ? text->len : (size_t)t->cols;
    qs_buf_puts(screen, attr);
    qs_buf_append(screen, text->data, n);
    qs_buf_puts(screen, "\x1b[0m\x1b[K\r\n");
}

static void render_status(const qs_top *t, qs_buf *line)
{
    if (t->prompt == PROMPT_FILTER) {
        qs_buf_printf(line, "filter regex (empty clears): %.*s", (int)t->input.len,
                      t->input.data ? t->input.data : "");
    } else if (t->prompt == PROMPT_INTERVAL) {
        qs_buf_printf(line, "refresh interval in seconds: %.*s", (int)t->input.len,
                      t->input.data ? t->input.data : "");
    } else if (t->message[0]) {
        qs_buf_puts(line, t->message);
    } else {
        qs_buf_puts(line, "o sort  f filter  v vcpu  p provider  s interval  q quit");
    }
}

static void draw(qs_top *t)
{
    vis *v;
    size_t n = visible(t, &v, true);
    widths w = column_widths(t, v, n);
    qs_buf screen, line;
    qs_buf_init(&screen);
    qs_buf_init(&line);
    qs_buf_puts(&screen, "\x1b[?25l\x1b[H");
    render_header(t, &line);
    screen_line(t, &screen, &line, "\x1b[1m");
    qs_buf_reset(&line);
    render_titles(w, &line);
    screen_line(t, &screen, &line, "\x1b[7m");
    for (size_t i = 0; i < n && (int)i < t->rows - 3; i++) {
        qs_buf_reset(&line);
        render_row(t, &v[i], w, &line);
        screen_line(t, &screen, &line, "");
    }
    qs_buf_puts(&screen, "\x1b[J");
    qs_buf_reset(&line);
    render_status(t, &line);
    qs_buf_printf(&screen, "\x1b[%d;1H", t->rows);
    qs_buf_append(&screen, line.data, line.len < (size_t)t->cols ? line.len : (size_t)t->cols);
    qs_buf_puts(&screen, t->prompt ? "\x1b[K\x1b[?25h" : "\x1b[K");
    write_all(screen.data, screen.len);
    qs_buf_free(&screen);
    qs_buf_free(&line);
    free(v);
}

enum { ACT_DRAW = 1, ACT_QUIT = 2, ACT_REFRESH = 4, ACT_RESCHEDULE = 8 };

static void cycle_vcpu(qs_top *t)
{
    long n = (long)t->m.cur.ninst[QS_TARGET_VCPU];
    t->vcpu = t->vcpu + 1 < n ? t->vcpu + 1 : -1;
}

/* all -> each provider that has stats, in schema order -> all */
static void cycle_provider(qs_top *t)
{
    const char *next = NULL;
    bool passed = !t->provider;
    for (size_t r = 0; r < t->m.nrows && !next; r++) {
        const char *p = t->m.rows[r].provider;
        if (passed && (!t->provider || strcmp(p, t->provider) != 0))
            next = p;
        else if (t->provider && strcmp(p, t->provider) == 0)
            passed = true;
    }
    free(t->provider);
    t->provider = next ? qs_strdup(next) : NULL;
}

static int commit_prompt(qs_top *t)
{
    char *text = strndup(t->input.data ? t->input.data : "", t->input.len);
    int kind = t->prompt, act = ACT_DRAW;
    t->prompt = PROMPT_NONE;
    if (kind == PROMPT_FILTER) {
        set_filter(t, text, t->message, sizeof(t->message));
    } else if (!*text) {
        /* empty: keep the interval */
    } else if (parse_interval(text, &t->interval)) {
        act |= ACT_RESCHEDULE;
    } else {
        snprintf(t->message, sizeof(t->message), "invalid interval '%s' (seconds, at least %g)",
                 text, MIN_INTERVAL);
    }
    free(text);
    return act;
}

/* One byte typed at a prompt; *stop when the rest of the read is to be
 * dropped (an escape sequence). */
static int prompt_key(qs_top *t, unsigned char c, bool *stop)
{
    if (c == '\r' || c == '\n') {
        return commit_prompt(t);
    }
    if (c == 27) {
        t->prompt = PROMPT_NONE;
        *stop = true;
    } else if ((c == 127 || c == 8) && t->input.len) {
        t->input.len--;
    } else if (c == 21) {
        qs_buf_reset(&t->input);
    } else if (c >= 32 && c < 127) {
        qs_buf_putc(&t->input, (char)c);
    }
    return ACT_DRAW;
}

static int key(qs_top *t, unsigned char c, bool *stop)
{
    if (t->prompt) {
        return prompt_key(t, c, stop);
    }
    t->message[0] = '\0';
    switch (c) {
    case 'q':
    case 'Q':
        return ACT_QUIT;
    case 'o':
        t->sort = (t->sort + 1) % SORT__MAX;
        break;
    case 'f':
    case 's':
        t->prompt = c == 'f' ? PROMPT_FILTER : PROMPT_INTERVAL;
        qs_buf_reset(&t->input);
        break;
    case 'v':
        cycle_vcpu(t);
        break;
    case 'p':
        cycle_provider(t);
        break;
    case ' ':
    case 'r':
        return ACT_REFRESH;
    case 27:
        *stop = true;
        break;
    }
    return ACT_DRAW;
}

static int on_input(qs_top *t)
{
    unsigned char buf[64];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return 0;
    }
    if (n <= 0) {
        return ACT_QUIT;        /* the terminal went away */
    }
    int act = 0;
    bool stop = false;
    for (ssize_t i = 0; i < n && !stop && !(act & ACT_QUIT); i++) {
        act |= key(t, buf[i], &stop);
    }
    return act;
}

static int on_signal(qs_top *t, int sfd)
{
    struct signalfd_siginfo si;
    if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si)) {
        return 0;
    }
    switch (si.ssi_signo) {
    case SIGWINCH:
        term_size(t);
        return ACT_DRAW;
    case SIGTSTP:
        term_leave(t);
        raise(SIGSTOP);
        term_enter(t);
        return ACT_DRAW;
    case SIGCONT:
        if (t->term_active) {
            t->term_active = false;
            term_enter(t);
        }
        return ACT_DRAW;
    default:
        return ACT_QUIT;        /* SIGINT, SIGTERM, SIGHUP, SIGQUIT */
    }
}

static bool live_sample(qs_top *t, qs_error **errp)
{
    if (qs_top_model_sample(&t->m, t->qmp, errp)) {
        return true;
    }
    if (!qs_qmpc_lost(t->qmp)) {
        /* The daemon is still there: show why and keep going. */
        snprintf(t->message, sizeof(t->message), "%s", (*errp)->msg);
        qs_error_free(*errp);
        *errp = NULL;
        return true;
    }
    return false;
}

static int live_loop(qs_top *t, int sfd, qs_error **errp)
{
    if (!live_sample(t, errp)) {
        return 1;
    }
    draw(t);
    double next = now_mono() + t->interval;
    for (;;) {
        struct pollfd pf[2] = { { STDIN_FILENO, POLLIN, 0 }, { sfd, POLLIN, 0 } };
        double wait = next - now_mono();
        if (poll(pf, 2, wait > 0 ? (int)ceil(wait * 1000) : 0) < 0 && errno != EINTR) {
            qs_error_setg(errp, "poll: %s", strerror(errno));
            return 1;
        }
        int act = 0;
        if (pf[1].revents & POLLIN) {
            act |= on_signal(t, sfd);
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            act |= on_input(t);
        }
        if (act & ACT_QUIT) {
            return 0;
        }
        double now = now_mono();
        next = act & ACT_REFRESH ? now : act & ACT_RESCHEDULE ? now + t->interval : next;
        if (now >= next) {
            if (!live_sample(t, errp)) {
                return 1;
            }
            next = next + t->interval > now ? next + t->interval : now + t->interval;
            act |= ACT_DRAW;
        }
        if (act & ACT_DRAW) {
            draw(t);
        }
    }
}

static int run_live(qs_top *t)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO) ||
        tcgetattr(STDIN_FILENO, &t->saved) < 0) {
        fprintf(stderr, QS_CLIENT_NAME ": top needs a terminal (use --once or --log)\n");
        return 1;
    }
    sigset_t set, old;
    sigemptyset(&set);
    int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGTSTP, SIGCONT };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaddset(&set, sigs[i]);
    }
    sigprocmask(SIG_BLOCK, &set, &old);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    qs_error *err = NULL;
    term_enter(t);
    int rc = live_loop(t, sfd, &err);
    term_leave(t);
    close(sfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (err) {
        qs_client_report(err);
    }
    return rc;
}

static void learn_vm_label(qs_top *t)
{
    qs_error *err = NULL;
    json_t *name = qs_qmpc_call(t->qmp, "query-name", NULL, &err);
    const char *s = json_string_value(json_object_get(name, "name"));
    t->vm_label = qs_strdup(s ? s : qs_qmpc_spec(t->qmp));
    json_decref(name);
    qs_error_free(err);
}

int qs_top_run(qs_top *t, qs_qmpc *c)
{
    qs_error *err = NULL;
    t->qmp = c;
    if (!qs_top_model_load(&t->m, c, &err)) {
        qs_client_report(err);
        return 1;
    }
    learn_vm_label(t);
    switch (t->mode) {
    case MODE_ONCE:
        return run_once(t);
    case MODE_LOG:
        return run_log(t);
    default:
        return run_live(t);
    }
}
