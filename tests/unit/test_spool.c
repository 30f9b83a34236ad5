/* SPDX-License-Identifier: MIT */
/* Unit tests: the spool's order, bounds, replay after a crash, and corrupt logs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "coap2mqtt/spool.h"

static char dir[] = "/tmp/c2m-test-spool-XXXXXX";
static char path[128];

static uint64_t put(const char *payload)
{
    uint64_t seq = 0;

    assert_int_equal(spool_put("t/x", payload, strlen(payload), 1, false, NULL, &seq), 0);
    return seq;
}

static char *slurp(size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *d;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    d = malloc(*len + 1);
    assert_int_equal(fread(d, 1, *len, f), *len);
    fclose(f);
    return d;
}

static void spit(const char *d, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, len, f), len);
    fclose(f);
}

/* Payloads in spool order. */
static void expect_payloads(const char *const *want, size_t n)
{
    struct spool_msg *m;
    size_t i = 0;

    assert_int_equal(spool_depth(), n);
    while ((m = spool_next_queued()) != NULL) {
        assert_true(i < n);
        assert_int_equal(m->len, strlen(want[i]));
        assert_memory_equal(m->payload, want[i], m->len);
        spool_mark_inflight(m);
        i++;
    }
    assert_int_equal(i, n);
    spool_requeue_all();
}

static void test_fifo_ack_and_requeue(void **state)
{
    struct spool_limits lim = {.max_messages = 10, .max_bytes = 4096};
    const char *const rest[] = {"b", "c"};
    struct spool_msg *m;
    bool found;
    uint64_t a;

    (void)state;
    assert_int_equal(spool_open(&lim), 0);
    a = put("a");
    put("b");
    put("c");
    m = spool_next_queued();
    spool_mark_inflight(m);
    assert_int_equal(m->seq, a);
    assert_memory_equal(spool_next_queued()->payload, "b", 1);
    spool_requeue(a); /* the client gave up on it: first again */
    assert_int_equal(spool_next_queued()->seq, a);
    spool_ack(a, &found);
    assert_true(found);
    spool_ack(a, &found);
    assert_false(found);
    expect_payloads(rest, 2);
    spool_close(NULL);
}

/* A link loss that keeps the MQTT session: only QoS 0 goes back to the queue, in order. */
static void test_requeue_qos0_only(void **state)
{
    struct spool_limits lim = {.max_messages = 10, .max_bytes = 4096};
    uint64_t seq[3];
    struct spool_msg *m;

    (void)state;
    assert_int_equal(spool_open(&lim), 0);
    assert_int_equal(spool_put("t/x", "a", 1, 1, false, NULL, &seq[0]), 0);
    assert_int_equal(spool_put("t/x", "b", 1, 0, false, NULL, &seq[1]), 0);
    assert_int_equal(spool_put("t/x", "c", 1, 2, false, NULL, &seq[2]), 0);
    while ((m = spool_next_queued()) != NULL)
        spool_mark_inflight(m);
    assert_int_equal(spool_inflight(), 3);
    assert_int_equal(spool_requeue_qos0(), 1);
    assert_int_equal(spool_inflight(), 2);
    m = spool_next_queued();
    assert_non_null(m);
    assert_int_equal(m->seq, seq[1]);
    spool_mark_inflight(m);
    assert_null(spool_next_queued());
    assert_int_equal(spool_requeue_qos0(), 1);
    spool_close(NULL);
}

static void test_bounds_refuse_without_taking(void **state)
{
    struct spool_limits lim = {.max_messages = 2, .max_bytes = 1024};
    char big[1100];
    uint64_t seq;

    (void)state;
    assert_int_equal(spool_open(&lim), 0);
    put("1");
    put("2");
    assert_int_equal(spool_put("t", "3", 1, 1, false, NULL, &seq), -ENOBUFS);
    assert_int_equal(spool_depth(), 2);
    spool_close(NULL);
    assert_int_equal(spool_open(&(struct spool_limits){.max_messages = 10, .max_bytes = 1024}), 0);
    memset(big, 'x', sizeof(big));
    assert_int_equal(spool_put("t", big, sizeof(big), 1, false, NULL, &seq), -ENOBUFS);
    assert_int_equal(spool_depth(), 0);
    spool_close(NULL);
}

static void test_replay_after_crash(void **state)
{
    struct spool_limits lim = {.max_messages = 10, .max_bytes = 4096, .dir = dir};
    const char *const left[] = {"two", "three"};
    char *log;
    size_t len;
    bool found;
    uint64_t one;

    (void)state;
    assert_int_equal(spool_open(&lim), 0);
    one = put("one");
    put("two");
    put("three");
    spool_ack(one, &found);
    /* What a crash leaves is the log as written so far: keep it, close, restore it. */
    log = slurp(&len);
    spool_close(NULL);
    spit(log, len);
    free(log);
    assert_int_equal(spool_open(&lim), 0);
    expect_payloads(left, 2);
    /* new readings continue after the replayed ones, with fresh sequence numbers */
    assert_true(put("four") > one + 2);
    spool_close(NULL);
}

static void test_corrupt_and_truncated_records_are_skipped(void **state)
{
    struct spool_limits lim = {.max_messages = 10, .max_bytes = 4096, .dir = dir};
    const char *const survivors[] = {"first", "third"};
    char *log, *p;
    size_t len;

    (void)state;
    unlink(path);
    assert_int_equal(spool_open(&lim), 0);
    put("first");
    put("SECOND");
    put("third");
    put("fourth");
    log = slurp(&len);
    spool_close(NULL);
    p = memmem(log, len, "SECOND", 6);
    assert_non_null(p);
    p[2] = 'X';         /* the second record's CRC no longer matches */
    spit(log, len - 3); /* and the fourth is cut short */
    free(log);
    assert_int_equal(spool_open(&lim), 0);
    expect_payloads(survivors, 2);
    spool_close(NULL);
    /* a file of garbage: nothing recovered, no crash */
    spit("\x43\x32\x4d\x53\xff\xff\xff\xff garbage", 17);
    assert_int_equal(spool_open(&lim), 0);
    assert_int_equal(spool_depth(), 0);
    spool_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_ack_and_requeue),
        cmocka_unit_test(test_requeue_qos0_only),
        cmocka_unit_test(test_bounds_refuse_without_taking),
        cmocka_unit_test(test_replay_after_crash),
        cmocka_unit_test(test_corrupt_and_truncated_records_are_skipped),
    };
    int rc;

    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/spool.log", dir);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(path);
    rmdir(dir);
    return rc;
}
