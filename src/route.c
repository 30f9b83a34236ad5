/* SPDX-License-Identifier: MIT */
/* Route table: compile templates once, match requests by method, path and query. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/route.h"

/* More literal segments = more specific: "/api/v1/telemetry" wins over "/api/v1/{token}". */
static int route_cmp(const void *a, const void *b)
{
    const struct route *ra = a, *rb = b;
    size_t la = tmpl_path_literals(ra->path), lb = tmpl_path_literals(rb->path);

    if (la != lb)
        return la > lb ? -1 : 1;
    /* qsort is not stable: keep configuration order among equals. */
    return ra->conf < rb->conf ? -1 : ra->conf > rb->conf;
}

int route_table_build(const struct conf *conf, struct route_table **out, char *err, size_t errlen)
{
    struct route_table *t = calloc(1, sizeof(*t));
    char why[160];
    int rc = 0;

    if (!t)
        return -ENOMEM;
    t->routes = calloc(conf->n_routes ? conf->n_routes : 1, sizeof(*t->routes));
    if (!t->routes) {
        free(t);
        return -ENOMEM;
    }
    for (size_t i = 0; i < conf->n_routes; i++) {
        const struct conf_route *c = &conf->routes[i];
        struct route *r;

        if (c->command)
            continue; /* downlink only: no device request takes this route */
        r = &t->routes[t->n++];

        r->conf = c;
        r->query_vars = calloc(c->n_query + 1, sizeof(*r->query_vars));
        if (!r->query_vars) {
            route_table_free(t);
            return -ENOMEM;
        }
        for (size_t q = 0; q < c->n_query; q++) {
            const char *v = c->query[q].value;
            size_t vl = strlen(v);
            if (vl > 2 && v[0] == '{' && v[vl - 1] == '}') {
                r->query_vars[q] = strndup(v + 1, vl - 2);
                if (!r->query_vars[q]) {
                    route_table_free(t);
                    return -ENOMEM;
                }
            }
        }
        rc = tmpl_path_parse(c->path, &r->path, why, sizeof(why));
        if (rc == 0)
            rc = tmpl_str_parse(c->topic, &r->topic, why, sizeof(why));
        if (rc == 0 && c->request)
            rc = tmpl_str_parse(c->request->reply_topic, &r->reply_topic, why, sizeof(why));
        if (rc < 0) {
            if (rc == -EINVAL)
                snprintf(err, errlen, "route '%s': %s", c->name, why);
            route_table_free(t);
            return rc;
        }
    }
    qsort(t->routes, t->n, sizeof(*t->routes), route_cmp);
    *out = t;
    return 0;
}

void route_table_free(struct route_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        tmpl_path_free(t->routes[i].path);
        tmpl_str_free(t->routes[i].topic);
        tmpl_str_free(t->routes[i].reply_topic);
        for (size_t q = 0; t->routes[i].query_vars && q < t->routes[i].conf->n_query; q++)
            free(t->routes[i].query_vars[q]);
        free(t->routes[i].query_vars);
    }
    free(t->routes);
    free(t);
}

static const struct tmpl_slice *query_find(const struct tmpl_slice *query, size_t n,
                                           const char *name, struct tmpl_slice *value)
{
    size_t nl = strlen(name);

    for (size_t i = 0; i < n; i++) {
        const char *eq = memchr(query[i].s, '=', query[i].len);
        size_t klen = eq ? (size_t)(eq - query[i].s) : query[i].len;
        if (klen == nl && memcmp(query[i].s, name, nl) == 0) {
            value->s = eq ? eq + 1 : query[i].s + query[i].len;
            value->len = eq ? query[i].len - klen - 1 : 0;
            return &query[i];
        }
    }
    return NULL;
}

/* Required query parameters: a literal value must be equal, "{var}" captures. */
static int query_match(const struct route *r, const struct tmpl_slice *query, size_t n,
                       struct tmpl_vars *vars)
{
    const struct conf_route *c = r->conf;

    for (size_t i = 0; i < c->n_query; i++) {
        const struct conf_query *q = &c->query[i];
        struct tmpl_slice v;
        size_t vl = strlen(q->value);

        if (!query_find(query, n, q->name, &v))
            return 0;
        if (r->query_vars[i]) {
            if (vars->n >= TMPL_VARS_MAX)
                return 0;
            vars->name[vars->n] = r->query_vars[i];
            vars->value[vars->n] = v;
            vars->n++;
        } else if (v.len != vl || memcmp(v.s, q->value, vl) != 0) {
            return 0;
        }
    }
    return 1;
}

int route_match(const struct route_table *t, unsigned method, const struct tmpl_slice *segs,
                size_t n_segs, const struct tmpl_slice *query, size_t n_query,
                const struct route **out, struct tmpl_vars *vars)
{
    int result = ROUTE_NO_MATCH;

    for (size_t i = 0; i < t->n; i++) {
        const struct route *r = &t->routes[i];
        size_t mark = vars->n;

        if (!tmpl_path_match(r->path, segs, n_segs, vars))
            continue;
        if (!(r->conf->methods & (1u << method))) {
            vars->n = mark;
            result = ROUTE_BAD_METHOD;
            continue;
        }
        if (!query_match(r, query, n_query, vars)) {
            vars->n = mark;
            continue;
        }
        *out = r;
        return ROUTE_MATCH;
    }
    return result;
}
