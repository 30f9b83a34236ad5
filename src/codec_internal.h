/* SPDX-License-Identifier: MIT */
/* Declarations shared by the codec files; one decoder per format. */
#ifndef COAP2MQTT_CODEC_INTERNAL_H
#define COAP2MQTT_CODEC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "coap2mqtt/codec.h"

int codec_json_decode(const uint8_t *body, size_t len, struct json_object **out, char *err,
                      size_t errlen);
int codec_cbor_decode(const uint8_t *body, size_t len, struct json_object **out, char *err,
                      size_t errlen);
int codec_text_decode(const uint8_t *body, size_t len, struct json_object **out, char *err,
                      size_t errlen);
int codec_csv_decode(const uint8_t *body, size_t len, const struct codec_opts *opts,
                     struct json_object **out, char *err, size_t errlen);
/* End of the RFC 8259 number starting at pos, or pos when there is none. */
size_t codec_json_number_end(const uint8_t *s, size_t len, size_t pos);
/**
 * Does the RFC 8259 number text s[0..len) keep its value in json-c: an integer (no '.', no
 * exponent) within int64 or uint64, any other number a finite double, not rounded to zero
 * unless it is one?
 * @return 0; -ERANGE with why set to a static phrase ("is beyond a 64-bit float"); -ENOMEM.
 */
int codec_json_number_check(const uint8_t *s, size_t len, const char **why);
/* Offset of the first invalid UTF-8 sequence (or NUL byte), or len when all is valid. */
size_t codec_utf8_check(const uint8_t *s, size_t len);

#endif
