/* SPDX-License-Identifier: MIT */
/* Uplink pipeline: route -> device identity -> decode -> shape -> encode -> publish. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <json-c/json.h>

#include "coap2mqtt/attrs.h"
#include "coap2mqtt/codec.h"
#include "coap2mqtt/device.h"
#include "coap2mqtt/log.h"
#include "coap2mqtt/loop.h"
#include "coap2mqtt/shape.h"
#include "coap2mqtt/uplink.h"

static struct {
    const struct conf *conf;
    const struct route_table *routes;
    struct uplink_ops ops;
    struct tmpl_str *announce_topic;
    struct tmpl_str *announce_payload;
    struct tmpl_str *attributes_topic;
    uint32_t next_request_id; /* random start: a reply to a request of an earlier run never
                               * matches one of this run */
} U;

/* Everything one request carries through the pipeline. */
struct uplink_job {
    const struct uplink_req *req;
    struct uplink_res *res;
    const struct route *route;
    struct tmpl_vars vars;
    struct device *device;
    enum conf_format fmt;
    struct json_object *body; /* decoded body, owned */
    struct json_object *data; /* the part to shape (body or body_field), borrowed */
    char request_id[12];      /* request routes: {request_id} */
};

int uplink_init(const struct conf *conf, const struct route_table *routes,
                const struct uplink_ops *ops)
{
    char err[160];
    int rc = 0;

    memset(&U, 0, sizeof(U));
    U.conf = conf;
    U.routes = routes;
    U.ops = *ops;
    if (getrandom(&U.next_request_id, sizeof(U.next_request_id), 0) != sizeof(U.next_request_id))
        U.next_request_id = (uint32_t)loop_wall_ms();
    U.next_request_id %= 1000000000u;
    if (conf->announce.topic) {
        rc = tmpl_str_parse(conf->announce.topic, &U.announce_topic, err, sizeof(err));
        if (rc == 0)
            rc = tmpl_str_parse(conf->announce.payload ? conf->announce.payload : "",
                                &U.announce_payload, err, sizeof(err));
        if (rc == 0 && conf->announce.attributes_topic)
            rc = tmpl_str_parse(conf->announce.attributes_topic, &U.attributes_topic, err,
                                sizeof(err));
        if (rc < 0) {
            log_msg(LOG_ERR, "uplink: announce template: %s", err);
            uplink_free();
        }
    }
    return rc;
}

void uplink_free(void)
{
    tmpl_str_free(U.announce_topic);
    tmpl_str_free(U.announce_payload);
    tmpl_str_free(U.attributes_topic);
    memset(&U, 0, sizeof(U));
}

struct log_limit uplink_rejected_log = LOG_LIMIT_INIT("south: rejected peer=...");

static void fail(struct uplink_job *j, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct uplink_job *j, unsigned code, const char *fmt, ...)
{
    va_list ap;

    j->res->code = code;
    va_start(ap, fmt);
    vsnprintf(j->res->diag, sizeof(j->res->diag), fmt, ap);
    va_end(ap);
    log_msg_limited(&uplink_rejected_log, LOG_INFO,
                    "south: rejected peer=%s route=%s code=%u.%02u reason=\"%s\"",
                    j->req->peer ? j->req->peer : "-", j->route ? j->route->conf->name : "-",
                    code / 100, code % 100, j->res->diag);
}

static const struct tmpl_slice *var_get(const struct tmpl_vars *vars, const char *name)
{
    for (size_t i = 0; i < vars->n; i++)
        if (strcmp(vars->name[i], name) == 0)
            return &vars->value[i];
    return NULL;
}

static bool lookup(void *ctx, const char *name, struct tmpl_slice *v)
{
    struct uplink_job *j = ctx;
    const struct tmpl_slice *pv;
    const char *s = NULL;

    if (strcmp(name, "gateway") == 0)
        s = U.conf->gateway_name;
    else if (strcmp(name, "route") == 0)
        s = j->route->conf->name;
    else if (strcmp(name, "device") == 0 && j->device)
        s = j->device->name;
    else if (strcmp(name, "type") == 0 && j->device)
        s = j->device->type;
    else if (strcmp(name, "request_id") == 0 && j->request_id[0])
        s = j->request_id;
    if (s) {
        v->s = s;
        v->len = strlen(s);
        return true;
    }
    pv = var_get(&j->vars, name);
    if (!pv)
        return false;
    *v = *pv;
    return true;
}

/* The decoder for a request: the route's first format that the Content-Format names. */
static int pick_format(struct uplink_job *j)
{
    const struct conf_route *c = j->route->conf;
    int cf = j->req->content_format;

    if (cf == CODEC_CF_NONE) {
        j->fmt = c->default_format;
        return 0;
    }
    if (c->default_format < CONF_FMT__COUNT && codec_format_cf(c->default_format) == cf &&
        (c->formats & (1u << c->default_format))) {
        j->fmt = c->default_format;
        return 0;
    }
    for (int f = 0; f < CONF_FMT__COUNT; f++) {
        if ((c->formats & (1u << f)) && codec_format_cf((enum conf_format)f) == cf) {
            j->fmt = (enum conf_format)f;
            return 0;
        }
    }
    fail(j, 415, "content-format %d is not accepted here", cf);
    return -1;
}

static int find_device_in_slice(struct uplink_job *j, const char *what, const struct tmpl_slice *v,
                                const char *type)
{
    int err = 0;

    j->device = device_by_name(v->s, v->len);
    if (!j->device && j->route->conf->allow_unknown)
        j->device = device_get_or_add(v->s, v->len, type, &err);
    if (j->device)
        return 0;
    if (err == -ENOSPC || err == -ENOMEM) {
        j->res->max_age = 60;
        fail(j, 503, "too many devices");
    } else {
        fail(j, 401, "unknown device in %s", what);
    }
    return -1;
}

/* Identity known before the body is read (token, DTLS, path). */
static int identify(struct uplink_job *j)
{
    const struct conf_route *c = j->route->conf;
    const struct uplink_req *r = j->req;
    const struct tmpl_slice *v;

    switch (c->identity) {
    case CONF_ID_TOKEN:
        v = var_get(&j->vars, c->identity_var);
        j->device = v ? device_by_token(v->s, v->len) : NULL;
        if (!j->device) {
            fail(j, 401, "unknown access token");
            return -1;
        }
        return 0;
    case CONF_ID_DTLS:
        if (r->auth == UPLINK_AUTH_PSK)
            j->device = device_by_psk_identity((const uint8_t *)r->auth_id, r->auth_id_len);
        else if (r->auth == UPLINK_AUTH_CERT)
            j->device = device_by_cn(r->auth_id, r->auth_id_len);
        if (!j->device) {
            fail(j, 401,
                 r->auth == UPLINK_AUTH_NONE || r->auth == UPLINK_AUTH_ANON
                     ? "DTLS credentials required"
                     : "unknown DTLS identity");
            return -1;
        }
        return 0;
    case CONF_ID_PATH:
        v = var_get(&j->vars, c->identity_var);
        if (!v || v->len == 0) {
            fail(j, 401, "no device name in the path");
            return -1;
        }
        return find_device_in_slice(j, "path", v, NULL);
    case CONF_ID_PAYLOAD:
    case CONF_ID_NONE:
        return 0;
    }
    return 0;
}

static int identify_from_payload(struct uplink_job *j)
{
    const struct conf_route *c = j->route->conf;
    struct json_object *name = NULL, *type = NULL;
    struct tmpl_slice v;

    if (!json_object_is_type(j->body, json_type_object) ||
        !json_object_object_get_ex(j->body, c->identity_var, &name) ||
        !json_object_is_type(name, json_type_string) || json_object_get_string_len(name) == 0) {
        fail(j, 400, "no device name in field '%s'", c->identity_var);
        return -1;
    }
    if (c->type_field && json_object_object_get_ex(j->body, c->type_field, &type) &&
        !json_object_is_type(type, json_type_string)) {
        fail(j, 400, "field '%s' must be a string", c->type_field);
        return -1;
    }
    if (c->body_field && !json_object_object_get_ex(j->body, c->body_field, &j->data)) {
        fail(j, 400, "no field '%s' in the body", c->body_field);
        return -1;
    }
    v.s = json_object_get_string(name);
    v.len = (size_t)json_object_get_string_len(name);
    return find_device_in_slice(j, "payload", &v, type ? json_object_get_string(type) : NULL);
}

static int publish(struct uplink_job *j, const char *topic, const uint8_t *payload, size_t len,
                   int qos, bool retain, struct answer_later *waiter)
{
    int rc = U.ops.publish(U.ops.ctx, topic, payload, len, qos, retain, waiter);

    if (rc == 0)
        return 0;
    if (rc == -ENOBUFS || rc == -EAGAIN) {
        j->res->max_age = U.conf->spool.retry_after ? (unsigned)U.conf->spool.retry_after : 30;
        fail(j, 503, "gateway busy, retry later");
    } else {
        fail(j, 500, "publish failed");
    }
    return -1;
}

/* {"<device>":{"k":v,...}} from the device's static attributes (values are JSON already). */
static int static_attributes_doc(const struct device *d, struct buf *out)
{
    int rc = buf_append_byte(out, '{');

    rc = rc ? rc : buf_append_byte(out, '"');
    rc = rc ? rc : buf_append_json_escaped(out, d->name, strlen(d->name));
    rc = rc ? rc : buf_append_str(out, "\":{");
    for (size_t i = 0; rc == 0 && i < d->conf->n_attrs; i++) {
        const struct conf_attr *a = &d->conf->attrs[i];
        rc = buf_append_str(out, i ? ",\"" : "\"");
        rc = rc ? rc : buf_append_json_escaped(out, a->key, strlen(a->key));
        rc = rc ? rc : buf_append_str(out, "\":");
        rc = rc ? rc : buf_append_str(out, a->json);
    }
    return rc ? rc : buf_append_str(out, "}}");
}

/* ThingsBoard-style gateways must hear of a device before its data (connect message), and
 * its static attributes go with it. */
static int announce(struct uplink_job *j)
{
    struct buf topic = BUF_INIT, payload = BUF_INIT;
    int rc;

    if (!U.announce_topic || !j->device || j->device->announced)
        return 0;
    rc = tmpl_str_expand(U.announce_topic, lookup, j, TMPL_TOPIC, &topic, NULL);
    if (rc == 0)
        rc = tmpl_str_expand(U.announce_payload, lookup, j, TMPL_JSON, &payload, NULL);
    if (rc == 0 && !topic.data)
        rc = -EINVAL;
    if (rc < 0) {
        fail(j, rc == -ENOMEM ? 500 : 400, "device name not usable in the announce topic");
        goto out;
    }
    rc = publish(j, (const char *)topic.data, payload.data, payload.len, U.conf->announce.qos,
                 false, NULL);
    if (rc == 0 && U.attributes_topic && j->device->conf && j->device->conf->n_attrs) {
        buf_reset(&topic);
        buf_reset(&payload);
        rc = tmpl_str_expand(U.attributes_topic, lookup, j, TMPL_TOPIC, &topic, NULL);
        if (rc == 0)
            rc = static_attributes_doc(j->device, &payload);
        if (rc < 0)
            fail(j, 500, "cannot build the static attributes");
        else
            rc = publish(j, (const char *)topic.data, payload.data, payload.len,
                         U.conf->announce.qos, false, NULL);
    }
    if (rc == 0)
        j->device->announced = true;
out:
    buf_free(&topic);
    buf_free(&payload);
    return rc;
}

static struct answer_later *new_waiter(struct uplink_job *j)
{
    if (!j->req->waiter_new)
        return NULL;
    j->res->waiter = j->req->waiter_new(j->req->waiter_ctx);
    return j->res->waiter;
}

/* A request route: the answer is the first message on the request's reply topic. */
static int send_request(struct uplink_job *j, const struct buf *topic, const struct buf *body)
{
    struct buf reply = BUF_INIT;
    const char *bad = NULL;
    struct answer_later *waiter;
    int rc = tmpl_str_expand(j->route->reply_topic, lookup, j, TMPL_TOPIC, &reply, &bad);

    if (rc < 0 || reply.len == 0) {
        fail(j, rc == -ENOMEM ? 500 : 400,
             "reply topic variable '%s' is empty or holds '+', '#' or '/'", bad ? bad : "?");
        buf_free(&reply);
        return -1;
    }
    waiter = new_waiter(j);
    if (!waiter || !U.ops.request) {
        fail(j, 500, "cannot wait for a reply");
        buf_free(&reply);
        return -1;
    }
    rc = U.ops.request(U.ops.ctx, j->route->conf, j->device ? j->device->name : NULL,
                       (const char *)topic->data, body->data, body->len, (const char *)reply.data,
                       j->request_id, waiter);
    buf_free(&reply);
    if (rc == -ENOTCONN || rc == -ENOBUFS) {
        j->res->max_age = U.conf->spool.retry_after ? (unsigned)U.conf->spool.retry_after : 30;
        fail(j, 503,
             rc == -ENOTCONN ? "no broker to answer, retry later"
                             : "too many requests waiting, retry later");
        return -1;
    }
    if (rc < 0) {
        fail(j, 500, "cannot send the request");
        return -1;
    }
    return 0;
}

static unsigned success_code(unsigned method)
{
    switch (method) {
    case 1: /* GET */
    case 5: /* FETCH */
        return 205;
    case 4: /* DELETE */
        return 202;
    default:
        return 204;
    }
}

/* The bytes to publish: the body as received where nothing changes, else re-encoded. */
static int encode(struct uplink_job *j, struct buf *out)
{
    const struct conf_route *c = j->route->conf;
    struct json_object *doc = NULL;
    struct shape_ctx sc = {
        .device = j->device ? j->device->name : NULL,
        .type = j->device ? j->device->type : NULL,
        .route = c->name,
        .now_ms = loop_wall_ms(),
    };
    const struct tmpl_slice *id = var_get(&j->vars, "id");
    char why[160];
    int rc;

    if (id) {
        sc.id = id->s;
        sc.id_len = id->len;
    }
    /* The bytes as received only when they are the whole document (no body_field). */
    if (c->output == CONF_OUT_RAW || j->fmt == CONF_FMT_OCTETS ||
        (c->shape == CONF_SHAPE_BODY && c->output == CONF_OUT_JSON && j->fmt == CONF_FMT_JSON &&
         j->data == j->body))
        return buf_append(out, j->req->body, j->req->len);
    rc = shape_build(c->shape, j->data, &sc, &doc, why, sizeof(why));
    if (rc == -EINVAL) {
        fail(j, 400, "%s", why);
        return -1;
    }
    if (rc == 0)
        rc = c->output == CONF_OUT_CBOR ? codec_encode_cbor(doc, out) : codec_encode_json(doc, out);
    json_object_put(doc);
    if (rc < 0) {
        fail(j, 500, "cannot encode the document");
        return -1;
    }
    return 0;
}

/* What a request is checked for before its body matters: route, method, Content-Format,
 * size. 0, or -1 with res filled. */
static int admit(struct uplink_job *j)
{
    const struct uplink_req *req = j->req;
    int rc = route_match(U.routes, req->method, req->segs, req->n_segs, req->query, req->n_query,
                         &j->route, &j->vars);

    if (rc == ROUTE_NO_MATCH) {
        fail(j, 404, "no route for this path");
        return -1;
    }
    if (rc == ROUTE_BAD_METHOD) {
        fail(j, 405, "method not allowed here");
        return -1;
    }
    j->res->route = j->route->conf;
    if (pick_format(j) < 0)
        return -1;
    if (req->len > U.conf->coap.max_body_size) {
        fail(j, 413, "body of %zu bytes is over the limit of %zu", req->len,
             U.conf->coap.max_body_size);
        return -1;
    }
    return 0;
}

void uplink_precheck(const struct uplink_req *req, struct uplink_res *res)
{
    struct uplink_job j = {.req = req, .res = res};

    memset(res, 0, sizeof(*res));
    if (admit(&j) < 0)
        return;
    /* A path or payload identity may create a device: only the body can say. */
    if (j.route->conf->identity == CONF_ID_TOKEN || j.route->conf->identity == CONF_ID_DTLS)
        (void)identify(&j);
}

void uplink_handle(const struct uplink_req *req, struct uplink_res *res)
{
    struct uplink_job j = {.req = req, .res = res};
    struct buf topic = BUF_INIT, out = BUF_INIT;
    struct codec_opts opts;
    const char *bad = NULL;
    struct answer_later *waiter;
    char why[160];
    int rc;

    memset(res, 0, sizeof(*res));
    if (admit(&j) < 0 || identify(&j) < 0)
        return;
    opts = (struct codec_opts){
        .csv_layout = j.route->conf->csv_layout,
        .csv_keys = j.route->conf->csv_keys,
        .n_csv_keys = j.route->conf->n_csv_keys,
        .csv_separator = j.route->conf->csv_separator ? j.route->conf->csv_separator : ',',
    };
    /* A question may come without a body (GET .../state): it is asked with none. */
    if (req->len == 0 && j.route->reply_topic)
        rc = 0;
    else
        rc = codec_decode(j.fmt, req->body, req->len, &opts, &j.body, why, sizeof(why));
    if (rc < 0) {
        if (rc == -EINVAL || rc == -ERANGE)
            fail(&j, 400, "%s", why);
        else
            fail(&j, 500, "out of memory");
        return;
    }
    j.data = j.body;
    if (j.route->conf->identity == CONF_ID_PAYLOAD && identify_from_payload(&j) < 0)
        goto out;
    if (encode(&j, &out) < 0)
        goto out;
    if (j.route->reply_topic)
        snprintf(j.request_id, sizeof(j.request_id), "%u",
                 (unsigned)(U.next_request_id++ % 1000000000u));
    rc = tmpl_str_expand(j.route->topic, lookup, &j, TMPL_TOPIC, &topic, &bad);
    if (rc == 0 && topic.len == 0)
        rc = -EINVAL;
    if (rc < 0) {
        fail(&j, rc == -ENOMEM ? 500 : 400, "topic variable '%s' is empty or holds '+', '#' or '/'",
             bad ? bad : "?");
        goto out;
    }
    if (announce(&j) < 0)
        goto out;
    if (j.route->reply_topic) {
        if (send_request(&j, &topic, &out) < 0)
            goto out;
        waiter = res->waiter;
    } else {
        /* ack: broker holds the answer of a CON request until the broker has the reading. */
        waiter = j.route->conf->ack == CONF_ACK_BROKER && req->confirmable ? new_waiter(&j) : NULL;
        if (publish(&j, (const char *)topic.data, out.data, out.len, j.route->conf->qos,
                    j.route->conf->retain, waiter) < 0)
            goto out;
    }
    if (j.device) {
        res->device = j.device->name;
        res->dev = j.device;
        j.device->last_seen_ms = loop_now_ms();
        if (j.route->conf->cache_client)
            attrs_merge(j.device->name, ATTRS_CLIENT, j.data);
    }
    res->code = success_code(req->method);
    res->pending = waiter != NULL;
    log_msg(LOG_DEBUG,
            "south: accepted peer=%s route=%s device=\"%s\" topic=%s bytes=%zu answer=%s",
            req->peer ? req->peer : "-", j.route->conf->name, j.device ? j.device->name : "-",
            (const char *)topic.data, out.len,
            j.route->reply_topic ? "on-reply"
            : waiter             ? "after-broker"
                                 : "now");
out:
    json_object_put(j.body);
    buf_free(&topic);
    buf_free(&out);
}
