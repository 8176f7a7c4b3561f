/*
 * ratelimit.c - log lines about peers (refused connections, dropped agents,
 * failing accepts) cost an attacker nothing to provoke, so each source of
 * them goes through a budget: a burst is logged, the rest is counted and
 * summarised in one line once the window reopens.
 */
#include <stdio.h>

#include "qs-net.h"

void qs_ratelimit_log(qs_ratelimit *rl, uint64_t now_ms, const char *msg,
                      void (*emit)(void *opaque, const char *msg), void *opaque)
{
    if (now_ms - rl->window_start >= QS_LOG_WINDOW_MS) {
        if (rl->suppressed) {
            char line[96];
            snprintf(line, sizeof(line), "(%u similar messages suppressed)", rl->suppressed);
            emit(opaque, line);
        }
        rl->window_start = now_ms;
        rl->lines = rl->suppressed = 0;
    }
    if (rl->lines < QS_LOG_BURST) {
        rl->lines++;
        emit(opaque, msg);
    } else {
        rl->suppressed++;
    }
}
