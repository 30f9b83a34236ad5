/* SPDX-License-Identifier: MIT */
/* The process's own sockets, for options the libraries that opened them do not offer
 * (Paho: TCP_NODELAY; libcoap: receive buffer size). */
#ifndef COAP2MQTT_SOCKETS_H
#define COAP2MQTT_SOCKETS_H

#include <sys/socket.h>

/* Called for each IPv4/IPv6 socket of the type; peer is NULL when it is not connected. */
typedef void (*sockets_fn)(int fd, const struct sockaddr_storage *local,
                           const struct sockaddr_storage *peer, void *arg);
/* @return how many sockets fn was called for. */
int sockets_each(int type, sockets_fn fn, void *arg);

#endif
