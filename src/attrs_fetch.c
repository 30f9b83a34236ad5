/* SPDX-License-Identifier: MIT */
/* Attribute reads that miss the cache, asked of the server and matched by id. */
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
#include "coap2mqtt/north.h"
#include "coap2mqtt/tmpl.h"
#include "coap2mqtt/waitlist.h"

#define FETCH_MAX_WAITING 64
/* A server that did not answer is not asked about the same keys again for this long. */
#define FETCH_RETRY_MS 60000u

struct fetch {
    struct waiting w; /* first: the waitlist links and times it */
    const struct conf_route *route;
    char *device, *client_keys, *shared_keys;
    unsigned id[2];              /* per scope, 0 when that scope is not asked */
    struct json_object *keys[2]; /* what was asked, per scope */
    struct answer_later *waiter;
};

static struct {
    const struct conf *conf;
    request_answer_fn answer;
    request_drop_fn drop;
    char **filters;
    size_t n_filters;
    struct waitlist waiting;
    unsigned next_id;
} F;

static char *expand_gateway(const char *tmpl)
{
    char *out = NULL;

    return tmpl_expand_one(tmpl, "gateway", F.conf->gateway_name, TMPL_TOPIC, &out) < 0 ? NULL
                                                                                        : out;
}

static void fetch_free(struct fetch *f)
{
    free(f->device);
    free(f->client_keys);
    free(f->shared_keys);
    json_object_put(f->keys[0]);
    json_object_put(f->keys[1]);
    free(f);
}

/* Everything asked is in (or given up): the read is answered from the cache. */
static void finish(struct fetch *f)
{
    struct buf out = BUF_INIT;

    if (attrs_read(f->device, f->client_keys, f->shared_keys, &out) == 0)
        F.answer(f->waiter, 205, out.data, out.len);
    else
        F.answer(f->waiter, 500, (const uint8_t *)"out of memory", 13);
    buf_free(&out);
    fetch_free(f);
}

static void on_timeout(struct loop_timer *t)
{
    uint64_t now = loop_now_ms();
    struct waiting *w;

    (void)t;
    while ((w = waitlist_pop_due(&F.waiting, now)) != NULL) {
        struct fetch *f = (struct fetch *)w;

        log_msg(LOG_WARNING,
                "attrs: no answer from the server route=%s device=\"%s\": "
                "answering from the cache",
                f->route->name, f->device);
        for (int s = 0; s < 2; s++)
            if (f->id[s])
                attrs_mark_absent(f->device, (enum attrs_scope)s, f->keys[s], now + FETCH_RETRY_MS);
        finish(f);
    }
}

/* {"id":N,"device":D,"value":v} (one key asked) or {"id":N,"device":D,"values":{..}}. */
static void on_response(const char *topic, const uint8_t *payload, size_t len)
{
    struct json_object *doc = NULL, *v;
    char why[160] = "no numeric id";
    unsigned id;

    /* The devices' decoder: a value the cache keeps must read the same as JSON and CBOR. */
    if (codec_decode(CONF_FMT_JSON, payload, len, NULL, &doc, why, sizeof(why)) < 0 || !doc ||
        !json_object_object_get_ex(doc, "id", &v) || !json_object_is_type(v, json_type_int)) {
        log_msg(LOG_INFO, "attrs: unusable attribute response topic=%s reason=\"%s\"", topic, why);
        json_object_put(doc);
        return;
    }
    id = (unsigned)json_object_get_int64(v);
    for (struct waiting *w = F.waiting.head; w; w = w->next) {
        struct fetch *f = (struct fetch *)w;
        for (int s = 0; s < 2; s++) {
            struct json_object *values = NULL, *one = NULL, *merged;
            if (f->id[s] != id)
                continue;
            if (json_object_object_get_ex(doc, "values", &values) &&
                json_object_is_type(values, json_type_object)) {
                attrs_merge(f->device, (enum attrs_scope)s, values);
            } else if (json_object_object_get_ex(doc, "value", &one) &&
                       json_object_array_length(f->keys[s]) == 1) {
                merged = json_object_new_object();
                json_object_object_add(
                    merged, json_object_get_string(json_object_array_get_idx(f->keys[s], 0)),
                    json_object_get(one));
                attrs_merge(f->device, (enum attrs_scope)s, merged);
                json_object_put(merged);
            }
            /* What the server did not return, it does not have: not asked again. */
            attrs_mark_absent(f->device, (enum attrs_scope)s, f->keys[s], UINT64_MAX);
            log_msg(LOG_DEBUG, "attrs: server answered route=%s device=\"%s\" id=%u",
                    f->route->name, f->device, id);
            f->id[s] = 0;
            if (!f->id[0] && !f->id[1]) {
                waitlist_remove(&F.waiting, w);
                finish(f);
            }
            json_object_put(doc);
            return;
        }
    }
    log_msg(LOG_DEBUG, "attrs: response nobody waits for id=%u", id);
    json_object_put(doc);
}

int attrs_fetch_init(const struct conf *conf, request_answer_fn answer, request_drop_fn drop)
{
    memset(&F, 0, sizeof(F));
    F.conf = conf;
    F.answer = answer;
    F.drop = drop;
    F.waiting.timer.cb = on_timeout;
    F.next_id = (unsigned)(loop_wall_ms() % 1000000u) * 1000u + 1u;
    for (size_t i = 0; i < conf->n_routes; i++) {
        const struct conf_observe *o = conf->routes[i].observe;
        if (!o || !o->fetch)
            continue;
        char **grown = realloc(F.filters, (F.n_filters + 1) * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        F.filters = grown;
        F.filters[F.n_filters] = expand_gateway(o->fetch->response_topic);
        if (!F.filters[F.n_filters])
            return -ENOMEM;
        F.n_filters++;
    }
    return F.n_filters ? north_subscribe(F.filters, F.n_filters, on_response) : 0;
}

static int ask(struct fetch *f, int scope)
{
    struct json_object *req = json_object_new_object();
    char *topic = expand_gateway(f->route->observe->fetch->topic);
    const char *text;
    int rc = -ENOMEM;

    f->id[scope] = F.next_id++;
    if (req && topic) {
        json_object_object_add(req, "id", json_object_new_int64(f->id[scope]));
        json_object_object_add(req, "device", json_object_new_string(f->device));
        json_object_object_add(req, "client", json_object_new_boolean(scope == ATTRS_CLIENT));
        json_object_object_add(req, "keys", json_object_get(f->keys[scope]));
        text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE);
        rc = north_publish(topic, text, strlen(text), 1, false);
    }
    json_object_put(req);
    free(topic);
    return rc;
}

int attrs_fetch_start(const struct conf_route *route, const char *device, const char *client_keys,
                      const char *shared_keys, struct answer_later *waiter)
{
    uint64_t now = loop_now_ms();
    struct fetch *f;
    int rc = 0;

    if (!route->observe->fetch)
        return -ENOENT;
    if (!north_connected() || F.waiting.n >= FETCH_MAX_WAITING)
        return -ENOTCONN;
    f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->keys[ATTRS_CLIENT] = attrs_missing(device, ATTRS_CLIENT, client_keys, now);
    f->keys[ATTRS_SHARED] = attrs_missing(device, ATTRS_SHARED, shared_keys, now);
    if (!f->keys[0] && !f->keys[1]) {
        fetch_free(f);
        return -ENOENT;
    }
    f->route = route;
    f->device = strdup(device);
    f->client_keys = client_keys ? strdup(client_keys) : NULL;
    f->shared_keys = shared_keys ? strdup(shared_keys) : NULL;
    for (int s = 0; s < 2 && rc == 0; s++)
        if (f->keys[s])
            rc = ask(f, s);
    if (rc < 0 || !f->device || (client_keys && !f->client_keys) ||
        (shared_keys && !f->shared_keys)) {
        fetch_free(f);
        return rc < 0 ? rc : -ENOMEM;
    }
    f->waiter = waiter;
    waitlist_add(&F.waiting, &f->w, now + (uint64_t)route->observe->fetch->timeout * 1000u);
    log_msg(LOG_DEBUG, "attrs: asked the server route=%s device=\"%s\"", route->name, device);
    return 0;
}

void attrs_fetch_free(void)
{
    loop_timer_cancel(&F.waiting.timer);
    while (F.waiting.head) {
        struct fetch *f = (struct fetch *)F.waiting.head;
        F.waiting.head = f->w.next;
        if (F.drop)
            F.drop(f->waiter);
        fetch_free(f);
    }
    for (size_t i = 0; i < F.n_filters; i++)
        free(F.filters[i]);
    free(F.filters);
    memset(&F, 0, sizeof(F));
}
