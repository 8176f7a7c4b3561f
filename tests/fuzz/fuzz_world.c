/*
 * fuzz_world.c - see fuzz_world.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_world.h"

static void die(const char *what, qs_error *err)
{
    fprintf(stderr, "fuzz world: %s: %s\n", what, err ? err->msg : "failed");
    abort();
}

void fuzz_world_init(fuzz_world *w, uv_loop_t *loop, bool with_qmp, size_t max_reply_bytes)
{
    qs_error *err = NULL;
    unsigned nvcpus = 0;

    memset(w, 0, sizeof(*w));
    w->loop = loop;
    w->max_reply_bytes = max_reply_bytes;
    w->reg = qs_registry_new();
    w->kvm = qs_kvm_provider_new(w->reg);
    if (!qs_kvm_provider_add_recording(w->kvm, QS_FUZZ_RECORDING, &nvcpus, &err))
        die(QS_FUZZ_RECORDING, err);
    w->balloon = qs_balloon_new(loop, w->reg, 256u << 20);
    w->hmp = qs_hmp_new(&(qs_hmp_config){ .reg = w->reg,
                                          .max_reply_bytes = max_reply_bytes });
    if (with_qmp) {
        qs_qmp_config cfg = { .reg = w->reg, .hmp = w->hmp, .name = "fuzz",
                              .max_reply_bytes = max_reply_bytes };
        w->qmp = qs_qmp_new(loop, &cfg, &err);
        if (!w->qmp)
            die("qs_qmp_new", err);
    }
    if (!qs_balloon_add_commands(w->balloon, w->qmp, w->hmp, &err))
        die("qs_balloon_add_commands", err);
}

void fuzz_world_destroy(fuzz_world *w)
{
    qs_qmp_free(w->qmp);
    qs_balloon_free(w->balloon);
    uv_run(w->loop, UV_RUN_NOWAIT);         /* their close callbacks */
    qs_hmp_free(w->hmp);
    qs_kvm_provider_free(w->kvm);
    qs_registry_free(w->reg);
    memset(w, 0, sizeof(*w));
}
