/* SPDX-License-Identifier: MIT */
/* Declarations shared by the configuration loader files (conf.c, conf_yaml.c, conf_env.c). */
#ifndef COAP2MQTT_CONF_INTERNAL_H
#define COAP2MQTT_CONF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

#include "coap2mqtt/buf.h"
#include "coap2mqtt/conf.h"

/* One YAML file being read. */
struct conf_file {
    const char *path; /* as written (joined with the including file's directory) */
    yaml_document_t doc;
};

struct conf_loader {
    struct conf *conf;
    struct conf_diag *diag;
    struct conf_file *file; /* the file being walked */
    const char *stack[16];  /* include chain, for cycle detection (real paths) */
    size_t depth;
    struct conf_mark seen[6]; /* where each singular section was set (gateway, coap, mqtt, announce, spool, stats) */
    bool stopped;           /* too many errors */
};

/* Report an error at node (file:line:col: error: ...). Returns -EINVAL. */
int conf_err(struct conf_loader *ld, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same at an explicit mark. */
int conf_err_at(struct conf_loader *ld, const struct conf_mark *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct conf_mark conf_mark_of(const struct conf_loader *ld, const yaml_node_t *node);

yaml_node_t *conf_node(struct conf_loader *ld, int index);
/* Scalar value with ${VAR} expanded (malloc'd), or NULL after reporting an error. */
char *conf_scalar(struct conf_loader *ld, const yaml_node_t *node, const char *key);
/* Was the scalar written plainly (unquoted)? Used to type static attribute values. */
bool conf_scalar_plain(const yaml_node_t *node);

/* A key of a mapping section: how to read it and where it goes. */
enum conf_key_type {
    CONF_K_STR,     /* char * */
    CONF_K_INT,     /* int, within min..max */
    CONF_K_UINT,    /* unsigned, within min..max */
    CONF_K_SIZE,    /* size_t, within min..max */
    CONF_K_BOOL,    /* bool */
    CONF_K_ENUM,    /* int, one of names[] -> values[] */
    CONF_K_CUSTOM,  /* parse(ld, node, obj) */
};

struct conf_key {
    const char *name;
    enum conf_key_type type;
    size_t offset;
    long long min, max;
    const char *const *names; /* CONF_K_ENUM, NULL-terminated */
    const int *values;
    int (*parse)(struct conf_loader *ld, yaml_node_t *node, void *obj);
};

/**
 * Apply a mapping node to obj through a key table. Unknown keys, duplicate keys, wrong
 * types and out-of-range values are reported (all of them). what names the mapping in
 * messages ("section 'mqtt'", "route 'telemetry'").
 * @return 0 or -EINVAL (errors reported), -ENOMEM.
 */
int conf_apply(struct conf_loader *ld, yaml_node_t *map, const struct conf_key *keys, void *obj,
               const char *what);
/* Find a key's value node in a mapping, or NULL. */
yaml_node_t *conf_map_get(struct conf_loader *ld, yaml_node_t *map, const char *key);

/* Read and walk a file (and what it includes). Used by conf_load(). */
int conf_read_file(struct conf_loader *ld, const char *path, const yaml_node_t *from);
/* Called by conf_read_file() for each top-level key of a file. */
int conf_section(struct conf_loader *ld, const char *key, yaml_node_t *key_node,
                 yaml_node_t *value);

/* Read one entry of 'routes' (conf_route.c); conf_route_free() releases its strings. */
int conf_route_read(struct conf_loader *ld, yaml_node_t *v, struct conf_route *r, size_t idx);
void conf_route_free(struct conf_route *r);

/* ${VAR} / ${VAR:-default}; "$$" is a literal '$'. On -EINVAL, bad holds the reason. */
int conf_env_expand(const char *in, char **out, char *bad, size_t badlen);

#endif
