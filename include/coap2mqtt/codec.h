/* SPDX-License-Identifier: MIT */
/*
 * Body codecs: decode a device body into a JSON document (json-c) under fixed bounds,
 * and encode documents as JSON or CBOR. One file per format (codec_*.c).
 */
#ifndef COAP2MQTT_CODEC_H
#define COAP2MQTT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "coap2mqtt/buf.h"
#include "coap2mqtt/conf.h"

struct json_object;

/* CoAP Content-Format numbers (RFC 7252 12.3, RFC 8949). */
#define CODEC_CF_TEXT 0
#define CODEC_CF_OCTETS 42
#define CODEC_CF_JSON 50
#define CODEC_CF_CBOR 60
#define CODEC_CF_NONE (-1)

/* Bounds applied to every device body. */
#define CODEC_MAX_DEPTH 32
#define CODEC_MAX_ITEMS 100000 /* array elements + map pairs in one body */

struct codec_opts {
    enum conf_csv_layout csv_layout;
    char *const *csv_keys;
    size_t n_csv_keys;
    char csv_separator;
};

/**
 * Decode a body.
 * - JSON: must be one valid JSON value (RFC 8259), UTF-8, at most CODEC_MAX_DEPTH deep.
 *   Numbers must keep their value: integers within int64 or uint64, other numbers finite
 *   doubles not rounded to zero (1e999, 1e-999, 18446744073709551616 are refused with
 *   -ERANGE: json-c would hold them as infinity, 0 or a clamped integer).
 * - CBOR: one well-formed data item (RFC 8949), definite or indefinite lengths; declared
 *   lengths are checked against the bytes remaining before anything is allocated. Map keys
 *   must be text or integers (integers become their decimal text); byte strings become
 *   base64url text; tags are dropped (their content kept); undefined becomes null; NaN and
 *   infinities are refused.
 * - TEXT: valid UTF-8 becomes a JSON string.
 * - CSV: one line (a trailing CR/LF is ignored, double quotes are removed);
 *   CONF_CSV_KEYS -> {"key1":v1,...} (exactly as many values as keys);
 *   CONF_CSV_NAME_TYPE: "name,type,k1,v1,k2,v2..." ->
 *   {"deviceName":"name","deviceType":"type","telemetry":{"k1":v1,...}}.
 *   Values that parse fully as numbers become numbers (those a JSON body would have
 *   refused as out of range stay strings), true/false become booleans, anything else
 *   stays a string.
 * - OCTETS: *out is set to NULL (the body is passed through as bytes).
 * @param err  receives a one-line reason on -EINVAL ("invalid JSON at offset 12: ...") and
 *             -ERANGE ("number out of range at offset 5: 1e999 is beyond a 64-bit float")
 * @return 0, -EINVAL for a body that does not decode, -ERANGE for a JSON body with a number
 *         out of range (both are the sender's fault), -ENOMEM.
 */
int codec_decode(enum conf_format fmt, const uint8_t *body, size_t len,
                 const struct codec_opts *opts, struct json_object **out, char *err, size_t errlen);

/* Compact JSON text of doc, appended to out (no spaces, "/" not escaped). */
int codec_encode_json(struct json_object *doc, struct buf *out);
/* CBOR encoding of doc (RFC 8949, definite lengths, shortest integer forms).
 * @return 0, -ERANGE for a NaN or infinite double (never from codec_decode()), -ENOMEM. */
int codec_encode_cbor(struct json_object *doc, struct buf *out);

/* Format for a Content-Format number; -1 when coap2mqtt has no decoder for it. */
int codec_format_from_cf(int content_format);
/* The Content-Format a format is usually sent with (CSV: text/plain). */
int codec_format_cf(enum conf_format fmt);
/* "json", "cbor", "text", "csv", "octets"; and the reverse (-1 when unknown). */
const char *codec_format_name(enum conf_format fmt);
int codec_format_from_name(const char *name);

#endif
