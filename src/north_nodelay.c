/* SPDX-License-Identifier: MIT */
/*
 * Paho 1.3.12 leaves Nagle's algorithm on for its MQTT socket and offers no option to turn it
 * off (paho.mqtt.c issue #530): small publishes then wait up to 40 ms for the broker's
 * delayed ACK. The gateway has no TCP socket of its own (CoAP is UDP), so after each
 * connection it sets TCP_NODELAY on every connected TCP socket of the process: Paho's.
 */
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "coap2mqtt/log.h"
#include "north_internal.h"

int north_set_nodelay(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int set = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name), type = 0, on = 1;
        socklen_t len = sizeof(type);
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);

        if (fd <= 2 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
            type != SOCK_STREAM || getpeername(fd, (struct sockaddr *)&peer, &plen) < 0 ||
            (peer.ss_family != AF_INET && peer.ss_family != AF_INET6))
            continue;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == 0)
            set++;
    }
    closedir(d);
    log_msg(LOG_DEBUG, "north: TCP_NODELAY set on %d socket(s)", set);
    return set;
}
