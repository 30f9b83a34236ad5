/* SPDX-License-Identifier: MIT */
/* Shapes: wrap decoded bodies into the documents MQTT consumers expect. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "coap2mqtt/shape.h"

/* One timeseries entry {"ts":..,"values":{..}}; a body that already has both keeps them. */
static int ts_entry(struct json_object *item, uint64_t now_ms, struct json_object *arr, char *err,
                    size_t errlen)
{
    struct json_object *ts = NULL, *values = NULL, *entry;

    if (!json_object_is_type(item, json_type_object)) {
        snprintf(err, errlen, "telemetry must be a JSON object or an array of objects");
        return -EINVAL;
    }
    if (json_object_object_get_ex(item, "ts", &ts) &&
        json_object_object_get_ex(item, "values", &values)) {
        if (!json_object_is_type(ts, json_type_int) || json_object_get_int64(ts) < 0 ||
            !json_object_is_type(values, json_type_object)) {
            snprintf(err, errlen, "'ts' must be a non-negative integer and 'values' an object");
            return -EINVAL;
        }
    } else {
        ts = NULL;
        values = item;
    }
    entry = json_object_new_object();
    if (!entry)
        return -ENOMEM;
    json_object_object_add(entry, "ts",
                           ts ? json_object_get(ts) : json_object_new_int64((int64_t)now_ms));
    json_object_object_add(entry, "values", json_object_get(values));
    json_object_array_add(arr, entry);
    return 0;
}

static int build_timeseries(struct json_object *body, const struct shape_ctx *ctx,
                            struct json_object *doc, char *err, size_t errlen)
{
    struct json_object *arr = json_object_new_array();
    int rc = 0;

    if (!arr)
        return -ENOMEM;
    json_object_object_add(doc, ctx->device, arr);
    if (json_object_is_type(body, json_type_array)) {
        size_t n = json_object_array_length(body);
        if (n == 0) {
            snprintf(err, errlen, "telemetry array is empty");
            return -EINVAL;
        }
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = ts_entry(json_object_array_get_idx(body, i), ctx->now_ms, arr, err, errlen);
        return rc;
    }
    return ts_entry(body, ctx->now_ms, arr, err, errlen);
}

int shape_build(enum conf_shape shape, struct json_object *body, const struct shape_ctx *ctx,
                struct json_object **out, char *err, size_t errlen)
{
    struct json_object *doc;
    int rc = 0;

    if (shape == CONF_SHAPE_BODY) {
        *out = json_object_get(body);
        return 0;
    }
    doc = json_object_new_object();
    if (!doc)
        return -ENOMEM;
    switch (shape) {
    case CONF_SHAPE_TIMESERIES:
        rc = build_timeseries(body, ctx, doc, err, errlen);
        break;
    case CONF_SHAPE_BY_DEVICE:
        if (!json_object_is_type(body, json_type_object)) {
            snprintf(err, errlen, "attributes must be a JSON object");
            rc = -EINVAL;
            break;
        }
        json_object_object_add(doc, ctx->device, json_object_get(body));
        break;
    case CONF_SHAPE_ENVELOPE:
        if (ctx->device) {
            json_object_object_add(doc, "device", json_object_new_string(ctx->device));
            json_object_object_add(doc, "type", json_object_new_string(ctx->type));
        }
        json_object_object_add(doc, "route", json_object_new_string(ctx->route));
        json_object_object_add(doc, "ts", json_object_new_int64((int64_t)ctx->now_ms));
        json_object_object_add(doc, "data", json_object_get(body));
        break;
    case CONF_SHAPE_REPLY: {
        char id[32];
        bool digits = ctx->id_len > 0 && ctx->id_len < sizeof(id);

        for (size_t i = 0; digits && i < ctx->id_len; i++)
            digits = ctx->id[i] >= '0' && ctx->id[i] <= '9';
        json_object_object_add(doc, "device", json_object_new_string(ctx->device));
        if (digits) {
            memcpy(id, ctx->id, ctx->id_len);
            id[ctx->id_len] = '\0';
            json_object_object_add(doc, "id", json_object_new_int64(strtoll(id, NULL, 10)));
        } else {
            json_object_object_add(doc, "id",
                                   json_object_new_string_len(ctx->id, (int)ctx->id_len));
        }
        json_object_object_add(doc, "data", json_object_get(body));
        break;
    }
    case CONF_SHAPE_BODY:
        break;
    }
    if (rc < 0) {
        json_object_put(doc);
        return rc;
    }
    *out = doc;
    return 0;
}
