/* SPDX-License-Identifier: MIT */
/* Clocks shared by the benchmark tools: latency is measured across processes (the load
 * generator stamps a reading with wall_us(), mqtt-count reads it), rates within one. */
#ifndef COAP2MQTT_BENCH_CLOCK_H
#define COAP2MQTT_BENCH_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Microseconds on the wall clock: comparable between processes. */
static inline int64_t wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
