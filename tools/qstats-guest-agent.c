/*
 * qstats-guest-agent - plays the Linux virtio_balloon driver's part of
 * the stats protocol over qstatsd's balloon channel: it runs inside a guest
 * (vsock) or beside the daemon (unix socket, for the demo), reports at once
 * on connecting, then answers each request with fresh records built from
 * /proc (qs_balloon_guest_fill documents the mapping; the framing is at the
 * top of providers/balloon/channel.c).
 *
 * It is deliberately simple: blocking I/O, one connection, and a
 * reconnect loop with exponential backoff (0.1 s doubling to 5 s) for when
 * the daemon restarts or drops it.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "qs-balloon-guest.h"
#include "qs-net.h"

#define REQUEST_BYTE 0x01
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef struct agent {
    const char *spec;
    const char *proc_dir;
    bool once;
} agent;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: qstats-guest-agent --connect unix:PATH|vsock:CID:PORT [--proc DIR]\n"
            "Reports guest memory statistics to a qstatsd balloon channel.\n"
            "  -c, --connect SPEC   the channel: unix:PATH or vsock:CID:PORT\n"
            "  -p, --proc DIR       read meminfo and vmstat from DIR (default /proc)\n"
            "  -1, --once           exit when the connection ends instead of reconnecting\n"
            "  -h, --help           this text\n"
            "  -V, --version        print the version\n");
}

static bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* One answer: u32 LE length, then the records. */
static bool report(int fd, const char *proc_dir)
{
    uint8_t msg[4 + QS_BALLOON_MAX_RECORDS * QS_BALLOON_RECORD_SIZE];
    size_t n = qs_balloon_guest_fill(proc_dir, msg + 4, sizeof(msg) - 4);
    for (int i = 0; i < 4; i++)
        msg[i] = (uint8_t)(n >> (8 * i));
    return write_all(fd, msg, 4 + n);
}

/* Serves one connection until it ends. */
static void serve(int fd, const char *proc_dir)
{
    if (!report(fd, proc_dir))
        return;
    for (;;) {
        uint8_t req;
        ssize_t r = read(fd, &req, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
        /* Other request bytes are reserved; answering them is harmless. */
        if (!report(fd, proc_dir))
            return;
    }
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int run(const agent *a)
{
    unsigned backoff = BACKOFF_MIN_MS;
    bool said_waiting = false;
    for (;;) {
        int fd = qs_connect(a->spec, NULL);
        if (fd < 0) {
            if (errno == EINVAL) {
                fprintf(stderr, "qstats-guest-agent: invalid channel '%s'\n", a->spec);
                return 2;
            }
            if (a->once) {
                fprintf(stderr, "qstats-guest-agent: cannot connect to %s: %s\n",
                        a->spec, strerror(errno));
                return 1;
            }
            if (!said_waiting)
                fprintf(stderr, "qstats-guest-agent: waiting for %s (%s)\n",
                        a->spec, strerror(errno));
            said_waiting = true;
            sleep_ms(backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        fprintf(stderr, "qstats-guest-agent: connected to %s\n", a->spec);
        backoff = BACKOFF_MIN_MS;
        said_waiting = false;
        serve(fd, a->proc_dir);
        close(fd);
        if (a->once)
            return 0;
        fprintf(stderr, "qstats-guest-agent: connection to %s closed; reconnecting\n", a->spec);
        sleep_ms(backoff);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "connect", required_argument, NULL, 'c' },
        { "proc", required_argument, NULL, 'p' },
        { "once", no_argument, NULL, '1' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    agent a = { .proc_dir = "/proc" };
    int c;
    while ((c = getopt_long(argc, argv, "c:p:1hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a.spec = optarg; break;
        case 'p': a.proc_dir = optarg; break;
        case '1': a.once = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("qstats-guest-agent %s\n", QS_VERSION_STRING); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!a.spec || optind != argc) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    return run(&a);
}
