/* SPDX-License-Identifier: MIT */
/* Counters: totals and per route, published on a retained topic and logged on SIGUSR1. */
#ifndef COAP2MQTT_STATS_H
#define COAP2MQTT_STATS_H

#include "coap2mqtt/buf.h"
#include "coap2mqtt/conf.h"

enum stats_counter {
    STATS_RECEIVED,                   /* requests that reached the pipeline */
    STATS_ACCEPTED,                   /* readings taken into the spool */
    STATS_DUPLICATES,                 /* retransmissions answered from the duplicate cache */
    STATS_REFUSED,                    /* 5.03: the gateway could not take more */
    STATS_REJECTED,                   /* 4.xx answers */
    STATS_NOTIFIED,                   /* observe pushes that reached at least one observer */
    STATS_UNOBSERVED,                 /* observe pushes for a device nobody observed */
    STATS__ROUTE_COUNT,               /* the counters above are also kept per route */
    STATS_PINGS = STATS__ROUTE_COUNT, /* keepalive pings sent to idle devices */
    STATS_PEERS_LOST, /* devices that stopped answering pings (observations dropped) */
    STATS__COUNT
};

int stats_init(const struct conf *conf);
void stats_free(void);
/* route may be NULL (no route matched). */
void stats_count(enum stats_counter c, const struct conf_route *route);
unsigned long long stats_get(enum stats_counter c);
/* The whole document: {"received":..,...,"routes":{"name":{...}}}. */
int stats_json(struct buf *out);
/* Publish now and every stats.interval seconds (when a topic is configured). */
void stats_start(void);
void stats_log(void);

#endif
