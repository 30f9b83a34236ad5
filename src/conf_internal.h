/* SPDX-License-Identifier: MIT */
/* Declarations shared by the configuration loader files (conf*.c); not part of the API. */
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

/* The singular sections, in the order of conf_tables[] (index into conf_loader.seen). */
enum conf_section_id {
    CONF_SEC_GATEWAY,
    CONF_SEC_COAP,
    CONF_SEC_MQTT,
    CONF_SEC_ANNOUNCE,
    CONF_SEC_SPOOL,
    CONF_SEC_STATS,
    CONF_SEC__COUNT
};

/* Keys of singular sections whose position later whole-configuration checks report. */
enum conf_mark_id {
    CONF_M_NONE,
    CONF_M_COAP_CERT,
    CONF_M_COAP_KEY,
    CONF_M_COAP_REQUIRE,
    CONF_M_MQTT_RECONNECT_MIN,
    CONF_M_MQTT_RECONNECT_MAX,
    CONF_M__COUNT
};

#define CONF_INCLUDE_DEPTH 16

struct conf_loader {
    struct conf *conf;
    struct conf_diag *diag;
    struct conf_file *file;                     /* the file being walked */
    char *stack[CONF_INCLUDE_DEPTH];            /* include chain (real paths), for cycles */
    const char *stack_path[CONF_INCLUDE_DEPTH]; /* the same files, as written */
    size_t depth;
    struct conf_mark seen[CONF_SEC__COUNT]; /* where each singular section was set */
    struct conf_mark marks[CONF_M__COUNT];  /* where some keys were set */
    const char *what; /* the mapping conf_apply() is reading ("section 'coap'"), for validators */
    int errors;       /* errors reported by this load */
    bool stopped;     /* too many errors */
    bool oom;         /* an allocation failed: conf_load() -ENOMEM */
};

/* Report an error at node (file:line:col: error: ...). Returns -EINVAL. */
int conf_err(struct conf_loader *ld, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A warning at node (file:line:col: warning: ...): the configuration still loads. */
void conf_warn(struct conf_loader *ld, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same at an explicit mark (NULL or no file: the file alone). */
int conf_err_at(struct conf_loader *ld, const struct conf_mark *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct conf_mark conf_mark_of(const struct conf_loader *ld, const yaml_node_t *node);
/* The mark of a key if it was set, else where its section starts (NULL if neither). */
const struct conf_mark *conf_key_mark(const struct conf_loader *ld, enum conf_mark_id key,
                                      enum conf_section_id section);

yaml_node_t *conf_node(struct conf_loader *ld, int index);
/* Scalar value with ${VAR} expanded (malloc'd), or NULL after reporting an error
 * (or when out of memory: then ld->oom is set). */
char *conf_scalar(struct conf_loader *ld, const yaml_node_t *node, const char *key);
/* Was the scalar written plainly (unquoted)? Used to type static attribute values. */
bool conf_scalar_plain(const yaml_node_t *node);
size_t conf_seq_len(const yaml_node_t *node);
size_t conf_map_len(const yaml_node_t *node);
/* A plain empty scalar ("routes:" with nothing after it). */
bool conf_node_empty(const yaml_node_t *node);

/* A key of a mapping section: how to read it, where it goes, its default and checks. */
enum conf_key_type {
    CONF_K_STR,    /* char * */
    CONF_K_INT,    /* int, within min..max */
    CONF_K_UINT,   /* unsigned, within min..max */
    CONF_K_SIZE,   /* size_t, within min..max */
    CONF_K_BOOL,   /* bool: true/false (also yes/no, on/off) */
    CONF_K_ENUM,   /* int, one of names[] -> values[] */
    CONF_K_CUSTOM, /* parse(ld, node, obj); its default is set by the caller */
};

#define CONF_F_EMPTY_NULL 0x1u /* "" means "not set": the field becomes NULL */

struct conf_key {
    const char *name;
    enum conf_key_type type;
    size_t offset;
    long long min, max;
    long long def;            /* default of numbers, bools and enums */
    const char *def_str;      /* default of strings, NULL for none */
    const char *const *names; /* CONF_K_ENUM, NULL-terminated */
    const int *values;
    int (*parse)(struct conf_loader *ld, yaml_node_t *node, void *obj);
    /* Validator, called with the value stored at obj + offset. */
    int (*check)(struct conf_loader *ld, yaml_node_t *node, const struct conf_key *key, void *obj);
    unsigned flags;         /* CONF_F_* */
    enum conf_mark_id mark; /* remember where the key was set */
};

/* One row of a key table: name, type (STR, INT, ...) and offset; extras are designated. */
#define CONF_KEY(n, t, off) .name = (n), .type = CONF_K_##t, .offset = (off)

/* A named key table: the singular sections, then devices, routes and their sub-mappings. */
struct conf_table {
    const char *name;
    const struct conf_key *keys;
};
extern const struct conf_table conf_tables[];
extern const struct conf_key conf_device_keys[];
extern const struct conf_key conf_route_keys[];
extern const struct conf_key conf_csv_keys[];
extern const struct conf_key conf_observe_keys[];
extern const struct conf_key conf_queue_keys[];
extern const struct conf_key conf_fetch_keys[];
extern const struct conf_key conf_request_keys[];
extern const struct conf_key conf_command_keys[];
/* The command block of a route (conf_command.c). */
int conf_command_parse(struct conf_loader *ld, yaml_node_t *v, struct conf_route *r);
void conf_command_free(struct conf_command *c);

/* Set every default of a key table into obj. @return 0 or -ENOMEM. */
int conf_defaults(const struct conf_key *keys, void *obj);
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
/* Is the key of pair p written earlier in map? Then it is reported ("duplicate key 'x' in
 * what") and the caller skips the pair. */
bool conf_key_dup(struct conf_loader *ld, yaml_node_t *map, const yaml_node_pair_t *p,
                  const char *what);
/* The closest of candidates to name (Levenshtein distance <= 2), or NULL. */
const char *conf_suggest(const char *name, const char *const *candidates, size_t n);

/* Report array elements whose string field (at offset) equals an earlier element's. */
typedef int (*conf_dup_fn)(struct conf_loader *ld, size_t later, size_t first, void *ctx);
int conf_find_dups(struct conf_loader *ld, const void *arr, size_t n, size_t elem, size_t offset,
                   conf_dup_fn report, void *ctx);

/* Validator: the string key must not be "". */
int conf_check_nonempty(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                        void *obj);
/* Checks of template keys: only the listed variables; topics without '+' or '#'. */
int conf_check_template(struct conf_loader *ld, yaml_node_t *node, const char *key,
                        const char *text, const char *const *vars, bool topic);

/* Read and walk a file (and what it includes). Used by conf_load(). */
int conf_read_file(struct conf_loader *ld, const char *path, const yaml_node_t *from);
/* Called by conf_read_file() for each top-level key of a file. */
int conf_section(struct conf_loader *ld, const char *key, yaml_node_t *key_node,
                 yaml_node_t *value);

/* coap.listen (conf_coap.c): the key's parser, the default list, checks with credentials. */
int conf_parse_listen(struct conf_loader *ld, yaml_node_t *v, void *obj);
int conf_default_listeners(struct conf_loader *ld);
int conf_check_listeners(struct conf_loader *ld);

/* Read one entry of 'devices' (conf_device.c); checks across devices; freeing. */
int conf_device_read(struct conf_loader *ld, yaml_node_t *v, struct conf_device *d, size_t idx);
int conf_devices_check(struct conf_loader *ld);
void conf_device_free(struct conf_device *d);

/* Read one entry of 'routes' (conf_route.c); checks across routes; freeing. */
int conf_route_read(struct conf_loader *ld, yaml_node_t *v, struct conf_route *r, size_t idx);
int conf_routes_check(struct conf_loader *ld);
void conf_route_free(struct conf_route *r);

/* ${VAR} / ${VAR:-default}; "$$" is a literal '$'. On -EINVAL, bad holds the reason. */
int conf_env_expand(const char *in, char **out, char *bad, size_t badlen);

#endif
