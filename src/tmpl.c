/* SPDX-License-Identifier: MIT */
/* URI path templates ({name} segments) and string templates ({name} placeholders). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/tmpl.h"

struct tmpl_seg {
    char *text; /* literal text, or the variable name */
    size_t len;
    int is_var;
};

struct tmpl_path {
    struct tmpl_seg *segs;
    size_t n;
    size_t literals;
};

/* A string template is a list of parts, each literal text or a variable. */
struct tmpl_str {
    struct tmpl_seg *parts;
    size_t n;
};

static int name_valid(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

static void segs_free(struct tmpl_seg *segs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(segs[i].text);
    free(segs);
}

static int seg_push(struct tmpl_seg **segs, size_t *n, const char *s, size_t len, int is_var)
{
    struct tmpl_seg *grown = realloc(*segs, (*n + 1) * sizeof(**segs));
    if (!grown)
        return -ENOMEM;
    *segs = grown;
    grown[*n].text = strndup(s, len);
    if (!grown[*n].text)
        return -ENOMEM;
    grown[*n].len = len;
    grown[*n].is_var = is_var;
    (*n)++;
    return 0;
}

static int path_has_var(const struct tmpl_seg *segs, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (segs[i].is_var && segs[i].len == len && memcmp(segs[i].text, name, len) == 0)
            return 1;
    return 0;
}

int tmpl_path_parse(const char *text, struct tmpl_path **out, char *err, size_t errlen)
{
    struct tmpl_path *p = calloc(1, sizeof(*p));
    const char *s = text;
    int rc = 0;

    if (!p)
        return -ENOMEM;
    if (*s != '/') {
        snprintf(err, errlen, "path must start with '/'");
        rc = -EINVAL;
        goto out;
    }
    s++;
    /* "/" alone is the root resource: zero segments. */
    while (*s) {
        const char *end = strchr(s, '/');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (len == 0) {
            snprintf(err, errlen, "empty path segment");
            rc = -EINVAL;
            goto out;
        }
        if (s[0] == '{') {
            if (len < 3 || s[len - 1] != '}' || !name_valid(s + 1, len - 2)) {
                snprintf(err, errlen,
                         "bad variable segment '%.*s'; expected {name} with letters, digits, _",
                         (int)len, s);
                rc = -EINVAL;
                goto out;
            }
            if (path_has_var(p->segs, p->n, s + 1, len - 2)) {
                snprintf(err, errlen, "variable '%.*s' appears twice", (int)len - 2, s + 1);
                rc = -EINVAL;
                goto out;
            }
            rc = seg_push(&p->segs, &p->n, s + 1, len - 2, 1);
        } else {
            if (memchr(s, '{', len) || memchr(s, '}', len)) {
                snprintf(err, errlen, "a variable must be a whole segment, got '%.*s'", (int)len,
                         s);
                rc = -EINVAL;
                goto out;
            }
            rc = seg_push(&p->segs, &p->n, s, len, 0);
            p->literals++;
        }
        if (rc < 0)
            goto out;
        if (p->n > TMPL_VARS_MAX * 2) {
            snprintf(err, errlen, "too many segments (at most %d)", TMPL_VARS_MAX * 2);
            rc = -EINVAL;
            goto out;
        }
        s += len;
        if (*s == '/') {
            s++;
            if (*s == '\0') {
                snprintf(err, errlen, "trailing '/'");
                rc = -EINVAL;
                goto out;
            }
        }
    }
out:
    if (rc < 0) {
        tmpl_path_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void tmpl_path_free(struct tmpl_path *p)
{
    if (!p)
        return;
    segs_free(p->segs, p->n);
    free(p);
}

bool tmpl_path_match(const struct tmpl_path *p, const struct tmpl_slice *segs, size_t n_segs,
                     struct tmpl_vars *vars)
{
    size_t first = vars->n;

    if (n_segs != p->n)
        return false;
    for (size_t i = 0; i < n_segs; i++) {
        const struct tmpl_seg *t = &p->segs[i];
        if (!t->is_var) {
            if (segs[i].len != t->len || memcmp(segs[i].s, t->text, t->len) != 0)
                goto nomatch;
            continue;
        }
        if (vars->n >= TMPL_VARS_MAX)
            goto nomatch;
        vars->name[vars->n] = t->text;
        vars->value[vars->n] = segs[i];
        vars->n++;
    }
    return true;
nomatch:
    vars->n = first;
    return false;
}

bool tmpl_path_has_var(const struct tmpl_path *p, const char *name)
{
    return path_has_var(p->segs, p->n, name, strlen(name));
}

size_t tmpl_path_literals(const struct tmpl_path *p)
{
    return p->literals;
}

size_t tmpl_path_segments(const struct tmpl_path *p)
{
    return p->n;
}

/* Only "{name}" is a placeholder: any other brace is literal, so JSON payload templates such
 * as {"device":"{device}"} need no escaping. */
int tmpl_str_parse(const char *text, struct tmpl_str **out, char *err, size_t errlen)
{
    struct tmpl_str *t = calloc(1, sizeof(*t));
    struct buf lit = BUF_INIT;
    const char *s = text;
    int rc = 0;

    (void)err;
    (void)errlen;
    if (!t)
        return -ENOMEM;
    while (*s) {
        const char *end = s[0] == '{' ? strchr(s, '}') : NULL;

        if (end && name_valid(s + 1, (size_t)(end - s - 1))) {
            if (lit.len) {
                rc = seg_push(&t->parts, &t->n, (const char *)lit.data, lit.len, 0);
                buf_reset(&lit);
                if (rc < 0)
                    goto out;
            }
            rc = seg_push(&t->parts, &t->n, s + 1, (size_t)(end - s - 1), 1);
            s = end + 1;
        } else {
            rc = buf_append_byte(&lit, (uint8_t)*s);
            s++;
        }
        if (rc < 0)
            goto out;
    }
    if (lit.len)
        rc = seg_push(&t->parts, &t->n, (const char *)lit.data, lit.len, 0);
out:
    buf_free(&lit);
    if (rc < 0) {
        tmpl_str_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void tmpl_str_free(struct tmpl_str *t)
{
    if (!t)
        return;
    segs_free(t->parts, t->n);
    free(t);
}

int tmpl_str_each_var(const struct tmpl_str *t, int (*fn)(void *arg, const char *name), void *arg)
{
    for (size_t i = 0; i < t->n; i++) {
        if (!t->parts[i].is_var)
            continue;
        int rc = fn(arg, t->parts[i].text);
        if (rc)
            return rc;
    }
    return 0;
}

/* MQTT topic levels are separated by '/', and '+' '#' are filter wildcards: a device-supplied
 * value holding any of them could publish outside its own topics. */
static int topic_value_ok(const struct tmpl_slice *v)
{
    if (v->len == 0)
        return 0;
    for (size_t i = 0; i < v->len; i++) {
        char c = v->s[i];
        if (c == '/' || c == '+' || c == '#' || c == '\0')
            return 0;
    }
    return 1;
}

int tmpl_str_expand(const struct tmpl_str *t, tmpl_lookup_fn fn, void *ctx, int flags,
                    struct buf *out, const char **bad)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct tmpl_seg *p = &t->parts[i];
        struct tmpl_slice v;
        int rc;

        if (!p->is_var) {
            rc = buf_append(out, p->text, p->len);
        } else {
            if (!fn(ctx, p->text, &v) || ((flags & TMPL_TOPIC) && !topic_value_ok(&v))) {
                if (bad)
                    *bad = p->text;
                return -EINVAL;
            }
            if (flags & TMPL_JSON)
                rc = buf_append_json_escaped(out, v.s, v.len);
            else
                rc = buf_append(out, v.s, v.len);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

struct one_var {
    const char *name;
    const char *value;
};

static bool lookup_one(void *ctx, const char *name, struct tmpl_slice *v)
{
    const struct one_var *o = ctx;

    if (strcmp(name, o->name) != 0)
        return false;
    v->s = o->value;
    v->len = strlen(o->value);
    return true;
}

int tmpl_expand_one(const char *text, const char *name, const char *value, int flags, char **out)
{
    struct one_var o = {name, value};
    struct tmpl_str *t = NULL;
    struct buf b = BUF_INIT;
    char err[64];
    int rc = tmpl_str_parse(text, &t, err, sizeof(err));

    if (rc == 0)
        rc = tmpl_str_expand(t, lookup_one, &o, flags, &b, NULL);
    if (rc == 0 && buf_reserve(&b, 0) < 0)
        rc = -ENOMEM;
    tmpl_str_free(t);
    if (rc < 0) {
        buf_free(&b);
        return rc;
    }
    *out = buf_steal(&b);
    return 0;
}

char *tmpl_topic_filter(const char *text, const char *gateway)
{
    struct buf b = BUF_INIT;

    for (const char *p = text;;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);

        if (n == 9 && !memcmp(p, "{gateway}", 9))
            buf_append_str(&b, gateway);
        else if (memchr(p, '{', n))
            buf_append_byte(&b, '+');
        else
            buf_append(&b, p, n);
        if (!end)
            return buf_steal(&b);
        buf_append_byte(&b, '/');
        p = end + 1;
    }
}

/* MQTT 5 4.8.2: "$share/{ShareName}/{filter}"; mosquitto 2, EMQX and HiveMQ take it on
 * MQTT 3.1.1 connections too. The first level alone decides: "$sharex/a" is a plain filter. */
static bool is_shared(const char *filter)
{
    return strncmp(filter, "$share", 6) == 0 && (filter[6] == '/' || filter[6] == '\0');
}

int tmpl_filter_check(const char *filter, char *err, size_t errlen)
{
    const char *group, *slash;

    if (!is_shared(filter))
        return 0;
    group = filter[6] ? filter + 7 : filter + 6;
    slash = strchr(group, '/');
    if (group == filter + 6 || (!slash && *group)) {
        snprintf(err, errlen,
                 "a shared subscription needs a group and a filter: "
                 "$share/GROUP/FILTER");
        return -EINVAL;
    }
    if (slash == group || !*group) {
        snprintf(err, errlen, "the share group of $share/GROUP/FILTER must not be empty");
        return -EINVAL;
    }
    if (strcspn(group, "+#{}") < (size_t)(slash - group)) {
        snprintf(err, errlen,
                 "the share group of $share/GROUP/FILTER must be a plain name, "
                 "without '+', '#' or {variables}");
        return -EINVAL;
    }
    if (!slash[1]) {
        snprintf(err, errlen,
                 "a shared subscription needs a filter after its group: "
                 "$share/GROUP/FILTER");
        return -EINVAL;
    }
    return 0;
}

const char *tmpl_match_filter(const char *filter)
{
    const char *slash;

    if (!is_shared(filter))
        return filter;
    if (tmpl_filter_check(filter, NULL, 0) < 0)
        return NULL;
    slash = strchr(filter + 7, '/');
    return slash + 1;
}

bool tmpl_filter_shared(const char *filter)
{
    return is_shared(filter);
}
