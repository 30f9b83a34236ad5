/* SPDX-License-Identifier: MIT */
/* Block1 reassembly: in order, bounded, and harmless whatever the blocks say. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "coap2mqtt/loop.h"
#include "../../src/south_internal.h"

static const struct south_upload_limits LIMITS = {
    .max_body = 4096,
    .max_uploads = 8,
    .max_per_peer = 2,
    .max_total_bytes = 16384,
    .idle_ms = 50,
};
static uint8_t data[4096];
static int peer_a, peer_b; /* their addresses stand for sessions */

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 3);
    if (loop_init() < 0)
        return -1;
    south_upload_init(&LIMITS);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    south_upload_free();
    loop_done();
    return 0;
}

/* Block num of 2^(szx+4) bytes (len bytes of it when it is the last) of the upload "key". */
static int block(const void *session, const char *key, unsigned num, unsigned szx, int more,
                 size_t len, size_t declared, struct south_upload_step *st)
{
    struct south_upload_block b = {
        .session = session,
        .key = (const uint8_t *)key,
        .key_len = strlen(key),
        .num = num,
        .szx = szx,
        .more = more,
        .declared = declared,
        .content_format = 50,
        .data = data + num * ((size_t)16 << szx),
        .len = len,
    };
    return south_upload_block(&b, st);
}

static void test_in_order_blocks_make_the_whole_body(void **state)
{
    struct south_upload_step st;

    (void)state;
    assert_int_equal(block(&peer_a, "/t", 0, 2, 1, 64, 150, &st), SOUTH_UPLOAD_MORE);
    assert_int_equal(block(&peer_a, "/t", 1, 2, 1, 64, 150, &st), SOUTH_UPLOAD_MORE);
    /* block 1 again (its 2.31 was lost, a new message ID): taken once */
    assert_int_equal(block(&peer_a, "/t", 1, 2, 1, 64, 150, &st), SOUTH_UPLOAD_MORE);
    assert_int_equal(block(&peer_a, "/t", 2, 2, 0, 22, 150, &st), SOUTH_UPLOAD_DONE);
    assert_int_equal(st.len, 150);
    assert_memory_equal(st.body, data, 150);
    assert_non_null(st.upload);
    south_upload_done(st.upload);
    assert_int_equal(south_upload_count(), 0);
    assert_int_equal(south_upload_bytes(), 0);
}

/* The two datagrams that crashed libcoap 4.3.1's reassembly: empty blocks, a final block
 * past what was declared. Here: refused, nothing kept. */
static void test_empty_and_inconsistent_blocks_are_refused(void **state)
{
    struct south_upload_step st;

    (void)state;
    assert_int_equal(block(&peer_a, "/t", 0, 6, 1, 0, 2000, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(st.code, 400);
    assert_int_equal(block(&peer_a, "/t", 1, 6, 0, 0, 2000, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(st.code, 408);
    assert_int_equal(block(&peer_a, "/x", 3, 6, 0, 0, 1u << 31, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(st.code, 413);
    assert_int_equal(st.max_body, 4096);
    assert_int_equal(south_upload_count(), 0);
    /* a last block larger than the block size, a reserved size */
    assert_int_equal(block(&peer_a, "/t", 0, 0, 0, 17, 0, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(st.code, 400);
    assert_int_equal(block(&peer_a, "/t", 0, 7, 1, 0, 0, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(st.code, 400);
    /* one block that is the whole body: nothing kept either */
    assert_int_equal(block(&peer_a, "/t", 0, 6, 0, 0, 0, &st), SOUTH_UPLOAD_DONE);
    assert_int_equal(st.len, 0);
    assert_null(st.upload);
    assert_int_equal(south_upload_count(), 0);
}

static void test_a_missing_block_ends_the_upload(void **state)
{
    struct south_upload_step st;

    (void)state;
    assert_int_equal(block(&peer_a, "/t", 0, 0, 1, 16, 0, &st), SOUTH_UPLOAD_MORE);
    assert_int_equal(block(&peer_a, "/t", 2, 0, 0, 5, 0, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(st.code, 408);
    assert_int_equal(south_upload_count(), 0);
    /* so does a change of Content-Format */
    assert_int_equal(block(&peer_a, "/t", 0, 0, 1, 16, 0, &st), SOUTH_UPLOAD_MORE);
    struct south_upload_block b = {.session = &peer_a,
                                   .key = (const uint8_t *)"/t",
                                   .key_len = 2,
                                   .num = 1,
                                   .szx = 0,
                                   .more = 0,
                                   .content_format = 60,
                                   .data = data,
                                   .len = 3};
    assert_int_equal(south_upload_block(&b, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(st.code, 408);
    assert_int_equal(south_upload_count(), 0);
}

static void test_uploads_are_keyed_by_session_and_target(void **state)
{
    struct south_upload_step st;

    (void)state;
    assert_int_equal(block(&peer_a, "/a", 0, 0, 1, 16, 0, &st), SOUTH_UPLOAD_MORE);
    assert_int_equal(block(&peer_b, "/a", 0, 0, 1, 16, 0, &st), SOUTH_UPLOAD_MORE);
    assert_int_equal(block(&peer_a, "/b", 1, 0, 0, 4, 0, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(block(&peer_b, "/a", 1, 0, 0, 4, 0, &st), SOUTH_UPLOAD_DONE);
    assert_int_equal(st.len, 20);
    south_upload_done(st.upload);
    assert_int_equal(south_upload_count(), 1);
    south_upload_session_gone(&peer_a);
    assert_int_equal(south_upload_count(), 0);
    assert_int_equal(south_upload_bytes(), 0);
}

static void test_bounds_per_peer_in_all_and_in_bytes(void **state)
{
    struct south_upload_step st;
    int peers[8];

    (void)state;
    assert_int_equal(block(&peer_a, "/1", 0, 0, 1, 16, 0, &st), SOUTH_UPLOAD_MORE);
    assert_int_equal(block(&peer_a, "/2", 0, 0, 1, 16, 0, &st), SOUTH_UPLOAD_MORE);
    assert_int_equal(block(&peer_a, "/3", 0, 0, 1, 16, 0, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(st.code, 503);
    assert_true(st.max_age > 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(block(&peers[i], "/1", 0, 0, 1, 16, 0, &st), SOUTH_UPLOAD_MORE);
    assert_int_equal(block(&peers[6], "/1", 0, 0, 1, 16, 0, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(st.code, 503);
    south_upload_free();
    south_upload_init(&LIMITS);
    /* 16 KiB in all: four bodies of 4 KiB fill it, a fifth block finds no room */
    for (int i = 0; i < 4; i++)
        for (unsigned n = 0; n < 4; n++)
            assert_int_equal(block(&peers[i], "/big", n, 6, 1, 1024, 0, &st), SOUTH_UPLOAD_MORE);
    assert_int_equal(south_upload_bytes(), 16384);
    assert_int_equal(block(&peers[4], "/big", 0, 6, 1, 1024, 0, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(st.code, 503);
    /* and one body over max_body is 4.13 */
    assert_int_equal(block(&peers[0], "/big", 4, 6, 0, 1, 0, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(st.code, 413);
}

static void test_an_idle_upload_is_dropped(void **state)
{
    struct south_upload_step st;
    struct timespec pause = {0, 60 * 1000000L}; /* past LIMITS.idle_ms */

    (void)state;
    assert_int_equal(block(&peer_a, "/1", 0, 0, 1, 16, 0, &st), SOUTH_UPLOAD_MORE);
    assert_int_equal(block(&peer_a, "/2", 0, 0, 1, 16, 0, &st), SOUTH_UPLOAD_MORE);
    nanosleep(&pause, NULL);
    /* the peer's slots are free again */
    assert_int_equal(block(&peer_a, "/3", 0, 0, 1, 16, 0, &st), SOUTH_UPLOAD_MORE);
    assert_int_equal(south_upload_count(), 1);
    assert_int_equal(block(&peer_a, "/1", 1, 0, 0, 1, 0, &st), SOUTH_UPLOAD_ERROR);
    assert_int_equal(st.code, 408);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_in_order_blocks_make_the_whole_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_inconsistent_blocks_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_block_ends_the_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uploads_are_keyed_by_session_and_target, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bounds_per_peer_in_all_and_in_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_idle_upload_is_dropped, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
