/*
 * custom-provider - a VMM's own statistics served by libqstats: the VMM's
 * virtio-net device registers a provider named "virtio-net", and from then
 * on QMP (query-stats, query-stats-schemas, the StatsProvider enum of
 * query-qmp-schema), HMP (`info stats vm * virtio-net`), the metrics
 * endpoint (qstats_virtio_net_vm_*) and `qstats top` show it, with no
 * change to libqstats.  Build it against an installed libqstats with
 *     cc custom-provider.c $(pkg-config --cflags --libs qstats) -o custom-provider
 *
 * A provider is a name and two callbacks with an opaque pointer
 * (qs_registry_add); the name ([a-z0-9_-], starting with a letter) becomes
 * a StatsProvider value, so QMP validates requests against it like QEMU:
 *   schemas  what the stats are: name, type (cumulative counter, instant,
 *            histogram), unit; the table is static and outlives the device.
 *   stats    their current values, written into the query's results; it
 *            runs on the loop thread, so it reads the counters the
 *            datapath (here a uv timer) updates without locking.
 * A device that goes away (hot-unplug) calls qs_registry_remove with the
 * entry qs_registry_add returned before freeing what opaque points to.
 *
 * Queues.  A multiqueue virtio-net keeps counters per queue pair, but
 * query-stats has no instance below the VM for target vm (only vcpu and
 * cryptodev results carry a qom-path).  So the provider reports what the
 * whole device did under target vm (rx/tx packets and bytes, drops, and a
 * linear histogram of received packet sizes, 256-byte buckets), and the
 * per-queue packet counts under ethtool -S style names (rx_queue_0_packets,
 * ...), which is what shows a queue imbalance.  Totals are sums of the
 * queues, the histogram's buckets add up to rx_packets and the sizes to
 * rx_bytes: the metrics endpoint pairs rx_bytes_hist with rx_bytes as its
 * _sum (stem rule of qs-exporter.h).  A VMM with a queue count chosen at
 * run time would build the table when the device is realized.
 *
 * There is no network here: a timer moves the counters as traffic would.
 * Usage: custom-provider QMP HMP METRICS, as qstatsd spells them, e.g.
 *     custom-provider unix:/tmp/qmp.sock stdio 127.0.0.1:0
 * Prints the metrics port, then "ready"; stops on quit or SIGINT/SIGTERM.
 */
#include <qstats.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define NQUEUES 2
#define BUCKET_SIZE 256
#define NBUCKETS 8                 /* [0,256) ... [1792,+inf): merged, jumbo */

/* The schema's order; the first five are also the per-queue counters. */
enum { RX_PACKETS, RX_BYTES, RX_DROPS, TX_PACKETS, TX_BYTES, RX_BYTES_HIST, PER_QUEUE };

typedef struct vnet {
    uint64_t q[NQUEUES][RX_BYTES_HIST];    /* what the datapath counts */
    uint64_t rx_sizes[NBUCKETS];
    uint32_t rng;
} vnet;

#define COUNTER(n, u, d) { .name = n, .type = QS_TYPE_CUMULATIVE, .unit = u, .size = 1, \
                           .description = d }
static const qs_schema_value schema[] = {
    COUNTER("rx_packets", QS_UNIT_NONE, "Packets delivered to the guest."),
    COUNTER("rx_bytes", QS_UNIT_BYTES, "Bytes delivered to the guest."),
    COUNTER("rx_drops", QS_UNIT_NONE, "Packets dropped: the guest had no receive buffer."),
    COUNTER("tx_packets", QS_UNIT_NONE, "Packets sent by the guest."),
    COUNTER("tx_bytes", QS_UNIT_BYTES, "Bytes sent by the guest."),
    { .name = "rx_bytes_hist", .type = QS_TYPE_LINEAR_HIST, .unit = QS_UNIT_BYTES,
      .bucket_size = BUCKET_SIZE, .size = NBUCKETS,
      .description = "Sizes of the packets delivered to the guest." },
    /* PER_QUEUE + 2*i is queue i's rx, + 1 its tx. */
    COUNTER("rx_queue_0_packets", QS_UNIT_NONE, "Packets delivered on queue pair 0."),
    COUNTER("tx_queue_0_packets", QS_UNIT_NONE, "Packets sent on queue pair 0."),
    COUNTER("rx_queue_1_packets", QS_UNIT_NONE, "Packets delivered on queue pair 1."),
    COUNTER("tx_queue_1_packets", QS_UNIT_NONE, "Packets sent on queue pair 1."),
};
#define NSTATS (sizeof(schema) / sizeof(schema[0]))
_Static_assert(NSTATS == PER_QUEUE + 2 * NQUEUES, "two per-queue stats per queue pair");

static void fill(const vnet *n, size_t stat, uint64_t *v)
{
    size_t k = stat - PER_QUEUE;            /* a per-queue stat: pair k / 2 */
    if (stat == RX_BYTES_HIST) {
        memcpy(v, n->rx_sizes, sizeof(n->rx_sizes));
    } else if (stat > RX_BYTES_HIST) {
        v[0] = n->q[k / 2][k % 2 ? TX_PACKETS : RX_PACKETS];
    } else {
        v[0] = 0;                           /* device-wide: the sum of the queues */
        for (size_t i = 0; i < NQUEUES; i++)
            v[0] += n->q[i][stat];
    }
}

static bool net_stats(void *opaque, qs_results *out, qs_target target,
                      const qs_strlist *names, const qs_strlist *targets, qs_error **errp)
{
    const vnet *n = opaque;
    (void)targets, (void)errp;             /* no instances below the VM, no failure */
    if (target != QS_TARGET_VM)            /* nothing per vCPU */
        return true;
    qs_results_begin(out, "virtio-net", NULL);
    for (size_t i = 0; i < NSTATS; i++) {
        if (!qs_strlist_match(names, schema[i].name))
            continue;
        size_t off = qs_results_reserve(out, schema[i].size);
        fill(n, i, qs_results_values(out, off));
        qs_results_add(out, &schema[i], off);
    }
    qs_results_end(out, true);             /* filtered to nothing: no result */
    return true;
}

static bool net_schemas(void *opaque, qs_schemas *out, qs_error **errp)
{
    (void)opaque, (void)errp;
    qs_schemas_add(out, "virtio-net", QS_TARGET_VM, schema, NSTATS);
    return true;
}

/* The datapath stand-in: every 100 ms each queue pair receives a few
 * packets (mostly ACK-sized or full 1514-byte frames, some GRO-merged up to
 * 64 KiB; queue 1 busier), the guest sends ACKs, and now and then a packet
 * finds no receive buffer. */
static uint32_t next(vnet *n) { return n->rng = n->rng * 1103515245u + 12345u, n->rng >> 8; }

static void traffic(uv_timer_t *t)
{
    vnet *n = t->data;
    for (uint32_t i = 0; i < NQUEUES; i++) {
        uint64_t *q = n->q[i];
        for (uint32_t k = 4 + next(n) % 16 * (i + 1); k > 0; k--) {
            uint32_t r = next(n) % 10, size = r < 6 ? 66 : r < 9 ? 1514 : 1514 + next(n) % 64000;
            q[RX_PACKETS]++;
            q[RX_BYTES] += size;
            n->rx_sizes[size / BUCKET_SIZE < NBUCKETS ? size / BUCKET_SIZE : NBUCKETS - 1]++;
        }
        uint32_t acks = 2 + next(n) % 8;
        q[TX_PACKETS] += acks;
        q[TX_BYTES] += acks * 66;
        q[RX_DROPS] += next(n) % 8 == 0;
    }
}

typedef struct vmm {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    uv_timer_t timer;
    vnet net;
    qs_registry *reg;
    qs_hmp *hmp;
    qs_hmp_console *console;
    qs_qmp *qmp;
    qs_exporter *exporter;
} vmm;

/* quit and signals only stop the loop; main closes everything afterwards. */
static void on_quit(void *opaque) { uv_stop(&((vmm *)opaque)->loop); }
static void on_signal(uv_signal_t *h, int sig) { (void)sig; uv_stop(h->loop); }

static bool start(vmm *v, char **argv, qs_error **errp)
{
    v->reg = qs_registry_new();
    if (!qs_registry_add(v->reg, "virtio-net", net_stats, net_schemas, &v->net, errp))
        return false;
    v->hmp = qs_hmp_new(&(qs_hmp_config){ .reg = v->reg, .on_quit = on_quit, .opaque = v });
    v->qmp = qs_qmp_new(&v->loop, &(qs_qmp_config){ .reg = v->reg, .hmp = v->hmp,
                            .name = "custom", .on_quit = on_quit, .opaque = v }, errp);
    if (!v->qmp || !qs_qmp_listen(v->qmp, argv[1], false, errp) ||
        !(v->console = qs_hmp_console_new(&v->loop, v->hmp, argv[2], errp)) ||
        !(v->exporter = qs_exporter_new(&v->loop, &(qs_exporter_config){
              .reg = v->reg, .vm_name = "custom" }, argv[3], false, errp)))
        return false;
    v->timer.data = &v->net;
    uv_timer_start(&v->timer, traffic, 100, 100);
    printf("metrics on port %d\nready\n", qs_exporter_port(v->exporter));
    fflush(stdout);
    return true;
}

int main(int argc, char **argv)
{
    vmm v = { .net.rng = 1 };
    qs_error *err = NULL;
    if (argc != 4) {
        fprintf(stderr, "usage: custom-provider unix:PATH|tcp:HOST:PORT unix:PATH|stdio "
                "HOST:PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);   /* a client may leave before its reply is written */
    uv_loop_init(&v.loop);
    uv_timer_init(&v.loop, &v.timer);
    uv_signal_init(&v.loop, &v.sigint);
    uv_signal_init(&v.loop, &v.sigterm);
    uv_signal_start(&v.sigint, on_signal, SIGINT);
    uv_signal_start(&v.sigterm, on_signal, SIGTERM);
    bool ok = start(&v, argv, &err);
    if (ok)
        uv_run(&v.loop, UV_RUN_DEFAULT);
    else
        fprintf(stderr, "custom-provider: %s\n", err->msg);
    qs_error_free(err);

    /* Servers close their handles; one more loop run releases them. */
    qs_exporter_free(v.exporter);
    qs_hmp_console_free(v.console);
    qs_qmp_free(v.qmp);
    uv_close((uv_handle_t *)&v.timer, NULL);
    uv_close((uv_handle_t *)&v.sigint, NULL);
    uv_close((uv_handle_t *)&v.sigterm, NULL);
    uv_run(&v.loop, UV_RUN_DEFAULT);
    qs_hmp_free(v.hmp);
    qs_registry_free(v.reg);               /* also drops the provider */
    return uv_loop_close(&v.loop) == 0 && ok ? 0 : 1;
}
