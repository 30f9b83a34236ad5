/* SPDX-License-Identifier: MIT */
/* Walk the process's sockets through /proc/self/fd. */
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>

#include "coap2mqtt/sockets.h"

int sockets_each(int type, sockets_fn fn, void *arg)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name), t = 0;
        socklen_t len = sizeof(t);
        struct sockaddr_storage local, peer;
        socklen_t llen = sizeof(local), plen = sizeof(peer);
        bool connected;

        if (fd <= 2 || fd == dirfd(d) || getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &len) < 0 ||
            t != type || getsockname(fd, (struct sockaddr *)&local, &llen) < 0 ||
            (local.ss_family != AF_INET && local.ss_family != AF_INET6))
            continue;
        connected = getpeername(fd, (struct sockaddr *)&peer, &plen) == 0;
        fn(fd, &local, connected ? &peer : NULL, arg);
        n++;
    }
    closedir(d);
    return n;
}
