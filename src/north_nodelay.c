/* SPDX-License-Identifier: MIT */
/*
 * Paho 1.3.12 leaves Nagle's algorithm on for its MQTT socket and offers no option to turn it
 * off (paho.mqtt.c issue #530): small publishes then wait up to 40 ms for the broker's
 * delayed ACK. The gateway has no TCP socket of its own (CoAP is UDP), so after each
 * connection it sets TCP_NODELAY on every connected TCP socket of the process: Paho's.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "coap2mqtt/log.h"
#include "coap2mqtt/sockets.h"
#include "north_internal.h"

static void nodelay(int fd, const struct sockaddr_storage *local,
                    const struct sockaddr_storage *peer, void *arg)
{
    int on = 1;

    (void)local;
    if (peer && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == 0)
        (*(int *)arg)++;
}

int north_set_nodelay(void)
{
    int set = 0;

    sockets_each(SOCK_STREAM, nodelay, &set);
    log_msg(LOG_DEBUG, "north: TCP_NODELAY set on %d socket(s)", set);
    return set;
}
