/* SPDX-License-Identifier: MIT */
/* Configuration of routes: keys, defaults and the checks that need the path template. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "coap2mqtt/codec.h"
#include "coap2mqtt/tmpl.h"
#include "conf_internal.h"

static const char *const method_names[] = {"GET", "POST", "PUT", "DELETE", "FETCH", "PATCH",
                                           "iPATCH", NULL};

static int parse_methods(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_route *r = obj;
    int rc = 0;

    if (v->type != YAML_SEQUENCE_NODE)
        return conf_err(ld, v, "'methods' must be a list such as [POST, PUT]");
    r->methods = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *m = conf_node(ld, *it);
        char *s = conf_scalar(ld, m, "methods");
        size_t i;

        if (!s) {
            rc = -EINVAL;
            continue;
        }
        for (i = 0; method_names[i] && strcasecmp(method_names[i], s); i++)
            ;
        if (method_names[i])
            r->methods |= 1u << (i + 1); /* CoAP request codes start at 1 (GET) */
        else
            rc = conf_err(ld, m,
                          "unknown method '%s'; expected GET, POST, PUT, DELETE, FETCH, PATCH "
                          "or iPATCH",
                          s);
        free(s);
    }
    return rc;
}

static int parse_formats(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_route *r = obj;
    bool first = true;
    int rc = 0;

    if (v->type != YAML_SEQUENCE_NODE)
        return conf_err(ld, v, "'formats' must be a list such as [json, cbor]");
    r->formats = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *f = conf_node(ld, *it);
        char *s = conf_scalar(ld, f, "formats");
        int fmt;

        if (!s) {
            rc = -EINVAL;
            continue;
        }
        fmt = codec_format_from_name(s);
        if (fmt < 0)
            rc = conf_err(ld, f, "unknown format '%s'; expected json, cbor, text, csv or octets",
                          s);
        else if (r->formats & (1u << fmt))
            rc = conf_err(ld, f, "format '%s' is listed twice", s);
        else {
            r->formats |= 1u << fmt;
            if (first)
                r->default_format = (enum conf_format)fmt;
            first = false;
        }
        free(s);
    }
    return rc;
}

static int parse_query(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_route *r = obj;
    size_t n;
    int rc = 0;

    if (v->type != YAML_MAPPING_NODE)
        return conf_err(ld, v, "'query' must be a mapping of parameter names to values");
    n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    r->query = calloc(n ? n : 1, sizeof(*r->query));
    if (!r->query)
        return -ENOMEM;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        char *name = conf_scalar(ld, conf_node(ld, p->key), "query");
        char *value = name ? conf_scalar(ld, conf_node(ld, p->value), name) : NULL;

        if (!name || !value) {
            free(name);
            free(value);
            rc = -EINVAL;
            continue;
        }
        r->query[r->n_query].name = name;
        r->query[r->n_query].value = value;
        r->n_query++;
    }
    return rc;
}

static int parse_csv_keys(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_route *r = obj;
    size_t n;

    if (v->type != YAML_SEQUENCE_NODE)
        return conf_err(ld, v, "'keys' must be a list of names");
    n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    r->csv_keys = calloc(n ? n : 1, sizeof(*r->csv_keys));
    if (!r->csv_keys)
        return -ENOMEM;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        char *k = conf_scalar(ld, conf_node(ld, *it), "keys");
        if (!k)
            return -EINVAL;
        r->csv_keys[r->n_csv_keys++] = k;
    }
    return 0;
}

static int parse_separator(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_route *r = obj;
    char *s = conf_scalar(ld, v, "separator");
    int rc = 0;

    if (!s)
        return -EINVAL;
    if (strlen(s) != 1 || s[0] == '"' || s[0] == '\n')
        rc = conf_err(ld, v, "'separator' must be one character, got '%s'", s);
    else
        r->csv_separator = s[0];
    free(s);
    return rc;
}

static const char *const layout_names[] = {"keys", "name_type", NULL};
static const int layout_values[] = {CONF_CSV_KEYS, CONF_CSV_NAME_TYPE};

static const struct conf_key csv_keys[] = {
    {.name = "layout", .type = CONF_K_ENUM, .offset = offsetof(struct conf_route, csv_layout),
     .names = layout_names,
     .values = layout_values},
    {.name = "keys", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_csv_keys},
    {.name = "separator", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_separator},
    {.name = NULL},
};

static int parse_csv(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_route *r = obj;
    char what[96];

    snprintf(what, sizeof(what), "'csv' of route '%s'", r->name ? r->name : "?");
    r->csv_layout = CONF_CSV_NAME_TYPE;
    return conf_apply(ld, v, csv_keys, r, what);
}

static const char *const identity_names[] = {"token", "dtls", "path", "payload", "none", NULL};
static const int identity_values[] = {CONF_ID_TOKEN, CONF_ID_DTLS, CONF_ID_PATH, CONF_ID_PAYLOAD,
                                      CONF_ID_NONE};
static const char *const output_names[] = {"json", "cbor", "raw", NULL};
static const int output_values[] = {CONF_OUT_JSON, CONF_OUT_CBOR, CONF_OUT_RAW};
static const char *const ack_names[] = {"received", "broker", NULL};
static const int ack_values[] = {CONF_ACK_RECEIVED, CONF_ACK_BROKER};
static const char *const shape_names[] = {"body", "timeseries", "by_device", "envelope", "reply",
                                          NULL};
static const int shape_values[] = {CONF_SHAPE_BODY, CONF_SHAPE_TIMESERIES, CONF_SHAPE_BY_DEVICE,
                                   CONF_SHAPE_ENVELOPE, CONF_SHAPE_REPLY};

/* "cache: shared" on an observe block, "cache: client" on an uplink route. */
static const char *const cache_shared_names[] = {"shared", NULL};
static const char *const cache_client_names[] = {"client", NULL};
static const int cache_values[] = {1};

#define O_OFF(f) offsetof(struct conf_observe, f)
static const struct conf_key observe_keys[] = {
    {.name = "subscribe", .type = CONF_K_STR, .offset = O_OFF(subscribe)},
    {.name = "device_field", .type = CONF_K_STR, .offset = O_OFF(device_field)},
    {.name = "data_field", .type = CONF_K_STR, .offset = O_OFF(data_field)},
    {.name = "require", .type = CONF_K_STR, .offset = O_OFF(require)},
    {.name = "confirmable", .type = CONF_K_BOOL, .offset = O_OFF(confirmable)},
    {.name = "cache", .type = CONF_K_ENUM, .offset = O_OFF(cache_shared), .names = cache_shared_names, .values = cache_values},
    {.name = NULL},
};

static int parse_observe(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_route *r = obj;
    char what[96];
    int rc;

    r->observe = calloc(1, sizeof(*r->observe));
    if (!r->observe)
        return -ENOMEM;
    r->observe->confirmable = true;
    snprintf(what, sizeof(what), "'observe' of route '%s'", r->name);
    rc = conf_apply(ld, v, observe_keys, r->observe, what);
    if (rc == 0 && !r->observe->subscribe)
        rc = conf_err(ld, v, "'observe' of route '%s' has no 'subscribe'", r->name);
    if (rc == 0 && strchr(r->observe->subscribe, '#'))
        rc = conf_err(ld, v, "'subscribe' of route '%s' must not use '#'", r->name);
    return rc;
}

#define R_OFF(f) offsetof(struct conf_route, f)
static const struct conf_key route_keys[] = {
    {.name = "name", .type = CONF_K_STR, .offset = R_OFF(name)},
    {.name = "methods", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_methods},
    {.name = "path", .type = CONF_K_STR, .offset = R_OFF(path)},
    {.name = "query", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_query},
    {"identity", CONF_K_ENUM, R_OFF(identity), .names = identity_names,
     .values = identity_values},
    {.name = "identity_var", .type = CONF_K_STR, .offset = R_OFF(identity_var)},
    {.name = "type_field", .type = CONF_K_STR, .offset = R_OFF(type_field)},
    {.name = "body_field", .type = CONF_K_STR, .offset = R_OFF(body_field)},
    {.name = "allow_unknown", .type = CONF_K_BOOL, .offset = R_OFF(allow_unknown)},
    {.name = "formats", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_formats},
    {.name = "csv", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_csv},
    {.name = "output", .type = CONF_K_ENUM, .offset = R_OFF(output), .names = output_names, .values = output_values},
    {.name = "shape", .type = CONF_K_ENUM, .offset = R_OFF(shape), .names = shape_names, .values = shape_values},
    {.name = "topic", .type = CONF_K_STR, .offset = R_OFF(topic)},
    {.name = "qos", .type = CONF_K_INT, .offset = R_OFF(qos), .min = 0, .max = 2},
    {.name = "retain", .type = CONF_K_BOOL, .offset = R_OFF(retain)},
    {.name = "ack", .type = CONF_K_ENUM, .offset = R_OFF(ack), .names = ack_names, .values = ack_values},
    {.name = "observe", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_observe},
    {.name = "cache", .type = CONF_K_ENUM, .offset = R_OFF(cache_client), .names = cache_client_names, .values = cache_values},
    {.name = NULL},
};

struct topic_check {
    struct conf_loader *ld;
    struct conf_route *r;
    struct tmpl_path *path;
    yaml_node_t *node;
    int rc;
};

static int check_topic_var(void *arg, const char *name)
{
    struct topic_check *tc = arg;
    struct conf_route *r = tc->r;

    if (!strcmp(name, "gateway") || !strcmp(name, "route"))
        return 0;
    if (!strcmp(name, "device") || !strcmp(name, "type")) {
        if (r->identity == CONF_ID_NONE)
            tc->rc = conf_err(tc->ld, tc->node,
                              "topic of route '%s' uses {%s} but the route has identity none",
                              r->name, name);
        return 0;
    }
    if (tc->path && tmpl_path_has_var(tc->path, name))
        return 0;
    for (size_t i = 0; i < r->n_query; i++) {
        const char *v = r->query[i].value;
        size_t vl = strlen(v);
        if (vl > 2 && v[0] == '{' && v[vl - 1] == '}' && vl - 2 == strlen(name) &&
            !strncmp(v + 1, name, vl - 2))
            return 0;
    }
    tc->rc = conf_err(tc->ld, tc->node,
                      "topic of route '%s' uses unknown variable {%s}; expected gateway, device, "
                      "type, route or a variable of its path or query",
                      r->name, name);
    return 0;
}

/* The node of key in map, or map itself to point at the route when the key is absent. */
static yaml_node_t *node_or(struct conf_loader *ld, yaml_node_t *map, const char *key)
{
    yaml_node_t *n = conf_map_get(ld, map, key);

    return n ? n : map;
}

static int default_str(char **field, const char *value)
{
    if (*field)
        return 0;
    *field = strdup(value);
    return *field ? 0 : -ENOMEM;
}

/* The checks that need several keys of one route at once. */
static int check_route(struct conf_loader *ld, yaml_node_t *v, struct conf_route *r, bool csv_given)
{
    yaml_node_t *path_node = conf_map_get(ld, v, "path");
    yaml_node_t *topic_node = conf_map_get(ld, v, "topic");
    struct topic_check tc = {ld, r, NULL, topic_node, 0};
    struct tmpl_str *topic = NULL;
    char why[160];
    int rc = 0;

    if (!r->path)
        rc = conf_err(ld, v, "route '%s' has no 'path'", r->name);
    else if (tmpl_path_parse(r->path, &tc.path, why, sizeof(why)) < 0)
        rc = conf_err(ld, path_node, "bad 'path' '%s' in route '%s': %s", r->path, r->name, why);
    if ((int)r->identity < 0)
        r->identity = tc.path && tmpl_path_has_var(tc.path, "token") ? CONF_ID_TOKEN : CONF_ID_NONE;
    if (r->identity == CONF_ID_TOKEN && default_str(&r->identity_var, "token") < 0)
        rc = -ENOMEM;
    if (r->identity == CONF_ID_PATH && default_str(&r->identity_var, "device") < 0)
        rc = -ENOMEM;
    if (r->identity == CONF_ID_PAYLOAD && default_str(&r->identity_var, "deviceName") < 0)
        rc = -ENOMEM;
    if ((r->identity == CONF_ID_TOKEN || r->identity == CONF_ID_PATH) && tc.path &&
        !tmpl_path_has_var(tc.path, r->identity_var))
        rc = conf_err(ld, node_or(ld, v, "identity_var"),
                      "route '%s': identity variable '%s' is not in its path '%s'", r->name,
                      r->identity_var, r->path);
    if ((r->type_field || r->body_field) && r->identity != CONF_ID_PAYLOAD)
        rc = conf_err(ld, v, "route '%s': 'type_field' and 'body_field' need identity payload",
                      r->name);
    if (!r->formats) {
        r->formats = 1u << CONF_FMT_JSON;
        r->default_format = CONF_FMT_JSON;
    }
    if (csv_given && !(r->formats & (1u << CONF_FMT_CSV)))
        rc = conf_err(ld, conf_map_get(ld, v, "csv"), "route '%s' has 'csv' but csv is not in its formats",
                      r->name);
    if ((r->formats & (1u << CONF_FMT_CSV)) && r->csv_layout == CONF_CSV_KEYS && !r->n_csv_keys)
        rc = conf_err(ld, node_or(ld, v, "csv"),
                      "route '%s': csv layout keys needs a 'keys' list", r->name);
    if (r->output == CONF_OUT_RAW && r->shape != CONF_SHAPE_BODY)
        rc = conf_err(ld, conf_map_get(ld, v, "output"),
                      "route '%s': output raw publishes the body as received, so shape must be "
                      "body",
                      r->name);
    if (r->shape == CONF_SHAPE_REPLY && tc.path && !tmpl_path_has_var(tc.path, "id"))
        rc = conf_err(ld, conf_map_get(ld, v, "shape"),
                      "route '%s': shape reply takes the id from a path variable {id}", r->name);
    if ((r->shape == CONF_SHAPE_TIMESERIES || r->shape == CONF_SHAPE_BY_DEVICE ||
         r->shape == CONF_SHAPE_REPLY) &&
        r->identity == CONF_ID_NONE)
        rc = conf_err(ld, conf_map_get(ld, v, "shape"),
                      "route '%s': shape %s names the device, so identity cannot be none",
                      r->name, shape_names[r->shape]);
    if (r->ack == CONF_ACK_DEFAULT)
        r->ack = r->qos > 0 ? CONF_ACK_BROKER : CONF_ACK_RECEIVED;
    if (r->observe) {
        if (r->identity != CONF_ID_TOKEN || tmpl_path_segments(tc.path) - tmpl_path_literals(tc.path) != 1)
            rc = conf_err(ld, v, "observe route '%s' needs identity token and a path whose only "
                          "variable is the token", r->name);
        if (!(r->methods & CONF_METHOD_GET))
            rc = conf_err(ld, v, "observe route '%s' must allow GET", r->name);
        if (!r->topic && default_str(&r->topic, "unused") < 0)
            rc = -ENOMEM;
    }
    if (!r->topic) {
        rc = conf_err(ld, v, "route '%s' has no 'topic'", r->name);
    } else if (tmpl_str_parse(r->topic, &topic, why, sizeof(why)) == 0) {
        if (!*r->topic)
            rc = conf_err(ld, topic_node, "route '%s' has an empty 'topic'", r->name);
        if (strpbrk(r->topic, "+#"))
            rc = conf_err(ld, topic_node, "topic '%s' of route '%s' must not contain '+' or '#'",
                          r->topic, r->name);
        tmpl_str_each_var(topic, check_topic_var, &tc);
        if (tc.rc)
            rc = tc.rc;
    } else {
        rc = -ENOMEM;
    }
    tmpl_str_free(topic);
    tmpl_path_free(tc.path);
    return rc;
}

int conf_route_read(struct conf_loader *ld, yaml_node_t *v, struct conf_route *r, size_t idx)
{
    char what[96];
    int rc;

    r->mark = conf_mark_of(ld, v);
    r->methods = CONF_METHOD_POST | CONF_METHOD_PUT;
    r->identity = (enum conf_identity)-1;
    r->qos = 1;
    r->csv_separator = ',';
    r->csv_layout = CONF_CSV_NAME_TYPE;
    if (v->type != YAML_MAPPING_NODE)
        return conf_err(ld, v, "route #%zu must be a mapping of keys", idx + 1);
    /* The name first, so every later message can say which route it is about. */
    {
        yaml_node_t *n = conf_map_get(ld, v, "name");
        r->name = n ? conf_scalar(ld, n, "name") : NULL;
        if (!r->name || !*r->name) {
            free(r->name);
            r->name = NULL;
            return conf_err(ld, v, "route #%zu has no 'name'", idx + 1);
        }
    }
    snprintf(what, sizeof(what), "route '%s'", r->name);
    rc = conf_apply(ld, v, route_keys, r, what);
    if (rc == -ENOMEM)
        return rc;
    {
        int r2 = check_route(ld, v, r, conf_map_get(ld, v, "csv") != NULL);
        return r2 ? r2 : rc;
    }
}

void conf_route_free(struct conf_route *r)
{
    free(r->name);
    free(r->path);
    for (size_t i = 0; i < r->n_query; i++) {
        free(r->query[i].name);
        free(r->query[i].value);
    }
    free(r->query);
    free(r->identity_var);
    free(r->type_field);
    free(r->body_field);
    for (size_t i = 0; i < r->n_csv_keys; i++)
        free(r->csv_keys[i]);
    free(r->csv_keys);
    free(r->topic);
    if (r->observe) {
        free(r->observe->subscribe);
        free(r->observe->device_field);
        free(r->observe->data_field);
        free(r->observe->require);
        free(r->observe);
    }
}
