/* SPDX-License-Identifier: MIT */
/* The event loop: epoll over fds, one timerfd for all timers, a signalfd, and an eventfd that
 * other threads use to hand jobs to the loop thread. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "coap2mqtt/log.h"
#include "coap2mqtt/loop.h"

struct loop_job {
    loop_job_fn fn;
    void *arg;
    struct loop_job *next;
};

#define LOOP_MAX_SIGNALS 8

static struct {
    int epfd;
    bool running;
    struct loop_timer *timers; /* sorted by expiry */
    struct loop_fd timer_fd;
    struct loop_fd event_fd;
    struct loop_fd signal_fd;
    sigset_t sigmask;
    loop_signal_handler sig_cb[LOOP_MAX_SIGNALS];
    int sig_no[LOOP_MAX_SIGNALS];
    size_t n_sig;
    pthread_mutex_t lock; /* guards jobs_head/jobs_tail only */
    struct loop_job *jobs_head, *jobs_tail;
} L = {.epfd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

uint64_t loop_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t loop_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void timers_arm(void)
{
    struct itimerspec its = {0};

    if (L.timers) {
        uint64_t now = loop_now_ms();
        uint64_t due = L.timers->expires_ms > now ? L.timers->expires_ms - now : 0;
        /* A zero it_value disarms the timer: fire after 1 ns for timers already due. */
        its.it_value.tv_sec = (time_t)(due / 1000);
        its.it_value.tv_nsec = (long)((due % 1000) * 1000000);
        if (due == 0)
            its.it_value.tv_nsec = 1;
    }
    timerfd_settime(L.timer_fd.fd, 0, &its, NULL);
}

static void timers_unlink(struct loop_timer *t)
{
    struct loop_timer **pp = &L.timers;

    while (*pp && *pp != t)
        pp = &(*pp)->next;
    if (*pp)
        *pp = t->next;
    t->next = NULL;
    t->pending = false;
}

void loop_timer_set(struct loop_timer *t, uint64_t ms)
{
    struct loop_timer **pp = &L.timers;

    if (t->pending)
        timers_unlink(t);
    t->expires_ms = loop_now_ms() + ms;
    while (*pp && (*pp)->expires_ms <= t->expires_ms)
        pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
    t->pending = true;
    timers_arm();
}

void loop_timer_cancel(struct loop_timer *t)
{
    if (!t->pending)
        return;
    timers_unlink(t);
    timers_arm();
}

static void on_timer_fd(struct loop_fd *fd, uint32_t events)
{
    uint64_t ticks;
    uint64_t now = loop_now_ms();

    (void)events;
    if (read(fd->fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
        log_msg(LOG_WARNING, "loop: timerfd read failed: %s", strerror(errno));
    while (L.timers && L.timers->expires_ms <= now) {
        struct loop_timer *t = L.timers;
        timers_unlink(t);
        t->cb(t);
    }
    timers_arm();
}

/* Take the queued jobs and run them; returns how many ran. */
static size_t run_jobs(void)
{
    struct loop_job *jobs;
    size_t n = 0;

    pthread_mutex_lock(&L.lock);
    jobs = L.jobs_head;
    L.jobs_head = L.jobs_tail = NULL;
    pthread_mutex_unlock(&L.lock);
    while (jobs) {
        struct loop_job *next = jobs->next;
        jobs->fn(jobs->arg);
        free(jobs);
        jobs = next;
        n++;
    }
    return n;
}

static void on_event_fd(struct loop_fd *fd, uint32_t events)
{
    uint64_t n;

    (void)events;
    if (read(fd->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_msg(LOG_WARNING, "loop: eventfd read failed: %s", strerror(errno));
    run_jobs();
}

static void on_signal_fd(struct loop_fd *fd, uint32_t events)
{
    struct signalfd_siginfo si;

    (void)events;
    while (read(fd->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        for (size_t i = 0; i < L.n_sig; i++)
            if (L.sig_no[i] == (int)si.ssi_signo)
                L.sig_cb[i]((int)si.ssi_signo);
    }
}

int loop_init(void)
{
    L.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (L.epfd < 0)
        return -errno;
    L.timer_fd.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    L.timer_fd.cb = on_timer_fd;
    L.event_fd.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    L.event_fd.cb = on_event_fd;
    sigemptyset(&L.sigmask);
    L.signal_fd.fd = signalfd(-1, &L.sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    L.signal_fd.cb = on_signal_fd;
    if (L.timer_fd.fd < 0 || L.event_fd.fd < 0 || L.signal_fd.fd < 0) {
        int rc = -errno;
        loop_done();
        return rc;
    }
    if (loop_fd_add(&L.timer_fd, EPOLLIN) < 0 || loop_fd_add(&L.event_fd, EPOLLIN) < 0 ||
        loop_fd_add(&L.signal_fd, EPOLLIN) < 0) {
        int rc = -errno;
        loop_done();
        return rc;
    }
    return 0;
}

void loop_done(void)
{
    /* Jobs still queued (and those they post) run, so their owners free what they carry. */
    while (run_jobs())
        ;
    if (L.timer_fd.fd >= 0)
        close(L.timer_fd.fd);
    if (L.event_fd.fd >= 0)
        close(L.event_fd.fd);
    if (L.signal_fd.fd >= 0)
        close(L.signal_fd.fd);
    if (L.epfd >= 0)
        close(L.epfd);
    L.timer_fd.fd = L.event_fd.fd = L.signal_fd.fd = L.epfd = -1;
    L.timers = NULL;
    L.n_sig = 0;
}

void loop_drain_jobs(void)
{
    run_jobs();
}

int loop_fd_add(struct loop_fd *fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = fd};

    if (epoll_ctl(L.epfd, EPOLL_CTL_ADD, fd->fd, &ev) < 0)
        return -errno;
    return 0;
}

void loop_fd_del(struct loop_fd *fd)
{
    epoll_ctl(L.epfd, EPOLL_CTL_DEL, fd->fd, NULL);
}

int loop_signal_add(int signo, loop_signal_handler cb)
{
    if (L.n_sig >= LOOP_MAX_SIGNALS)
        return -ENOSPC;
    sigaddset(&L.sigmask, signo);
    /* Block in every thread (Paho's are created later and inherit the mask). */
    if (pthread_sigmask(SIG_BLOCK, &L.sigmask, NULL) != 0)
        return -EINVAL;
    if (signalfd(L.signal_fd.fd, &L.sigmask, SFD_NONBLOCK | SFD_CLOEXEC) < 0)
        return -errno;
    L.sig_no[L.n_sig] = signo;
    L.sig_cb[L.n_sig] = cb;
    L.n_sig++;
    return 0;
}

int loop_post(loop_job_fn fn, void *arg)
{
    struct loop_job *j = malloc(sizeof(*j));
    uint64_t one = 1;
    bool wake;

    if (!j)
        return -ENOMEM;
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    pthread_mutex_lock(&L.lock);
    /* Only the first job of a batch wakes the loop: until run_jobs() takes the list, that
     * wake-up is still due and the loop takes the jobs queued behind it too. Under load
     * (one Paho completion per reading) this saves a write and a read per job. */
    wake = !L.jobs_head;
    if (L.jobs_tail)
        L.jobs_tail->next = j;
    else
        L.jobs_head = j;
    L.jobs_tail = j;
    pthread_mutex_unlock(&L.lock);
    /* A full eventfd counter still leaves it readable: the job is not lost. */
    if (wake && write(L.event_fd.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}

int loop_run(void)
{
    struct epoll_event evs[16];

    L.running = true;
    while (L.running) {
        int n = epoll_wait(L.epfd, evs, 16, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_msg(LOG_ERR, "loop: epoll_wait failed: %s", strerror(errno));
            return -errno;
        }
        for (int i = 0; i < n && L.running; i++) {
            struct loop_fd *fd = evs[i].data.ptr;
            fd->cb(fd, evs[i].events);
        }
    }
    return 0;
}

void loop_stop(void)
{
    L.running = false;
}
