/*
 * taskstats.c - the kernel's per-thread accounting (taskstats over generic
 * netlink), asked for many threads in a few system calls.
 *
 *     send     [nlmsghdr | genlmsghdr GET | nlattr PID = tid] x up to BATCH
 *     recvmmsg one reply per request, in order:
 *              nlmsghdr (family) | genlmsghdr | nlattr AGGR_PID
 *                  { nlattr PID = tid, nlattr STATS = struct taskstats }
 *              or nlmsghdr ERROR | nlmsgerr (-ESRCH: no such thread)
 *
 *     struct taskstats        stat          the field schedstat, status print
 *     cpu_run_virtual_total   run_ns        se.sum_exec_runtime
 *     cpu_delay_total         wait_ns       sched_info.run_delay
 *     cpu_count               timeslices    sched_info.pcount
 *     nvcsw, nivcsw           *_switches    nvcsw, nivcsw
 *
 * Why it exists: /proc/TID/status is the only unprivileged home of a
 * thread's context-switch counts, and the kernel formats all of it (1.4 KiB:
 * signal sets, memory, the CPU and node masks) at every read, ~8 us a
 * thread.  One taskstats reply holds the switch counts and schedstat's
 * three numbers for a fraction of that.  The kernel answers only a caller
 * with CAP_NET_ADMIN in the initial user namespace (root, not the root of a
 * container's own user namespace); qs_taskstats_open asks once, for the
 * caller's own thread, and says no otherwise: the provider then reads
 * /proc (thread.c).
 *
 * A reply names a TID, not a thread: the caller checks that each thread
 * was alive throughout (sched.c watches the pidfds), and asks only for
 * threads whose /proc files it could open, so that this path reads
 * nothing /proc would have refused.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>

#include "qs-common.h"
#include "internal.h"

#define BATCH 64
#define REPLY_MAX 2048           /* a version-16 reply is 596 bytes */
#define REQ_LEN (NLMSG_LENGTH(GENL_HDRLEN) + NLA_HDRLEN + 4)
#define NEED_BYTES (offsetof(struct taskstats, nivcsw) + sizeof(__u64))

struct qs_taskstats {
    int sock;
    uint16_t family;
    uint32_t seq;                /* of the next request: a stale reply is refused */
    char req[BATCH * NLMSG_ALIGN(REQ_LEN)];
    char reply[BATCH][REPLY_MAX];
};

/* One generic netlink request: cmd with a single attribute. */
static size_t put_request(char *buf, uint16_t type, uint8_t cmd, uint16_t attr,
                          const void *val, size_t len, uint32_t seq)
{
    struct nlmsghdr *h = (void *)buf;
    struct genlmsghdr *g = NLMSG_DATA(h);
    struct nlattr *a = (void *)((char *)g + GENL_HDRLEN);
    *h = (struct nlmsghdr){ .nlmsg_type = type, .nlmsg_flags = NLM_F_REQUEST,
                            .nlmsg_seq = seq,
                            .nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + NLA_HDRLEN + len };
    *g = (struct genlmsghdr){ .cmd = cmd, .version = 1 };
    *a = (struct nlattr){ .nla_type = attr, .nla_len = NLA_HDRLEN + len };
    memcpy((char *)a + NLA_HDRLEN, val, len);
    return NLMSG_ALIGN(h->nlmsg_len);
}

/* The attribute of the given type among [p, p + len), or NULL. */
static const struct nlattr *find_attr(const char *p, size_t len, uint16_t type)
{
    while (len >= NLA_HDRLEN) {
        const struct nlattr *a = (const void *)p;
        if (a->nla_len < NLA_HDRLEN || a->nla_len > len)
            return NULL;
        if ((a->nla_type & NLA_TYPE_MASK) == type)
            return a;
        size_t step = (size_t)NLA_ALIGN(a->nla_len) < len ? (size_t)NLA_ALIGN(a->nla_len) : len;
        p += step;
        len -= step;
    }
    return NULL;
}

/* The payload of a reply to our family, past the genl header; NULL else. */
static const char *genl_payload(const char *buf, size_t n, uint16_t family, size_t *len)
{
    const struct nlmsghdr *h = (const void *)buf;
    if (n < NLMSG_LENGTH(GENL_HDRLEN) || h->nlmsg_len > n || h->nlmsg_type != family ||
        h->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN))
        return NULL;
    *len = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
    return (const char *)NLMSG_DATA(h) + GENL_HDRLEN;
}

static uint16_t resolve_family(int sock, char *buf)
{
    size_t n = put_request(buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME,
                           TASKSTATS_GENL_NAME, sizeof(TASKSTATS_GENL_NAME), 0);
    if (send(sock, buf, n, 0) < 0)
        return 0;
    ssize_t got = recv(sock, buf, REPLY_MAX, 0);
    size_t len;
    const char *p = got > 0 ? genl_payload(buf, (size_t)got, GENL_ID_CTRL, &len) : NULL;
    const struct nlattr *id = p ? find_attr(p, len, CTRL_ATTR_FAMILY_ID) : NULL;
    if (!id || id->nla_len < NLA_HDRLEN + sizeof(uint16_t))
        return 0;
    uint16_t family;
    memcpy(&family, (const char *)id + NLA_HDRLEN, sizeof(family));
    return family;
}

qs_taskstats *qs_taskstats_open(void)
{
    qs_taskstats *ts = qs_calloc(1, sizeof(*ts));
    ts->sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    int rcvbuf = 4 << 20;        /* a batch of replies, whatever rmem_max says */
    if (ts->sock >= 0)
        setsockopt(ts->sock, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
    /* This thread was put on a CPU at least once (its run time may still
     * read 0 before the first tick): a kernel that leaves the scheduler's
     * numbers out (older ones did, without delay accounting) will not do. */
    qs_sched_sample self;
    if (ts->sock < 0 || !(ts->family = resolve_family(ts->sock, ts->reply[0])) ||
        !qs_taskstats_read(ts, (long[]){ gettid() }, 1, &self) || !self.valid ||
        !self.slices) {
        qs_taskstats_close(ts);
        return NULL;
    }
    return ts;
}

void qs_taskstats_close(qs_taskstats *ts)
{
    if (!ts)
        return;
    if (ts->sock >= 0)
        close(ts->sock);
    free(ts);
}

bool qs_taskstats_parse(uint16_t family, const char *buf, size_t n, uint32_t seq, long tid,
                        qs_sched_sample *s)
{
    const struct nlmsghdr *h = (const void *)buf;
    s->valid = false;
    if (n < sizeof(*h) || h->nlmsg_seq != seq)
        return false;
    if (n >= NLMSG_LENGTH(sizeof(struct nlmsgerr)) && h->nlmsg_type == NLMSG_ERROR)
        return ((const struct nlmsgerr *)NLMSG_DATA(h))->error == -ESRCH;
    size_t len;
    const char *p = genl_payload(buf, n, family, &len);
    const struct nlattr *aggr = p ? find_attr(p, len, TASKSTATS_TYPE_AGGR_PID) : NULL;
    if (!aggr)
        return false;
    const char *in = (const char *)aggr + NLA_HDRLEN;
    const struct nlattr *pid = find_attr(in, aggr->nla_len - NLA_HDRLEN, TASKSTATS_TYPE_PID);
    const struct nlattr *st = find_attr(in, aggr->nla_len - NLA_HDRLEN, TASKSTATS_TYPE_STATS);
    uint32_t got_pid;
    if (!pid || !st || pid->nla_len < NLA_HDRLEN + 4 || st->nla_len < NLA_HDRLEN + NEED_BYTES)
        return false;
    memcpy(&got_pid, (const char *)pid + NLA_HDRLEN, 4);
    struct taskstats t;
    memcpy(&t, (const char *)st + NLA_HDRLEN, NEED_BYTES);
    *s = (qs_sched_sample){ .valid = true, .run_ns = t.cpu_run_virtual_total,
                            .wait_ns = t.cpu_delay_total, .slices = t.cpu_count,
                            .voluntary = t.nvcsw, .involuntary = t.nivcsw };
    return got_pid == (uint32_t)tid;
}

/* One batch: n <= BATCH requests in one send, the replies in one or more
 * recvmmsg. */
static bool read_batch(qs_taskstats *ts, const long *tids, size_t n, qs_sched_sample *out)
{
    size_t len = 0;
    uint32_t seq0 = ts->seq;
    for (size_t i = 0; i < n; i++) {
        uint32_t tid = (uint32_t)tids[i];
        len += put_request(ts->req + len, ts->family, TASKSTATS_CMD_GET,
                           TASKSTATS_CMD_ATTR_PID, &tid, sizeof(tid), ts->seq++);
    }
    if (send(ts->sock, ts->req, len, 0) != (ssize_t)len)
        return false;
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    for (size_t got = 0; got < n;) {
        for (size_t i = 0; i < n - got; i++) {
            iov[i] = (struct iovec){ ts->reply[i], REPLY_MAX };
            mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
        }
        int m = recvmmsg(ts->sock, mm, (unsigned)(n - got), MSG_DONTWAIT, NULL);
        if (m <= 0)
            return false;
        for (int i = 0; i < m; i++, got++)
            if (!qs_taskstats_parse(ts->family, ts->reply[i], mm[i].msg_len,
                                    seq0 + (uint32_t)got, tids[got], &out[got]))
                return false;
    }
    return true;
}

/* Whatever a failed batch left queued, so that the next starts clean. */
static void drain(qs_taskstats *ts)
{
    while (recv(ts->sock, ts->reply[0], REPLY_MAX, MSG_DONTWAIT) > 0 || errno == ENOBUFS)
        ;
}

bool qs_taskstats_read(qs_taskstats *ts, const long *tids, size_t n, qs_sched_sample *out)
{
    for (size_t i = 0; i < n; i += BATCH)
        if (!read_batch(ts, tids + i, n - i < BATCH ? n - i : BATCH, out + i)) {
            drain(ts);
            return false;
        }
    return true;
}
