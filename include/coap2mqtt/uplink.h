/* SPDX-License-Identifier: MIT */
/*
 * The uplink pipeline: a device request (already reassembled, transport-neutral) is matched to
 * a route, its device identified, its body decoded and shaped, and the result published.
 * Knows nothing of libcoap, so it is unit-tested without a network.
 */
#ifndef COAP2MQTT_UPLINK_H
#define COAP2MQTT_UPLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coap2mqtt/answer_later.h"
#include "coap2mqtt/conf.h"
#include "coap2mqtt/log.h"
#include "coap2mqtt/route.h"
#include "coap2mqtt/tmpl.h"

enum uplink_auth {
    UPLINK_AUTH_NONE, /* plain CoAP */
    UPLINK_AUTH_PSK,  /* DTLS-PSK: auth_id = PSK identity */
    UPLINK_AUTH_CERT, /* DTLS with a client certificate: auth_id = its CN */
    UPLINK_AUTH_ANON, /* DTLS without client credentials (server certificate only) */
};

struct device;

struct uplink_req {
    unsigned method; /* CoAP request code 1..7 */
    const struct tmpl_slice *segs;
    size_t n_segs;
    const struct tmpl_slice *query;
    size_t n_query;
    int content_format; /* CODEC_CF_NONE when absent */
    const uint8_t *body;
    size_t len;
    enum uplink_auth auth;
    const char *auth_id;
    size_t auth_id_len;
    const char *peer; /* printable peer address, for logs */
    bool confirmable; /* a CON request: can wait for the broker (ack: broker) */
    /* Makes the handle of an answer that comes later (waiting for the broker's
     * acknowledgement, or a reply from MQTT); NULL when answers cannot wait. */
    struct answer_later *(*waiter_new)(const void *ctx);
    const void *waiter_ctx;
};

struct uplink_res {
    unsigned code;    /* class * 100 + detail: 204 = 2.04, 401 = 4.01 */
    unsigned max_age; /* seconds; sent with 5.03 */
    char diag[160];   /* diagnostic payload of an error response */
    bool pending;     /* taken; the answer comes later through waiter (`code` once the broker
                       * acknowledges, or a reply from MQTT) */
    struct answer_later *waiter;    /* what waiter_new() made; the caller frees it when !pending */
    const struct conf_route *route; /* the matched route, NULL when none */
    const char *device; /* the device identified, NULL when none (valid until the next call) */
    struct device *dev;
};

/* Publish hook (the spool): 0 when taken, -ENOBUFS when the gateway cannot take more
 * (5.03). waiter is told when the broker has the message (NULL: nobody waits). */
struct uplink_ops {
    int (*publish)(void *ctx, const char *topic, const uint8_t *payload, size_t len, int qos,
                   bool retain, struct answer_later *waiter);
    /* Request routes: publish now and answer waiter with the reply on reply_topic. 0 when
     * taken (waiter is then the callee's), -ENOTCONN / -ENOBUFS (5.03), other < 0 (5.00). */
    int (*request)(void *ctx, const struct conf_route *route, const char *device, const char *topic,
                   const uint8_t *payload, size_t len, const char *reply_topic,
                   const char *request_id, struct answer_later *waiter);
    void *ctx;
};

/* "south: rejected ..." lines: any peer can cause them, so they are rate-limited. */
extern struct log_limit uplink_rejected_log;

int uplink_init(const struct conf *conf, const struct route_table *routes,
                const struct uplink_ops *ops);
void uplink_free(void);
void uplink_handle(const struct uplink_req *req, struct uplink_res *res);
/* The first block of a block-wise upload (req->len: the size it declares, 0 if unknown):
 * res->code 0 when route, method, Content-Format, size and a token or DTLS identity allow
 * it, else the error it would get, as uplink_handle() answers it. */
void uplink_precheck(const struct uplink_req *req, struct uplink_res *res);

#endif
