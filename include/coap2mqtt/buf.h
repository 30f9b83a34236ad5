/* SPDX-License-Identifier: MIT */
/* Growable byte buffer used for payloads, topics and diagnostics. */
#ifndef COAP2MQTT_BUF_H
#define COAP2MQTT_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data; /* always NUL-terminated past len when non-NULL */
    size_t len;
    size_t cap;
};

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* All return 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_append_byte(struct buf *b, uint8_t c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as the inside of a JSON string (no surrounding quotes). */
int buf_append_json_escaped(struct buf *b, const char *s, size_t len);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* Hand the bytes to the caller (NUL-terminated, may be NULL when empty); b is reset. */
char *buf_steal(struct buf *b);

#endif
