/* SPDX-License-Identifier: MIT */
/* Unit tests: MQTT topic filter matching of arriving messages (north_topic_matches). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "coap2mqtt/north.h"

static void test_plain_filters(void **state)
{
    (void)state;
    assert_true(north_topic_matches("v1/gateway/rpc", "v1/gateway/rpc"));
    assert_false(north_topic_matches("v1/gateway/rpc", "v1/gateway/rpc/x"));
    assert_true(north_topic_matches("cmd/+/valve", "cmd/Valve 1/valve"));
    assert_false(north_topic_matches("cmd/+/valve", "cmd/a/b/valve"));
    assert_true(north_topic_matches("a/#", "a"));
    assert_true(north_topic_matches("a/#", "a/b/c"));
    /* MQTT 4.7.2: '$' topics are not matched by a leading wildcard */
    assert_false(north_topic_matches("+/x", "$SYS/x"));
    assert_false(north_topic_matches("#", "$SYS/x"));
}

/* The broker delivers a shared subscription's messages with their own topics. */
static void test_shared_filters(void **state)
{
    (void)state;
    assert_true(north_topic_matches("$share/gw/v1/gateway/attributes", "v1/gateway/attributes"));
    assert_true(north_topic_matches("$share/gw/cmd/+/valve/+", "cmd/Valve 1/valve/17"));
    assert_true(north_topic_matches("$share/gw/a/#", "a/b"));
    assert_false(
        north_topic_matches("$share/gw/v1/gateway/attributes", "$share/gw/v1/gateway/attributes"));
    assert_false(north_topic_matches("$share/gw/v1/gateway/rpc", "v1/gateway/attributes"));
    assert_false(north_topic_matches("$share/gw/+/x", "$SYS/x"));
    /* malformed: never subscribed (refused by -t), and matches nothing */
    assert_false(north_topic_matches("$share/gw", "gw"));
    assert_false(north_topic_matches("$share//x", "x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_filters),
        cmocka_unit_test(test_shared_filters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
