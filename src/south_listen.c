/* SPDX-License-Identifier: MIT */
/* The CoAP listeners: addresses resolved, checked free, bound by libcoap, buffers raised. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "coap2mqtt/log.h"
#include "coap2mqtt/sockets.h"
#include "south_internal.h"

/* Thousands of devices answering at once overflow the default UDP receive buffer (~200 KiB)
 * and libcoap offers no option for it: lost requests cost their devices a retransmission
 * (seconds). The listeners get 4 MiB; root may exceed net.core.rmem_max. */
#define SOUTH_RCVBUF (4 << 20)

static void raise_rcvbuf(int fd, const struct sockaddr_storage *local,
                         const struct sockaddr_storage *peer, void *arg)
{
    unsigned port = *(unsigned *)arg;
    unsigned local_port =
        ntohs(local->ss_family == AF_INET ? ((const struct sockaddr_in *)local)->sin_port
                                          : ((const struct sockaddr_in6 *)local)->sin6_port);
    int size = SOUTH_RCVBUF;

    if (peer || local_port != port)
        return;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

static const char *scheme(const struct conf_listener *l)
{
    return l->scheme == CONF_SCHEME_COAPS ? "coaps" : "coap";
}

static int resolve(const struct conf_listener *l, coap_address_t *addr)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    int rc;

    snprintf(port, sizeof(port), "%u", l->port);
    rc = getaddrinfo(l->host, port, &hints, &ai);
    if (rc != 0 || !ai) {
        log_msg(LOG_ERR, "south: cannot resolve listener host=%s: %s", l->host, gai_strerror(rc));
        return -EINVAL;
    }
    coap_address_init(addr);
    addr->size = ai->ai_addrlen;
    memcpy(&addr->addr, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

/* libcoap binds its UDP sockets with SO_REUSEADDR, so a second gateway on the same address
 * binds too and the two share (and fight over) every device's datagrams. A socket without
 * SO_REUSEADDR, bound as libcoap binds (dual-stack for IPv6), fails if anyone holds it. */
int south_listen_probe(const struct conf_listener *l)
{
    coap_address_t addr;
    int off = 0, fd, rc = resolve(l, &addr), err = 0;

    if (rc < 0)
        return rc;
    fd = socket(addr.addr.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0; /* libcoap will say what is wrong */
    if (addr.addr.sa.sa_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    if (bind(fd, &addr.addr.sa, addr.size) < 0)
        err = errno;
    close(fd);
    if (err == EADDRINUSE) {
        log_msg(LOG_ERR,
                "south: cannot listen on %s://%s%s%s:%u: address already in use "
                "(another coap2mqtt or CoAP server?)",
                scheme(l), strchr(l->host, ':') ? "[" : "", l->host,
                strchr(l->host, ':') ? "]" : "", l->port);
        return -EADDRINUSE;
    }
    return 0;
}

int south_listen(coap_context_t *ctx, const struct conf_listener *l)
{
    coap_address_t addr;
    coap_proto_t proto = l->scheme == CONF_SCHEME_COAPS ? COAP_PROTO_DTLS : COAP_PROTO_UDP;
    unsigned listen_port = l->port;
    int rc = resolve(l, &addr);

    if (rc < 0)
        return rc;
    if (!coap_new_endpoint(ctx, &addr, proto)) {
        log_msg(LOG_ERR, "south: cannot listen on %s://%s%s%s:%u", scheme(l),
                strchr(l->host, ':') ? "[" : "", l->host, strchr(l->host, ':') ? "]" : "", l->port);
        return -EADDRINUSE;
    }
    sockets_each(SOCK_DGRAM, raise_rcvbuf, &listen_port);
    log_msg(LOG_INFO, "south: listening on %s://%s%s%s:%u", scheme(l),
            strchr(l->host, ':') ? "[" : "", l->host, strchr(l->host, ':') ? "]" : "", l->port);
    return 0;
}
