/* SPDX-License-Identifier: MIT */
/* Device requests answered from MQTT: pending requests matched to replies by topic. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "coap2mqtt/buf.h"
#include "coap2mqtt/codec.h"
#include "coap2mqtt/log.h"
#include "coap2mqtt/loop.h"
#include "coap2mqtt/north.h"
#include "coap2mqtt/request.h"
#include "coap2mqtt/tmpl.h"
#include "coap2mqtt/waitlist.h"

/* A device waits on each: bounded so a flood of requests cannot take all memory. */
#define REQUEST_MAX_WAITING 256

struct pending {
    struct waiting w; /* first: the waitlist links and times it */
    const struct conf_route *route;
    char *reply_topic;
    char *device;
    struct answer_later *waiter;
};

static struct {
    const struct conf *conf;
    request_answer_fn answer;
    request_drop_fn drop;
    char **filters;
    size_t n_filters;
    struct waitlist waiting;
} R;

static void free_pending(struct pending *p)
{
    free(p->reply_topic);
    free(p->device);
    free(p);
}

static void on_timeout(struct loop_timer *t)
{
    struct waiting *w;

    (void)t;
    while ((w = waitlist_pop_due(&R.waiting, loop_now_ms())) != NULL) {
        struct pending *p = (struct pending *)w;
        char diag[80];
        int n = snprintf(diag, sizeof(diag), "no reply within %d s", p->route->request->timeout);

        log_msg(LOG_INFO, "request: timed out route=%s device=\"%s\" reply_topic=%s",
                p->route->name, p->device ? p->device : "-", p->reply_topic);
        R.answer(p->waiter, 504, (const uint8_t *)diag, (size_t)n);
        free_pending(p);
    }
}

/* A JSON reply with a number the gateway cannot hold (1e999): the device gets 5.02 Bad
 * Gateway with the codec's diagnostic. Any other reply goes as it is (JSON, or octets). */
static bool reply_out_of_range(const uint8_t *payload, size_t len, char *diag, size_t diaglen)
{
    struct json_object *doc = NULL;
    int rc = codec_decode(CONF_FMT_JSON, payload, len, NULL, &doc, diag, diaglen);

    json_object_put(doc);
    return rc == -ERANGE;
}

static void on_reply(const char *topic, const uint8_t *payload, size_t len)
{
    char diag[128];

    for (struct waiting *w = R.waiting.head; w; w = w->next) {
        struct pending *p = (struct pending *)w;

        if (strcmp(p->reply_topic, topic) != 0)
            continue;
        waitlist_remove(&R.waiting, w);
        if (reply_out_of_range(payload, len, diag, sizeof(diag))) {
            /* as JSON it would be mislabelled octets, as CBOR a different number */
            log_msg(LOG_INFO, "request: reply refused route=%s device=\"%s\" reason=\"%s\"",
                    p->route->name, p->device ? p->device : "-", diag);
            R.answer(p->waiter, 502, (const uint8_t *)diag, strlen(diag));
        } else {
            log_msg(LOG_DEBUG, "request: answered route=%s device=\"%s\" bytes=%zu", p->route->name,
                    p->device ? p->device : "-", len);
            R.answer(p->waiter, 205, payload, len);
        }
        free_pending(p);
        return;
    }
    /* Late (after 5.04), a duplicate, or another gateway's: nobody waits for it. */
    log_msg(LOG_DEBUG, "request: reply nobody waits for topic=%s", topic);
}

int request_init(const struct conf *conf, request_answer_fn answer, request_drop_fn drop)
{
    memset(&R, 0, sizeof(R));
    R.conf = conf;
    R.answer = answer;
    R.drop = drop;
    R.waiting.timer.cb = on_timeout;
    for (size_t i = 0; i < conf->n_routes; i++)
        R.n_filters += conf->routes[i].request != NULL;
    if (!R.n_filters)
        return 0;
    R.filters = calloc(R.n_filters, sizeof(*R.filters));
    if (!R.filters)
        return -ENOMEM;
    R.n_filters = 0;
    for (size_t i = 0; i < conf->n_routes; i++) {
        if (!conf->routes[i].request)
            continue;
        R.filters[R.n_filters] =
            tmpl_topic_filter(conf->routes[i].request->reply_topic, conf->gateway_name);
        if (!R.filters[R.n_filters])
            return -ENOMEM;
        R.n_filters++;
    }
    return north_subscribe(R.filters, R.n_filters, on_reply);
}

int request_send(void *ctx, const struct conf_route *route, const char *device, const char *topic,
                 const uint8_t *payload, size_t len, const char *reply_topic,
                 const char *request_id, struct answer_later *waiter)
{
    struct pending *p;
    int rc;

    (void)ctx;
    if (R.waiting.n >= REQUEST_MAX_WAITING)
        return -ENOBUFS;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->route = route;
    p->reply_topic = strdup(reply_topic);
    p->device = device ? strdup(device) : NULL;
    if (!p->reply_topic || (device && !p->device)) {
        free_pending(p);
        return -ENOMEM;
    }
    /* Replies arrive as loop jobs: registering after the publish cannot miss one. */
    rc = north_publish_request(topic, payload, len, route->qos, reply_topic, request_id);
    if (rc < 0) {
        free_pending(p);
        return rc;
    }
    p->waiter = waiter;
    waitlist_add(&R.waiting, &p->w, loop_now_ms() + (uint64_t)route->request->timeout * 1000u);
    log_msg(LOG_DEBUG, "request: sent route=%s device=\"%s\" topic=%s reply_topic=%s", route->name,
            device ? device : "-", topic, reply_topic);
    return 0;
}

size_t request_waiting(void)
{
    return R.waiting.n;
}

void request_free(void)
{
    struct waiting *w;

    loop_timer_cancel(&R.waiting.timer);
    while ((w = R.waiting.head) != NULL) {
        struct pending *p = (struct pending *)w;
        R.waiting.head = w->next;
        if (R.drop)
            R.drop(p->waiter);
        free_pending(p);
    }
    for (size_t i = 0; i < R.n_filters; i++)
        free(R.filters[i]);
    free(R.filters);
    memset(&R, 0, sizeof(R));
}
