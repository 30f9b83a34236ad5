/* SPDX-License-Identifier: MIT */
/* JSON codec: strict RFC 8259 parsing under a depth bound, compact serialisation. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

#include <json-c/json.h>

#include "codec_internal.h"

/* json-c accepts 'single-quoted' strings even in strict mode; RFC 8259 does not, and neither
 * do the consumers behind the broker. Offset of the first quote outside a string, or len. */
static size_t single_quote_at(const uint8_t *s, size_t len)
{
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        if (in_string) {
            if (s[i] == '\\')
                i++;
            else if (s[i] == '"')
                in_string = false;
        } else if (s[i] == '"') {
            in_string = true;
        } else if (s[i] == '\'') {
            return i;
        }
    }
    return len;
}

int codec_json_decode(const uint8_t *body, size_t len, struct json_object **out, char *err,
                      size_t errlen)
{
    struct json_tokener *tok;
    struct json_object *doc;
    enum json_tokener_error jerr;
    size_t used, bad;

    if (len == 0) {
        snprintf(err, errlen, "invalid JSON: empty body");
        return -EINVAL;
    }
    /* json-c would accept invalid UTF-8 inside strings without this check. */
    bad = codec_utf8_check(body, len);
    if (bad != len) {
        snprintf(err, errlen, "invalid JSON at offset %zu: not UTF-8", bad);
        return -EINVAL;
    }
    if (len > INT32_MAX) {
        snprintf(err, errlen, "invalid JSON: body too large");
        return -EINVAL;
    }
    bad = single_quote_at(body, len);
    if (bad != len) {
        snprintf(err, errlen, "invalid JSON at offset %zu: strings need double quotes", bad);
        return -EINVAL;
    }
    tok = json_tokener_new_ex(CODEC_MAX_DEPTH);
    if (!tok)
        return -ENOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    doc = json_tokener_parse_ex(tok, (const char *)body, (int)len);
    jerr = json_tokener_get_error(tok);
    used = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue) {
        /* A top-level number or literal ("42", "null") only ends at the end of input: say so
         * with a terminating NUL, as json-c asks. */
        doc = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        used = len;
    }
    json_tokener_free(tok);
    if (jerr == json_tokener_continue) {
        json_object_put(doc);
        snprintf(err, errlen, "invalid JSON at offset %zu: unexpected end of body", len);
        return -EINVAL;
    }
    if (jerr != json_tokener_success) {
        snprintf(err, errlen, "invalid JSON at offset %zu: %s", used,
                 json_tokener_error_desc(jerr));
        return -EINVAL;
    }
    while (used < len && (body[used] == ' ' || body[used] == '\t' || body[used] == '\n' ||
                          body[used] == '\r'))
        used++;
    if (used != len) {
        json_object_put(doc);
        snprintf(err, errlen, "invalid JSON at offset %zu: trailing data", used);
        return -EINVAL;
    }
    /* json-c represents a bare "null" as NULL. */
    *out = doc;
    return 0;
}

int codec_encode_json(struct json_object *doc, struct buf *out)
{
    size_t len;
    const char *s = json_object_to_json_string_length(
        doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

    if (!s)
        return -ENOMEM;
    return buf_append(out, s, len);
}
