/*
 * fuzz_qmp_input.c - libFuzzer target for everything a QMP client's bytes
 * reach before and during dispatch: the stream splitter (qmp/stream.c),
 * jansson parsing, the envelope checks, the schema-driven argument
 * validator (qmp/qapi-validate.c), the command handlers and the reply
 * encoder.
 *
 * It drives one hand-built session (no socket, fd -1) of a real server
 * whose registry holds the kvm provider fed by the binary-stats fixtures
 * and a balloon device, with the human monitor behind
 * human-monitor-command, so query-stats, query-stats-schemas, qom-* and
 * every HMP command line (its parser included) run on real data.  The first
 * input byte picks the chunk size the stream is fed in and whether the
 * session starts negotiated; the rest is the stream.
 *
 * Oracle beyond the sanitizers: every reply is one line that parses as a
 * JSON object holding "return" or "error" (QMP's own framing promise).
 * QS_FUZZ_LAX_UNICODE=1 in the environment tolerates replies that jansson
 * refuses as "invalid Unicode" (a lone surrogate escape), to fuzz on past
 * that known finding.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qmp/internal.h"
#include "qs-balloon.h"
#include "qs-hmp.h"
#include "qs-kvm.h"

#ifndef QS_FUZZ_FIXTURES
#define QS_FUZZ_FIXTURES "tests/fixtures"
#endif

typedef struct fuzz_env {
    uv_loop_t loop;
    qs_registry *reg;
    qs_kvm_provider *kvm;
    qs_balloon *balloon;
    qs_hmp *hmp;
    qs_qmp *qmp;
} fuzz_env;

/* libFuzzer gives no context pointer: the server is built once per process. */
static fuzz_env *env;

static int open_fixture(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", QS_FUZZ_FIXTURES, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(path);
        abort();
    }
    return fd;
}

/* remove-stats-fd can empty the provider, so each input gets a fresh one
 * and inputs stay independent. */
static void build_registry(fuzz_env *e)
{
    qs_error *err = NULL;
    e->reg = qs_registry_new();
    e->kvm = qs_kvm_provider_new(e->reg);
    if (!qs_kvm_provider_set_vm(e->kvm, open_fixture("recorded-linux-6.18/vm.bin"), &err) ||
        !qs_kvm_provider_add_vcpu(e->kvm, "/machine/unattached/device[0]",
                                  open_fixture("recorded-linux-6.18/vcpu0.bin"), &err) ||
        !qs_kvm_provider_add_vcpu(e->kvm, "/machine/unattached/device[1]",
                                  open_fixture("recorded-linux-6.18/vcpu1.bin"), &err)) {
        fprintf(stderr, "fuzz_qmp_input: fixtures: %s\n", err->msg);
        abort();
    }
    e->balloon = qs_balloon_new(&e->loop, e->reg, 256u << 20);
    e->hmp = qs_hmp_new(&(qs_hmp_config){ .reg = e->reg });
}

static void free_registry(fuzz_env *e)
{
    qs_hmp_free(e->hmp);
    qs_balloon_free(e->balloon);
    uv_run(&e->loop, UV_RUN_NOWAIT);    /* the balloon's close callbacks */
    qs_kvm_provider_free(e->kvm);
    qs_registry_free(e->reg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    qs_error *err = NULL;
    env = qs_calloc(1, sizeof(*env));
    uv_loop_init(&env->loop);
    build_registry(env);
    qs_qmp_config cfg = { .reg = env->reg, .hmp = env->hmp, .name = "fuzz" };
    env->qmp = qs_qmp_new(&env->loop, &cfg, &err);
    if (!env->qmp || !qs_balloon_add_commands(env->balloon, env->qmp, env->hmp, &err)) {
        fprintf(stderr, "fuzz_qmp_input: %s\n", err->msg);
        abort();
    }
    return 0;
}

/* Each text gets exactly one reply line; check it, then drop it. */
static void on_text(void *opaque, const char *text, size_t len, const char *error)
{
    qs_qmp_session *s = opaque;
    size_t before = s->out.len;

    qs_qmp_session_handle_text(s, text, len, error);
    if (s->out.len <= before + 2 || memcmp(s->out.data + s->out.len - 2, "\r\n", 2))
        abort();
    const char *line = s->out.data + before;
    size_t n = s->out.len - before - 2;
    if (memchr(line, '\n', n))
        abort();
    json_error_t jerr;
    /* "\u0000" is valid JSON (QEMU writes it for the modified-UTF-8 NUL). */
    json_t *reply = json_loadb(line, n, JSON_ALLOW_NUL, &jerr);
    /* u64 values above INT64_MAX (the balloon's unset 18446744073709551615)
     * are valid JSON that jansson only reads as reals. */
    if (!reply && strstr(jerr.text, "too big"))
        reply = json_loadb(line, n, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!reply && getenv("QS_FUZZ_LAX_UNICODE") && strstr(jerr.text, "invalid Unicode")) {
        qs_buf_reset(&s->out);             /* a known finding, see README.md */
        return;
    }
    if (!json_is_object(reply) ||
        !(json_object_get(reply, "return") || json_object_get(reply, "error")))
        abort();
    json_decref(reply);
    qs_buf_reset(&s->out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    qs_qmp_session s;
    memset(&s, 0, sizeof(s));
    s.server = env->qmp;
    s.fd = -1;
    s.is_unix = true;
    s.negotiated = data[0] & 0x80;
    qs_buf_init(&s.out);
    qs_json_splitter_init(&s.splitter);

    size_t chunk = (data[0] & 0x7f) + 1;
    const char *p = (const char *)data + 1;
    size_t left = size - 1;
    while (left) {
        size_t n = left < chunk ? left : chunk;
        qs_json_splitter_feed(&s.splitter, p, n, on_text, &s);
        p += n;
        left -= n;
    }
    qs_json_splitter_free(&s.splitter);
    qs_buf_free(&s.out);
    env->qmp->quitting = false;        /* a "quit" must not leak into the next input */
    free_registry(env);
    build_registry(env);
    env->qmp->cfg.reg = env->reg;
    env->qmp->cfg.kvm = env->kvm;
    env->qmp->cfg.balloon = env->balloon;
    env->qmp->cfg.hmp = env->hmp;
    return 0;
}
