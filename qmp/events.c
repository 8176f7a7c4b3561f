/*
 * events.c - what the QMP server tells its clients unasked, and the clock
 * it keeps on them.
 *
 *   STATS_SCHEMA_CHANGED {provider, target}  when a provider reports that a
 *       schema changed (the registry's watchers), so that pollers refetch
 *       query-stats-schemas only then.  Changes within one loop iteration
 *       are coalesced (1024 vCPU fds handed over make one event, not 1024)
 *       and sent to negotiated sessions in QEMU's event shape; clients
 *       ignore events they do not know, so QEMU compatibility holds.  A
 *       session that does not read its replies misses events rather than
 *       growing its backlog.
 *   Negotiation has a deadline: a session that has not sent
 *   qmp_capabilities after negotiation_timeout_ms is closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "internal.h"

#define NEGOTIATION_CHECK_MS 500

typedef struct pending_change {
    char *provider;
    qs_target target;
} pending_change;

static void put_event(qs_buf *b, const pending_change *c)
{
    struct timeval tv;
    bool ok = gettimeofday(&tv, NULL) == 0;
    qs_buf_puts(b, "{\"timestamp\": {\"seconds\": ");
    qs_buf_put_i64(b, ok ? (int64_t)tv.tv_sec : -1);
    qs_buf_puts(b, ", \"microseconds\": ");
    qs_buf_put_i64(b, ok ? (int64_t)tv.tv_usec : -1);
    qs_buf_puts(b, "}, \"event\": \"STATS_SCHEMA_CHANGED\", \"data\": {\"provider\": ");
    qs_json_put_string(b, c->provider);
    qs_buf_puts(b, ", \"target\": ");
    qs_json_put_string(b, qs_target_name(c->target));
    qs_buf_puts(b, "}}\r\n");
}

static void send_pending(uv_timer_t *t)
{
    qs_qmp *q = t->data;
    qs_buf line;
    qs_buf_init(&line);
    for (size_t i = 0; i < q->npending; i++) {
        qs_buf_reset(&line);
        put_event(&line, &q->pending[i]);
        for (qs_qmp_session *s = q->sessions; s; s = s->next)
            if (s->negotiated && !s->closing && s->out.len - s->out_sent < QS_QMP_OUT_HIGH)
                qs_buf_append(&s->out, line.data, line.len);
        free(q->pending[i].provider);
    }
    q->npending = 0;
    qs_buf_free(&line);
    for (qs_qmp_session *s = q->sessions, *next; s; s = next) {
        next = s->next;                 /* a failed send closes the session */
        qs_qmp_session_flush(s);
    }
}

static void on_registry_event(void *opaque, const qs_event *ev)
{
    qs_qmp *q = opaque;
    if (ev->kind != QS_EVENT_SCHEMA_CHANGED || q->freed)
        return;
    for (size_t i = 0; i < q->npending; i++)
        if (q->pending[i].target == ev->target && !strcmp(q->pending[i].provider, ev->provider))
            return;
    q->pending = qs_realloc(q->pending, (q->npending + 1) * sizeof(*q->pending));
    q->pending[q->npending++] = (pending_change){ qs_strdup(ev->provider), ev->target };
    uv_timer_start(&q->events_timer, send_pending, 0, 0);
}

/* ---- negotiation deadline ------------------------------------------------ */

static void check_negotiation(uv_timer_t *t)
{
    qs_qmp *q = t->data;
    uint64_t now = uv_now(q->loop);
    bool waiting = false;
    for (qs_qmp_session *s = q->sessions, *next; s; s = next) {
        next = s->next;
        if (s->negotiated || s->closing)
            continue;
        if (now - s->accepted_ms < q->negotiation_timeout_ms) {
            waiting = true;
            continue;
        }
        qs_ratelimit_log(&q->log_limit, now, "dropping a QMP client: no qmp_capabilities "
                         "in time", qs_qmp_log, NULL);
        qs_qmp_session_close(s);
    }
    if (!waiting)
        uv_timer_stop(t);
}

void qs_qmp_watch_negotiation(qs_qmp *q)
{
    if (!uv_is_active((uv_handle_t *)&q->negotiation_timer))
        uv_timer_start(&q->negotiation_timer, check_negotiation, NEGOTIATION_CHECK_MS,
                       NEGOTIATION_CHECK_MS);
}

/* ---- lifetime ------------------------------------------------------------- */

static void timer_closed(uv_handle_t *h)
{
    qs_qmp_handle_closed(h->data);
}

void qs_qmp_events_start(qs_qmp *q)
{
    uv_timer_init(q->loop, &q->events_timer);
    uv_timer_init(q->loop, &q->negotiation_timer);
    q->events_timer.data = q->negotiation_timer.data = q;
    q->watch = qs_registry_watch(q->cfg.reg, on_registry_event, q);
}

void qs_qmp_events_stop(qs_qmp *q)
{
    qs_registry_unwatch(q->cfg.reg, q->watch);
    for (size_t i = 0; i < q->npending; i++)
        free(q->pending[i].provider);
    free(q->pending);
    q->pending = NULL;
    q->npending = 0;
    q->pending_closes += 2;
    uv_close((uv_handle_t *)&q->events_timer, timer_closed);
    uv_close((uv_handle_t *)&q->negotiation_timer, timer_closed);
}
