/* SPDX-License-Identifier: MIT */
/*
 * Keepalive for server sessions: libcoap 4.3.1 pings only from client sessions, so the
 * gateway pings idle device sessions itself (keeping NAT bindings warm) and watches the NACK
 * handler: a ping that gets no answer after all retransmissions means the device is gone,
 * and its observations are dropped.
 */
#include <stdlib.h>

#include "coap2mqtt/log.h"
#include "coap2mqtt/loop.h"
#include "coap2mqtt/stats.h"
#include "south_internal.h"

struct ka_session {
    coap_session_t *session;
    uint64_t last_ms; /* last request or pong */
    coap_mid_t ping;  /* outstanding ping, or COAP_INVALID_MID */
    struct ka_session *next;
};

static struct {
    uint64_t idle_ms; /* 0: off */
    struct ka_session *list;
    struct loop_timer timer;
} K;

static struct ka_session *find(const coap_session_t *s)
{
    for (struct ka_session *k = K.list; k; k = k->next)
        if (k->session == s)
            return k;
    return NULL;
}

void south_keepalive_session_new(coap_session_t *s)
{
    struct ka_session *k;

    if (!K.idle_ms || find(s))
        return;
    k = calloc(1, sizeof(*k));
    if (!k)
        return;
    k->session = s;
    k->last_ms = loop_now_ms();
    k->ping = COAP_INVALID_MID;
    k->next = K.list;
    K.list = k;
}

void south_keepalive_session_del(coap_session_t *s)
{
    for (struct ka_session **pp = &K.list; *pp; pp = &(*pp)->next) {
        if ((*pp)->session == s) {
            struct ka_session *k = *pp;
            *pp = k->next;
            free(k);
            return;
        }
    }
}

void south_keepalive_touch(coap_session_t *s)
{
    struct ka_session *k = find(s);

    if (k)
        k->last_ms = loop_now_ms();
}

static void on_pong(coap_session_t *s, const coap_pdu_t *received, const coap_mid_t mid)
{
    struct ka_session *k = find(s);

    (void)received;
    if (k && k->ping == mid) {
        k->ping = COAP_INVALID_MID;
        k->last_ms = loop_now_ms();
    }
}

void south_keepalive_nack(coap_session_t *s, coap_mid_t mid, coap_nack_reason_t reason)
{
    struct ka_session *k = K.idle_ms ? find(s) : NULL;

    if (!k || k->ping != mid)
        return;
    k->ping = COAP_INVALID_MID;
    k->last_ms = loop_now_ms();
    /* The answer to a ping is an RST; libcoap 4.3.1 reports it as a NACK unless its own
     * (client-only) keepalive is on: the device is alive. */
    if (reason != COAP_NACK_TOO_MANY_RETRIES)
        return;
    stats_count(STATS_PEERS_LOST, NULL);
    log_msg(LOG_INFO, "south: peer stopped answering peer=%s: observations dropped",
            coap_session_str(s));
    /* Drops the session's observers; libcoap reaps the idle session later. */
    coap_session_disconnected(s, COAP_NACK_TOO_MANY_RETRIES);
}

static void on_timer(struct loop_timer *t)
{
    uint64_t now = loop_now_ms();

    for (struct ka_session *k = K.list; k; k = k->next) {
        if (k->ping != COAP_INVALID_MID || now - k->last_ms < K.idle_ms)
            continue;
        k->ping = coap_session_send_ping(k->session);
        if (k->ping != COAP_INVALID_MID)
            stats_count(STATS_PINGS, NULL);
        log_msg(LOG_DEBUG, "south: keepalive ping peer=%s mid=%d", coap_session_str(k->session),
                k->ping);
    }
    loop_timer_set(t, K.idle_ms / 4 ? K.idle_ms / 4 : 1);
}

void south_keepalive_init(coap_context_t *ctx, unsigned seconds)
{
    K.idle_ms = (uint64_t)seconds * 1000u;
    if (!K.idle_ms)
        return;
    coap_register_pong_handler(ctx, on_pong);
    K.timer.cb = on_timer;
    loop_timer_set(&K.timer, K.idle_ms / 4 ? K.idle_ms / 4 : 1);
}

void south_keepalive_free(void)
{
    loop_timer_cancel(&K.timer);
    while (K.list) {
        struct ka_session *next = K.list->next;
        free(K.list);
        K.list = next;
    }
    K.idle_ms = 0;
}
