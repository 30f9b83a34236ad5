/* SPDX-License-Identifier: MIT */
/* Duplicate suppression: every exchange is remembered until DEDUP_ENTRIES newer ones of its kind
 * (device or stranger). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "../../src/south_internal.h"

static int setup(void **state)
{
    (void)state;
    return south_dedup_init();
}

static int teardown(void **state)
{
    (void)state;
    south_dedup_free();
    return 0;
}

static void peer_of(char *buf, size_t len, unsigned k)
{
    snprintf(buf, len, "[2001:db8:ffff:ffff:ffff:ffff:%x:%x]:%u", k >> 8, k & 0xff,
             50000 + k % 1000);
}

/* 16,384 live exchanges from 600 peers: each is found with its own answer. A direct-mapped
 * table of the same size forgets thousands of them to collisions. */
static void test_no_live_exchange_is_forgotten(void **state)
{
    char peer[64];
    unsigned code, max_age;

    (void)state;
    for (unsigned i = 0; i < 16384; i++) {
        peer_of(peer, sizeof(peer), i % 600);
        south_dedup_store(peer, (uint16_t)(i / 600 * 7), 204 + i % 2, i, false);
    }
    for (unsigned i = 0; i < 16384; i++) {
        peer_of(peer, sizeof(peer), i % 600);
        assert_true(south_dedup_find(peer, (uint16_t)(i / 600 * 7), &code, &max_age));
        assert_int_equal(code, 204 + i % 2);
        assert_int_equal(max_age, i);
    }
    /* the same message ID from another peer, and another ID from the same peer: unknown */
    peer_of(peer, sizeof(peer), 601);
    assert_false(south_dedup_find(peer, 0, &code, &max_age));
    peer_of(peer, sizeof(peer), 0);
    assert_false(south_dedup_find(peer, 1, &code, &max_age));
}

/* The oldest exchange makes room for a new one; storing again updates in place. */
static void test_oldest_goes_first(void **state)
{
    char peer[64];
    unsigned code, max_age;

    (void)state;
    peer_of(peer, sizeof(peer), 1);
    south_dedup_store(peer, 1, 204, 0, false);
    south_dedup_store(peer, 1, 503, 30, false); /* same exchange: no second entry */
    for (unsigned i = 0; i < 16383; i++)
        south_dedup_store("[::1]:5683", (uint16_t)i, 204, 0, false);
    assert_true(south_dedup_find(peer, 1, &code, &max_age));
    assert_int_equal(code, 503);
    south_dedup_store("[::1]:5684", 1, 204, 0, false);
    assert_false(south_dedup_find(peer, 1, &code, &max_age));
    assert_true(south_dedup_find("[::1]:5683", 0, &code, &max_age));
}

/* Refusals to strangers live in their own ring: 20,000 of them within EXCHANGE_LIFETIME leave
 * every device exchange in place, and the newest 1,024 are still answered the same. */
static void test_strangers_never_push_devices_out(void **state)
{
    char peer[64];
    unsigned code, max_age;

    (void)state;
    for (unsigned i = 0; i < 16384; i++) {
        peer_of(peer, sizeof(peer), i % 600);
        south_dedup_store(peer, (uint16_t)(i / 600), 204, 0, false);
    }
    for (unsigned i = 0; i < 20000; i++)
        south_dedup_store("[2001:db8::bad]:40000", (uint16_t)i, 401, 0, true);
    for (unsigned i = 0; i < 16384; i++) {
        peer_of(peer, sizeof(peer), i % 600);
        assert_true(south_dedup_find(peer, (uint16_t)(i / 600), &code, &max_age));
        assert_int_equal(code, 204);
    }
    assert_true(south_dedup_find("[2001:db8::bad]:40000", 19999, &code, &max_age));
    assert_int_equal(code, 401);
    assert_true(south_dedup_find("[2001:db8::bad]:40000", 20000 - 1024, &code, &max_age));
    assert_false(south_dedup_find("[2001:db8::bad]:40000", 20000 - 1025, &code, &max_age));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_live_exchange_is_forgotten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oldest_goes_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strangers_never_push_devices_out, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
