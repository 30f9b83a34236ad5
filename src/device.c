/* SPDX-License-Identifier: MIT */
/* Device registry: look-ups by token digest, PSK identity, certificate CN and name. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "coap2mqtt/device.h"
#include "coap2mqtt/log.h"

#define DIGEST_LEN 32

/* One chained hash index; a device sits in up to four of them. */
struct hentry {
    const uint8_t *key;
    size_t len;
    struct device *dev;
    struct hentry *next;
};

struct hindex {
    struct hentry **buckets;
    size_t n_buckets;
};

struct dyn_device {
    struct device dev;
    char *name;
    char *type;
};

static struct {
    struct device *configured;
    size_t n_configured;
    uint8_t (*token_digests)[DIGEST_LEN];
    struct dyn_device **dynamic;
    size_t n_dynamic;
    struct hindex by_name, by_token, by_psk, by_cn;
} R;

static size_t hash_bytes(const uint8_t *k, size_t len)
{
    size_t h = 1469598103934665603u; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= k[i];
        h *= 1099511628211u;
    }
    return h;
}

static int hindex_init(struct hindex *x, size_t expected)
{
    x->n_buckets = 64;
    while (x->n_buckets < expected * 2)
        x->n_buckets *= 2;
    x->buckets = calloc(x->n_buckets, sizeof(*x->buckets));
    return x->buckets ? 0 : -ENOMEM;
}

static int hindex_add(struct hindex *x, const void *key, size_t len, struct device *dev)
{
    struct hentry *e = malloc(sizeof(*e));
    size_t b = hash_bytes(key, len) & (x->n_buckets - 1);

    if (!e)
        return -ENOMEM;
    e->key = key;
    e->len = len;
    e->dev = dev;
    e->next = x->buckets[b];
    x->buckets[b] = e;
    return 0;
}

/* Constant time for equal lengths: a digest match must not leak through timing. */
static int bytes_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    uint8_t diff = 0;

    for (size_t i = 0; i < len; i++)
        diff |= (uint8_t)(a[i] ^ b[i]);
    return diff == 0;
}

static struct device *hindex_get(const struct hindex *x, const void *key, size_t len)
{
    if (!x->buckets)
        return NULL;
    for (struct hentry *e = x->buckets[hash_bytes(key, len) & (x->n_buckets - 1)]; e; e = e->next)
        if (e->len == len && bytes_equal(e->key, key, len))
            return e->dev;
    return NULL;
}

static void hindex_free(struct hindex *x)
{
    for (size_t i = 0; x->buckets && i < x->n_buckets; i++) {
        struct hentry *e = x->buckets[i];
        while (e) {
            struct hentry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(x->buckets);
    x->buckets = NULL;
}

static int token_digest(const char *token, size_t len, uint8_t out[DIGEST_LEN])
{
    return wc_Sha256Hash((const byte *)token, (word32)len, out) == 0 ? 0 : -EIO;
}

int device_registry_init(const struct conf *conf)
{
    size_t n = conf->n_devices;
    int rc;

    memset(&R, 0, sizeof(R));
    R.configured = calloc(n ? n : 1, sizeof(*R.configured));
    R.token_digests = calloc(n ? n : 1, sizeof(*R.token_digests));
    if (!R.configured || !R.token_digests) {
        rc = -ENOMEM;
        goto fail;
    }
    R.n_configured = n;
    if ((rc = hindex_init(&R.by_name, n + 64)) < 0 || (rc = hindex_init(&R.by_token, n)) < 0 ||
        (rc = hindex_init(&R.by_psk, n)) < 0 || (rc = hindex_init(&R.by_cn, n)) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const struct conf_device *c = &conf->devices[i];
        struct device *d = &R.configured[i];

        d->name = c->name;
        d->type = c->type ? c->type : "default";
        d->conf = c;
        rc = hindex_add(&R.by_name, c->name, strlen(c->name), d);
        if (rc == 0 && c->token) {
            rc = token_digest(c->token, strlen(c->token), R.token_digests[i]);
            if (rc == 0)
                rc = hindex_add(&R.by_token, R.token_digests[i], DIGEST_LEN, d);
        }
        if (rc == 0 && c->psk_identity)
            rc = hindex_add(&R.by_psk, c->psk_identity, strlen(c->psk_identity), d);
        if (rc == 0 && c->cert_cn)
            rc = hindex_add(&R.by_cn, c->cert_cn, strlen(c->cert_cn), d);
        if (rc < 0)
            goto fail;
    }
    return 0;
fail:
    device_registry_free();
    return rc;
}

void device_registry_free(void)
{
    hindex_free(&R.by_name);
    hindex_free(&R.by_token);
    hindex_free(&R.by_psk);
    hindex_free(&R.by_cn);
    for (size_t i = 0; i < R.n_dynamic; i++) {
        free(R.dynamic[i]->name);
        free(R.dynamic[i]->type);
        free(R.dynamic[i]);
    }
    free(R.dynamic);
    free(R.configured);
    free(R.token_digests);
    memset(&R, 0, sizeof(R));
}

struct device *device_by_token(const char *token, size_t len)
{
    uint8_t digest[DIGEST_LEN];

    if (len == 0 || token_digest(token, len, digest) < 0)
        return NULL;
    return hindex_get(&R.by_token, digest, DIGEST_LEN);
}

struct device *device_by_psk_identity(const uint8_t *id, size_t len)
{
    return len ? hindex_get(&R.by_psk, id, len) : NULL;
}

struct device *device_by_cn(const char *cn, size_t len)
{
    return len ? hindex_get(&R.by_cn, cn, len) : NULL;
}

struct device *device_by_name(const char *name, size_t len)
{
    return len ? hindex_get(&R.by_name, name, len) : NULL;
}

struct device *device_get_or_add(const char *name, size_t len, const char *type, int *err)
{
    struct device *d = device_by_name(name, len);
    struct dyn_device *dd;
    struct dyn_device **grown;

    *err = 0;
    if (d)
        return d;
    if (R.n_dynamic >= DEVICE_MAX_DYNAMIC) {
        *err = -ENOSPC;
        return NULL;
    }
    grown = realloc(R.dynamic, (R.n_dynamic + 1) * sizeof(*R.dynamic));
    if (!grown) {
        *err = -ENOMEM;
        return NULL;
    }
    R.dynamic = grown;
    dd = calloc(1, sizeof(*dd));
    if (!dd) {
        *err = -ENOMEM;
        return NULL;
    }
    dd->name = strndup(name, len);
    dd->type = strdup(type && *type ? type : "default");
    if (!dd->name || !dd->type || hindex_add(&R.by_name, dd->name, len, &dd->dev) < 0) {
        free(dd->name);
        free(dd->type);
        free(dd);
        *err = -ENOMEM;
        return NULL;
    }
    dd->dev.name = dd->name;
    dd->dev.type = dd->type;
    R.dynamic[R.n_dynamic++] = dd;
    log_msg(LOG_INFO, "device: new device=\"%s\" type=\"%s\"", dd->name, dd->type);
    return &dd->dev;
}

void device_registry_reset_announced(void)
{
    for (size_t i = 0; i < R.n_configured; i++)
        R.configured[i].announced = false;
    for (size_t i = 0; i < R.n_dynamic; i++)
        R.dynamic[i]->dev.announced = false;
}

size_t device_registry_count(void)
{
    return R.n_configured + R.n_dynamic;
}
