/* SPDX-License-Identifier: MIT */
/* The route table: CoAP method + URI template (+ query) -> compiled route with its topic. */
#ifndef COAP2MQTT_ROUTE_H
#define COAP2MQTT_ROUTE_H

#include <stddef.h>

#include "coap2mqtt/conf.h"
#include "coap2mqtt/tmpl.h"

struct route {
    const struct conf_route *conf;
    struct tmpl_path *path;
    struct tmpl_str *topic;
    struct tmpl_str *reply_topic; /* request routes only */
    char **query_vars;            /* per conf query entry: capture name, or NULL for a literal */
};

struct route_table {
    struct route *routes; /* most literal segments first, then configuration order */
    size_t n;
};

/* Outcomes of route_match() (positive: documented results, not errors). */
#define ROUTE_MATCH 0
#define ROUTE_NO_MATCH 1   /* no template matches the path: 4.04 */
#define ROUTE_BAD_METHOD 2 /* a template matches, but not for this method: 4.05 */

/**
 * Compile every route of conf (templates already validated by conf_load).
 * @return 0, -EINVAL (message in err), -ENOMEM.
 */
int route_table_build(const struct conf *conf, struct route_table **out, char *err, size_t errlen);
void route_table_free(struct route_table *t);

/**
 * Find the route for a request.
 * @param method  CoAP request code (1 GET .. 7 iPATCH)
 * @param segs    Uri-Path option values
 * @param query   Uri-Query option values ("name=value")
 * @param vars    receives path and query captures of the matched route
 * @return ROUTE_MATCH (*out set), ROUTE_NO_MATCH or ROUTE_BAD_METHOD.
 */
int route_match(const struct route_table *t, unsigned method, const struct tmpl_slice *segs,
                size_t n_segs, const struct tmpl_slice *query, size_t n_query,
                const struct route **out, struct tmpl_vars *vars);

#endif
