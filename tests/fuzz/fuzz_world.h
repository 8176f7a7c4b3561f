/*
 * fuzz_world.h - the VM the fuzz targets talk to: a registry holding the
 * kvm provider on the recorded VM of tests/fixtures (vm.bin, 2 vCPUs) and a
 * balloon device, with the human monitor (and, on request, the QMP server)
 * on top, every module's commands added as qstatsd adds them.  One home
 * for it, so that every target that reaches the registry sees the same
 * real data.  Built per input where an input can change the world
 * (remove-stats-fd, qom-set, cpu), so that inputs stay independent and a
 * finding replays alone.
 */
#ifndef QS_FUZZ_WORLD_H
#define QS_FUZZ_WORLD_H

#include <uv.h>

#include "qs-common.h"
#include "qs-balloon.h"
#include "qs-hmp.h"
#include "qs-kvm.h"
#include "qs-qmp.h"

#ifndef QS_FUZZ_FIXTURES
#define QS_FUZZ_FIXTURES "tests/fixtures"
#endif
#define QS_FUZZ_RECORDING QS_FUZZ_FIXTURES "/recorded-linux-6.18"

typedef struct fuzz_world {
    uv_loop_t *loop;
    qs_registry *reg;
    qs_kvm_provider *kvm;
    qs_balloon *balloon;
    qs_hmp *hmp;
    qs_qmp *qmp;                /* only with with_qmp */
    size_t max_reply_bytes;     /* 0: QS_REPLY_MAX_DEFAULT */
} fuzz_world;

/* Builds the world on loop; aborts (with a message) if the fixtures are
 * missing, since then no input could mean anything. */
void fuzz_world_init(fuzz_world *w, uv_loop_t *loop, bool with_qmp, size_t max_reply_bytes);
/* Frees it and runs the loop until every handle of it is closed. */
void fuzz_world_destroy(fuzz_world *w);

#endif
