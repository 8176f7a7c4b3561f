/*
 * test_sched_taskstats.c - the taskstats reply parser (providers/sched/
 * taskstats.c) on crafted replies: a well-formed one maps each field of
 * struct taskstats to its stat, "no such thread" is a reply that says so,
 * and anything else (another request's reply, another thread's, a short
 * or truncated message, an attribute that claims more bytes than it has,
 * another error) fails the whole read rather than yield numbers.  Every
 * truncation of a good reply is tried: run under ASan, no prefix may be
 * read past.  The live exchange with the kernel is pinned by
 * tests/integration/test_sched.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>

#include "providers/sched/internal.h"

#define FAMILY 31
#define SEQ 7u
#define TID 4242

typedef struct reply {
    char buf[1024];
    size_t len;
} reply;

static void put_attr(reply *r, uint16_t type, const void *val, size_t len)
{
    struct nlattr a = { .nla_type = type, .nla_len = (uint16_t)(NLA_HDRLEN + len) };
    memcpy(r->buf + r->len, &a, sizeof(a));
    memcpy(r->buf + r->len + NLA_HDRLEN, val, len);
    r->len += NLA_ALIGN(a.nla_len);
}

/* nlmsghdr | genlmsghdr | AGGR_PID { PID = pid, STATS = *t } */
static reply good(uint32_t pid, const struct taskstats *t, size_t stats_len)
{
    reply r = { .len = NLMSG_LENGTH(GENL_HDRLEN) };
    size_t aggr = r.len;
    r.len += NLA_HDRLEN;
    put_attr(&r, TASKSTATS_TYPE_PID, &pid, sizeof(pid));
    put_attr(&r, TASKSTATS_TYPE_STATS, t, stats_len);
    struct nlattr a = { .nla_type = TASKSTATS_TYPE_AGGR_PID | NLA_F_NESTED,
                        .nla_len = (uint16_t)(r.len - aggr) };
    memcpy(r.buf + aggr, &a, sizeof(a));
    struct nlmsghdr h = { .nlmsg_len = (uint32_t)r.len, .nlmsg_type = FAMILY,
                          .nlmsg_seq = SEQ };
    memcpy(r.buf, &h, sizeof(h));
    return r;
}

static struct taskstats sample_stats(void)
{
    struct taskstats t = { .version = TASKSTATS_VERSION };
    t.cpu_run_virtual_total = 123456789;
    t.cpu_run_real_total = 999;              /* not run_ns: utime + stime */
    t.cpu_delay_total = 5555;
    t.cpu_count = 77;
    t.nvcsw = 40;
    t.nivcsw = 36;
    return t;
}

static reply error_reply(int error)
{
    reply r = { .len = NLMSG_LENGTH(sizeof(struct nlmsgerr)) };
    struct nlmsghdr h = { .nlmsg_len = (uint32_t)r.len, .nlmsg_type = NLMSG_ERROR,
                          .nlmsg_seq = SEQ };
    struct nlmsgerr e = { .error = error };
    memcpy(r.buf, &h, sizeof(h));
    memcpy(r.buf + NLMSG_HDRLEN, &e, sizeof(e));
    return r;
}

static bool parse(const reply *r, size_t n, qs_sched_sample *s)
{
    return qs_taskstats_parse(FAMILY, r->buf, n, SEQ, TID, s);
}

static void test_a_reply_maps_each_taskstats_field_to_its_stat(void **state)
{
    struct taskstats t = sample_stats();
    reply r = good(TID, &t, sizeof(t));
    qs_sched_sample s;
    assert_true(parse(&r, r.len, &s));
    assert_true(s.valid);
    assert_int_equal(s.run_ns, 123456789);   /* se.sum_exec_runtime, as schedstat */
    assert_int_equal(s.wait_ns, 5555);
    assert_int_equal(s.slices, 77);
    assert_int_equal(s.voluntary, 40);
    assert_int_equal(s.involuntary, 36);
}

static void test_a_shorter_struct_of_an_older_kernel_is_enough_up_to_nivcsw(void **state)
{
    struct taskstats t = sample_stats();
    size_t need = offsetof(struct taskstats, nivcsw) + sizeof(t.nivcsw);
    reply r = good(TID, &t, need);
    qs_sched_sample s;
    assert_true(parse(&r, r.len, &s));
    assert_int_equal(s.involuntary, 36);
    r = good(TID, &t, need - 1);
    assert_false(parse(&r, r.len, &s));
    assert_false(s.valid);
}

static void test_no_such_thread_is_a_reply_and_other_errors_fail(void **state)
{
    qs_sched_sample s = { .valid = true };
    reply r = error_reply(-ESRCH);
    assert_true(parse(&r, r.len, &s));
    assert_false(s.valid);
    r = error_reply(-EPERM);
    assert_false(parse(&r, r.len, &s));
    r = error_reply(0);                      /* an ack nobody asked for */
    assert_false(parse(&r, r.len, &s));
}

static void test_another_requests_or_threads_reply_is_refused(void **state)
{
    struct taskstats t = sample_stats();
    reply r = good(TID, &t, sizeof(t));
    qs_sched_sample s;
    assert_false(qs_taskstats_parse(FAMILY, r.buf, r.len, SEQ + 1, TID, &s));
    assert_false(qs_taskstats_parse(FAMILY + 1, r.buf, r.len, SEQ, TID, &s));
    r = good(TID + 1, &t, sizeof(t));
    assert_false(parse(&r, r.len, &s));
}

static void test_every_truncation_of_a_reply_is_refused_without_reading_past_it(void **state)
{
    struct taskstats t = sample_stats();
    reply full = good(TID, &t, sizeof(t));
    for (size_t n = 0; n < full.len; n++) {
        char *exact = malloc(n ? n : 1);     /* ASan bounds: exactly n bytes */
        memcpy(exact, full.buf, n);
        qs_sched_sample s;
        assert_false(qs_taskstats_parse(FAMILY, exact, n, SEQ, TID, &s));
        assert_false(s.valid);
        free(exact);
    }
}

static void test_attributes_that_claim_more_than_the_message_are_refused(void **state)
{
    struct taskstats t = sample_stats();
    reply r = good(TID, &t, sizeof(t));
    qs_sched_sample s;
    struct nlattr *aggr = (void *)(r.buf + NLMSG_LENGTH(GENL_HDRLEN));
    aggr->nla_len = (uint16_t)(aggr->nla_len + 64);
    assert_false(parse(&r, r.len, &s));

    r = good(TID, &t, sizeof(t));
    struct nlattr *pid = (void *)(r.buf + NLMSG_LENGTH(GENL_HDRLEN) + NLA_HDRLEN);
    pid->nla_len = 2;                        /* shorter than its own header */
    assert_false(parse(&r, r.len, &s));

    r = good(TID, &t, sizeof(t));
    struct nlmsghdr *h = (void *)r.buf;
    h->nlmsg_len = (uint32_t)r.len + 1;      /* longer than what arrived */
    assert_false(parse(&r, r.len, &s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_reply_maps_each_taskstats_field_to_its_stat),
        cmocka_unit_test(test_a_shorter_struct_of_an_older_kernel_is_enough_up_to_nivcsw),
        cmocka_unit_test(test_no_such_thread_is_a_reply_and_other_errors_fail),
        cmocka_unit_test(test_another_requests_or_threads_reply_is_refused),
        cmocka_unit_test(test_every_truncation_of_a_reply_is_refused_without_reading_past_it),
        cmocka_unit_test(test_attributes_that_claim_more_than_the_message_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
