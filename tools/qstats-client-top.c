/*
 * qstats-client-top.c - `qstats -s SOCK top`: a statistics view in the
 * spirit of kvm_stat, but built from query-stats and query-stats-schemas
 * (so it needs no debugfs, knows every stat's unit and works for any
 * provider).  This file holds what every mode shares: the options, parsed
 * before the client connects so that a usage error needs no daemon, and
 * the setters the live view's prompts reuse, so that a value typed at a
 * prompt is judged as it would be on the command line.  The modes are in
 * qstats-client-top-live.c and qstats-client-top-batch.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qstats-client-top.h"

#define EXIT_USAGE 2
#define MIN_INTERVAL 0.1
#define MAX_INTERVAL 86400

static const char *const sort_names[QS_TOP_SORT__MAX] = { "rate", "total", "name" };

const char *qs_top_sort_name(qs_top_sort sort)
{
    return sort_names[sort];
}

static void clear_filter(qs_top *top)
{
    if (top->filter_text) {
        regfree(&top->filter);
    }
    free(top->filter_text);
    top->filter_text = NULL;
}

bool qs_top_set_filter(qs_top *top, const char *text, char *err, size_t errlen)
{
    regex_t re;
    int rc = *text ? regcomp(&re, text, REG_EXTENDED | REG_NOSUB) : 0;
    if (rc != 0) {
        char why[128];
        regerror(rc, &re, why, sizeof(why));
        snprintf(err, errlen, "invalid regex '%s': %s", text, why);
        return false;
    }
    clear_filter(top);
    if (*text) {
        top->filter = re;
        top->filter_text = qs_strdup(text);
    }
    return true;
}

bool qs_top_set_interval(qs_top *top, const char *text, char *err, size_t errlen)
{
    char *end;
    double seconds = strtod(text, &end);
    if (end == text || *end || !(seconds >= MIN_INTERVAL) || seconds > MAX_INTERVAL) {
        snprintf(err, errlen, "invalid interval %s (seconds, at least %g)", text,
                 MIN_INTERVAL);
        return false;
    }
    top->interval = seconds;
    return true;
}

static bool set_sort(qs_top *top, const char *text, char *err, size_t errlen)
{
    for (int i = 0; i < QS_TOP_SORT__MAX; i++) {
        if (!strcmp(sort_names[i], text)) {
            top->sort = (qs_top_sort)i;
            return true;
        }
    }
    snprintf(err, errlen, "invalid sort key %s (rate, total or name)", text);
    return false;
}

static bool set_vcpu(qs_top *top, const char *text, char *err, size_t errlen)
{
    if (!strcmp(text, "all")) {
        top->vcpu = -1;
        return true;
    }
    char *end;
    long vcpu = strtol(text, &end, 10);
    if (end == text || *end || vcpu < 0) {
        snprintf(err, errlen, "invalid vCPU %s (a number or all)", text);
        return false;
    }
    top->vcpu = vcpu;
    return true;
}

/* Any StatsProvider name: the daemon says which have stats. */
static bool set_provider(qs_top *top, const char *text, char *err, size_t errlen)
{
    if (strcmp(text, "all") && !qs_provider_name_valid(text)) {
        snprintf(err, errlen, "invalid provider %s", text);
        return false;
    }
    free(top->provider);
    top->provider = strcmp(text, "all") ? qs_strdup(text) : NULL;
    return true;
}

static bool set_count(qs_top *top, const char *text, char *err, size_t errlen)
{
    top->count = strtol(text, NULL, 10);
    if (top->count <= 0) {
        snprintf(err, errlen, "invalid count %s", text);
        return false;
    }
    return true;
}

/* One option with a value; false (after saying why) on a bad value. */
static bool apply_option(qs_top *top, int opt, const char *arg)
{
    char err[256] = "";
    bool ok = opt == 'd' ? qs_top_set_interval(top, arg, err, sizeof(err))
            : opt == 'o' ? set_sort(top, arg, err, sizeof(err))
            : opt == 'f' ? qs_top_set_filter(top, arg, err, sizeof(err))
            : opt == 'p' ? set_provider(top, arg, err, sizeof(err))
            : opt == 'c' ? set_vcpu(top, arg, err, sizeof(err))
            : opt == 'n' ? set_count(top, arg, err, sizeof(err))
            : true;
    if (!ok) {
        fprintf(stderr, QS_CLIENT_NAME ": %s\n", err);
    }
    return ok;
}

/* One option from getopt; false when the program is to exit (*exit_rc). */
static bool take_option(qs_top *top, int opt, char **argv, int *exit_rc)
{
    switch (opt) {
    case 'z':
        top->skip_zero = true;
        return true;
    case '1':
        top->mode = QS_TOP_ONCE;
        return true;
    case 'l':
        top->mode = QS_TOP_LOG;
        return true;
    case 'h':
        *exit_rc = 0;
        return false;
    case '?':
        fprintf(stderr, QS_CLIENT_NAME ": top: invalid option or missing value: %s\n",
                argv[optind - 1]);
        return false;
    default:
        return apply_option(top, opt, optarg);
    }
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
    qs_top *top = qs_calloc(1, sizeof(*top));
    *top = (qs_top){ .interval = 2, .vcpu = -1, .count = -1 };
    int opt;
    optind = 0;
    opterr = 0;
    *exit_rc = EXIT_USAGE;
    while ((opt = getopt_long(argc, argv, "d:o:f:p:c:zln:h", longopts, NULL)) != -1) {
        if (!take_option(top, opt, argv, exit_rc)) {
            qs_top_free(top);
            return NULL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, QS_CLIENT_NAME ": top: unexpected argument %s\n", argv[optind]);
        qs_top_free(top);
        return NULL;
    }
    return top;
}

void qs_top_free(qs_top *top)
{
    if (!top) {
        return;
    }
    clear_filter(top);
    free(top->provider);
    free(top->vm_label);
    qs_top_model_destroy(&top->model);
    free(top);
}

/* The header names the VM by query-name, or by the socket without one. */
static void learn_vm_label(qs_top *top)
{
    qs_error *err = NULL;
    json_t *name = qs_qmp_client_call(top->qmp, "query-name", NULL, &err);
    const char *s = json_string_value(json_object_get(name, "name"));
    top->vm_label = qs_strdup(s ? s : qs_qmp_client_spec(top->qmp));
    json_decref(name);
    qs_error_free(err);
}

int qs_top_run(qs_top *top, qs_qmp_client *client)
{
    qs_error *err = NULL;
    top->qmp = client;
    if (!qs_top_model_load(&top->model, client, &err)) {
        qs_client_report(err);
        return 1;
    }
    learn_vm_label(top);
    switch (top->mode) {
    case QS_TOP_ONCE:
        return qs_top_run_once(top);
    case QS_TOP_LOG:
        return qs_top_run_log(top);
    default:
        return qs_top_run_live(top);
    }
}
