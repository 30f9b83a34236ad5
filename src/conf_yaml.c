/* SPDX-License-Identifier: MIT */
/* YAML walker for the configuration: positions, error lines, key tables and their values. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "coap2mqtt/tmpl.h"
#include "conf_internal.h"

#define CONF_DEFAULT_MAX_ERRORS 50

static int verr_at(struct conf_loader *ld, const struct conf_mark *m, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static int verr_at(struct conf_loader *ld, const struct conf_mark *m, const char *fmt, va_list ap)
{
    int max = ld->diag->max_errors > 0 ? ld->diag->max_errors : CONF_DEFAULT_MAX_ERRORS;
    FILE *out = ld->diag->out ? ld->diag->out : stderr;
    const char *file = m && m->file ? m->file : ld->file ? ld->file->path : NULL;

    ld->diag->n_errors++;
    ld->errors++;
    if (ld->stopped)
        return -EINVAL;
    if (ld->errors > max) {
        fprintf(out, "too many errors, stopping\n");
        ld->stopped = true;
        return -EINVAL;
    }
    if (!file && ld->conf->n_files)
        file = ld->conf->files[0];
    if (m && m->file && m->line > 0)
        fprintf(out, "%s:%d:%d: error: ", m->file, m->line, m->col);
    else
        fprintf(out, "%s: error: ", file ? file : "configuration");
    if (fmt) /* always set; the check quiets GCC 12's -Wformat-overflow under ASan */
        vfprintf(out, fmt, ap);
    fputc('\n', out);
    return -EINVAL;
}

int conf_err_at(struct conf_loader *ld, const struct conf_mark *m, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = verr_at(ld, m, fmt, ap);
    va_end(ap);
    return rc;
}

struct conf_mark conf_mark_of(const struct conf_loader *ld, const yaml_node_t *node)
{
    struct conf_mark m = {ld->file ? ld->file->path : NULL, 0, 0};

    if (node) {
        /* libyaml counts from zero; people and editors count from one. */
        m.line = (int)node->start_mark.line + 1;
        m.col = (int)node->start_mark.column + 1;
    }
    return m;
}

const struct conf_mark *conf_key_mark(const struct conf_loader *ld, enum conf_mark_id key,
                                      enum conf_section_id section)
{
    if (key != CONF_M_NONE && ld->marks[key].file)
        return &ld->marks[key];
    return ld->seen[section].file ? &ld->seen[section] : NULL;
}

int conf_err(struct conf_loader *ld, const yaml_node_t *node, const char *fmt, ...)
{
    struct conf_mark m = conf_mark_of(ld, node);
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = verr_at(ld, &m, fmt, ap);
    va_end(ap);
    return rc;
}

void conf_warn(struct conf_loader *ld, const yaml_node_t *node, const char *fmt, ...)
{
    struct conf_mark m = conf_mark_of(ld, node);
    FILE *out = ld->diag->out ? ld->diag->out : stderr;
    va_list ap;

    ld->diag->n_warnings++;
    if (ld->stopped)
        return;
    if (m.file && m.line > 0)
        fprintf(out, "%s:%d:%d: warning: ", m.file, m.line, m.col);
    else
        fprintf(out, "%s: warning: ", m.file ? m.file : "configuration");
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
}

yaml_node_t *conf_node(struct conf_loader *ld, int index)
{
    return yaml_document_get_node(&ld->file->doc, index);
}

bool conf_scalar_plain(const yaml_node_t *node)
{
    return node->type == YAML_SCALAR_NODE && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

bool conf_node_empty(const yaml_node_t *node)
{
    return conf_scalar_plain(node) && node->data.scalar.length == 0;
}

size_t conf_seq_len(const yaml_node_t *node)
{
    return (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
}

size_t conf_map_len(const yaml_node_t *node)
{
    return (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
}

char *conf_scalar(struct conf_loader *ld, const yaml_node_t *node, const char *key)
{
    char bad[256];
    char *out = NULL;
    int rc;

    if (node->type != YAML_SCALAR_NODE) {
        conf_err(ld, node, "'%s'%s%s must be a single value, not a %s", key, ld->what ? " in " : "",
                 ld->what ? ld->what : "", node->type == YAML_MAPPING_NODE ? "mapping" : "list");
        return NULL;
    }
    rc = conf_env_expand((const char *)node->data.scalar.value, &out, bad, sizeof(bad));
    if (rc == -EINVAL)
        conf_err(ld, node, "%s", bad);
    else if (rc < 0)
        ld->oom = true;
    return rc == 0 ? out : NULL;
}

yaml_node_t *conf_map_get(struct conf_loader *ld, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = conf_node(ld, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
            return conf_node(ld, p->value);
    }
    return NULL;
}

bool conf_key_dup(struct conf_loader *ld, yaml_node_t *map, const yaml_node_pair_t *p,
                  const char *what)
{
    yaml_node_t *k = conf_node(ld, p->key);

    if (k->type != YAML_SCALAR_NODE)
        return false;
    for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
        yaml_node_t *qk = conf_node(ld, q->key);
        if (qk->type == YAML_SCALAR_NODE &&
            !strcmp((char *)qk->data.scalar.value, (char *)k->data.scalar.value)) {
            conf_err(ld, k, "duplicate key '%s' in %s (first at line %d)",
                     (char *)k->data.scalar.value, what, (int)qk->start_mark.line + 1);
            return true;
        }
    }
    return false;
}

/* Levenshtein distance, capped: only used to suggest a key for a typo. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];

    if (la >= 63 || lb >= 63)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof(size_t));
    }
    return prev[lb];
}

const char *conf_suggest(const char *name, const char *const *candidates, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3; /* suggest only close matches: at most two edits */

    for (size_t i = 0; i < n; i++) {
        size_t d = distance(name, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}

static int unknown_key(struct conf_loader *ld, yaml_node_t *k, const struct conf_key *keys,
                       const char *what)
{
    const char *name = (const char *)k->data.scalar.value;
    const char *names[64] = {NULL};
    struct buf list = BUF_INIT;
    const char *best;
    size_t n = 0;
    int rc;

    for (const struct conf_key *c = keys; c->name && n < 64; c++)
        names[n++] = c->name;
    best = conf_suggest(name, names, n);
    if (best)
        return conf_err(ld, k, "unknown key '%s' in %s (did you mean '%s'?)", name, what, best);
    for (size_t i = 0; i < n; i++)
        buf_printf(&list, "%s%s", i ? ", " : "", names[i]);
    rc = conf_err(ld, k, "unknown key '%s' in %s; expected one of %s", name, what,
                  list.data ? (char *)list.data : "");
    buf_free(&list);
    return rc;
}

static int parse_number(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                        long long *out)
{
    char *s = conf_scalar(ld, v, c->name);
    char *end;
    long long n;
    int rc = 0;

    if (!s)
        return -EINVAL;
    errno = 0;
    n = strtoll(s, &end, 10);
    if (!*s || *end || errno == EINVAL)
        rc = conf_err(ld, v, "'%s' must be an integer, got '%s'", c->name, s);
    else if (errno == ERANGE || n < c->min || n > c->max)
        rc = conf_err(ld, v, "'%s' must be %lld..%lld, got %s", c->name, c->min, c->max, s);
    free(s);
    *out = n;
    return rc;
}

static int parse_bool(struct conf_loader *ld, yaml_node_t *v, const char *key, bool *out)
{
    char *s = conf_scalar(ld, v, key);
    int rc = 0;

    if (!s)
        return -EINVAL;
    /* YAML 1.1 spellings too: people write "yes" and expect it to work. */
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
        *out = true;
    else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
        *out = false;
    else
        rc = conf_err(ld, v, "'%s' must be true or false, got '%s'", key, s);
    free(s);
    return rc;
}

static int parse_enum(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c, int *out)
{
    char *s = conf_scalar(ld, v, c->name);
    struct buf list = BUF_INIT;
    int rc;

    if (!s)
        return -EINVAL;
    for (size_t i = 0; c->names[i]; i++) {
        if (strcmp(s, c->names[i]) == 0) {
            *out = c->values[i];
            free(s);
            return 0;
        }
    }
    for (size_t i = 0; c->names[i]; i++)
        buf_printf(&list, "%s%s", i ? ", " : "", c->names[i]);
    rc = conf_err(ld, v, "'%s' must be one of %s; got '%s'", c->name,
                  list.data ? (char *)list.data : "", s);
    buf_free(&list);
    free(s);
    return rc;
}

static int apply_key(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c, void *obj)
{
    char *field = (char *)obj + c->offset;
    long long n = 0;
    int rc = 0;

    if (c->mark != CONF_M_NONE)
        ld->marks[c->mark] = conf_mark_of(ld, v);
    switch (c->type) {
    case CONF_K_STR: {
        char *s = conf_scalar(ld, v, c->name);
        if (!s)
            return -EINVAL;
        if ((c->flags & CONF_F_EMPTY_NULL) && !*s) {
            free(s);
            s = NULL;
        }
        free(*(char **)field);
        *(char **)field = s;
        break;
    }
    case CONF_K_INT:
        rc = parse_number(ld, v, c, &n);
        if (rc == 0)
            *(int *)field = (int)n;
        break;
    case CONF_K_UINT:
        rc = parse_number(ld, v, c, &n);
        if (rc == 0)
            *(unsigned *)field = (unsigned)n;
        break;
    case CONF_K_SIZE:
        rc = parse_number(ld, v, c, &n);
        if (rc == 0)
            *(size_t *)field = (size_t)n;
        break;
    case CONF_K_BOOL:
        rc = parse_bool(ld, v, c->name, (bool *)field);
        break;
    case CONF_K_ENUM:
        rc = parse_enum(ld, v, c, (int *)field);
        break;
    case CONF_K_CUSTOM:
        rc = c->parse(ld, v, obj);
        break;
    }
    if (rc == 0 && c->check)
        rc = c->check(ld, v, c, obj);
    return rc;
}

int conf_defaults(const struct conf_key *keys, void *obj)
{
    for (const struct conf_key *c = keys; c->name; c++) {
        char *field = (char *)obj + c->offset;

        switch (c->type) {
        case CONF_K_STR:
            if (c->def_str && !*(char **)field) {
                *(char **)field = strdup(c->def_str);
                if (!*(char **)field)
                    return -ENOMEM;
            }
            break;
        case CONF_K_INT:
        case CONF_K_ENUM:
            *(int *)field = (int)c->def;
            break;
        case CONF_K_UINT:
            *(unsigned *)field = (unsigned)c->def;
            break;
        case CONF_K_SIZE:
            *(size_t *)field = (size_t)c->def;
            break;
        case CONF_K_BOOL:
            *(bool *)field = c->def != 0;
            break;
        case CONF_K_CUSTOM:
            break;
        }
    }
    return 0;
}

int conf_apply(struct conf_loader *ld, yaml_node_t *map, const struct conf_key *keys, void *obj,
               const char *what)
{
    const char *outer = ld->what;
    int rc = 0;

    if (map->type != YAML_MAPPING_NODE)
        return conf_err(ld, map, "%s must be a mapping of keys", what);
    ld->what = what;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = conf_node(ld, p->key), *v = conf_node(ld, p->value);
        const struct conf_key *c;
        const char *name;
        int r;

        if (k->type != YAML_SCALAR_NODE) {
            rc = conf_err(ld, k, "keys in %s must be plain names", what);
            continue;
        }
        if (conf_key_dup(ld, map, p, what)) {
            rc = -EINVAL;
            continue;
        }
        name = (const char *)k->data.scalar.value;
        for (c = keys; c->name && strcmp(c->name, name); c++)
            ;
        r = c->name ? apply_key(ld, v, c, obj) : unknown_key(ld, k, keys, what);
        if (r < 0)
            rc = r;
    }
    ld->what = outer;
    return rc;
}

int conf_check_nonempty(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c, void *obj)
{
    if (!**(char **)((char *)obj + c->offset))
        return conf_err(ld, v, "'%s' in %s must not be empty", c->name, ld->what);
    return 0;
}

/* ---- checks on templates and across list entries ---- */

struct var_check {
    struct conf_loader *ld;
    yaml_node_t *node;
    const char *key;
    const char *const *vars;
    int rc;
};

static int check_var(void *arg, const char *name)
{
    struct var_check *vc = arg;
    struct buf list = BUF_INIT;
    size_t n = 0;

    for (const char *const *v = vc->vars; *v; v++, n++)
        if (!strcmp(*v, name))
            return 0;
    for (size_t i = 0; i < n; i++)
        buf_printf(&list, "%s{%s}", i == 0 ? "" : i + 1 == n ? " or " : ", ", vc->vars[i]);
    vc->rc = conf_err(vc->ld, vc->node, "'%s' in %s uses unknown variable {%s}; expected %s",
                      vc->key, vc->ld->what, name, list.data ? (char *)list.data : "none");
    buf_free(&list);
    return 0; /* go on: report every unknown variable */
}

int conf_check_template(struct conf_loader *ld, yaml_node_t *node, const char *key,
                        const char *text, const char *const *vars, bool topic)
{
    struct var_check vc = {ld, node, key, vars, 0};
    struct tmpl_str *t = NULL;
    char why[128];

    if (!text)
        return 0;
    if (topic && strpbrk(text, "+#"))
        vc.rc = conf_err(ld, node, "'%s' in %s must not contain '+' or '#', got '%s'", key,
                         ld->what, text);
    /* What is published, or waited for by the gateway that asked, is nobody's to share. */
    if (topic && tmpl_filter_shared(text))
        vc.rc = conf_err(ld, node,
                         "'%s' in %s must not start with '$share': only a "
                         "'subscribe' can be a shared subscription, got '%s'",
                         key, ld->what, text);
    if (tmpl_str_parse(text, &t, why, sizeof(why)) < 0) {
        ld->oom = true;
        return -ENOMEM;
    }
    tmpl_str_each_var(t, check_var, &vc);
    tmpl_str_free(t);
    return vc.rc;
}

struct dup_entry {
    const char *s;
    size_t i;
};

static int cmp_entry(const void *a, const void *b)
{
    const struct dup_entry *x = a, *y = b;
    int r = strcmp(x->s, y->s);

    return r ? r : (x->i > y->i) - (x->i < y->i);
}

struct dup_pair {
    size_t later, first;
};

static int cmp_later(const void *a, const void *b)
{
    const struct dup_pair *x = a, *y = b;

    return (x->later > y->later) - (x->later < y->later);
}

/* Sorting keeps this O(n log n) for thousands of devices; the reports come out in file order. */
int conf_find_dups(struct conf_loader *ld, const void *arr, size_t n, size_t elem, size_t offset,
                   conf_dup_fn report, void *ctx)
{
    struct dup_entry *e;
    struct dup_pair *dups;
    size_t m = 0, nd = 0, start = 0;
    int rc = 0;

    if (n < 2)
        return 0;
    e = malloc(n * sizeof(*e));
    dups = malloc(n * sizeof(*dups));
    if (!e || !dups) {
        free(e);
        free(dups);
        ld->oom = true;
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = *(char *const *)((const char *)arr + i * elem + offset);
        if (s)
            e[m++] = (struct dup_entry){s, i};
    }
    qsort(e, m, sizeof(*e), cmp_entry);
    for (size_t j = 1; j < m; j++) {
        if (strcmp(e[j].s, e[start].s))
            start = j;
        else
            dups[nd++] = (struct dup_pair){e[j].i, e[start].i};
    }
    qsort(dups, nd, sizeof(*dups), cmp_later);
    for (size_t j = 0; j < nd; j++)
        if (report(ld, dups[j].later, dups[j].first, ctx) < 0)
            rc = -EINVAL;
    free(dups);
    free(e);
    return rc;
}
