/* SPDX-License-Identifier: MIT */
/* Templates: URI path templates that capture {name} segments, and string templates
 * (MQTT topics, payloads) that expand {name} placeholders. */
#ifndef COAP2MQTT_TMPL_H
#define COAP2MQTT_TMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "coap2mqtt/buf.h"

#define TMPL_VARS_MAX 16

/* A piece of a request: pointer into the request, not NUL-terminated. */
struct tmpl_slice {
    const char *s;
    size_t len;
};

/* Captured variables; names point into the template, values into the request. */
struct tmpl_vars {
    size_t n;
    const char *name[TMPL_VARS_MAX];
    struct tmpl_slice value[TMPL_VARS_MAX];
};

struct tmpl_path;
struct tmpl_str;

/**
 * Parse a URI path template: "/api/v1/{token}/telemetry". Segments are literal or a whole
 * "{name}" variable; names are [A-Za-z0-9_]+ and unique.
 * @return 0, -EINVAL with a message in err, or -ENOMEM.
 */
int tmpl_path_parse(const char *text, struct tmpl_path **out, char *err, size_t errlen);
void tmpl_path_free(struct tmpl_path *p);
/* Match request segments; on success appends captures to vars and returns true. */
bool tmpl_path_match(const struct tmpl_path *p, const struct tmpl_slice *segs, size_t n_segs,
                     struct tmpl_vars *vars);
/* Does the template declare variable name? */
bool tmpl_path_has_var(const struct tmpl_path *p, const char *name);
/* Number of literal segments (more literal = more specific, tried first). */
size_t tmpl_path_literals(const struct tmpl_path *p);
size_t tmpl_path_segments(const struct tmpl_path *p);

/* Parse a string template: "{name}" (name = [A-Za-z0-9_]+) is a placeholder, every other
 * brace is literal text. Fails only with -ENOMEM. */
int tmpl_str_parse(const char *text, struct tmpl_str **out, char *err, size_t errlen);
void tmpl_str_free(struct tmpl_str *t);
/* Calls fn(arg, name) for each placeholder; stops and returns the first non-zero result. */
int tmpl_str_each_var(const struct tmpl_str *t, int (*fn)(void *arg, const char *name), void *arg);

/* Look a variable up at expansion time; false when unknown. */
typedef bool (*tmpl_lookup_fn)(void *ctx, const char *name, struct tmpl_slice *value);

#define TMPL_TOPIC 0x1 /* refuse empty values and values with '+', '#', '/' or NUL */
#define TMPL_JSON 0x2  /* JSON-escape values (for placement inside a JSON string) */

/**
 * Expand into out (appended). On refusal the name of the offending variable is written
 * to bad (when non-NULL).
 * @return 0; -EINVAL when a value is refused (TMPL_TOPIC) or unknown; -ENOMEM.
 */
int tmpl_str_expand(const struct tmpl_str *t, tmpl_lookup_fn fn, void *ctx, int flags,
                    struct buf *out, const char **bad);

/**
 * Expand a template that may use one variable only (such as "{gateway}" in the status
 * topic) into a new string.
 * @return 0 with *out set (free it); -EINVAL for another variable or a refused value;
 *         -ENOMEM.
 */
int tmpl_expand_one(const char *text, const char *name, const char *value, int flags, char **out);

/**
 * The MQTT subscription for a topic template: {gateway} filled in, every other level that
 * holds a variable becomes '+' (replies and commands are matched exactly on arrival).
 * @return a new string, or NULL when out of memory.
 */
char *tmpl_topic_filter(const char *text, const char *gateway);

/*
 * Shared subscriptions (MQTT 5 4.8.2): "$share/GROUP/FILTER" asks the broker to hand each
 * message to one subscriber of GROUP; the messages arrive with their own topics, which
 * match FILTER. These work on subscription filters and on the templates they come from.
 */
/**
 * Is a "$share/..." subscription well formed: a non-empty group without '+', '#' or
 * {variables}, then a non-empty filter? Any other filter passes.
 * @return 0, or -EINVAL with the reason in err (when err is not NULL).
 */
int tmpl_filter_check(const char *filter, char *err, size_t errlen);
/**
 * What arriving topics are matched against: FILTER of "$share/GROUP/FILTER", any other
 * filter whole. Every matcher of subscribed topics goes through this.
 * @return a pointer into filter; NULL for a malformed "$share" filter (matches nothing).
 */
const char *tmpl_match_filter(const char *filter);
/* Does the filter start with a "$share" level? */
bool tmpl_filter_shared(const char *filter);

#endif
