/* SPDX-License-Identifier: MIT */
/* Text codec: a UTF-8 body becomes a JSON string. */
#include <errno.h>
#include <stdio.h>

#include <json-c/json.h>

#include "codec_internal.h"

int codec_text_decode(const uint8_t *body, size_t len, struct json_object **out, char *err,
                      size_t errlen)
{
    size_t bad = codec_utf8_check(body, len);

    if (bad != len) {
        snprintf(err, errlen, "invalid text at offset %zu: not UTF-8", bad);
        return -EINVAL;
    }
    if (len > INT32_MAX) {
        snprintf(err, errlen, "text body too large");
        return -EINVAL;
    }
    *out = json_object_new_string_len((const char *)body, (int)len);
    return *out ? 0 : -ENOMEM;
}
