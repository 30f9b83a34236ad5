/* SPDX-License-Identifier: MIT */
/* Codec registry: format names, Content-Format numbers, dispatch to each decoder. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "codec_internal.h"

static const struct {
    const char *name;
    int cf;
} formats[CONF_FMT__COUNT] = {
    [CONF_FMT_JSON] = {"json", CODEC_CF_JSON},       [CONF_FMT_CBOR] = {"cbor", CODEC_CF_CBOR},
    [CONF_FMT_TEXT] = {"text", CODEC_CF_TEXT},       [CONF_FMT_CSV] = {"csv", CODEC_CF_TEXT},
    [CONF_FMT_OCTETS] = {"octets", CODEC_CF_OCTETS},
};

int codec_decode(enum conf_format fmt, const uint8_t *body, size_t len,
                 const struct codec_opts *opts, struct json_object **out, char *err, size_t errlen)
{
    *out = NULL;
    switch (fmt) {
    case CONF_FMT_JSON:
        return codec_json_decode(body, len, out, err, errlen);
    case CONF_FMT_CBOR:
        return codec_cbor_decode(body, len, out, err, errlen);
    case CONF_FMT_TEXT:
        return codec_text_decode(body, len, out, err, errlen);
    case CONF_FMT_CSV:
        return codec_csv_decode(body, len, opts, out, err, errlen);
    case CONF_FMT_OCTETS:
        return 0;
    case CONF_FMT__COUNT:
        break;
    }
    snprintf(err, errlen, "unknown format");
    return -EINVAL;
}

int codec_format_from_cf(int content_format)
{
    switch (content_format) {
    case CODEC_CF_JSON:
        return CONF_FMT_JSON;
    case CODEC_CF_CBOR:
        return CONF_FMT_CBOR;
    case CODEC_CF_TEXT:
        return CONF_FMT_TEXT;
    case CODEC_CF_OCTETS:
        return CONF_FMT_OCTETS;
    default:
        return -1;
    }
}

int codec_format_cf(enum conf_format fmt)
{
    return fmt < CONF_FMT__COUNT ? formats[fmt].cf : CODEC_CF_NONE;
}

const char *codec_format_name(enum conf_format fmt)
{
    return fmt < CONF_FMT__COUNT ? formats[fmt].name : "?";
}

int codec_format_from_name(const char *name)
{
    for (int i = 0; i < CONF_FMT__COUNT; i++)
        if (strcmp(formats[i].name, name) == 0)
            return i;
    return -1;
}

/* RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF; NUL is refused too
 * because bodies end up in C strings. */
size_t codec_utf8_check(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;

        if (c == 0)
            return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i <= n)
            return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n + 1;
    }
    return len;
}
