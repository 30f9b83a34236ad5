/* SPDX-License-Identifier: MIT */
/* Unit tests: URI path templates and topic/payload string templates. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"
#include "coap2mqtt/tmpl.h"

static void test_path_match_captures(void **state)
{
    struct tmpl_path *p = NULL;
    struct tmpl_slice segs[8];
    struct tmpl_vars vars = {0};
    char err[128];
    size_t n;

    (void)state;
    assert_int_equal(tmpl_path_parse("/api/v1/{token}/telemetry", &p, err, sizeof(err)), 0);
    assert_int_equal(tmpl_path_literals(p), 3);
    assert_int_equal(tmpl_path_segments(p), 4);
    assert_true(tmpl_path_has_var(p, "token"));
    assert_false(tmpl_path_has_var(p, "tok"));
    n = test_split_path("/api/v1/A1_TEST_TOKEN/telemetry", segs);
    assert_true(tmpl_path_match(p, segs, n, &vars));
    assert_int_equal(vars.n, 1);
    assert_string_equal(vars.name[0], "token");
    assert_int_equal(vars.value[0].len, strlen("A1_TEST_TOKEN"));
    assert_memory_equal(vars.value[0].s, "A1_TEST_TOKEN", vars.value[0].len);
    tmpl_path_free(p);
}

static void test_path_no_match_restores_vars(void **state)
{
    struct tmpl_path *p = NULL;
    struct tmpl_slice segs[8];
    struct tmpl_vars vars = {0};
    char err[128];

    (void)state;
    assert_int_equal(tmpl_path_parse("/a/{x}/c", &p, err, sizeof(err)), 0);
    assert_false(tmpl_path_match(p, segs, test_split_path("/a/b/d", segs), &vars));
    assert_int_equal(vars.n, 0);
    assert_false(tmpl_path_match(p, segs, test_split_path("/a/b", segs), &vars));
    assert_false(tmpl_path_match(p, segs, test_split_path("/a/b/c/d", segs), &vars));
    assert_true(tmpl_path_match(p, segs, test_split_path("/a/b/c", segs), &vars));
    tmpl_path_free(p);
}

static void test_path_parse_errors(void **state)
{
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"api/v1", "path must start with '/'"},
        {"/a//b", "empty path segment"},
        {"/a/{x", "bad variable segment '{x'; expected {name} with letters, digits, _"},
        {"/a/{x-y}", "bad variable segment '{x-y}'; expected {name} with letters, digits, _"},
        {"/a/{x}/{x}", "variable 'x' appears twice"},
        {"/a/pre{x}", "a variable must be a whole segment, got 'pre{x}'"},
        {"/a/", "trailing '/'"},
    };
    char err[128];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tmpl_path *p = NULL;
        assert_int_equal(tmpl_path_parse(cases[i].text, &p, err, sizeof(err)), -EINVAL);
        assert_null(p);
        assert_string_equal(err, cases[i].msg);
    }
}

static bool lookup(void *ctx, const char *name, struct tmpl_slice *v)
{
    const char *const *kv = ctx;

    for (; kv[0]; kv += 2) {
        if (strcmp(kv[0], name) == 0) {
            v->s = kv[1];
            v->len = strlen(kv[1]);
            return true;
        }
    }
    return false;
}

static void test_str_expand_topic(void **state)
{
    const char *vars[] = {"gateway", "gw1", "device", "Device A", "ch", "temp", NULL};
    struct tmpl_str *t = NULL;
    struct buf out = BUF_INIT;
    char err[128];

    (void)state;
    assert_int_equal(tmpl_str_parse("site/{gateway}/{device}/{ch}/{raw-x}", &t, err, sizeof(err)),
                     0);
    assert_int_equal(tmpl_str_expand(t, lookup, vars, TMPL_TOPIC, &out, NULL), 0);
    assert_string_equal((char *)out.data, "site/gw1/Device A/temp/{raw-x}");
    buf_free(&out);
    tmpl_str_free(t);
}

static void test_str_expand_refuses_injection(void **state)
{
    static const char *const bad_values[] = {"a+b", "#", "a/b", ""};
    struct tmpl_str *t = NULL;
    char err[128];

    (void)state;
    assert_int_equal(tmpl_str_parse("raw/{ch}", &t, err, sizeof(err)), 0);
    for (size_t i = 0; i < 4; i++) {
        const char *vars[] = {"ch", bad_values[i], NULL};
        struct buf out = BUF_INIT;
        const char *bad = NULL;
        assert_int_equal(tmpl_str_expand(t, lookup, (void *)vars, TMPL_TOPIC, &out, &bad), -EINVAL);
        assert_string_equal(bad, "ch");
        buf_free(&out);
    }
    /* Without TMPL_TOPIC the same value is fine (payload templates). */
    {
        const char *vars[] = {"ch", "a/b", NULL};
        struct buf out = BUF_INIT;
        assert_int_equal(tmpl_str_expand(t, lookup, (void *)vars, 0, &out, NULL), 0);
        assert_string_equal((char *)out.data, "raw/a/b");
        buf_free(&out);
    }
    tmpl_str_free(t);
}

static void test_str_expand_json_escapes(void **state)
{
    const char *vars[] = {"device", "A \"q\"\\\n", "type", "t", NULL};
    struct tmpl_str *t = NULL;
    struct buf out = BUF_INIT;
    char err[128];

    (void)state;
    /* JSON braces around placeholders stay literal. */
    assert_int_equal(
        tmpl_str_parse("{\"device\":\"{device}\",\"type\":\"{type}\"}", &t, err, sizeof(err)), 0);
    assert_int_equal(tmpl_str_expand(t, lookup, vars, TMPL_JSON, &out, NULL), 0);
    assert_string_equal((char *)out.data, "{\"device\":\"A \\\"q\\\"\\\\\\n\",\"type\":\"t\"}");
    buf_free(&out);
    tmpl_str_free(t);
}

static void test_str_unknown_var(void **state)
{
    const char *vars[] = {NULL};
    struct tmpl_str *t = NULL;
    struct buf out = BUF_INIT;
    const char *bad = NULL;
    char err[128];

    (void)state;
    assert_int_equal(tmpl_str_parse("x/{nope}", &t, err, sizeof(err)), 0);
    assert_int_equal(tmpl_str_expand(t, lookup, vars, 0, &out, &bad), -EINVAL);
    assert_string_equal(bad, "nope");
    buf_free(&out);
    tmpl_str_free(t);
    assert_int_equal(tmpl_str_parse("x/}{", &t, err, sizeof(err)), 0);
    assert_int_equal(tmpl_str_expand(t, lookup, vars, 0, &out, &bad), 0);
    assert_string_equal((char *)out.data, "x/}{");
    buf_free(&out);
    tmpl_str_free(t);
}

/* Subscriptions for reply and command topics: variable levels become '+'. */
static void test_topic_filter(void **state)
{
    char *f;

    (void)state;
    f = tmpl_topic_filter("coap2mqtt/{gateway}/rpc/response/{request_id}", "gw1");
    assert_string_equal(f, "coap2mqtt/gw1/rpc/response/+");
    free(f);
    f = tmpl_topic_filter("cmd/{device}/x-{id}/plain", "gw1");
    assert_string_equal(f, "cmd/+/+/plain");
    free(f);
    f = tmpl_topic_filter("{gateway}", "gw1");
    assert_string_equal(f, "gw1");
    free(f);
}

/* "$share/GROUP/FILTER": topics are matched against FILTER; malformed ones are refused. */
static void test_shared_filter(void **state)
{
    static const char *const bad[] = {"$share",     "$share/",           "$share/g",
                                      "$share//x",  "$share/g/",         "$share/g+/x",
                                      "$share/#/x", "$share/{gateway}/x"};
    char err[128];
    char *f;

    (void)state;
    assert_string_equal(tmpl_match_filter("$share/gw/v1/gateway/attributes"),
                        "v1/gateway/attributes");
    assert_string_equal(tmpl_match_filter("$share/g/cmd/{device}/{id}"), "cmd/{device}/{id}");
    assert_string_equal(tmpl_match_filter("$share/g/+"), "+");
    assert_string_equal(tmpl_match_filter("v1/gateway/rpc"), "v1/gateway/rpc");
    assert_string_equal(tmpl_match_filter("$sharex/a"), "$sharex/a"); /* not a share level */
    assert_string_equal(tmpl_match_filter("a/$share/g/b"), "a/$share/g/b");
    assert_true(tmpl_filter_shared("$share/g/a"));
    assert_false(tmpl_filter_shared("$sharex/a"));
    assert_false(tmpl_filter_shared("v1/$share/g"));
    assert_int_equal(tmpl_filter_check("$share/g/a/+/b", err, sizeof(err)), 0);
    assert_int_equal(tmpl_filter_check("plain/{device}", err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(tmpl_filter_check(bad[i], err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "$share/GROUP/FILTER"));
        assert_null(tmpl_match_filter(bad[i])); /* matches nothing */
    }
    assert_int_equal(tmpl_filter_check("$share/g", NULL, 0), -EINVAL);
    /* the subscription keeps its prefix; variable levels after it become '+' */
    f = tmpl_topic_filter("$share/workers/cmd/{gateway}/{device}", "gw1");
    assert_string_equal(f, "$share/workers/cmd/gw1/+");
    assert_string_equal(tmpl_match_filter(f), "cmd/gw1/+");
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_match_captures),
        cmocka_unit_test(test_path_no_match_restores_vars),
        cmocka_unit_test(test_path_parse_errors),
        cmocka_unit_test(test_str_expand_topic),
        cmocka_unit_test(test_str_expand_refuses_injection),
        cmocka_unit_test(test_str_expand_json_escapes),
        cmocka_unit_test(test_str_unknown_var),
        cmocka_unit_test(test_topic_filter),
        cmocka_unit_test(test_shared_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
