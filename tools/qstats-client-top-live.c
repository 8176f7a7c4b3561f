/*
 * qstats-client-top-live.c - top's live view on a terminal: the table
 * redrawn every interval, keys that change the options while it runs, two
 * prompts (filter, interval), resizes, and a terminal that is given back
 * as it was however top ends.
 *
 * The screen is drawn with plain ANSI escapes on the alternate screen with
 * the terminal in non-canonical mode; one poll() loop waits for keys, for
 * the refresh deadline and for signals, which arrive through a signalfd
 * (SIGINT/SIGTERM/SIGHUP quit, SIGWINCH redraws, SIGTSTP suspends) so that
 * the terminal is always restored and no global state is needed.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "qs-common.h"
#include "qstats-client-top.h"

#define KEY_ESCAPE 27
#define KEY_BACKSPACE 8
#define KEY_DELETE 127
#define KEY_CTRL_U 21

typedef enum prompt_kind { PROMPT_NONE, PROMPT_FILTER, PROMPT_INTERVAL } prompt_kind;

/* What a key or a signal asks of the loop; several may be asked at once. */
enum { ACTION_DRAW = 1, ACTION_QUIT = 2, ACTION_REFRESH = 4, ACTION_RESCHEDULE = 8 };

typedef struct live_view {
    qs_top *top;
    struct termios saved;      /* the terminal as top found it */
    bool terminal_ours;        /* raw mode and the alternate screen are on */
    int rows, columns;
    prompt_kind prompt;
    qs_buf input;              /* typed at the prompt so far */
    char message[256];         /* shown in the status line until a key */
} live_view;

/* ---- the terminal ---------------------------------------------------------- */

static void write_all(const char *data, size_t len)
{
    while (len) {
        ssize_t written = write(STDOUT_FILENO, data, len);
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written <= 0) {
            return;
        }
        data += written;
        len -= (size_t)written;
    }
}

static void learn_terminal_size(live_view *view)
{
    struct winsize ws = { 0 };
    bool ok = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col;
    view->rows = ok ? ws.ws_row : 24;
    view->columns = ok ? ws.ws_col : 80;
}

static void terminal_take(live_view *view)
{
    struct termios raw = view->saved;
    raw.c_lflag &= (tcflag_t)~(ICANON | ECHO);
    raw.c_iflag &= (tcflag_t)~(IXON | ICRNL);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
    static const char enter[] = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
    write_all(enter, sizeof(enter) - 1);
    view->terminal_ours = true;
    learn_terminal_size(view);
}

static void terminal_give_back(live_view *view)
{
    if (!view->terminal_ours) {
        return;
    }
    static const char leave[] = "\x1b[0m\x1b[?25h\x1b[?1049l";
    write_all(leave, sizeof(leave) - 1);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &view->saved);
    view->terminal_ours = false;
}

/* ---- drawing ------------------------------------------------------------------ */

/* Appends one screen line, cut to the terminal width. */
static void screen_line(const live_view *view, qs_buf *screen, const qs_buf *text,
                        const char *attr)
{
    size_t n = text->len < (size_t)view->columns ? text->len : (size_t)view->columns;
    qs_buf_puts(screen, attr);
    qs_buf_append(screen, text->data, n);
    qs_buf_puts(screen, "\x1b[0m\x1b[K\r\n");
}

static void render_status(const live_view *view, qs_buf *line)
{
    const char *typed = view->input.data ? view->input.data : "";
    if (view->prompt == PROMPT_FILTER) {
        qs_buf_printf(line, "filter regex (empty clears): %.*s", (int)view->input.len, typed);
    } else if (view->prompt == PROMPT_INTERVAL) {
        qs_buf_printf(line, "refresh interval in seconds: %.*s", (int)view->input.len, typed);
    } else if (view->message[0]) {
        qs_buf_puts(line, view->message);
    } else {
        qs_buf_puts(line, "o sort  f filter  v vcpu  p provider  s interval  q quit");
    }
}

/* The table's lines: as many as fit above the status line. */
static void render_table(const live_view *view, qs_buf *screen, qs_buf *line)
{
    qs_top_shown_row *shown;
    size_t n = qs_top_shown_rows(view->top, &shown, true);
    qs_top_widths widths = qs_top_column_widths(view->top, shown, n);
    qs_top_render_header(view->top, line);
    screen_line(view, screen, line, "\x1b[1m");
    qs_buf_reset(line);
    qs_top_render_titles(widths, line);
    screen_line(view, screen, line, "\x1b[7m");
    for (size_t i = 0; i < n && (int)i < view->rows - 3; i++) {
        qs_buf_reset(line);
        qs_top_render_row(view->top, &shown[i], widths, line);
        screen_line(view, screen, line, "");
    }
    free(shown);
}

static void draw_screen(live_view *view)
{
    qs_buf screen, line;
    qs_buf_init(&screen);
    qs_buf_init(&line);
    qs_buf_puts(&screen, "\x1b[?25l\x1b[H");
    render_table(view, &screen, &line);
    qs_buf_puts(&screen, "\x1b[J");
    qs_buf_reset(&line);
    render_status(view, &line);
    qs_buf_printf(&screen, "\x1b[%d;1H", view->rows);
    qs_buf_append(&screen, line.data,
                  line.len < (size_t)view->columns ? line.len : (size_t)view->columns);
    qs_buf_puts(&screen, view->prompt ? "\x1b[K\x1b[?25h" : "\x1b[K");
    write_all(screen.data, screen.len);
    qs_buf_free(&screen);
    qs_buf_free(&line);
}

/* ---- keys ---------------------------------------------------------------------- */

static void next_vcpu(qs_top *top)
{
    long n = (long)top->model.current.ninstances[QS_TARGET_VCPU];
    top->vcpu = top->vcpu + 1 < n ? top->vcpu + 1 : -1;
}

/* all -> each provider that has stats, in schema order -> all */
static void next_provider(qs_top *top)
{
    const char *next = NULL;
    bool passed = !top->provider;
    for (size_t r = 0; r < top->model.nrows && !next; r++) {
        const char *provider = top->model.rows[r].provider;
        bool is_current = top->provider && !strcmp(provider, top->provider);
        if (passed && !is_current) {
            next = provider;
        } else if (is_current) {
            passed = true;
        }
    }
    free(top->provider);
    top->provider = next ? qs_strdup(next) : NULL;
}

/* Enter at a prompt: the typed text becomes the filter or the interval. */
static int commit_prompt(live_view *view)
{
    char *text = strndup(view->input.data ? view->input.data : "", view->input.len);
    prompt_kind kind = view->prompt;
    int action = ACTION_DRAW;
    view->prompt = PROMPT_NONE;
    if (kind == PROMPT_FILTER) {
        qs_top_set_filter(view->top, text, view->message, sizeof(view->message));
    } else if (*text &&      /* empty: keep the interval */
               qs_top_set_interval(view->top, text, view->message, sizeof(view->message))) {
        action |= ACTION_RESCHEDULE;
    }
    free(text);
    return action;
}

/* One byte typed at a prompt; *stop when the rest of the read is to be
 * dropped (an escape sequence). */
static int prompt_key(live_view *view, unsigned char key, bool *stop)
{
    if (key == '\r' || key == '\n') {
        return commit_prompt(view);
    }
    if (key == KEY_ESCAPE) {
        view->prompt = PROMPT_NONE;
        *stop = true;
    } else if ((key == KEY_DELETE || key == KEY_BACKSPACE) && view->input.len) {
        view->input.len--;
    } else if (key == KEY_CTRL_U) {
        qs_buf_reset(&view->input);
    } else if (key >= 32 && key < 127) {
        qs_buf_putc(&view->input, (char)key);
    }
    return ACTION_DRAW;
}

static void open_prompt(live_view *view, prompt_kind kind)
{
    view->prompt = kind;
    qs_buf_reset(&view->input);
}

static int on_key(live_view *view, unsigned char key, bool *stop)
{
    if (view->prompt) {
        return prompt_key(view, key, stop);
    }
    view->message[0] = '\0';
    switch (key) {
    case 'q':
    case 'Q':
        return ACTION_QUIT;
    case 'o':
        view->top->sort = (view->top->sort + 1) % QS_TOP_SORT__MAX;
        break;
    case 'f':
        open_prompt(view, PROMPT_FILTER);
        break;
    case 's':
        open_prompt(view, PROMPT_INTERVAL);
        break;
    case 'v':
        next_vcpu(view->top);
        break;
    case 'p':
        next_provider(view->top);
        break;
    case ' ':
    case 'r':
        return ACTION_REFRESH;
    case KEY_ESCAPE:
        *stop = true;
        break;
    }
    return ACTION_DRAW;
}

static int on_input(live_view *view)
{
    unsigned char keys[64];
    ssize_t n = read(STDIN_FILENO, keys, sizeof(keys));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return 0;
    }
    if (n <= 0) {
        return ACTION_QUIT;        /* the terminal went away */
    }
    int action = 0;
    bool stop = false;
    for (ssize_t i = 0; i < n && !stop && !(action & ACTION_QUIT); i++) {
        action |= on_key(view, keys[i], &stop);
    }
    return action;
}

/* ---- signals and the loop ------------------------------------------------------ */

static int on_signal(live_view *view, int signal_fd)
{
    struct signalfd_siginfo si;
    if (read(signal_fd, &si, sizeof(si)) != (ssize_t)sizeof(si)) {
        return 0;
    }
    switch (si.ssi_signo) {
    case SIGWINCH:
        learn_terminal_size(view);
        return ACTION_DRAW;
    case SIGTSTP:
        terminal_give_back(view);
        raise(SIGSTOP);
        terminal_take(view);
        return ACTION_DRAW;
    case SIGCONT:
        /* Resumed after a stop top did not see (SIGSTOP from outside):
         * the shell may have changed the terminal meanwhile. */
        if (view->terminal_ours) {
            view->terminal_ours = false;
            terminal_take(view);
        }
        return ACTION_DRAW;
    default:
        return ACTION_QUIT;        /* SIGINT, SIGTERM, SIGHUP, SIGQUIT */
    }
}

/* false only when the daemon is gone; other errors are shown and top goes on. */
static bool live_sample(live_view *view, qs_error **errp)
{
    qs_top *top = view->top;
    if (qs_top_model_sample(&top->model, top->qmp, errp)) {
        return true;
    }
    if (!qs_qmp_client_lost(top->qmp)) {
        snprintf(view->message, sizeof(view->message), "%s", (*errp)->msg);
        qs_error_free(*errp);
        *errp = NULL;
        return true;
    }
    return false;
}

/* Keys and signals that arrived, as actions; -1 when poll failed. */
static int wait_for_events(live_view *view, int signal_fd, double deadline, qs_error **errp)
{
    struct pollfd fds[2] = { { STDIN_FILENO, POLLIN, 0 }, { signal_fd, POLLIN, 0 } };
    double wait = deadline - qs_clock_seconds(CLOCK_MONOTONIC);
    if (poll(fds, 2, wait > 0 ? (int)ceil(wait * 1000) : 0) < 0 && errno != EINTR) {
        qs_error_setg(errp, "poll: %s", strerror(errno));
        return -1;
    }
    int action = 0;
    if (fds[1].revents & POLLIN) {
        action |= on_signal(view, signal_fd);
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        action |= on_input(view);
    }
    return action;
}

static int live_loop(live_view *view, int signal_fd, qs_error **errp)
{
    const qs_top *top = view->top;
    if (!live_sample(view, errp)) {
        return 1;
    }
    draw_screen(view);
    double next = qs_clock_seconds(CLOCK_MONOTONIC) + top->interval;
    for (;;) {
        int action = wait_for_events(view, signal_fd, next, errp);
        if (action < 0) {
            return 1;
        }
        if (action & ACTION_QUIT) {
            return 0;
        }
        double now = qs_clock_seconds(CLOCK_MONOTONIC);
        next = action & ACTION_REFRESH ? now
             : action & ACTION_RESCHEDULE ? now + top->interval : next;
        if (now >= next) {
            if (!live_sample(view, errp)) {
                return 1;
            }
            next = next + top->interval > now ? next + top->interval : now + top->interval;
            action |= ACTION_DRAW;
        }
        if (action & ACTION_DRAW) {
            draw_screen(view);
        }
    }
}

/* The signals the loop reads from a signalfd instead of having them act. */
static int block_signals(sigset_t *old)
{
    static const int signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGTSTP,
                                   SIGCONT };
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        sigaddset(&set, signals[i]);
    }
    sigprocmask(SIG_BLOCK, &set, old);
    return signalfd(-1, &set, SFD_CLOEXEC);
}

int qs_top_run_live(qs_top *top)
{
    live_view view = { .top = top };
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO) ||
        tcgetattr(STDIN_FILENO, &view.saved) < 0) {
        fprintf(stderr, QS_CLIENT_NAME ": top needs a terminal (use --once or --log)\n");
        return 1;
    }
    qs_buf_init(&view.input);
    sigset_t old;
    int signal_fd = block_signals(&old);
    qs_error *err = NULL;
    terminal_take(&view);
    int rc = live_loop(&view, signal_fd, &err);
    terminal_give_back(&view);
    close(signal_fd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    qs_buf_free(&view.input);
    if (err) {
        qs_client_report(err);
    }
    return rc;
}
