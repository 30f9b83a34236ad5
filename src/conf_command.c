/* SPDX-License-Identifier: MIT */
/* The command block of a route: MQTT messages that become CoAP requests to devices. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/tmpl.h"
#include "conf_internal.h"

#define C_OFF(f) offsetof(struct conf_command, f)
#define MAX_VARS 8

static const char *const method_names[] = {"GET", "POST", "PUT", "DELETE", NULL};
static const int method_values[] = {1, 2, 3, 4};
static const char *const format_names[] = {"json", "cbor", "text", "octets", NULL};
static const int format_values[] = {CONF_FMT_JSON, CONF_FMT_CBOR, CONF_FMT_TEXT, CONF_FMT_OCTETS};

static int check_path(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c, void *obj)
{
    const char *p = ((struct conf_command *)obj)->path;

    (void)c;
    if (p[0] != '/')
        return conf_err(ld, v, "'path' in %s must start with '/', got '%s'", ld->what, p);
    return 0;
}

/* GET, POST, PUT, DELETE, or "{var}": a level of the subscription names it per message. */
static int parse_method(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_command *c = obj;
    char *s = conf_scalar(ld, v, "method");
    size_t len;
    int rc = 0;

    if (!s)
        return ld->oom ? -ENOMEM : -EINVAL;
    len = strlen(s);
    if (len > 2 && s[0] == '{' && s[len - 1] == '}' && !strpbrk(s + 1, "{/")) {
        free(c->method_var);
        c->method_var = strndup(s + 1, len - 2);
        if (!c->method_var) {
            ld->oom = true;
            rc = -ENOMEM;
        }
        free(s);
        return rc;
    }
    for (size_t i = 0; method_names[i]; i++)
        if (!strcmp(s, method_names[i])) {
            c->method = (unsigned)method_values[i];
            free(s);
            return 0;
        }
    rc = conf_err(ld, v,
                  "'method' must be one of GET, POST, PUT, DELETE or a {variable} of "
                  "'subscribe'; got '%s'",
                  s);
    free(s);
    return rc;
}

/* clang-format off */
const struct conf_key conf_command_keys[] = {
    {CONF_KEY("subscribe", STR, C_OFF(subscribe)), .check = conf_check_nonempty},
    {CONF_KEY("method", CUSTOM, 0), .parse = parse_method},
    {CONF_KEY("path", STR, C_OFF(path)), .check = check_path},
    {CONF_KEY("format", ENUM, C_OFF(format)), .def = CONF_FMT_JSON, .names = format_names,
     .values = format_values},
    {CONF_KEY("confirmable", BOOL, C_OFF(confirmable)), .def = true},
    {CONF_KEY("reply_topic", STR, C_OFF(reply_topic)), .check = conf_check_nonempty},
    {CONF_KEY("timeout", INT, C_OFF(timeout)), .min = 1, .max = 3600, .def = 30},
    {.name = NULL},
};
/* clang-format on */

/* The whole-level {vars} of the subscription: what the path and reply topic may use. */
static int subscribe_vars(struct conf_loader *ld, yaml_node_t *v, const char *sub,
                          char vars[MAX_VARS][32], size_t *n, bool *has_device)
{
    const char *p;
    char why[96];

    *n = 0;
    *has_device = false;
    if (tmpl_filter_check(sub, why, sizeof(why)) < 0)
        return conf_err(ld, v, "'subscribe' in %s: %s, got '%s'", ld->what, why, sub);
    p = tmpl_match_filter(sub); /* "$share/GROUP/" holds no variables */
    if (strpbrk(sub, "#+"))
        return conf_err(ld, v,
                        "'subscribe' in %s names levels with {variables}, not '+' or "
                        "'#', got '%s'",
                        ld->what, sub);
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *open = memchr(p, '{', len);

        if (open) {
            if (open != p || p[len - 1] != '}' || len - 2 >= 32 || len < 3)
                return conf_err(ld, v,
                                "'subscribe' in %s: a {variable} must be a whole "
                                "topic level, got '%s'",
                                ld->what, sub);
            if (*n == MAX_VARS)
                return conf_err(ld, v, "'subscribe' in %s has more than %d variables", ld->what,
                                MAX_VARS);
            memcpy(vars[*n], p + 1, len - 2);
            vars[*n][len - 2] = '\0';
            *has_device |= !strcmp(vars[*n], "device");
            (*n)++;
        }
        if (!end)
            return 0;
        p = end + 1;
    }
}

static bool method_var_known(const char *name, char vars[MAX_VARS][32], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(vars[i], name))
            return true;
    return false;
}

int conf_command_parse(struct conf_loader *ld, yaml_node_t *v, struct conf_route *r)
{
    struct conf_command *c;
    char what[96], vars[MAX_VARS][32];
    const char *names[MAX_VARS + 4];
    size_t n = 0;
    bool has_device;
    int rc;

    r->command = c = calloc(1, sizeof(*c));
    if (!c || conf_defaults(conf_command_keys, c) < 0) {
        ld->oom = true;
        return -ENOMEM;
    }
    c->method = 3; /* PUT */
    snprintf(what, sizeof(what), "'command' of route '%s'", r->name);
    rc = conf_apply(ld, v, conf_command_keys, c, what);
    if (rc < 0)
        return rc;
    if (!c->subscribe || !c->path || !c->reply_topic)
        return conf_err(ld, v, "%s needs 'subscribe', 'path' and 'reply_topic'", what);
    ld->what = what;
    rc = subscribe_vars(ld, conf_map_get(ld, v, "subscribe"), c->subscribe, vars, &n, &has_device);
    if (rc < 0)
        return rc;
    if (!has_device)
        return conf_err(ld, conf_map_get(ld, v, "subscribe"),
                        "'subscribe' in %s must name the device with a {device} level", what);
    for (size_t i = 0; i < n; i++)
        names[i] = vars[i];
    if (c->method_var && !method_var_known(c->method_var, vars, n)) {
        struct buf list = BUF_INIT;

        for (size_t i = 0; i < n; i++)
            buf_printf(&list, "%s{%s}", i == 0 ? "" : i + 1 == n ? " or " : ", ", vars[i]);
        rc = conf_err(ld, conf_map_get(ld, v, "method"),
                      "'method' in %s uses unknown variable {%s}; expected %s (a level of "
                      "'subscribe')",
                      what, c->method_var, list.data ? (char *)list.data : "");
        buf_free(&list);
    }
    names[n] = "gateway";
    names[n + 1] = NULL;
    if (conf_check_template(ld, conf_map_get(ld, v, "path"), "path", c->path, names, false) < 0)
        rc = -EINVAL;
    if (conf_check_template(ld, conf_map_get(ld, v, "reply_topic"), "reply_topic", c->reply_topic,
                            names, true) < 0)
        rc = -EINVAL;
    return rc;
}

void conf_command_free(struct conf_command *c)
{
    if (!c)
        return;
    free(c->subscribe);
    free(c->method_var);
    free(c->path);
    free(c->reply_topic);
    free(c);
}
