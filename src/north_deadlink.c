/* SPDX-License-Identifier: MIT */
/*
 * Paho 1.3.12 keeps a QoS 1/2 PUBLISH in its session for resending before it writes it, and
 * when that first write fails on a link that has just broken, it frees the topic and payload
 * the kept message still points to (MQTTAsync_processCommand(), MQTTAsyncUtils.c; the same
 * on Paho's master). Resuming the session would send freed memory, so the gateway had to
 * start a new session, and readings in flight could reach the broker twice.
 *
 * For MQTT a write that fails because the peer is gone is no different from one the network
 * lost after it was written. So this file is linked into the executable, which exports
 * writev() (meson.build): Paho's calls land here, and when writing a QoS 1/2 PUBLISH to a
 * TCP socket fails because the connection broke, the write is reported done. Paho keeps its
 * message intact, its reader sees the broken link at once (the socket is in error, so it
 * reads end of file or the same error), and the resumed session sends the message again with
 * its packet id. Everything else, and every other failure, is the C library's own.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "north_internal.h"

typedef ssize_t (*writev_fn)(int, const struct iovec *, int);

static _Atomic(writev_fn) real_writev;
static atomic_ulong lost_writes;

unsigned long north_lost_writes(void)
{
    return atomic_load(&lost_writes);
}

static bool link_broke(int err)
{
    return err == EPIPE || err == ECONNRESET || err == ECONNABORTED || err == ETIMEDOUT ||
           err == EHOSTUNREACH || err == ENETUNREACH || err == ENETDOWN;
}

/* Paho writes a packet's fixed header first: PUBLISH is type 3, QoS in bits 1-2. */
static bool qos12_publish(const struct iovec *iov, int n)
{
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len > 0) {
            unsigned char first = *(const unsigned char *)iov[i].iov_base;
            return (first >> 4) == 3 && (first & 0x06) != 0;
        }
    }
    return false;
}

static bool tcp_socket(int fd)
{
    int type = 0;
    socklen_t len = sizeof(type);

    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    writev_fn real = atomic_load(&real_writev);
    ssize_t rc, total = 0;
    int err;

    if (!real) {
        void *sym = dlsym(RTLD_NEXT, "writev");

        if (!sym) {
            errno = ENOSYS;
            return -1;
        }
        memcpy(&real, &sym, sizeof(real)); /* ISO C has no object to function pointer cast */
        atomic_store(&real_writev, real);
    }
    rc = real(fd, iov, iovcnt);
    if (rc >= 0)
        return rc;
    err = errno;
    if (!link_broke(err) || !qos12_publish(iov, iovcnt) || !tcp_socket(fd)) {
        errno = err;
        return rc;
    }
    atomic_fetch_add(&lost_writes, 1);
    for (int i = 0; i < iovcnt; i++)
        total += (ssize_t)iov[i].iov_len;
    return total;
}
