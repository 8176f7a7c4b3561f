/*
 * qstats-client.c - main() of the `qstats` client: global options, and the
 * two one-shot modes (an HMP line through human-monitor-command, one raw
 * QMP command).  The interactive console and `top` live in their own files;
 * all of them talk to qstatsd over QMP only (qstats-client-qmp.c), so the
 * client works the same against any QMP server that has these commands.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qstats-client.h"

#define EXIT_USAGE 2

static void usage(FILE *f)
{
    fputs("Usage: qstats [-s SOCKET] [-c CPU] COMMAND [ARGS...]\n"
          "Client of qstatsd (or any QMP server with the stats commands).\n\n"
          "Commands:\n"
          "  hmp                  interactive human monitor (line editing, history,\n"
          "                       tab completion; Ctrl-D or quit leaves the console;\n"
          "                       `cpu N` selects the vCPU of later commands)\n"
          "  qmp JSON             send one QMP command, pretty-print the reply;\n"
          "                       exit status 1 on an error reply.  `qmp NAME [ARGS-JSON]`\n"
          "                       builds {\"execute\": NAME, \"arguments\": ARGS-JSON}\n"
          "  top [OPTIONS]        live statistics view (see below)\n"
          "  HMP-LINE...          anything else is one HMP command line, e.g.\n"
          "                       `qstats -s SOCK info stats vcpu exits`\n\n"
          "Options:\n"
          "  -s, --socket SOCKET  QMP socket: PATH, unix:PATH or tcp:HOST:PORT\n"
          "                       (default: $QSTATS_SOCKET)\n"
          "  -c, --cpu N          current vCPU for a one-shot HMP line\n"
          "  -h, --help           this help\n"
          "  -V, --version        print the version\n\n", f);
    fputs("top options:\n"
          "  -d, --delay SECONDS  refresh interval (default 2)\n"
          "  -o, --sort KEY       rate (default), total or name\n"
          "  -f, --filter REGEX   only stats whose name matches (POSIX extended)\n"
          "  -p, --provider P     only provider P (a StatsProvider name such as kvm or\n"
          "                       balloon; all: every provider)\n"
          "  -c, --vcpu N|all     vCPU statistics of the N-th vCPU, or summed over all\n"
          "                       (peaks: the maximum)\n"
          "  -z, --skip-zero      top/--once: hide stats whose value and rate are 0;\n"
          "                       --log: skip intervals where every column is 0\n"
          "      --once           print one snapshot after one interval, then exit\n"
          "  -l, --log            CSV on stdout: a header, then one row per interval:\n"
          "                       timestamp (Unix seconds), then one column per stat:\n"
          "                       the rate per second for cumulative stats and for\n"
          "                       histograms (samples/s), the value for instant and\n"
          "                       peak stats (booleans: how many are true), in the\n"
          "                       stat's own unit; a name found in several targets\n"
          "                       is written PROVIDER.TARGET.NAME\n"
          "  -n, --count N        with --log: stop after N intervals\n"
          "Keys: o sort  f filter  v vCPU  p provider  s interval  q quit\n"
          "Histograms show the sample count, its rate, and the mean, p50 and p99 of\n"
          "the samples of the last interval (on the first screen: of all samples),\n"
          "estimated from the bucket bounds.  Values are scaled by their unit.\n", f);
}

void qs_client_report(qs_error *err)
{
    fprintf(stderr, QS_CLIENT_NAME ": %s\n", err ? err->msg : "unknown error");
    qs_error_free(err);
}

/* Joins arguments into one HMP line, quoting those the HMP parser would
 * otherwise split or unescape. */
static char *join_hmp_line(int argc, char **argv)
{
    qs_buf b;
    qs_buf_init(&b);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i) {
            qs_buf_putc(&b, ' ');
        }
        if (*a && !strpbrk(a, " \t\"\\'")) {
            qs_buf_puts(&b, a);
            continue;
        }
        qs_buf_putc(&b, '"');
        for (; *a; a++) {
            if (*a == '"' || *a == '\\' || *a == '\'') {
                qs_buf_putc(&b, '\\');
            }
            qs_buf_putc(&b, *a);
        }
        qs_buf_putc(&b, '"');
    }
    return qs_buf_steal(&b);
}

static int run_hmp_line(qs_qmp_client *client, int argc, char **argv, long cpu)
{
    char *line = join_hmp_line(argc, argv);
    qs_error *err = NULL;
    char *out = qs_client_hmp(client, line, cpu, &err);
    free(line);
    if (!out) {
        qs_client_report(err);
        return 1;
    }
    fputs(out, stdout);
    free(out);
    return 0;
}

/* Re-indented as jansson's JSON_INDENT(2) would, but token by token rather
 * than through a jansson tree, so that numbers are printed as they came:
 * 18446744073709551615 stays exact. */
static void print_pretty_json(const char *s, FILE *f)
{
    qs_buf out;
    qs_buf_init(&out);
    qs_json_reindent(&out, s, strlen(s), 2, true);
    fwrite(out.data, 1, out.len, f);
    fputc('\n', f);
    qs_buf_free(&out);
}

/* `qmp JSON` or `qmp NAME [ARGS-JSON]`. */
static json_t *build_qmp_request(int argc, char **argv)
{
    json_error_t jerr;
    json_t *req = json_loads(argv[0], JSON_DECODE_ANY, &jerr);
    if (req && argc == 1) {
        return req;
    }
    json_decref(req);
    if (strspn(argv[0], "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(argv[0])) {
        fprintf(stderr, QS_CLIENT_NAME ": invalid JSON: %s\n", jerr.text);
        return NULL;
    }
    req = json_pack("{s:s}", "execute", argv[0]);
    if (argc == 2) {
        json_t *args = json_loads(argv[1], 0, &jerr);
        if (!args) {
            fprintf(stderr, QS_CLIENT_NAME ": invalid JSON arguments: %s\n", jerr.text);
            json_decref(req);
            return NULL;
        }
        json_object_set_new(req, "arguments", args);
    }
    return req;
}

static int run_qmp(qs_qmp_client *client, int argc, char **argv)
{
    if (argc < 1 || argc > 2) {
        fprintf(stderr, QS_CLIENT_NAME ": qmp needs one JSON command\n");
        return EXIT_USAGE;
    }
    json_t *req = build_qmp_request(argc, argv);
    if (!req) {
        return EXIT_USAGE;
    }
    qs_error *err = NULL;
    char *text = NULL;
    json_t *reply = qs_qmp_client_request_text(client, req, &text, &err);
    json_decref(req);
    if (!reply) {
        qs_client_report(err);
        return 1;
    }
    print_pretty_json(text, stdout);
    free(text);
    int rc = json_object_get(reply, "error") ? 1 : 0;
    json_decref(reply);
    return rc;
}

typedef struct client_options {
    const char *socket;
    long cpu;
} client_options;

/* Returns the index of the command word, or -1 after printing why not. */
static int parse_global_options(int argc, char **argv, client_options *options, int *exit_rc)
{
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, 's' },
        { "cpu", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { 0 }
    };
    int opt;
    char *end;
    while ((opt = getopt_long(argc, argv, "+s:c:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            options->socket = optarg;
            break;
        case 'c':
            options->cpu = strtol(optarg, &end, 10);
            if (*end || options->cpu < 0) {
                fprintf(stderr, QS_CLIENT_NAME ": invalid CPU index %s\n", optarg);
                return -1;
            }
            break;
        case 'h':
            usage(stdout);
            *exit_rc = 0;
            return -1;
        case 'V':
            printf(QS_CLIENT_NAME " " QS_VERSION_STRING "\n");
            *exit_rc = 0;
            return -1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, QS_CLIENT_NAME ": missing command (try --help)\n");
        return -1;
    }
    if (!options->socket && !(options->socket = getenv("QSTATS_SOCKET"))) {
        fprintf(stderr, QS_CLIENT_NAME ": no socket given (-s SOCKET)\n");
        return -1;
    }
    return optind;
}

/* The mode the command word names (argv[0]), on a connected client;
 * returns the exit status. */
static int run_command(qs_qmp_client *client, qs_top *top, int argc, char **argv, long cpu)
{
    if (top) {
        return qs_top_run(top, client);
    }
    if (strcmp(argv[0], "hmp") == 0) {
        return qs_client_console(client, cpu);
    }
    if (strcmp(argv[0], "qmp") == 0) {
        return run_qmp(client, argc - 1, argv + 1);
    }
    return run_hmp_line(client, argc, argv, cpu);
}

int main(int argc, char **argv)
{
    client_options options = { .cpu = -1 };
    int rc = EXIT_USAGE;
    int command = parse_global_options(argc, argv, &options, &rc);
    if (command < 0) {
        return rc;
    }
    const char *word = argv[command];
    qs_top *top = NULL;
    if (strcmp(word, "top") == 0 && !(top = qs_top_new(argc - command, argv + command, &rc))) {
        if (rc == 0) {
            usage(stdout);
        }
        return rc;
    }
    if (strcmp(word, "hmp") == 0 && command + 1 != argc) {
        fprintf(stderr, QS_CLIENT_NAME ": hmp takes no arguments\n");
        return EXIT_USAGE;
    }
    qs_error *err = NULL;
    qs_qmp_client *client = qs_qmp_client_connect(options.socket, &err);
    if (!client) {
        qs_client_report(err);
        qs_top_free(top);
        return 1;
    }
    rc = run_command(client, top, argc - command, argv + command, options.cpu);
    qs_top_free(top);
    qs_qmp_client_close(client);
    return rc;
}
