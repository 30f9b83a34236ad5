/* SPDX-License-Identifier: MIT */
/*
 * The event loop: one thread waits on fds (epoll), timers, signals and jobs posted by other
 * threads. Only loop_post() may be called from another thread.
 */
#ifndef COAP2MQTT_LOOP_H
#define COAP2MQTT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop_fd;
typedef void (*loop_fd_handler)(struct loop_fd *fd, uint32_t events);

struct loop_fd {
    int fd;
    loop_fd_handler cb;
};

struct loop_timer;
typedef void (*loop_timer_handler)(struct loop_timer *t);

struct loop_timer {
    loop_timer_handler cb;
    uint64_t expires_ms; /* monotonic */
    bool pending;
    struct loop_timer *next;
};

typedef void (*loop_job_fn)(void *arg);
typedef void (*loop_signal_handler)(int signo);

int loop_init(void);
void loop_done(void);
/* events are EPOLLIN/EPOLLOUT bits. */
int loop_fd_add(struct loop_fd *fd, uint32_t events);
void loop_fd_del(struct loop_fd *fd);
void loop_timer_set(struct loop_timer *t, uint64_t ms);
void loop_timer_cancel(struct loop_timer *t);
/* Handle signo on the loop thread (blocked for the process, read from a signalfd). */
int loop_signal_add(int signo, loop_signal_handler cb);
/* Thread-safe: run fn(arg) on the loop thread soon. 0 or -ENOMEM. */
int loop_post(loop_job_fn fn, void *arg);
/* Run the jobs other threads have posted so far (used while shutting down). */
void loop_drain_jobs(void);
/* Run until loop_stop(); returns 0. */
int loop_run(void);
void loop_stop(void);
uint64_t loop_now_ms(void);
/* Wall-clock milliseconds since the epoch. */
uint64_t loop_wall_ms(void);

#endif
