/* SPDX-License-Identifier: MIT */
/* The message queue of observe routes: order, expiry, putting back, taking out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coap2mqtt/msgq.h"

static void push(struct msgq *q, const char *text, uint64_t expires)
{
    assert_int_equal(msgq_push(q, strdup(text), NULL, expires), 0);
}

static void expect_pop(struct msgq *q, const char *text)
{
    struct msgq_item *it = msgq_pop(q);

    assert_non_null(it);
    assert_string_equal(it->text, text);
    msgq_item_free(it);
}

static void test_fifo_and_put_back(void **state)
{
    struct msgq q = {0};
    struct msgq_item *it;

    (void)state;
    push(&q, "a", 10);
    push(&q, "b", 20);
    push(&q, "c", 30);
    assert_int_equal(q.n, 3);
    it = msgq_pop(&q);
    assert_string_equal(it->text, "a");
    msgq_push_front(&q, it); /* a failed delivery goes first again */
    expect_pop(&q, "a");
    expect_pop(&q, "b");
    push(&q, "d", 40);
    expect_pop(&q, "c");
    expect_pop(&q, "d");
    assert_null(msgq_pop(&q));
    assert_int_equal(q.n, 0);
    push(&q, "e", 50); /* the tail was reset: appending still works */
    expect_pop(&q, "e");
}

static void test_expiry_from_the_head(void **state)
{
    struct msgq q = {0};
    struct msgq_item *it;

    (void)state;
    push(&q, "a", 10);
    push(&q, "b", 20);
    assert_null(msgq_pop_expired(&q, 9));
    it = msgq_pop_expired(&q, 10);
    assert_string_equal(it->text, "a");
    msgq_item_free(it);
    assert_null(msgq_pop_expired(&q, 19));
    msgq_clear(&q);
    assert_int_equal(q.n, 0);
    assert_null(q.head);
    assert_null(q.tail);
}

static void test_remove_any(void **state)
{
    struct msgq q = {0};
    struct msgq_item other = {0};

    (void)state;
    push(&q, "a", 1);
    push(&q, "b", 2);
    push(&q, "c", 3);
    msgq_item_free(msgq_remove(&q, q.tail)); /* the tail moves back */
    assert_string_equal(q.tail->text, "b");
    push(&q, "d", 4);
    msgq_item_free(msgq_remove(&q, q.head->next));
    assert_null(msgq_remove(&q, &other));
    expect_pop(&q, "a");
    expect_pop(&q, "d");
    assert_int_equal(q.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_put_back),
        cmocka_unit_test(test_expiry_from_the_head),
        cmocka_unit_test(test_remove_any),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
