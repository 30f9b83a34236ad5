/* SPDX-License-Identifier: MIT */
/* Unit tests: route table ordering, method and query matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"
#include "coap2mqtt/route.h"

/* -Wwrite-strings makes literals const; the conf structs hold mutable strings. */
#define S(x) ((char *)(x))

static struct conf_query q_fmt[] = {{S("format"), S("csv")}, {S("unit"), S("{unit}")}};

static struct conf_route routes[] = {
    {.name = S("by-token"),
     .methods = CONF_METHOD_POST,
     .path = S("/api/v1/{token}/telemetry"),
     .topic = S("t/{token}")},
    {.name = S("dtls"),
     .methods = CONF_METHOD_POST | CONF_METHOD_PUT,
     .path = S("/api/v1/telemetry/now"),
     .topic = S("t/dtls")},
    {.name = S("query"),
     .methods = CONF_METHOD_PUT,
     .path = S("/q/{id}"),
     .query = q_fmt,
     .n_query = 2,
     .topic = S("q/{id}/{unit}")},
};

static struct conf conf = {.routes = routes, .n_routes = 3};

static int match(struct route_table *t, unsigned method, const char *path, const char *const *query,
                 const struct route **r, struct tmpl_vars *vars)
{
    struct tmpl_slice segs[16], q[8];
    size_t nq = 0;

    for (; query && query[nq]; nq++) {
        q[nq].s = query[nq];
        q[nq].len = strlen(query[nq]);
    }
    memset(vars, 0, sizeof(*vars));
    return route_match(t, method, segs, test_split_path(path, segs), q, nq, r, vars);
}

static void test_specific_route_wins(void **state)
{
    struct route_table *t = NULL;
    const struct route *r = NULL;
    struct tmpl_vars vars;
    char err[128];

    (void)state;
    assert_int_equal(route_table_build(&conf, &t, err, sizeof(err)), 0);
    /* "/api/v1/telemetry/now" is not a token route although "{token}" would match "telemetry". */
    assert_int_equal(match(t, 2, "/api/v1/telemetry/now", NULL, &r, &vars), ROUTE_MATCH);
    assert_string_equal(r->conf->name, "dtls");
    assert_int_equal(match(t, 2, "/api/v1/ABC/telemetry", NULL, &r, &vars), ROUTE_MATCH);
    assert_string_equal(r->conf->name, "by-token");
    assert_int_equal(vars.n, 1);
    route_table_free(t);
}

static void test_method_and_missing_path(void **state)
{
    struct route_table *t = NULL;
    const struct route *r = NULL;
    struct tmpl_vars vars;
    char err[128];

    (void)state;
    assert_int_equal(route_table_build(&conf, &t, err, sizeof(err)), 0);
    assert_int_equal(match(t, 1, "/api/v1/ABC/telemetry", NULL, &r, &vars), ROUTE_BAD_METHOD);
    assert_int_equal(vars.n, 0);
    assert_int_equal(match(t, 2, "/api/v2/ABC/telemetry", NULL, &r, &vars), ROUTE_NO_MATCH);
    assert_int_equal(match(t, 2, "/", NULL, &r, &vars), ROUTE_NO_MATCH);
    route_table_free(t);
}

static void test_query_literal_and_capture(void **state)
{
    static const char *const good[] = {"unit=C", "format=csv", NULL};
    static const char *const wrong[] = {"format=json", "unit=C", NULL};
    static const char *const missing[] = {"format=csv", NULL};
    struct route_table *t = NULL;
    const struct route *r = NULL;
    struct tmpl_vars vars;
    char err[128];

    (void)state;
    assert_int_equal(route_table_build(&conf, &t, err, sizeof(err)), 0);
    assert_int_equal(match(t, 3, "/q/7", good, &r, &vars), ROUTE_MATCH);
    assert_int_equal(vars.n, 2);
    assert_string_equal(vars.name[1], "unit");
    assert_int_equal(vars.value[1].len, 1);
    assert_memory_equal(vars.value[1].s, "C", 1);
    assert_int_equal(match(t, 3, "/q/7", wrong, &r, &vars), ROUTE_NO_MATCH);
    assert_int_equal(match(t, 3, "/q/7", missing, &r, &vars), ROUTE_NO_MATCH);
    route_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specific_route_wins),
        cmocka_unit_test(test_method_and_missing_path),
        cmocka_unit_test(test_query_literal_and_capture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
