/* SPDX-License-Identifier: MIT */
/* Per-device attribute cache: client scope (the device's own posts) and shared scope (pushes
 * from MQTT), answered to attribute reads. Loop thread only. */
#ifndef COAP2MQTT_ATTRS_H
#define COAP2MQTT_ATTRS_H

#include <stddef.h>
#include <stdint.h>

#include "coap2mqtt/buf.h"

struct json_object;

enum attrs_scope {
    ATTRS_CLIENT,
    ATTRS_SHARED,
};

/* Merge the keys of obj (an object) into the device's scope; a "deleted" array of names in
 * a shared push removes those keys. Non-objects are ignored. */
void attrs_merge(const char *device, enum attrs_scope scope, struct json_object *obj);
/**
 * {"client":{..},"shared":{..}} with only the asked keys that are known; a scope is left
 * out when it was not asked for or none of its keys is known (ThingsBoard's answer).
 * client_keys / shared_keys: comma-separated names, or NULL when not asked.
 */
int attrs_read(const char *device, const char *client_keys, const char *shared_keys,
               struct buf *out);
/* Of comma-separated keys, those neither known nor known to be absent (a new JSON array of
 * names), or NULL when there are none. */
struct json_object *attrs_missing(const char *device, enum attrs_scope scope, const char *keys,
                                  uint64_t now_ms);
/* The server has no such keys (until_ms UINT64_MAX: until one is set), or did not answer
 * (until a while later, so every read does not wait for it again). */
void attrs_mark_absent(const char *device, enum attrs_scope scope, struct json_object *keys,
                       uint64_t until_ms);
/* All of a device's attributes in one scope (borrowed; NULL when none are known). */
struct json_object *attrs_scope(const char *device, enum attrs_scope scope);
void attrs_free(void);

#endif
