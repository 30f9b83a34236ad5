/* SPDX-License-Identifier: MIT */
/* Attribute cache per device and scope; rebuilt from the devices' posts and the pushes. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "coap2mqtt/attrs.h"
#include "coap2mqtt/codec.h"

#define ATTRS_MAX_DEVICES 10000

struct dev_attrs {
    char *device;
    struct json_object *scope[2];
    /* Keys known not to exist: name -> until when (ms, monotonic; INT64_MAX: until set). */
    struct json_object *absent[2];
    struct dev_attrs *next;
};

static struct dev_attrs *all;
static size_t count;

static struct dev_attrs *find(const char *device, bool create)
{
    struct dev_attrs *d;

    for (d = all; d; d = d->next)
        if (strcmp(d->device, device) == 0)
            return d;
    if (!create || count >= ATTRS_MAX_DEVICES)
        return NULL;
    d = calloc(1, sizeof(*d));
    if (!d || !(d->device = strdup(device))) {
        free(d);
        return NULL;
    }
    d->scope[0] = json_object_new_object();
    d->scope[1] = json_object_new_object();
    d->absent[0] = json_object_new_object();
    d->absent[1] = json_object_new_object();
    d->next = all;
    all = d;
    count++;
    return d;
}

void attrs_merge(const char *device, enum attrs_scope scope, struct json_object *obj)
{
    struct dev_attrs *d;
    struct json_object *deleted = NULL;

    if (!device || !json_object_is_type(obj, json_type_object))
        return;
    d = find(device, true);
    if (!d)
        return;
    if (scope == ATTRS_SHARED && json_object_object_get_ex(obj, "deleted", &deleted) &&
        json_object_is_type(deleted, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(deleted); i++) {
            struct json_object *k = json_object_array_get_idx(deleted, i);
            if (!json_object_is_type(k, json_type_string))
                continue;
            json_object_object_del(d->scope[scope], json_object_get_string(k));
            json_object_object_add(d->absent[scope], json_object_get_string(k),
                                   json_object_new_int64(INT64_MAX));
        }
        return;
    }
    json_object_object_foreach(obj, key, val)
    {
        json_object_object_add(d->scope[scope], key, json_object_get(val));
        json_object_object_del(d->absent[scope], key);
    }
}

struct json_object *attrs_missing(const char *device, enum attrs_scope scope, const char *keys,
                                  uint64_t now_ms)
{
    struct dev_attrs *d = find(device, false);
    struct json_object *out = NULL, *v;
    char *list, *save = NULL;

    if (!keys)
        return NULL;
    list = strdup(keys);
    for (char *k = list ? strtok_r(list, ",", &save) : NULL; k; k = strtok_r(NULL, ",", &save)) {
        if (d && json_object_object_get_ex(d->scope[scope], k, NULL))
            continue;
        if (d && json_object_object_get_ex(d->absent[scope], k, &v) &&
            (uint64_t)json_object_get_int64(v) > now_ms)
            continue;
        if (!out)
            out = json_object_new_array();
        json_object_array_add(out, json_object_new_string(k));
    }
    free(list);
    return out;
}

void attrs_mark_absent(const char *device, enum attrs_scope scope, struct json_object *keys,
                       uint64_t until_ms)
{
    struct dev_attrs *d = find(device, true);

    for (size_t i = 0; d && i < json_object_array_length(keys); i++) {
        const char *k = json_object_get_string(json_object_array_get_idx(keys, i));
        if (!json_object_object_get_ex(d->scope[scope], k, NULL))
            json_object_object_add(
                d->absent[scope], k,
                json_object_new_int64(until_ms > INT64_MAX ? INT64_MAX : (int64_t)until_ms));
    }
}

/* The asked keys of one scope that are known, or NULL when there are none. */
static struct json_object *pick(struct json_object *cache, const char *keys)
{
    struct json_object *out = NULL;
    char *list, *save = NULL;

    if (!keys || !cache)
        return NULL;
    list = strdup(keys);
    for (char *k = list ? strtok_r(list, ",", &save) : NULL; k; k = strtok_r(NULL, ",", &save)) {
        struct json_object *v;
        if (!json_object_object_get_ex(cache, k, &v))
            continue;
        if (!out)
            out = json_object_new_object();
        json_object_object_add(out, k, json_object_get(v));
    }
    free(list);
    return out;
}

int attrs_read(const char *device, const char *client_keys, const char *shared_keys,
               struct buf *out)
{
    struct dev_attrs *d = find(device, false);
    struct json_object *doc = json_object_new_object();
    struct json_object *c = pick(d ? d->scope[ATTRS_CLIENT] : NULL, client_keys);
    struct json_object *s = pick(d ? d->scope[ATTRS_SHARED] : NULL, shared_keys);
    int rc;

    if (!doc)
        return -ENOMEM;
    if (c)
        json_object_object_add(doc, "client", c);
    if (s)
        json_object_object_add(doc, "shared", s);
    rc = codec_encode_json(doc, out);
    json_object_put(doc);
    return rc;
}

struct json_object *attrs_scope(const char *device, enum attrs_scope scope)
{
    struct dev_attrs *d = find(device, false);

    return d ? d->scope[scope] : NULL;
}

void attrs_free(void)
{
    while (all) {
        struct dev_attrs *next = all->next;
        json_object_put(all->absent[0]);
        json_object_put(all->absent[1]);
        json_object_put(all->scope[0]);
        json_object_put(all->scope[1]);
        free(all->device);
        free(all);
        all = next;
    }
    count = 0;
}
