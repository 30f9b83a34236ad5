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
 * writev() and SSL_write() (meson.build): Paho's calls land here (plain TCP and TLS), and
 * when writing a QoS 1/2 PUBLISH to a TCP socket fails because the connection broke, the
 * write is reported done. Paho keeps its message intact, its reader sees the broken link at
 * once (the socket is in error, so it reads end of file or the same error), and the resumed
 * session sends the message again with its packet id. Everything else, and every other
 * failure, goes to the C library's and OpenSSL's own functions.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "north_internal.h"

typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
/* OpenSSL's, declared here so that the gateway needs no OpenSSL headers (Paho links it). */
int SSL_write(void *ssl, const void *buf, int num);
typedef int (*ssl_write_fn)(void *, const void *, int);
typedef int (*ssl_query_fn)(const void *);
typedef int (*ssl_error_fn)(const void *, int);
/* SSL_get_error()'s answers */
#define C2M_SSL_ERROR_WANT_READ 2
#define C2M_SSL_ERROR_WANT_WRITE 3
#define C2M_SSL_ERROR_SYSCALL 5 /* see errno */

static _Atomic(writev_fn) real_writev;
static _Atomic(ssl_write_fn) real_ssl_write;
/* Once a write on a TLS connection failed for a broken link, OpenSSL keeps the record it
 * could not send and fails the next writes on that connection with other errors. */
static _Atomic(const void *) broken_ssl;
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

    return fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

/* The next definition of name after the executable's (the C library's, OpenSSL's). */
static void *next_symbol(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    writev_fn real = atomic_load(&real_writev);
    ssize_t rc, total = 0;
    int err;

    if (!real) {
        void *sym = next_symbol("writev");

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

/* Whether a failed SSL_write() on ssl was the connection breaking. */
static bool ssl_link_broke(void *ssl, int rc, int err)
{
    void *get_error = next_symbol("SSL_get_error"), *get_fd = next_symbol("SSL_get_fd");
    ssl_error_fn error_of;
    ssl_query_fn fd_of;
    int e;

    if (!get_error || !get_fd)
        return false;
    memcpy(&error_of, &get_error, sizeof(error_of));
    memcpy(&fd_of, &get_fd, sizeof(fd_of));
    e = error_of(ssl, rc);
    if (e == C2M_SSL_ERROR_WANT_READ || e == C2M_SSL_ERROR_WANT_WRITE)
        return false; /* a full socket buffer: Paho finishes the write later */
    if (atomic_load(&broken_ssl) == ssl)
        return true;
    if (e != C2M_SSL_ERROR_SYSCALL || !link_broke(err) || !tcp_socket(fd_of(ssl)))
        return false;
    atomic_store(&broken_ssl, ssl);
    return true;
}

int SSL_write(void *ssl, const void *buf, int num)
{
    ssl_write_fn real = atomic_load(&real_ssl_write);
    struct iovec iov = {.iov_base = (void *)(uintptr_t)buf, .iov_len = num > 0 ? (size_t)num : 0};
    int rc, err;

    if (!real) {
        void *sym = next_symbol("SSL_write");

        if (!sym)
            return -1;
        memcpy(&real, &sym, sizeof(real));
        atomic_store(&real_ssl_write, real);
    }
    rc = real(ssl, buf, num);
    if (rc > 0) {
        const void *expected = ssl;

        /* a new connection's SSL object can take the address of a broken one */
        atomic_compare_exchange_strong(&broken_ssl, &expected, NULL);
        return rc;
    }
    err = errno;
    if (!qos12_publish(&iov, 1) || !ssl_link_broke(ssl, rc, err)) {
        errno = err;
        return rc;
    }
    atomic_fetch_add(&lost_writes, 1);
    return num;
}
