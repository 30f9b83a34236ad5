/* SPDX-License-Identifier: MIT */
/* Growable byte buffer, always NUL-terminated so text users can read it as a string. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/buf.h"

int buf_reserve(struct buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    size_t cap = b->cap ? b->cap : 64;
    uint8_t *grown;

    if (extra > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    if (need <= b->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    grown = realloc(b->data, cap);
    if (!grown)
        return -ENOMEM;
    b->data = grown;
    b->cap = cap;
    /* The buffer is a valid (possibly empty) string as soon as it has storage. */
    b->data[b->len] = '\0';
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
    if (buf_reserve(b, len) < 0)
        return -ENOMEM;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_append_byte(struct buf *b, uint8_t c)
{
    return buf_append(b, &c, 1);
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if (buf_reserve(b, (size_t)n) < 0)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int buf_append_json_escaped(struct buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t n = 0;

        switch (c) {
        case '"':
            esc[n++] = '\\', esc[n++] = '"';
            break;
        case '\\':
            esc[n++] = '\\', esc[n++] = '\\';
            break;
        case '\n':
            esc[n++] = '\\', esc[n++] = 'n';
            break;
        case '\r':
            esc[n++] = '\\', esc[n++] = 'r';
            break;
        case '\t':
            esc[n++] = '\\', esc[n++] = 't';
            break;
        default:
            if (c < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                n = 6;
            } else {
                esc[n++] = (char)c;
            }
        }
        if (buf_append(b, esc, n) < 0)
            return -ENOMEM;
    }
    if (buf_reserve(b, 0) < 0)
        return -ENOMEM;
    b->data[b->len] = '\0';
    return 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *buf_steal(struct buf *b)
{
    char *s = (char *)b->data;

    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}
