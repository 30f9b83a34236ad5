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

static const char *const method_names[] = {"GET",   "POST",  "PUT",    "DELETE",
                                           "FETCH", "PATCH", "iPATCH", NULL};

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
    if (rc == 0 && !r->methods)
        rc = conf_err(ld, v, "'methods' is empty; expected a list such as [POST, PUT]");
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
            rc =
                conf_err(ld, f, "unknown format '%s'; expected json, cbor, text, csv or octets", s);
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
    if (rc == 0 && !r->formats)
        rc = conf_err(ld, v, "'formats' is empty; expected a list such as [json, cbor]");
    return rc;
}

/* "{name}" captures the parameter; anything else is a literal the request must carry. */
static int check_query_value(struct conf_loader *ld, yaml_node_t *v, const struct conf_route *r,
                             const char *name, const char *value)
{
    static const char name_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789_";
    size_t n = strlen(value);

    if (n > 0 && value[0] == '{' && value[n - 1] == '}') {
        if (n > 2 && strspn(value + 1, name_chars) == n - 2)
            return 0;
    } else if (!strpbrk(value, "{}")) {
        return 0; /* a literal */
    }
    return conf_err(ld, v,
                    "query '%s' of route '%s' has a bad capture '%s'; expected a literal value "
                    "or {name} with name in [A-Za-z0-9_]",
                    name, r->name, value);
}

static int parse_query(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_route *r = obj;
    char what[128];
    int rc = 0;

    if (v->type != YAML_MAPPING_NODE)
        return conf_err(ld, v, "'query' must be a mapping of parameter names to values");
    r->query = calloc(conf_map_len(v) + 1, sizeof(*r->query));
    if (!r->query) {
        ld->oom = true;
        return -ENOMEM;
    }
    snprintf(what, sizeof(what), "'query' of route '%s'", r->name);
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *vn = conf_node(ld, p->value);
        char *name, *value;

        if (conf_key_dup(ld, v, p, what)) {
            rc = -EINVAL;
            continue;
        }
        name = conf_scalar(ld, conf_node(ld, p->key), "query");
        value = name ? conf_scalar(ld, vn, name) : NULL;
        if (!name || !value || check_query_value(ld, vn, r, name, value) < 0) {
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
    int rc = 0;

    if (v->type != YAML_SEQUENCE_NODE)
        return conf_err(ld, v, "'keys' must be a list of names");
    if (conf_seq_len(v) == 0)
        return conf_err(ld, v, "'keys' of route '%s' is empty; expected the CSV column names",
                        r->name);
    r->csv_keys = calloc(conf_seq_len(v) + 1, sizeof(*r->csv_keys));
    if (!r->csv_keys) {
        ld->oom = true;
        return -ENOMEM;
    }
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *kn = conf_node(ld, *it);
        char *k = conf_scalar(ld, kn, "keys");
        bool dup = false;

        if (!k) {
            rc = -EINVAL;
            continue;
        }
        for (size_t i = 0; i < r->n_csv_keys && !dup; i++)
            dup = !strcmp(r->csv_keys[i], k);
        if (!*k || dup) {
            rc = conf_err(ld, kn, "csv key '%s' of route '%s' is %s", k, r->name,
                          dup ? "listed twice" : "empty");
            free(k);
            continue;
        }
        r->csv_keys[r->n_csv_keys++] = k;
    }
    return rc;
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

#define R_OFF(f) offsetof(struct conf_route, f)
/* clang-format off */
const struct conf_key conf_csv_keys[] = {
    {CONF_KEY("layout", ENUM, R_OFF(csv_layout)), .def = CONF_CSV_NAME_TYPE,
     .names = layout_names, .values = layout_values},
    {CONF_KEY("keys", CUSTOM, 0), .parse = parse_csv_keys},
    {CONF_KEY("separator", CUSTOM, 0), .parse = parse_separator},
    {.name = NULL},
};
/* clang-format on */

static int parse_csv(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_route *r = obj;
    char what[96];

    snprintf(what, sizeof(what), "'csv' of route '%s'", r->name);
    return conf_apply(ld, v, conf_csv_keys, r, what);
}

static const char *const identity_names[] = {"token", "dtls", "path", "payload", "none", NULL};
static const int identity_values[] = {CONF_ID_TOKEN, CONF_ID_DTLS, CONF_ID_PATH, CONF_ID_PAYLOAD,
                                      CONF_ID_NONE};
static const char *const output_names[] = {"json", "cbor", "raw", NULL};
static const int output_values[] = {CONF_OUT_JSON, CONF_OUT_CBOR, CONF_OUT_RAW};
static const char *const ack_names[] = {"received", "broker", NULL};
static const int ack_values[] = {CONF_ACK_RECEIVED, CONF_ACK_BROKER};
static const char *const shape_names[] = {"body",     "timeseries", "by_device",
                                          "envelope", "reply",      NULL};
static const int shape_values[] = {CONF_SHAPE_BODY, CONF_SHAPE_TIMESERIES, CONF_SHAPE_BY_DEVICE,
                                   CONF_SHAPE_ENVELOPE, CONF_SHAPE_REPLY};

/* "cache: shared" on an observe block, "cache: client" on an uplink route. */
static const char *const cache_shared_names[] = {"shared", NULL};
static const char *const cache_client_names[] = {"client", NULL};
static const int cache_values[] = {1};

/* '+' may stand for any device (with device_field); '#' would take every topic below. */
static int check_subscribe(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                           void *obj)
{
    static const char *const vars[] = {"device", "gateway", NULL};
    const char *sub = ((struct conf_observe *)obj)->subscribe;
    char why[96];

    if (!*sub)
        return conf_err(ld, v, "'subscribe' in %s must not be empty", ld->what);
    if (tmpl_filter_check(sub, why, sizeof(why)) < 0)
        return conf_err(ld, v, "'subscribe' in %s: %s, got '%s'", ld->what, why, sub);
    if (strchr(sub, '#'))
        return conf_err(ld, v, "'subscribe' in %s must not use '#', got '%s'", ld->what, sub);
    return conf_check_template(ld, v, c->name, sub, vars, false);
}

/* A sub-mapping of a route: allocate it, set its defaults, apply its keys. */
static int parse_block(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *keys,
                       void **out, size_t size, const char *what)
{
    *out = calloc(1, size);
    if (!*out || conf_defaults(keys, *out) < 0) {
        ld->oom = true;
        return -ENOMEM;
    }
    return conf_apply(ld, v, keys, *out, what);
}

static int check_report_topic(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                              void *obj)
{
    static const char *const vars[] = {"device", "gateway", NULL};
    const char *t = *(char **)((char *)obj + c->offset);

    if (!*t)
        return conf_err(ld, v, "'%s' in %s must not be empty", c->name, ld->what);
    return conf_check_template(ld, v, c->name, t, vars, true);
}

static int check_gateway_topic(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                               void *obj)
{
    static const char *const vars[] = {"gateway", NULL};
    const char *t = *(char **)((char *)obj + c->offset);

    if (!*t)
        return conf_err(ld, v, "'%s' in %s must not be empty", c->name, ld->what);
    return conf_check_template(ld, v, c->name, t, vars, true);
}

#define Q_OFF(f) offsetof(struct conf_queue, f)
/* clang-format off */
const struct conf_key conf_queue_keys[] = {
    {CONF_KEY("max", INT, Q_OFF(max)), .min = 1, .max = 1000, .def = 16},
    {CONF_KEY("expiry", INT, Q_OFF(expiry)), .min = 1, .max = 7 * 86400, .def = 300},
    {CONF_KEY("report_topic", STR, Q_OFF(report_topic)), .check = check_report_topic},
    {CONF_KEY("id_field", STR, Q_OFF(id_field)), .def_str = "id", .check = conf_check_nonempty},
    {.name = NULL},
};
/* clang-format on */

static int parse_queue(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_observe *o = obj;

    return parse_block(ld, v, conf_queue_keys, (void **)&o->queue, sizeof(*o->queue),
                       "'queue' of an observe block");
}

#define F_OFF(f) offsetof(struct conf_fetch, f)
/* clang-format off */
const struct conf_key conf_fetch_keys[] = {
    {CONF_KEY("topic", STR, F_OFF(topic)), .check = check_gateway_topic},
    {CONF_KEY("response_topic", STR, F_OFF(response_topic)), .check = check_gateway_topic},
    {CONF_KEY("timeout", INT, F_OFF(timeout)), .min = 1, .max = 300, .def = 5},
    {.name = NULL},
};
/* clang-format on */

static int parse_fetch(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_observe *o = obj;
    int rc = parse_block(ld, v, conf_fetch_keys, (void **)&o->fetch, sizeof(*o->fetch),
                         "'fetch' of an observe block");

    if (rc == 0 && (!o->fetch->topic || !o->fetch->response_topic))
        rc = conf_err(ld, v, "'fetch' of an observe block needs 'topic' and 'response_topic'");
    return rc;
}

#define O_OFF(f) offsetof(struct conf_observe, f)
/* clang-format off */
const struct conf_key conf_observe_keys[] = {
    {CONF_KEY("subscribe", STR, O_OFF(subscribe)), .check = check_subscribe},
    {CONF_KEY("device_field", STR, O_OFF(device_field)), .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("data_field", STR, O_OFF(data_field)), .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("require", STR, O_OFF(require)), .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("confirmable", BOOL, O_OFF(confirmable)), .def = true},
    {CONF_KEY("cache", ENUM, O_OFF(cache_shared)), .def = 0, .names = cache_shared_names,
     .values = cache_values},
    {CONF_KEY("queue", CUSTOM, 0), .parse = parse_queue},
    {CONF_KEY("fetch", CUSTOM, 0), .parse = parse_fetch},
    {.name = NULL},
};
/* clang-format on */

static int parse_observe(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_route *r = obj;
    char what[96];
    int rc;

    r->observe = calloc(1, sizeof(*r->observe));
    if (!r->observe || conf_defaults(conf_observe_keys, r->observe) < 0) {
        ld->oom = true;
        return -ENOMEM;
    }
    snprintf(what, sizeof(what), "'observe' of route '%s'", r->name);
    rc = conf_apply(ld, v, conf_observe_keys, r->observe, what);
    if (rc == 0 && !r->observe->subscribe)
        rc = conf_err(ld, v, "'observe' of route '%s' has no 'subscribe'", r->name);
    if (rc == 0 && r->observe->queue && r->observe->cache_shared)
        rc = conf_err(ld, v,
                      "'observe' of route '%s' cannot both queue and cache: a queue "
                      "delivers each message once, a cache holds the latest state",
                      r->name);
    if (rc == 0 && r->observe->fetch && !r->observe->cache_shared)
        rc = conf_err(ld, v, "'fetch' in route '%s' needs 'cache: shared'", r->name);
    /* Allowed (a group of one, or devices that observe every gateway), but rarely right. */
    if (rc == 0 && tmpl_filter_shared(r->observe->subscribe))
        conf_warn(ld, conf_map_get(ld, v, "subscribe"),
                  "route '%s': a shared 'subscribe' gives each message to one gateway of the "
                  "group: %s",
                  r->name,
                  r->observe->queue ? "a message for a device that observes another gateway "
                                      "waits here until it expires"
                                    : "a device observing another gateway misses it, and so "
                                      "does that gateway's state");
    return rc;
}

#define Q2_OFF(f) offsetof(struct conf_request, f)
/* clang-format off */
const struct conf_key conf_request_keys[] = {
    {CONF_KEY("reply_topic", STR, Q2_OFF(reply_topic))},
    {CONF_KEY("timeout", INT, Q2_OFF(timeout)), .min = 1, .max = 3600, .def = 10},
    {.name = NULL},
};
/* clang-format on */

static int parse_request(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_route *r = obj;
    char what[96];
    int rc;

    snprintf(what, sizeof(what), "'request' of route '%s'", r->name);
    rc = parse_block(ld, v, conf_request_keys, (void **)&r->request, sizeof(*r->request), what);
    if (rc == 0 && !r->request->reply_topic)
        rc = conf_err(ld, v, "'request' of route '%s' has no 'reply_topic'", r->name);
    return rc;
}

static int parse_command(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    return conf_command_parse(ld, v, obj);
}

/* The defaults of identity (-1) and ack are resolved by check_route() from other keys. */
/* clang-format off */
const struct conf_key conf_route_keys[] = {
    {CONF_KEY("name", STR, R_OFF(name)), .check = conf_check_nonempty},
    {CONF_KEY("methods", CUSTOM, 0), .parse = parse_methods},
    {CONF_KEY("path", STR, R_OFF(path))},
    {CONF_KEY("query", CUSTOM, 0), .parse = parse_query},
    {CONF_KEY("identity", ENUM, R_OFF(identity)), .def = -1, .names = identity_names,
     .values = identity_values},
    {CONF_KEY("identity_var", STR, R_OFF(identity_var)), .check = conf_check_nonempty},
    {CONF_KEY("type_field", STR, R_OFF(type_field)), .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("body_field", STR, R_OFF(body_field)), .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("allow_unknown", BOOL, R_OFF(allow_unknown)), .def = false},
    {CONF_KEY("formats", CUSTOM, 0), .parse = parse_formats},
    {CONF_KEY("csv", CUSTOM, 0), .parse = parse_csv},
    {CONF_KEY("output", ENUM, R_OFF(output)), .def = CONF_OUT_JSON, .names = output_names,
     .values = output_values},
    {CONF_KEY("shape", ENUM, R_OFF(shape)), .def = CONF_SHAPE_BODY, .names = shape_names,
     .values = shape_values},
    {CONF_KEY("topic", STR, R_OFF(topic))},
    {CONF_KEY("qos", INT, R_OFF(qos)), .min = 0, .max = 2, .def = 1},
    {CONF_KEY("retain", BOOL, R_OFF(retain)), .def = false},
    {CONF_KEY("ack", ENUM, R_OFF(ack)), .def = CONF_ACK_DEFAULT, .names = ack_names,
     .values = ack_values},
    {CONF_KEY("observe", CUSTOM, 0), .parse = parse_observe},
    {CONF_KEY("request", CUSTOM, 0), .parse = parse_request},
    {CONF_KEY("command", CUSTOM, 0), .parse = parse_command},
    {CONF_KEY("cache", ENUM, R_OFF(cache_client)), .def = 0, .names = cache_client_names,
     .values = cache_values},
    {.name = NULL},
};
/* clang-format on */

/* What the checks of one route share. */
struct route_check {
    struct conf_loader *ld;
    yaml_node_t *map;
    struct conf_route *r;
    struct tmpl_path *path; /* NULL when the path is missing or bad (already reported) */
    yaml_node_t *node;      /* the topic */
    bool identity_bad;      /* 'identity' was written but rejected: skip what depends on it */
    bool uses_request_id;   /* the template checked last uses {request_id} */
    const char *what;       /* "topic" or "reply_topic", for messages */
    int rc;
};

/* The node of key in the route, or the route itself when the key is absent. */
static yaml_node_t *node_of(struct route_check *rc, const char *key)
{
    yaml_node_t *n = conf_map_get(rc->ld, rc->map, key);

    return n ? n : rc->map;
}

static int fail(struct route_check *rc, int err)
{
    if (err < 0 && rc->rc != -ENOMEM)
        rc->rc = err;
    return err;
}

static bool is_query_capture(const struct conf_route *r, const char *name)
{
    for (size_t i = 0; i < r->n_query; i++) {
        const char *v = r->query[i].value;
        size_t vl = strlen(v);
        if (vl > 2 && v[0] == '{' && vl - 2 == strlen(name) && !strncmp(v + 1, name, vl - 2))
            return true;
    }
    return false;
}

static int check_topic_var(void *arg, const char *name)
{
    struct route_check *rc = arg;
    struct conf_route *r = rc->r;

    if (!strcmp(name, "gateway") || !strcmp(name, "route"))
        return 0;
    if (!strcmp(name, "request_id")) {
        if (!r->request)
            fail(rc, conf_err(rc->ld, rc->node,
                              "route '%s' uses {request_id} but has no 'request' block", r->name));
        rc->uses_request_id = true;
        return 0;
    }
    if (!strcmp(name, "device") || !strcmp(name, "type")) {
        if (r->identity == CONF_ID_NONE && !rc->identity_bad)
            fail(rc, conf_err(rc->ld, rc->node,
                              "%s of route '%s' uses {%s} but the route has identity none",
                              rc->what, r->name, name));
        return 0;
    }
    if ((rc->path && tmpl_path_has_var(rc->path, name)) || is_query_capture(r, name))
        return 0;
    /* Without a valid path its variables are unknown: that error is already reported. */
    if (rc->path)
        fail(rc, conf_err(rc->ld, rc->node,
                          "%s of route '%s' uses unknown variable {%s}; expected gateway, "
                          "device, type, route or a variable of its path or query",
                          rc->what, r->name, name));
    return 0;
}

static int default_str(struct route_check *rc, char **field, const char *value)
{
    if (*field)
        return 0;
    *field = strdup(value);
    if (!*field) {
        rc->ld->oom = true;
        return fail(rc, -ENOMEM);
    }
    return 0;
}

static void check_path_identity(struct route_check *rc)
{
    struct conf_loader *ld = rc->ld;
    struct conf_route *r = rc->r;
    char why[160];
    size_t vars = 0;

    if (!r->path && !conf_map_get(ld, rc->map, "path"))
        fail(rc, conf_err(ld, rc->map, "route '%s' has no 'path'", r->name));
    else if (r->path && tmpl_path_parse(r->path, &rc->path, why, sizeof(why)) < 0)
        fail(rc, conf_err(ld, node_of(rc, "path"), "bad 'path' '%s' in route '%s': %s", r->path,
                          r->name, why));
    /* Captures were checked to be "{name}"; they must not shadow a path variable. */
    for (size_t i = 0; rc->path && i < r->n_query; i++) {
        const char *v = r->query[i].value;
        size_t len = strlen(v);
        char name[128];

        if (len < 3 || v[0] != '{' || len - 2 >= sizeof(name))
            continue;
        vars++;
        memcpy(name, v + 1, len - 2);
        name[len - 2] = '\0';
        if (tmpl_path_has_var(rc->path, name))
            fail(rc, conf_err(ld, node_of(rc, "query"),
                              "query capture {%s} of route '%s' is also a path variable", name,
                              r->name));
    }
    if (rc->path &&
        tmpl_path_segments(rc->path) - tmpl_path_literals(rc->path) + vars > TMPL_VARS_MAX)
        fail(rc, conf_err(ld, node_of(rc, "query"),
                          "route '%s' captures more than %d path and query variables", r->name,
                          TMPL_VARS_MAX));
    if ((int)r->identity < 0) {
        rc->identity_bad = conf_map_get(ld, rc->map, "identity") != NULL;
        r->identity =
            rc->path && tmpl_path_has_var(rc->path, "token") ? CONF_ID_TOKEN : CONF_ID_NONE;
    }
    if (rc->identity_bad)
        return;
    if (r->identity_var && (r->identity == CONF_ID_DTLS || r->identity == CONF_ID_NONE))
        fail(rc, conf_err(ld, node_of(rc, "identity_var"),
                          "route '%s': 'identity_var' is used only with identity token, path "
                          "or payload",
                          r->name));
    if (r->identity == CONF_ID_TOKEN)
        default_str(rc, &r->identity_var, "token");
    if (r->identity == CONF_ID_PATH)
        default_str(rc, &r->identity_var, "device");
    if (r->identity == CONF_ID_PAYLOAD)
        default_str(rc, &r->identity_var, "deviceName");
    if ((r->identity == CONF_ID_TOKEN || r->identity == CONF_ID_PATH) && rc->path &&
        r->identity_var && !tmpl_path_has_var(rc->path, r->identity_var))
        fail(rc, conf_err(ld, node_of(rc, "identity_var"),
                          "route '%s': identity variable '%s' is not in its path '%s'", r->name,
                          r->identity_var, r->path));
    if ((r->type_field || r->body_field) && r->identity != CONF_ID_PAYLOAD)
        fail(rc,
             conf_err(ld, node_of(rc, r->type_field ? "type_field" : "body_field"),
                      "route '%s': 'type_field' and 'body_field' need identity payload", r->name));
}

static void check_body(struct route_check *rc)
{
    struct conf_loader *ld = rc->ld;
    struct conf_route *r = rc->r;

    /* Formats written but none accepted: the csv checks would only repeat that error. */
    bool formats_bad = !r->formats && conf_map_get(ld, rc->map, "formats");

    if (!r->formats) {
        r->formats = 1u << CONF_FMT_JSON;
        r->default_format = CONF_FMT_JSON;
    }
    if (conf_map_get(ld, rc->map, "csv") && !(r->formats & (1u << CONF_FMT_CSV)) && !formats_bad)
        fail(rc, conf_err(ld, node_of(rc, "csv"),
                          "route '%s' has 'csv' but csv is not in its formats", r->name));
    if ((r->formats & (1u << CONF_FMT_CSV)) && r->csv_layout == CONF_CSV_KEYS && !r->n_csv_keys &&
        !conf_map_get(ld, conf_map_get(ld, rc->map, "csv"), "keys"))
        fail(rc, conf_err(ld, node_of(rc, "csv"), "route '%s': csv layout keys needs a 'keys' list",
                          r->name));
    if (r->output == CONF_OUT_RAW && r->shape != CONF_SHAPE_BODY)
        fail(rc, conf_err(ld, node_of(rc, "output"),
                          "route '%s': output raw publishes the body as received, so shape must "
                          "be body",
                          r->name));
    if (r->shape == CONF_SHAPE_REPLY && rc->path && !tmpl_path_has_var(rc->path, "id"))
        fail(rc,
             conf_err(ld, node_of(rc, "shape"),
                      "route '%s': shape reply takes the id from a path variable {id}", r->name));
    if ((r->shape == CONF_SHAPE_TIMESERIES || r->shape == CONF_SHAPE_BY_DEVICE ||
         r->shape == CONF_SHAPE_REPLY) &&
        r->identity == CONF_ID_NONE && !rc->identity_bad)
        fail(rc, conf_err(ld, node_of(rc, "shape"),
                          "route '%s': shape %s names the device, so identity cannot be none",
                          r->name, shape_names[r->shape]));
    if (r->ack == CONF_ACK_DEFAULT)
        r->ack = r->qos > 0 ? CONF_ACK_BROKER : CONF_ACK_RECEIVED;
}

/* The reply topic names one request: its variables are the topic's, {request_id} required. */
static void check_reply_topic(struct route_check *rc)
{
    struct conf_route *r = rc->r;
    struct tmpl_str *t = NULL;
    char why[160];

    if (r->observe) {
        fail(rc,
             conf_err(rc->ld, node_of(rc, "request"),
                      "route '%s' cannot both serve an observe resource and a request", r->name));
        return;
    }
    rc->node = node_of(rc, "request");
    if (tmpl_str_parse(r->request->reply_topic, &t, why, sizeof(why)) < 0) {
        rc->ld->oom = true;
        fail(rc, -ENOMEM);
        return;
    }
    if (strpbrk(r->request->reply_topic, "+#"))
        fail(rc, conf_err(rc->ld, rc->node,
                          "reply_topic '%s' of route '%s' must not contain '+' or '#'",
                          r->request->reply_topic, r->name));
    /* Another gateway of a share group would get the reply and drop it: a 5.04 here. */
    if (tmpl_filter_shared(r->request->reply_topic))
        fail(rc, conf_err(rc->ld, rc->node,
                          "reply_topic '%s' of route '%s' must not start with '$share': the "
                          "reply must reach the gateway that asked",
                          r->request->reply_topic, r->name));
    rc->uses_request_id = false;
    rc->what = "reply_topic";
    tmpl_str_each_var(t, check_topic_var, rc);
    tmpl_str_free(t);
    if (!rc->uses_request_id)
        fail(rc, conf_err(rc->ld, rc->node,
                          "reply_topic '%s' of route '%s' must use {request_id}: it tells "
                          "one request's reply from another's",
                          r->request->reply_topic, r->name));
}

static void check_topic(struct route_check *rc)
{
    struct conf_loader *ld = rc->ld;
    struct conf_route *r = rc->r;
    struct tmpl_str *topic = NULL;
    char why[160];

    if (r->observe) {
        /* A downlink route: one resource per device token, answered with GET. */
        if ((r->identity != CONF_ID_TOKEN && !rc->identity_bad) ||
            (rc->path && tmpl_path_segments(rc->path) - tmpl_path_literals(rc->path) != 1))
            fail(rc, conf_err(ld, node_of(rc, "observe"),
                              "observe route '%s' needs identity token and a path whose only "
                              "variable is the token",
                              r->name));
        if (!(r->methods & CONF_METHOD_GET))
            fail(rc, conf_err(ld, node_of(rc, "methods"), "observe route '%s' must allow GET",
                              r->name));
        if (!r->topic)
            default_str(rc, &r->topic, "unused"); /* nothing is published */
    }
    rc->node = node_of(rc, "topic");
    if (!r->topic) {
        if (!conf_map_get(ld, rc->map, "topic")) /* else its bad value is reported */
            fail(rc, conf_err(ld, rc->map, "route '%s' has no 'topic'", r->name));
        return;
    }
    if (tmpl_str_parse(r->topic, &topic, why, sizeof(why)) < 0) {
        ld->oom = true;
        fail(rc, -ENOMEM);
        return;
    }
    if (!*r->topic)
        fail(rc, conf_err(ld, rc->node, "route '%s' has an empty 'topic'", r->name));
    if (strpbrk(r->topic, "+#"))
        fail(rc, conf_err(ld, rc->node, "topic '%s' of route '%s' must not contain '+' or '#'",
                          r->topic, r->name));
    if (tmpl_filter_shared(r->topic))
        fail(rc, conf_err(ld, rc->node,
                          "topic '%s' of route '%s' must not start with '$share': "
                          "only a 'subscribe' can be a shared subscription",
                          r->topic, r->name));
    rc->what = "topic";
    tmpl_str_each_var(topic, check_topic_var, rc);
    tmpl_str_free(topic);
    if (r->request && r->request->reply_topic)
        check_reply_topic(rc);
}

/* A command route is its command block: the uplink keys would mean nothing there. */
static int check_command_route(struct route_check *rc, int err)
{
    static const char *const uplink_only[] = {"methods", "path",    "query",   "identity", "topic",
                                              "observe", "request", "formats", "shape",    NULL};

    for (const char *const *k = uplink_only; *k; k++)
        if (conf_map_get(rc->ld, rc->map, *k))
            err = conf_err(rc->ld, conf_map_get(rc->ld, rc->map, *k),
                           "route '%s' has a 'command': '%s' belongs in it or not at all",
                           rc->r->name, *k);
    return err;
}

int conf_route_read(struct conf_loader *ld, yaml_node_t *v, struct conf_route *r, size_t idx)
{
    struct route_check rc = {.ld = ld, .map = v, .r = r};
    yaml_node_t *name;
    char what[96];
    int err;

    r->mark = conf_mark_of(ld, v);
    if (v->type != YAML_MAPPING_NODE)
        return conf_err(ld, v, "route #%zu must be a mapping of keys", idx + 1);
    /* The name first, so every later message can say which route it is about. */
    name = conf_map_get(ld, v, "name");
    if (!name)
        return conf_err(ld, v, "route #%zu has no 'name'", idx + 1);
    r->name = conf_scalar(ld, name, "name");
    if (!r->name)
        return -EINVAL;
    if (!*r->name)
        return conf_err(ld, name, "route #%zu has an empty 'name'", idx + 1);
    if (conf_defaults(conf_route_keys, r) < 0 || conf_defaults(conf_csv_keys, r) < 0) {
        ld->oom = true;
        return -ENOMEM;
    }
    r->methods = CONF_METHOD_POST | CONF_METHOD_PUT;
    r->csv_separator = ',';
    snprintf(what, sizeof(what), "route '%s'", r->name);
    err = conf_apply(ld, v, conf_route_keys, r, what);
    if (err == -ENOMEM)
        return err;
    if (r->command || conf_map_get(ld, v, "command"))
        return check_command_route(&rc, err);
    check_path_identity(&rc);
    check_body(&rc);
    check_topic(&rc);
    tmpl_path_free(rc.path);
    return rc.rc ? rc.rc : err;
}

static int report_route(struct conf_loader *ld, size_t later, size_t first, void *ctx)
{
    const struct conf_route *a = &ld->conf->routes[later], *b = &ld->conf->routes[first];

    (void)ctx;
    return conf_err_at(ld, &a->mark, "duplicate route name '%s' (first defined at %s:%d:%d)",
                       a->name, b->mark.file, b->mark.line, b->mark.col);
}

int conf_routes_check(struct conf_loader *ld)
{
    const struct conf *c = ld->conf;

    return conf_find_dups(ld, c->routes, c->n_routes, sizeof(*c->routes), R_OFF(name), report_route,
                          NULL);
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
        if (r->observe->queue) {
            free(r->observe->queue->report_topic);
            free(r->observe->queue->id_field);
            free(r->observe->queue);
        }
        if (r->observe->fetch) {
            free(r->observe->fetch->topic);
            free(r->observe->fetch->response_topic);
            free(r->observe->fetch);
        }
        free(r->observe);
    }
    if (r->request) {
        free(r->request->reply_topic);
        free(r->request);
    }
    conf_command_free(r->command);
}
