/*
 * fuzz_qmp_input.c - libFuzzer target for everything a QMP client's bytes
 * reach before and during dispatch: the stream splitter (qmp/stream.c),
 * jansson parsing, the envelope checks, the schema-driven argument
 * validator (qmp/qapi-validate.c), the command handlers and the reply
 * encoder.
 *
 * It drives one hand-built session (no socket, fd -1) of a real server on
 * the fuzz world (fuzz_world.h: the recorded VM and a balloon device, the
 * human monitor behind human-monitor-command, every module's commands
 * such as query-balloon), so query-stats, query-stats-schemas, qom-* and
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/internal.h"
#include "fuzz_world.h"

/* libFuzzer gives no context pointer: the loop lives as long as the
 * process; the world on it is built anew for every input (remove-stats-fd,
 * qom-set and quit change it), so that a finding replays alone. */
static uv_loop_t *loop;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    loop = qs_calloc(1, sizeof(*loop));
    uv_loop_init(loop);
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
    fuzz_world w;
    fuzz_world_init(&w, loop, true, 0);
    qs_qmp_session s;
    memset(&s, 0, sizeof(s));
    s.server = w.qmp;
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
    fuzz_world_destroy(&w);
    return 0;
}
