/* SPDX-License-Identifier: MIT */
/* Helpers shared by the unit tests. */
#ifndef COAP2MQTT_TEST_UTIL_H
#define COAP2MQTT_TEST_UTIL_H

#include <string.h>

#include "coap2mqtt/tmpl.h"

/* "/a/b/c" -> segments a, b, c, as the Uri-Path options of a request would carry them. */
static inline size_t test_split_path(const char *path, struct tmpl_slice *segs)
{
    size_t n = 0;
    const char *s = path + 1;

    while (*s) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        segs[n].s = s;
        segs[n++].len = len;
        s += len + (e ? 1 : 0);
    }
    return n;
}

#endif
