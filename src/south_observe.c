/* SPDX-License-Identifier: MIT */
/*
 * Observe resources served by the gateway (RFC 7641): one libcoap resource per observe route
 * and device, fed by MQTT messages on the route's subscription. The latest message is what
 * a GET (and every notification) answers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "coap2mqtt/attrs.h"
#include "coap2mqtt/attrs_fetch.h"
#include "coap2mqtt/buf.h"
#include "coap2mqtt/codec.h"
#include "coap2mqtt/log.h"
#include "coap2mqtt/loop.h"
#include "coap2mqtt/msgq.h"
#include "coap2mqtt/north.h"
#include "coap2mqtt/south.h"
#include "coap2mqtt/stats.h"
#include "coap2mqtt/tmpl.h"
#include "south_internal.h"

/* An observation's key, to tell its NON notifications from a new registration. */
#define OBS_REGS 4
struct obs_reg {
    const void *session; /* compared, never dereferenced */
    uint8_t token[8];
    size_t len;
};

struct obs_res {
    const struct conf_route *route;
    const struct conf_device *device;
    coap_resource_t *res;
    char *data; /* the latest notification (JSON text), NULL before the first */
    /* Queue routes: each message goes to the device once, in order. */
    struct msgq queue;    /* waiting */
    struct msgq inflight; /* sent in CON notifications, not yet known acknowledged */
    bool kick_posted;
    /* The answer to the last registration, for its retransmissions (libcoap does not
     * suppress duplicate requests; answering again must not take the next message). */
    const void *reg_session;
    int reg_mid;
    char *reg_text;
    struct obs_reg regs[OBS_REGS]; /* the latest registrations */
    unsigned next_reg;
    struct obs_res *next;
};

/* A route's subscription: the filter, the part of it topics are matched against (without
 * a "$share/GROUP/" prefix) and which level of that names the device (-1: none). */
struct obs_sub {
    const struct conf_route *route;
    char *filter;
    const char *match; /* points into filter */
    int device_level;
};

static struct {
    const struct conf *conf;
    struct loop_timer sweep; /* queue expiry and in-flight release */
    bool any_queue;
    size_t waiting;  /* messages in all queues: 0 spares every request the walk below */
    size_t inflight; /* messages in all in-flight lists: 0 spares every libcoap pass a check */
    bool exiting;
    struct obs_res *list;
    struct obs_sub *subs;
    char **filters; /* for north_set_subscriptions() */
    size_t n_subs;
} O;

static bool plus_for_device(void *ctx, const char *name, struct tmpl_slice *v)
{
    const struct conf *conf = ctx;

    v->s = strcmp(name, "device") == 0    ? "+"
           : strcmp(name, "gateway") == 0 ? conf->gateway_name
                                          : NULL;
    if (!v->s)
        return false;
    v->len = strlen(v->s);
    return true;
}

static int level_of_device(const char *tmpl)
{
    int level = 0;

    for (const char *p = tmpl; *p; p++) {
        if (strncmp(p, "{device}", 8) == 0)
            return level;
        if (*p == '/')
            level++;
    }
    return -1;
}

/* MQTT topic filter match ('+' one level; '#' is refused in observe filters). */
static bool filter_match(const char *filter, const char *topic, int device_level, char *device,
                         size_t devlen)
{
    int level = 0;

    while (*filter && *topic) {
        const char *fe = strchr(filter, '/'), *te = strchr(topic, '/');
        size_t fl = fe ? (size_t)(fe - filter) : strlen(filter);
        size_t tl = te ? (size_t)(te - topic) : strlen(topic);

        if (fl == 1 && *filter == '+') {
            if (level == device_level) {
                if (tl >= devlen || tl == 0)
                    return false;
                memcpy(device, topic, tl);
                device[tl] = '\0';
            }
        } else if (fl != tl || memcmp(filter, topic, fl) != 0) {
            return false;
        }
        filter += fl + (fe ? 1 : 0);
        topic += tl + (te ? 1 : 0);
        level++;
        if (!fe != !te)
            return false;
    }
    return !*filter && !*topic;
}

/* 2.05 Content with its Content-Format. */
static void answer(coap_pdu_t *response, int cf, const uint8_t *data, size_t len)
{
    uint8_t buf[4];

    coap_pdu_set_code(response, COAP_RESPONSE_CODE(205));
    coap_add_option(response, COAP_OPTION_CONTENT_FORMAT,
                    coap_encode_var_safe(buf, sizeof(buf), (unsigned)cf), buf);
    coap_add_data(response, len, data);
}

static bool query_has_keys(const coap_string_t *query)
{
    return memmem(query->s, query->length, "clientKeys=", 11) ||
           memmem(query->s, query->length, "sharedKeys=", 11);
}

/* The value of name= in a query "a=1&b=2" (a new string), or NULL. */
static char *query_value(const coap_string_t *query, const char *name)
{
    size_t nl = strlen(name);
    const char *p = (const char *)query->s, *end = p + query->length;

    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=')
            return strndup(p + nl + 1, (size_t)(stop - p - nl - 1));
        p = stop + 1;
    }
    return NULL;
}

/* GET .../attributes?clientKeys=a,b&sharedKeys=c,d: the known ones, from the cache, after
 * asking the server for the others (observe.fetch). */
static void answer_attribute_read(const struct obs_res *o, coap_session_t *session,
                                  const coap_pdu_t *request, const coap_string_t *query,
                                  coap_pdu_t *response)
{
    char *client = query_value(query, "clientKeys");
    char *shared = query_value(query, "sharedKeys");
    struct buf out = BUF_INIT;
    struct answer_later *waiter =
        o->route->observe->fetch ? south_answer_new(session, request) : NULL;

    if (waiter) {
        int rc = attrs_fetch_start(o->route, o->device->name, client, shared, waiter);
        /* 205 until the server's answers are in: south_answer_give() brings the code */
        if (rc == 0 && south_answer_defer(waiter, session, request, 205)) {
            free(client);
            free(shared);
            return; /* the answer follows when the server has answered */
        }
        if (rc == 0) /* cannot happen: the exchange was not deferred */
            log_msg(LOG_WARNING, "south: cannot defer an attribute read device=\"%s\"",
                    o->device->name);
        else
            south_answer_free(waiter);
    }
    if (attrs_read(o->device->name, client, shared, &out) == 0)
        answer(response, CODEC_CF_JSON, out.data, out.len);
    else {
        coap_pdu_set_code(response, COAP_RESPONSE_CODE(500));
    }
    buf_free(&out);
    free(client);
    free(shared);
}

/* The answer to one request or notification: JSON text, as CBOR when the device's request
 * asked for it with Accept (RFC 7252 5.10.4). */
static void answer_text(const coap_pdu_t *request, coap_pdu_t *response, const char *data)
{
    coap_opt_iterator_t it;
    coap_opt_t *accept = request ? coap_check_option(request, COAP_OPTION_ACCEPT, &it) : NULL;

    if (accept &&
        coap_decode_var_bytes(coap_opt_value(accept), coap_opt_length(accept)) == CODEC_CF_CBOR) {
        struct json_object *doc = NULL;
        struct buf cbor = BUF_INIT;
        char why[8];

        /* deliver() refused numbers CBOR would carry differently; not JSON: 5.00 */
        if (codec_decode(CONF_FMT_JSON, (const uint8_t *)data, strlen(data), NULL, &doc, why,
                         sizeof(why)) == 0 &&
            doc && codec_encode_cbor(doc, &cbor) == 0)
            answer(response, CODEC_CF_CBOR, cbor.data, cbor.len);
        else
            coap_pdu_set_code(response, COAP_RESPONSE_CODE(500));
        json_object_put(doc);
        buf_free(&cbor);
        return;
    }
    answer(response, CODEC_CF_JSON, (const uint8_t *)data, strlen(data));
}

/* libcoap 4.3.1 calls the GET handler for the request itself and again for every
 * notification, then with a copy of the registration that carries the notification's message
 * ID and type. An ACK is always an answer to a request and a CON always a notification; a
 * NON is a notification when its (session, token) registered before. */
static bool is_notification(struct obs_res *o, const coap_session_t *session,
                            const coap_pdu_t *request, const coap_pdu_t *response)
{
    coap_pdu_type_t type = coap_pdu_get_type(response);
    coap_bin_const_t tok = request ? coap_pdu_get_token(request) : (coap_bin_const_t){0, NULL};
    struct obs_reg *r;

    if (!request || type == COAP_MESSAGE_CON)
        return true;
    for (size_t i = 0; i < OBS_REGS; i++) {
        r = &o->regs[i];
        if (type == COAP_MESSAGE_NON && r->session == session && r->len == tok.length &&
            memcmp(r->token, tok.s, tok.length) == 0)
            return true;
    }
    if (tok.length <= sizeof(r->token)) {
        r = &o->regs[o->next_reg++ % OBS_REGS];
        r->session = session;
        r->len = tok.length;
        memcpy(r->token, tok.s, tok.length);
    }
    return false;
}

static void job_kick(void *arg);
static void on_sweep(struct loop_timer *t);

/* Have libcoap notify the observers (after the current pass: not from inside a handler). */
static void kick(struct obs_res *o)
{
    if (o->kick_posted || !o->queue.n)
        return;
    o->kick_posted = loop_post(job_kick, o) == 0;
}

static void job_kick(void *arg)
{
    struct obs_res *o = arg;

    o->kick_posted = false;
    if (o->queue.n && !coap_resource_notify_observers(o->res, NULL))
        log_msg(LOG_DEBUG,
                "south: queued for a device not observing route=%s device=\"%s\" "
                "waiting=%zu",
                o->route->name, o->device->name, o->queue.n);
}

/* Longest a CON notification can take before libcoap gives up on it (RFC 7252 4.8.2
 * MAX_TRANSMIT_WAIT with this gateway's parameters). */
static uint64_t max_transmit_wait_ms(void)
{
    const struct conf_coap *c = &O.conf->coap;

    return (uint64_t)c->ack_timeout * 1000u * ((2u << c->max_retransmit) - 1u) * 3u / 2u;
}

/* Queue routes: the oldest waiting message, once. */
static void answer_queued(struct obs_res *o, coap_session_t *session, const coap_pdu_t *request,
                          coap_pdu_t *response, bool note)
{
    struct msgq_item *it;

    if (!note && o->reg_session == session && o->reg_mid == coap_pdu_get_mid(request) &&
        o->reg_text) {
        answer_text(request, response, o->reg_text);
        return;
    }
    it = msgq_pop(&o->queue);
    O.waiting -= it != NULL;
    if (!it) {
        /* Nothing waits: 2.05 without a body, the observation stays. */
        coap_pdu_set_code(response, COAP_RESPONSE_CODE(205));
        return;
    }
    answer_text(request, response, it->text);
    log_msg(LOG_INFO, "south: delivered route=%s device=\"%s\" id=%s as=%s waiting=%zu",
            o->route->name, o->device->name, it->id ? it->id : "-",
            note ? "notification" : "response", o->queue.n);
    if (note && coap_pdu_get_type(response) == COAP_MESSAGE_CON) {
        it->sent_to = session;
        it->sent_mid = coap_pdu_get_mid(response);
        it->sent_until_ms = loop_now_ms() + max_transmit_wait_ms();
        it->next = NULL;
        /* in flight until its outcome is known (see south_observe_nack() below) */
        msgq_push_front(&o->inflight, it);
        O.inflight++;
    } else {
        if (!note) {
            free(o->reg_text);
            o->reg_text = it->text;
            it->text = NULL;
            o->reg_session = session;
            o->reg_mid = coap_pdu_get_mid(request);
        }
        msgq_item_free(it);
    }
    kick(o);
}

/* The whole shared scope: what a new observer of attributes starts from. */
static void answer_shared_state(const struct obs_res *o, const coap_pdu_t *request,
                                coap_pdu_t *response)
{
    struct json_object *shared = attrs_scope(o->device->name, ATTRS_SHARED);

    answer_text(request, response,
                shared ? json_object_to_json_string_ext(shared, JSON_C_TO_STRING_PLAIN |
                                                                    JSON_C_TO_STRING_NOSLASHESCAPE)
                       : "{}");
}

static void handle_get(coap_resource_t *resource, coap_session_t *session,
                       const coap_pdu_t *request, const coap_string_t *query, coap_pdu_t *response)
{
    struct obs_res *o = coap_resource_get_userdata(resource);
    bool note = is_notification(o, session, request, response);

    if (request && south_answer_due(resource, session, request, response))
        return;
    /* The path holds the device's token: whoever knows it is the device. */
    if (!note)
        south_session_trust(session);
    if (!note && o->route->observe->cache_shared && query && query_has_keys(query)) {
        answer_attribute_read(o, session, request, query, response);
        return;
    }
    if (o->route->observe->queue) {
        answer_queued(o, session, request, response, note);
        return;
    }
    /* A registration (or plain GET) gets the current state; a notification the change. */
    if (!note && o->route->observe->cache_shared) {
        answer_shared_state(o, request, response);
        return;
    }
    answer_text(request, response, o->data ? o->data : "{}");
}

/* The resource's path for one device: the route's path with its token filled in. */
static char *device_path(const struct conf_route *r, const struct conf_device *d)
{
    struct buf b = BUF_INIT;
    char var[64];
    const char *at;

    snprintf(var, sizeof(var), "{%s}", r->identity_var);
    at = strstr(r->path, var);
    if (!at || strchr(d->token, '/'))
        return NULL;
    /* libcoap keys resources by the path without its leading '/'. */
    buf_append(&b, r->path + 1, (size_t)(at - r->path - 1));
    buf_append_str(&b, d->token);
    buf_append_str(&b, at + strlen(var));
    return buf_steal(&b);
}

static int add_resource(coap_context_t *ctx, const struct conf_route *r,
                        const struct conf_device *d, coap_method_handler_t other_methods)
{
    static const coap_request_t others[] = {COAP_REQUEST_POST,   COAP_REQUEST_PUT,
                                            COAP_REQUEST_DELETE, COAP_REQUEST_FETCH,
                                            COAP_REQUEST_PATCH,  COAP_REQUEST_IPATCH};
    char *path = device_path(r, d);
    struct obs_res *o;
    coap_str_const_t *uri;

    if (!path)
        return 0;
    o = calloc(1, sizeof(*o));
    uri = coap_new_str_const((const uint8_t *)path, strlen(path));
    free(path);
    if (!o || !uri) {
        free(o);
        coap_delete_str_const(uri);
        return -ENOMEM;
    }
    o->route = r;
    o->device = d;
    o->res =
        coap_resource_init(uri, COAP_RESOURCE_FLAGS_RELEASE_URI |
                                    (r->observe->confirmable ? COAP_RESOURCE_FLAGS_NOTIFY_CON
                                                             : COAP_RESOURCE_FLAGS_NOTIFY_NON));
    if (!o->res) {
        free(o);
        return -ENOMEM;
    }
    coap_register_request_handler(o->res, COAP_REQUEST_GET, handle_get);
    /* Other methods on this path are uplink requests (POST .../attributes). */
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        coap_register_request_handler(o->res, others[i], other_methods);
    coap_resource_set_get_observable(o->res, 1);
    coap_resource_set_userdata(o->res, o);
    coap_add_resource(ctx, o->res);
    o->next = O.list;
    O.list = o;
    return 0;
}

int south_observe_init(coap_context_t *ctx, const struct conf *conf,
                       coap_method_handler_t other_methods)
{
    size_t n = 0;
    int rc = 0;

    O.conf = conf;
    for (size_t i = 0; i < conf->n_routes; i++) {
        n += conf->routes[i].observe != NULL;
        O.any_queue |= conf->routes[i].observe && conf->routes[i].observe->queue;
    }
    if (O.any_queue) {
        O.sweep.cb = on_sweep;
        loop_timer_set(&O.sweep, 1000);
    }
    O.subs = calloc(n ? n : 1, sizeof(*O.subs));
    O.filters = calloc(n ? n : 1, sizeof(*O.filters));
    if (!O.subs || !O.filters)
        return -ENOMEM;
    for (size_t i = 0; i < conf->n_routes && rc == 0; i++) {
        const struct conf_route *r = &conf->routes[i];
        struct obs_sub *s;
        struct tmpl_str *t = NULL;
        struct buf b = BUF_INIT;
        char err[64];

        if (!r->observe)
            continue;
        s = &O.subs[O.n_subs];
        s->route = r;
        /* conf_route.c refuses malformed "$share" subscriptions: NULL cannot happen */
        s->device_level = tmpl_match_filter(r->observe->subscribe)
                              ? level_of_device(tmpl_match_filter(r->observe->subscribe))
                              : -1;
        rc = tmpl_str_parse(r->observe->subscribe, &t, err, sizeof(err));
        if (rc == 0)
            rc = tmpl_str_expand(t, plus_for_device, (void *)conf, 0, &b, NULL);
        tmpl_str_free(t);
        if (rc < 0) {
            buf_free(&b);
            log_msg(LOG_ERR, "south: bad observe subscription '%s' in route '%s'",
                    r->observe->subscribe, r->name);
            return rc;
        }
        s->filter = buf_steal(&b);
        s->match = tmpl_match_filter(s->filter);
        O.filters[O.n_subs++] = s->filter;
        for (size_t d = 0; d < conf->n_devices && rc == 0; d++)
            if (conf->devices[d].token)
                rc = add_resource(ctx, r, &conf->devices[d], other_methods);
    }
    return rc;
}

char *const *south_observe_filters(size_t *n)
{
    *n = O.n_subs;
    return O.filters;
}

static struct obs_res *find(const struct conf_route *r, const char *device)
{
    for (struct obs_res *o = O.list; o; o = o->next)
        if (o->route == r && strcmp(o->device->name, device) == 0)
            return o;
    return NULL;
}

static bool report_var(void *ctx, const char *name, struct tmpl_slice *v)
{
    const char *const *vars = ctx; /* device, gateway */

    v->s = !strcmp(name, "device") ? vars[0] : !strcmp(name, "gateway") ? vars[1] : NULL;
    if (!v->s)
        return false;
    v->len = strlen(v->s);
    return true;
}

/* A message that will not reach its device is said so on MQTT (an RPC error the backend
 * can act on), never dropped in silence. */
static void report(const struct obs_res *o, const struct msgq_item *it, const char *why)
{
    const struct conf_queue *q = o->route->observe->queue;
    struct buf topic = BUF_INIT, out = BUF_INIT;
    struct tmpl_str *t = NULL;
    char err[64];
    int rc = 0;

    log_msg(LOG_NOTICE, "south: not delivered route=%s device=\"%s\" id=%s reason=\"%s\"",
            o->route->name, o->device->name, it->id ? it->id : "-", why);
    if (!q->report_topic)
        return;
    const char *vars[] = {o->device->name, O.conf->gateway_name};
    rc = tmpl_str_parse(q->report_topic, &t, err, sizeof(err));
    if (rc == 0)
        rc = tmpl_str_expand(t, report_var, (void *)vars, TMPL_TOPIC, &topic, NULL);
    if (rc == 0) {
        buf_append_str(&out, "{\"device\":\"");
        buf_append_json_escaped(&out, o->device->name, strlen(o->device->name));
        buf_append_str(&out, "\",\"id\":");
        buf_append_str(&out, it->id ? it->id : "null");
        buf_append_str(&out, ",\"data\":{\"error\":\"");
        buf_append_str(&out, why);
        rc = buf_append_str(&out, "\"}}");
    }
    if (rc == 0)
        rc = north_publish((const char *)topic.data, out.data, out.len, 1, false);
    if (rc < 0)
        log_msg(LOG_WARNING, "south: cannot report route=%s device=\"%s\" id=%s rc=%d",
                o->route->name, o->device->name, it->id ? it->id : "-", rc);
    tmpl_str_free(t);
    buf_free(&topic);
    buf_free(&out);
}

/* data: the decoded message (after data_field), NULL when it is not JSON (queued as it is). */
static void enqueue(struct obs_res *o, struct json_object *data, const uint8_t *payload, size_t len)
{
    const struct conf_queue *q = o->route->observe->queue;
    struct json_object *id = NULL;
    struct msgq_item probe = {0};
    char *text, *id_text = NULL;

    if (data && json_object_is_type(data, json_type_object) &&
        json_object_object_get_ex(data, q->id_field, &id))
        id_text = strdup(json_object_to_json_string_ext(id, JSON_C_TO_STRING_PLAIN));
    text = data ? strdup(json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE))
                : strndup((const char *)payload, len);
    probe.id = id_text;
    if (!text || o->queue.n >= (size_t)q->max) {
        report(o, &probe, text ? "queue full" : "out of memory");
        free(text);
        free(id_text);
        return;
    }
    if (msgq_push(&o->queue, text, id_text, loop_now_ms() + (uint64_t)q->expiry * 1000u) < 0) {
        report(o, &probe, "out of memory");
        return;
    }
    O.waiting++;
    /* One line per RPC, at info: an operator sees what waits for a sleepy device. */
    log_msg(LOG_INFO, "south: queued route=%s device=\"%s\" id=%s waiting=%zu", o->route->name,
            o->device->name, id_text ? id_text : "-", o->queue.n);
    kick(o);
}

/* Which device, and what to notify, for one message on one route's subscription. */
static void deliver(const struct obs_sub *s, const char *device_from_topic, const uint8_t *payload,
                    size_t len)
{
    const struct conf_observe *ob = s->route->observe;
    struct json_object *doc = NULL, *v = NULL, *data = NULL;
    const char *device = device_from_topic;
    const char *skip = NULL; /* why the message is not for any device */
    bool fields = ob->device_field || ob->data_field || ob->require;
    struct obs_res *o;
    char *text = NULL, why[160];
    int observed, rc;

    /* The same decoder as device bodies: a number json-c would hold as infinity, 0 or a
     * clamped integer would reach JSON and CBOR observers as two different values. */
    rc = codec_decode(CONF_FMT_JSON, payload, len, NULL, &doc, why, sizeof(why));
    if (rc == -ERANGE) {
        log_msg(LOG_INFO, "south: message refused route=%s device=\"%s\" bytes=%zu reason=\"%s\"",
                s->route->name, device ? device : "-", len, why);
        goto out;
    }
    if (fields && (rc < 0 || !doc)) {
        skip = "not JSON";
        goto out;
    }
    if (ob->device_field) {
        if (!json_object_object_get_ex(doc, ob->device_field, &v) ||
            !json_object_is_type(v, json_type_string)) {
            skip = "no device field";
            goto out;
        }
        device = json_object_get_string(v);
    }
    data = doc;
    if (ob->data_field && !json_object_object_get_ex(doc, ob->data_field, &data)) {
        skip = "no data field";
        goto out;
    }
    /* The gateway's own uplink on a shared topic comes back too: it lacks this key. */
    if (ob->require && !json_object_object_get_ex(data, ob->require, NULL)) {
        skip = "no required key";
        goto out;
    }
    o = device ? find(s->route, device) : NULL;
    if (!o) {
        log_msg(LOG_DEBUG, "south: no observable resource route=%s device=\"%s\"", s->route->name,
                device ? device : "-");
        goto out;
    }
    if (ob->queue) {
        enqueue(o, rc == 0 ? data : NULL, payload, len);
        goto out;
    }
    if (ob->cache_shared)
        attrs_merge(o->device->name, ATTRS_SHARED, data);
    /* Without fields the message is notified with its own bytes. */
    text = fields ? strdup(json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN |
                                                                    JSON_C_TO_STRING_NOSLASHESCAPE))
                  : strndup((const char *)payload, len);
    if (!text)
        goto out;
    free(o->data);
    o->data = text;
    observed = coap_resource_notify_observers(o->res, NULL);
    stats_count(observed ? STATS_NOTIFIED : STATS_UNOBSERVED, s->route);
    log_msg(LOG_DEBUG, "south: notify route=%s device=\"%s\" bytes=%zu observed=%s", s->route->name,
            o->device->name, strlen(text), observed ? "yes" : "no");
out:
    if (skip)
        log_msg(LOG_DEBUG, "south: message skipped route=%s bytes=%zu reason=\"%s\"",
                s->route->name, len, skip);
    json_object_put(doc);
}

void south_observe_message(const char *topic, const uint8_t *payload, size_t len)
{
    bool matched = false;

    for (size_t i = 0; i < O.n_subs; i++) {
        char device[128] = "";
        if (O.subs[i].match &&
            filter_match(O.subs[i].match, topic, O.subs[i].device_level, device, sizeof(device))) {
            deliver(&O.subs[i], O.subs[i].device_level >= 0 ? device : NULL, payload, len);
            matched = true;
        }
    }
    if (!matched) /* the device level empty or too long for a device name */
        log_msg(LOG_DEBUG, "south: message for no observe route topic=%s", topic);
}

/*
 * What became of a CON notification. libcoap (4.3.1 and 4.3.5 alike) handles the empty ACK
 * of a notification inside coap_dispatch() and tells the application nothing: no response
 * handler, no event. It does report every other outcome through the NACK handler (no ACK
 * after the retransmissions, an RST, a session torn down), so a message leaves the
 * in-flight list in one of two ways:
 *  - a NACK for its message ID: back at the head of the queue;
 *  - a point where libcoap can hold no unanswered CON message for it any more, without a
 *    NACK having come: it was acknowledged, and is done. Those points are
 *    - libcoap's retransmission queue is empty after a pass (coap_can_exit());
 *    - its session ends: libcoap frees a server session only when nothing references it,
 *      and each CON message waiting for its ACK holds a reference (coap_wait_ack()) and
 *      a disconnect NACKs them all first;
 *    - MAX_TRANSMIT_WAIT has passed since it was sent (the sweep);
 *    - exit: south_observe_exit() disconnects the sessions that still have some, which
 *      NACKs what is unanswered.
 */
static void acknowledged(struct obs_res *o, struct msgq_item *it, const char *known)
{
    msgq_remove(&o->inflight, it);
    O.inflight--;
    log_msg(LOG_INFO, "south: acknowledged route=%s device=\"%s\" id=%s known=%s", o->route->name,
            o->device->name, it->id ? it->id : "-", known);
    msgq_item_free(it);
}

/* Every in-flight message sent on session (on any, when NULL) was acknowledged. */
static void settle(const void *session, const char *known)
{
    if (!O.inflight)
        return;
    for (struct obs_res *o = O.list; o; o = o->next) {
        struct msgq_item *it = o->inflight.head;
        while (it) {
            struct msgq_item *next = it->next;
            if (!session || it->sent_to == session)
                acknowledged(o, it, known);
            it = next;
        }
    }
}

/* A CON notification that failed: the message goes first again, for the device's next
 * observation or contact. Every NACK is final but an ICMP error's, after which libcoap keeps
 * retransmitting; a second NACK for the same message (4.3.5 may send two when a session is
 * torn down) finds nothing. */
void south_observe_nack(coap_session_t *session, coap_mid_t mid, coap_nack_reason_t reason)
{
    if (reason == COAP_NACK_ICMP_ISSUE || !O.inflight)
        return;
    for (struct obs_res *o = O.list; o; o = o->next)
        for (struct msgq_item *it = o->inflight.head; it; it = it->next)
            if (it->sent_to == session && it->sent_mid == mid) {
                msgq_remove(&o->inflight, it);
                O.inflight--;
                msgq_push_front(&o->queue, it);
                O.waiting++;
                if (!O.exiting)
                    log_msg(LOG_INFO,
                            "south: not acknowledged route=%s device=\"%s\" id=%s: "
                            "kept for the next contact",
                            o->route->name, o->device->name, it->id ? it->id : "-");
                return;
            }
}

/* A session that goes away had no unanswered CON message left (see above): what is still in
 * flight on it was acknowledged. */
void south_observe_session_gone(coap_session_t *session)
{
    settle(session, "session-end");
    for (struct obs_res *o = O.list; o; o = o->next)
        if (o->reg_session == session)
            o->reg_session = NULL;
}

void south_observe_after_io(coap_context_t *ctx)
{
    /* Checked only while something is in flight: coap_can_exit() walks every session when
     * the retransmission queue is empty. */
    if (O.inflight && coap_can_exit(ctx))
        settle(NULL, "queue-empty");
}

void south_observe_exit(void)
{
    O.exiting = true;
    for (;;) {
        struct msgq_item *it = NULL;
        coap_session_t *session;

        for (struct obs_res *o = O.list; o && !it; o = o->next)
            it = o->inflight.head;
        if (!it)
            return;
        session = it->sent_to;
        /* NACKs what the device has not acknowledged (back to the queue, counted as lost
         * below); the rest of the session's messages were acknowledged. */
        coap_session_disconnected(session, COAP_NACK_NOT_DELIVERABLE);
        settle(session, "exit");
    }
}

/* A device that sends anything is awake: what waits for it goes now (when it observes). */
void south_observe_device_seen(const char *device)
{
    if (!O.waiting)
        return; /* the common case, on every device request */
    for (struct obs_res *o = O.list; o; o = o->next)
        if (o->queue.n && strcmp(o->device->name, device) == 0)
            kick(o);
}

static void on_sweep(struct loop_timer *t)
{
    uint64_t now = loop_now_ms();

    for (struct obs_res *o = O.list; o; o = o->next) {
        struct msgq_item *it;

        if (!o->route->observe->queue)
            continue;
        while ((it = msgq_pop_expired(&o->queue, now)) != NULL) {
            O.waiting--;
            report(o, it, "expired");
            msgq_item_free(it);
        }
        /* No NACK within MAX_TRANSMIT_WAIT: the device acknowledged it. */
        for (it = o->inflight.head; it;) {
            struct msgq_item *next = it->next;
            if (it->sent_until_ms <= now)
                acknowledged(o, it, "timeout");
            it = next;
        }
    }
    loop_timer_set(t, 1000);
}

void south_observe_free(void)
{
    struct obs_res *o = O.list;

    loop_timer_cancel(&O.sweep);
    while (o) {
        struct obs_res *next = o->next;
        /* After south_observe_exit(), nothing acknowledged is left in flight. */
        if (o->queue.n || o->inflight.n)
            log_msg(LOG_WARNING, "south: %zu messages for device \"%s\" (route %s) lost at exit",
                    o->queue.n + o->inflight.n, o->device->name, o->route->name);
        msgq_clear(&o->queue);
        msgq_clear(&o->inflight);
        free(o->reg_text);
        free(o->data);
        free(o);
        o = next;
    }
    for (size_t i = 0; i < O.n_subs; i++)
        free(O.subs[i].filter);
    free(O.subs);
    free(O.filters);
    memset(&O, 0, sizeof(O));
}
