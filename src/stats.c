/* SPDX-License-Identifier: MIT */
/* Counters of what the gateway did, as one JSON document: retained on MQTT, logged on demand. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/log.h"
#include "coap2mqtt/loop.h"
#include "coap2mqtt/north.h"
#include "coap2mqtt/south.h"
#include "coap2mqtt/spool.h"
#include "coap2mqtt/stats.h"
#include "coap2mqtt/tmpl.h"

static const char *const names[STATS__COUNT] = {
    [STATS_RECEIVED] = "received",     [STATS_ACCEPTED] = "accepted",
    [STATS_DUPLICATES] = "duplicates", [STATS_REFUSED] = "refused_503",
    [STATS_REJECTED] = "rejected_4xx", [STATS_NOTIFIED] = "notified",
    [STATS_UNOBSERVED] = "unobserved", [STATS_PINGS] = "keepalive_pings",
    [STATS_PEERS_LOST] = "peers_lost",
};

static struct {
    const struct conf *conf;
    unsigned long long total[STATS__COUNT];
    unsigned long long (*per_route)[STATS__COUNT];
    char *topic;
    struct loop_timer timer;
} S;

int stats_init(const struct conf *conf)
{
    memset(&S, 0, sizeof(S));
    S.conf = conf;
    S.per_route = calloc(conf->n_routes ? conf->n_routes : 1, sizeof(*S.per_route));
    if (!S.per_route)
        return -ENOMEM;
    if (conf->stats.topic) {
        int rc =
            tmpl_expand_one(conf->stats.topic, "gateway", conf->gateway_name, TMPL_TOPIC, &S.topic);
        if (rc < 0) {
            log_msg(LOG_ERR, "stats: bad topic '%s' (only {gateway} is known)", conf->stats.topic);
            return rc;
        }
    }
    return 0;
}

void stats_free(void)
{
    loop_timer_cancel(&S.timer);
    free(S.per_route);
    free(S.topic);
    memset(&S, 0, sizeof(S));
}

void stats_count(enum stats_counter c, const struct conf_route *route)
{
    S.total[c]++;
    if (route && S.conf && route >= S.conf->routes && route < S.conf->routes + S.conf->n_routes)
        S.per_route[route - S.conf->routes][c]++;
}

unsigned long long stats_get(enum stats_counter c)
{
    return S.total[c];
}

int stats_json(struct buf *out)
{
    const struct north_counters *n = north_counters();
    int rc = buf_append_byte(out, '{');

    for (int c = 0; c < STATS__COUNT && rc == 0; c++)
        rc = buf_printf(out, "\"%s\":%llu,", names[c], S.total[c]);
    if (rc == 0)
        rc = buf_printf(out,
                        "\"published\":%llu,\"acknowledged\":%llu,\"send_failures\":%llu,"
                        "\"resent\":%llu,\"connections\":%llu,\"spooled\":%zu,"
                        "\"spool_bytes\":%zu,\"in_flight\":%zu,\"sessions\":%u,"
                        "\"device_sessions\":%u,\"uploads\":%zu,\"upload_bytes\":%zu,\"routes\":{",
                        n->sent, n->acked, n->send_failures, n->resent, n->reconnects,
                        spool_depth(), spool_bytes(), spool_inflight(), south_session_count(),
                        south_session_trusted_count(), south_upload_count(), south_upload_bytes());
    for (size_t r = 0; S.conf && r < S.conf->n_routes && rc == 0; r++) {
        rc = buf_append_str(out, r ? ",\"" : "\"");
        if (rc == 0)
            rc = buf_append_json_escaped(out, S.conf->routes[r].name,
                                         strlen(S.conf->routes[r].name));
        if (rc == 0)
            rc = buf_append_str(out, "\":{");
        for (int c = 0; c < STATS__ROUTE_COUNT && rc == 0; c++)
            rc = buf_printf(out, "%s\"%s\":%llu", c ? "," : "", names[c], S.per_route[r][c]);
        if (rc == 0)
            rc = buf_append_byte(out, '}');
    }
    return rc ? rc : buf_append_str(out, "}}");
}

static void publish_now(void)
{
    struct buf b = BUF_INIT;

    if (stats_json(&b) == 0 && north_connected())
        north_publish(S.topic, b.data, b.len, 0, true);
    buf_free(&b);
}

static void on_timer(struct loop_timer *t)
{
    publish_now();
    loop_timer_set(t, (uint64_t)S.conf->stats.interval * 1000u);
}

void stats_start(void)
{
    if (!S.topic)
        return;
    S.timer.cb = on_timer;
    loop_timer_set(&S.timer, (uint64_t)S.conf->stats.interval * 1000u);
}

void stats_log(void)
{
    struct buf b = BUF_INIT;

    if (stats_json(&b) == 0)
        log_msg(LOG_NOTICE, "stats: %s", (const char *)b.data);
    buf_free(&b);
}
