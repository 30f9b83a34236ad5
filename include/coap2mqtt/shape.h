/* SPDX-License-Identifier: MIT */
/* Shapes: build the published document from a decoded body (conf_route.shape). */
#ifndef COAP2MQTT_SHAPE_H
#define COAP2MQTT_SHAPE_H

#include <stddef.h>
#include <stdint.h>

#include "coap2mqtt/conf.h"

struct json_object;

struct shape_ctx {
    const char *device; /* NULL with identity none */
    const char *type;
    const char *route;
    uint64_t now_ms; /* the gateway's receive time */
    const char *id;  /* REPLY: the request id (a path variable), not NUL-terminated */
    size_t id_len;
};

/**
 * Build the document for shape from body (body is not consumed; out holds new references).
 * - TIMESERIES: {"<device>":[{"ts":..,"values":{..}}, ...]} from an object (ts = now), an
 *   object {"ts":N,"values":{..}} (kept), or an array of either.
 * - BY_DEVICE: {"<device>":{..}}; the body must be an object.
 * - ENVELOPE: {"device":..,"type":..,"route":..,"ts":now,"data":body}.
 * - REPLY: {"device":..,"id":id,"data":body}; id is a number when it is all digits.
 * - BODY: a new reference to body.
 * @return 0; -EINVAL with a reason in err when the body does not fit the shape; -ENOMEM.
 */
int shape_build(enum conf_shape shape, struct json_object *body, const struct shape_ctx *ctx,
                struct json_object **out, char *err, size_t errlen);

#endif
