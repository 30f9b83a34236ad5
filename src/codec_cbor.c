/* SPDX-License-Identifier: MIT */
/*
 * CBOR codec (RFC 8949). Device bodies are decoded by this small reader rather than libcbor's
 * cbor_load(), which allocates whatever length a hostile body declares before checking it
 * against the bytes present. Here every declared length is checked first, and depth and the
 * total number of items are bounded.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "codec_internal.h"

struct reader {
    const uint8_t *p;
    size_t len;
    size_t pos;
    size_t items;
    char *err;
    size_t errlen;
};

static int fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct reader *r, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(r->err, r->errlen, "invalid CBOR at offset %zu: ", r->pos);

    va_start(ap, fmt);
    if (n > 0 && (size_t)n < r->errlen)
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static size_t left(const struct reader *r)
{
    return r->len - r->pos;
}

/* Initial byte and argument; *indef for additional information 31 (indefinite length). */
static int read_head(struct reader *r, uint8_t *major, uint8_t *ai, uint64_t *arg, bool *indef)
{
    uint8_t ib;
    size_t n;

    if (left(r) < 1)
        return fail(r, "unexpected end of body");
    ib = r->p[r->pos++];
    *major = ib >> 5;
    *ai = ib & 0x1f;
    *indef = false;
    if (*ai < 24) {
        *arg = *ai;
        return 0;
    }
    if (*ai == 31) {
        *arg = 0;
        *indef = true;
        return 0;
    }
    if (*ai > 27)
        return fail(r, "reserved additional information %u", *ai);
    n = (size_t)1 << (*ai - 24);
    if (left(r) < n)
        return fail(r, "unexpected end of body");
    *arg = 0;
    for (size_t i = 0; i < n; i++)
        *arg = (*arg << 8) | r->p[r->pos++];
    return 0;
}

static int count_item(struct reader *r)
{
    if (++r->items > CODEC_MAX_ITEMS)
        return fail(r, "more than %d items", CODEC_MAX_ITEMS);
    return 0;
}

static void base64url(struct buf *out, const uint8_t *s, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        size_t n = len - i;
        if (n > 1)
            v |= (uint32_t)s[i + 1] << 8;
        if (n > 2)
            v |= s[i + 2];
        buf_append_byte(out, (uint8_t)tab[(v >> 18) & 63]);
        buf_append_byte(out, (uint8_t)tab[(v >> 12) & 63]);
        if (n > 1)
            buf_append_byte(out, (uint8_t)tab[(v >> 6) & 63]);
        if (n > 2)
            buf_append_byte(out, (uint8_t)tab[v & 63]);
    }
}

/* Byte or text string, definite or as indefinite chunks of the same major type. */
static int read_string(struct reader *r, uint8_t major, uint64_t arg, bool indef, struct buf *raw)
{
    if (!indef) {
        if (arg > left(r))
            return fail(r, "string of %llu bytes but %zu left", (unsigned long long)arg, left(r));
        if (buf_append(raw, r->p + r->pos, (size_t)arg) < 0)
            return -ENOMEM;
        r->pos += (size_t)arg;
        return 0;
    }
    for (;;) {
        uint8_t m = 0, ai = 0; /* set by read_head(); gcc -O3 cannot see it through fail() */
        uint64_t n = 0;
        bool chunk_indef = false;
        int rc;

        if (left(r) >= 1 && r->p[r->pos] == 0xff) {
            r->pos++;
            return 0;
        }
        rc = read_head(r, &m, &ai, &n, &chunk_indef);
        if (rc < 0)
            return rc;
        if (m != major || chunk_indef)
            return fail(r, "bad chunk in an indefinite-length string");
        rc = read_string(r, major, n, false, raw);
        if (rc < 0)
            return rc;
    }
}

/* Shortest decimal text that reads back as the same value, so 25.7 is not 25.699999; plain
 * decimals where they are readable (100000.0 rather than 1e+05). */
static bool same_value(const char *text, double d, int single)
{
    double back = strtod(text, NULL);

    return single ? (float)back == (float)d : back == d;
}

static struct json_object *new_double(double d, int single)
{
    char text[64];
    bool found = false;

    if (fabs(d) >= 1e-4 && fabs(d) < 1e15) {
        for (int dec = 0; dec <= 17 && !found; dec++) {
            snprintf(text, sizeof(text), "%.*f", dec, d);
            found = same_value(text, d, single);
        }
    }
    for (int prec = 1; prec <= 17 && !found; prec++) {
        snprintf(text, sizeof(text), "%.*g", prec, d);
        found = same_value(text, d, single);
    }
    /* Keep it a JSON number that reads as a float: "1" for 1.0 would become an integer. */
    if (!strpbrk(text, ".eEn"))
        strncat(text, ".0", sizeof(text) - strlen(text) - 1);
    return json_object_new_double_s(d, text);
}

static double half_to_double(uint16_t h)
{
    int exp = (h >> 10) & 0x1f;
    int mant = h & 0x3ff;
    double v;

    if (exp == 0)
        v = ldexp(mant, -24);
    else if (exp != 31)
        v = ldexp(mant + 1024, exp - 25);
    else
        v = mant == 0 ? INFINITY : NAN;
    return (h & 0x8000) ? -v : v;
}

static int read_item(struct reader *r, int depth, struct json_object **out);

static int read_simple(struct reader *r, uint8_t ai, uint64_t arg, struct json_object **out)
{
    double d;
    int single = 0;

    switch (ai) {
    case 20:
    case 21:
        *out = json_object_new_boolean(ai == 21);
        return *out ? 0 : -ENOMEM;
    case 22:
    case 23: /* undefined has no JSON counterpart: null is the closest */
        *out = NULL;
        return 0;
    case 25:
        d = half_to_double((uint16_t)arg);
        single = 1;
        break;
    case 26: {
        uint32_t bits = (uint32_t)arg;
        float f;
        memcpy(&f, &bits, sizeof(f));
        d = f;
        single = 1;
        break;
    }
    case 27:
        memcpy(&d, &arg, sizeof(d));
        break;
    case 31:
        return fail(r, "unexpected break");
    default:
        return fail(r, "unsupported simple value");
    }
    if (!isfinite(d))
        return fail(r, "NaN and infinity have no JSON form");
    *out = new_double(d, single);
    return *out ? 0 : -ENOMEM;
}

static int read_key(struct reader *r, int depth, struct buf *key)
{
    struct json_object *k = NULL;
    size_t at = r->pos;
    int rc = read_item(r, depth, &k);

    if (rc < 0)
        return rc;
    if (json_object_is_type(k, json_type_string)) {
        rc = buf_append(key, json_object_get_string(k), (size_t)json_object_get_string_len(k));
    } else if (json_object_is_type(k, json_type_int)) {
        rc = buf_append_str(key, json_object_get_string(k));
    } else {
        r->pos = at;
        rc = fail(r, "map keys must be text or integers");
    }
    json_object_put(k);
    return rc;
}

static int read_container(struct reader *r, uint8_t major, uint64_t arg, bool indef, int depth,
                          struct json_object **out)
{
    struct json_object *c = major == 4 ? json_object_new_array() : json_object_new_object();
    uint64_t per = major == 4 ? 1 : 2;
    int rc = 0;

    if (!c)
        return -ENOMEM;
    /* Each item takes at least one byte: a count beyond the bytes left is a lie. */
    if (!indef && arg > left(r) / per) {
        json_object_put(c);
        return fail(r, "%s of %llu items but %zu bytes left", major == 4 ? "array" : "map",
                    (unsigned long long)arg, left(r));
    }
    for (uint64_t i = 0; rc == 0; i++) {
        struct json_object *v = NULL;
        struct buf key = BUF_INIT;

        if (indef) {
            if (left(r) >= 1 && r->p[r->pos] == 0xff) {
                r->pos++;
                break;
            }
        } else if (i == arg) {
            break;
        }
        if (major == 5)
            rc = read_key(r, depth, &key);
        if (rc == 0)
            rc = read_item(r, depth, &v);
        if (rc == 0) {
            if (major == 4)
                json_object_array_add(c, v);
            else
                json_object_object_add(c, (const char *)key.data, v);
        }
        buf_free(&key);
    }
    if (rc < 0) {
        json_object_put(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int read_item(struct reader *r, int depth, struct json_object **out)
{
    uint8_t major = 0, ai = 0;
    uint64_t arg = 0;
    bool indef = false;
    struct buf raw = BUF_INIT;
    int rc;

    *out = NULL;
    if (depth >= CODEC_MAX_DEPTH)
        return fail(r, "nested deeper than %d", CODEC_MAX_DEPTH);
    rc = count_item(r);
    if (rc == 0)
        rc = read_head(r, &major, &ai, &arg, &indef);
    if (rc < 0)
        return rc;
    if (indef && (major == 0 || major == 1 || major == 6))
        return fail(r, "indefinite length on major type %u", major);
    switch (major) {
    case 0:
        *out = arg <= INT64_MAX ? json_object_new_int64((int64_t)arg) : json_object_new_uint64(arg);
        break;
    case 1:
        if (arg > INT64_MAX)
            return fail(r, "negative integer out of range");
        *out = json_object_new_int64(-1 - (int64_t)arg);
        break;
    case 2:
    case 3:
        rc = read_string(r, major, arg, indef, &raw);
        if (rc == 0 && major == 3 && codec_utf8_check(raw.data, raw.len) != raw.len)
            rc = fail(r, "text string is not UTF-8");
        if (rc == 0 && major == 2) {
            struct buf b64 = BUF_INIT;
            base64url(&b64, raw.data, raw.len);
            buf_free(&raw);
            raw = b64;
        }
        if (rc == 0)
            *out = json_object_new_string_len(raw.data ? (const char *)raw.data : "", (int)raw.len);
        buf_free(&raw);
        if (rc < 0)
            return rc;
        break;
    case 4:
    case 5:
        return read_container(r, major, arg, indef, depth + 1, out);
    case 6: /* tags carry meaning JSON cannot express: keep the content */
        return read_item(r, depth + 1, out);
    default:
        return read_simple(r, ai, arg, out);
    }
    return *out ? 0 : -ENOMEM;
}

int codec_cbor_decode(const uint8_t *body, size_t len, struct json_object **out, char *err,
                      size_t errlen)
{
    struct reader r = {.p = body, .len = len, .err = err, .errlen = errlen};
    int rc;

    if (len == 0) {
        snprintf(err, errlen, "invalid CBOR: empty body");
        return -EINVAL;
    }
    rc = read_item(&r, 0, out);
    if (rc == 0 && r.pos != len) {
        json_object_put(*out);
        *out = NULL;
        rc = fail(&r, "trailing data");
    }
    return rc;
}

/* ---- encoding ---- */

static int put_head(struct buf *out, uint8_t major, uint64_t v)
{
    uint8_t b[9];
    size_t n;

    if (v < 24) {
        b[0] = (uint8_t)(major << 5 | v);
        n = 1;
    } else if (v <= 0xff) {
        b[0] = (uint8_t)(major << 5 | 24);
        n = 2;
    } else if (v <= 0xffff) {
        b[0] = (uint8_t)(major << 5 | 25);
        n = 3;
    } else if (v <= 0xffffffffu) {
        b[0] = (uint8_t)(major << 5 | 26);
        n = 5;
    } else {
        b[0] = (uint8_t)(major << 5 | 27);
        n = 9;
    }
    for (size_t i = 1; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return buf_append(out, b, n);
}

static int encode_item(struct json_object *o, struct buf *out, int depth)
{
    int rc = 0;

    if (depth > CODEC_MAX_DEPTH * 4)
        return -EINVAL;
    switch (json_object_get_type(o)) {
    case json_type_null:
        return buf_append_byte(out, 0xf6);
    case json_type_boolean:
        return buf_append_byte(out, json_object_get_boolean(o) ? 0xf5 : 0xf4);
    case json_type_int: {
        int64_t v = json_object_get_int64(o);
        if (v == INT64_MAX && json_object_get_uint64(o) > (uint64_t)INT64_MAX)
            return put_head(out, 0, json_object_get_uint64(o));
        return v >= 0 ? put_head(out, 0, (uint64_t)v) : put_head(out, 1, (uint64_t)(-1 - v));
    }
    case json_type_double: {
        double d = json_object_get_double(o);
        uint64_t bits;
        uint8_t b[9] = {0xfb};
        /* JSON has no NaN or infinity, and codec_cbor_decode() refuses them: a document
         * that holds one (json-c reads 1e999 as infinity) came from outside the decoders. */
        if (!isfinite(d))
            return -ERANGE;
        memcpy(&bits, &d, sizeof(bits));
        for (int i = 0; i < 8; i++)
            b[1 + i] = (uint8_t)(bits >> (56 - 8 * i));
        return buf_append(out, b, sizeof(b));
    }
    case json_type_string:
        rc = put_head(out, 3, (uint64_t)json_object_get_string_len(o));
        return rc ? rc
                  : buf_append(out, json_object_get_string(o),
                               (size_t)json_object_get_string_len(o));
    case json_type_array: {
        size_t n = json_object_array_length(o);
        rc = put_head(out, 4, n);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = encode_item(json_object_array_get_idx(o, i), out, depth + 1);
        return rc;
    }
    case json_type_object:
        rc = put_head(out, 5, (uint64_t)json_object_object_length(o));
        json_object_object_foreach(o, key, val)
        {
            if (rc == 0)
                rc = put_head(out, 3, strlen(key));
            if (rc == 0)
                rc = buf_append_str(out, key);
            if (rc == 0)
                rc = encode_item(val, out, depth + 1);
        }
        return rc;
    }
    return -EINVAL;
}

int codec_encode_cbor(struct json_object *doc, struct buf *out)
{
    return encode_item(doc, out, 0);
}
