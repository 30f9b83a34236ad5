/* SPDX-License-Identifier: MIT */
/* CSV codec: one line of values, named by a key list or laid out as name,type,key,value,... */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "codec_internal.h"

#define CSV_MAX_FIELDS 512

struct csv_fields {
    char *line; /* owned copy, fields point into it */
    char *f[CSV_MAX_FIELDS];
    size_t n;
};

/* Numbers stay numbers (keeping their text, "25.7" not 25.699999), true/false booleans,
 * everything else a string: what the ThingsBoard converter's parseFloat would keep. */
static struct json_object *csv_value(const char *s)
{
    size_t n = strlen(s);
    char *end;

    if (strcmp(s, "true") == 0)
        return json_object_new_boolean(1);
    if (strcmp(s, "false") == 0)
        return json_object_new_boolean(0);
    if (n && codec_json_number_end((const uint8_t *)s, n, 0) == n) {
        const char *why;
        long long ll;
        double d;
        int rc = codec_json_number_check((const uint8_t *)s, n, &why);

        /* Out of range: a string, as JSON from a device would be refused (json-c would hold
         * 1e-999 as 0, a CBOR output would then differ from a JSON one). */
        if (rc == -ERANGE)
            return json_object_new_string(s);
        if (rc < 0)
            return NULL;
        errno = 0;
        ll = strtoll(s, &end, 10);
        if (*end == '\0' && errno == 0)
            return json_object_new_int64(ll);
        if (*end == '\0' && s[0] != '-') /* an integer within uint64 */
            return json_object_new_uint64(strtoull(s, NULL, 10));
        d = strtod(s, &end);
        if (*end == '\0' && isfinite(d))
            return json_object_new_double_s(d, s); /* already valid JSON number text */
    }
    /* "1." or "-.5" read as numbers (the integration's parseFloat does), written the JSON
     * way; "+1", "NaN", "0x1F" stay strings. */
    if (n && (isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '.') &&
        strspn(s, "-0123456789.eE") == n) {
        double d;
        char text[40];

        errno = 0;
        d = strtod(s, &end);
        if (*end == '\0' && errno == 0 && isfinite(d)) {
            snprintf(text, sizeof(text), "%.17g", d);
            for (int prec = 1; prec <= 17; prec++) {
                snprintf(text, sizeof(text), "%.*g", prec, d);
                if (strtod(text, NULL) == d)
                    break;
            }
            if (!strpbrk(text, ".eE"))
                strncat(text, ".0", sizeof(text) - strlen(text) - 1);
            return json_object_new_double_s(d, text);
        }
    }
    return json_object_new_string(s);
}

static int split(const uint8_t *body, size_t len, char sep, struct csv_fields *cf, char *err,
                 size_t errlen)
{
    size_t bad = codec_utf8_check(body, len);
    char *w;

    if (bad != len) {
        snprintf(err, errlen, "CSV: not UTF-8 at offset %zu", bad);
        return -EINVAL;
    }
    /* echo and most devices end the line; quotes are dropped as the seed converter does. */
    while (len && (body[len - 1] == '\n' || body[len - 1] == '\r'))
        len--;
    if (len == 0) {
        snprintf(err, errlen, "CSV: empty body");
        return -EINVAL;
    }
    if (memchr(body, '\n', len) || memchr(body, '\r', len)) {
        snprintf(err, errlen, "CSV: more than one line");
        return -EINVAL;
    }
    cf->line = malloc(len + 1);
    if (!cf->line)
        return -ENOMEM;
    w = cf->line;
    for (size_t i = 0; i < len; i++)
        if (body[i] != '"')
            *w++ = (char)body[i];
    *w = '\0';
    cf->n = 0;
    for (char *s = cf->line;;) {
        char *e = strchr(s, sep);
        if (cf->n >= CSV_MAX_FIELDS) {
            snprintf(err, errlen, "CSV: more than %d fields", CSV_MAX_FIELDS);
            return -EINVAL;
        }
        cf->f[cf->n++] = s;
        if (!e)
            break;
        *e = '\0';
        s = e + 1;
    }
    return 0;
}

static int decode_keys(const struct csv_fields *cf, const struct codec_opts *opts,
                       struct json_object *doc, char *err, size_t errlen)
{
    if (cf->n != opts->n_csv_keys) {
        snprintf(err, errlen, "CSV: expected %zu values, got %zu", opts->n_csv_keys, cf->n);
        return -EINVAL;
    }
    for (size_t i = 0; i < cf->n; i++)
        json_object_object_add(doc, opts->csv_keys[i], csv_value(cf->f[i]));
    return 0;
}

static int decode_name_type(const struct csv_fields *cf, struct json_object *doc, char *err,
                            size_t errlen)
{
    struct json_object *values;

    if (cf->n < 2 || !*cf->f[0]) {
        snprintf(err, errlen, "CSV: expected name,type,key,value,...");
        return -EINVAL;
    }
    if (cf->n % 2) {
        snprintf(err, errlen, "CSV: key '%s' has no value", cf->f[cf->n - 1]);
        return -EINVAL;
    }
    values = json_object_new_object();
    if (!values)
        return -ENOMEM;
    json_object_object_add(doc, "deviceName", json_object_new_string(cf->f[0]));
    json_object_object_add(doc, "deviceType", json_object_new_string(cf->f[1]));
    json_object_object_add(doc, "telemetry", values);
    for (size_t i = 2; i < cf->n; i += 2) {
        if (!*cf->f[i]) {
            snprintf(err, errlen, "CSV: empty key at field %zu", i + 1);
            return -EINVAL;
        }
        json_object_object_add(values, cf->f[i], csv_value(cf->f[i + 1]));
    }
    return 0;
}

int codec_csv_decode(const uint8_t *body, size_t len, const struct codec_opts *opts,
                     struct json_object **out, char *err, size_t errlen)
{
    struct csv_fields cf = {0};
    struct json_object *doc = NULL;
    int rc;

    rc =
        split(body, len, opts && opts->csv_separator ? opts->csv_separator : ',', &cf, err, errlen);
    if (rc < 0)
        goto out;
    doc = json_object_new_object();
    if (!doc) {
        rc = -ENOMEM;
        goto out;
    }
    if (opts && opts->csv_layout == CONF_CSV_KEYS)
        rc = decode_keys(&cf, opts, doc, err, errlen);
    else
        rc = decode_name_type(&cf, doc, err, errlen);
out:
    free(cf.line);
    if (rc < 0) {
        json_object_put(doc);
        return rc;
    }
    *out = doc;
    return 0;
}
