/* SPDX-License-Identifier: MIT */
/* YAML walker for the configuration: files and includes, positions, key tables, errors. */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"

#define CONF_DEFAULT_MAX_ERRORS 50

static int verr_at(struct conf_loader *ld, const struct conf_mark *m, const char *fmt,
                   va_list ap) __attribute__((format(printf, 3, 0)));

static int verr_at(struct conf_loader *ld, const struct conf_mark *m, const char *fmt, va_list ap)
{
    int max = ld->diag->max_errors ? ld->diag->max_errors : CONF_DEFAULT_MAX_ERRORS;

    ld->diag->n_errors++;
    if (ld->stopped)
        return -EINVAL;
    if (ld->diag->n_errors > max) {
        fprintf(ld->diag->out, "too many errors, stopping\n");
        ld->stopped = true;
        return -EINVAL;
    }
    if (m && m->file)
        fprintf(ld->diag->out, "%s:%d:%d: error: ", m->file, m->line, m->col);
    else
        fprintf(ld->diag->out, "%s: error: ",
                ld->file ? ld->file->path : ld->conf->n_files ? ld->conf->files[0] : "?");
    vfprintf(ld->diag->out, fmt, ap);
    fputc('\n', ld->diag->out);
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
        m.line = (int)node->start_mark.line + 1;
        m.col = (int)node->start_mark.column + 1;
    }
    return m;
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

yaml_node_t *conf_node(struct conf_loader *ld, int index)
{
    return yaml_document_get_node(&ld->file->doc, index);
}

bool conf_scalar_plain(const yaml_node_t *node)
{
    return node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

char *conf_scalar(struct conf_loader *ld, const yaml_node_t *node, const char *key)
{
    char bad[256];
    char *out = NULL;
    int rc;

    if (node->type != YAML_SCALAR_NODE) {
        conf_err(ld, node, "'%s' must be a single value, not a %s", key,
                 node->type == YAML_MAPPING_NODE ? "mapping" : "list");
        return NULL;
    }
    rc = conf_env_expand((const char *)node->data.scalar.value, &out, bad, sizeof(bad));
    if (rc == -EINVAL)
        conf_err(ld, node, "%s", bad);
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

static int unknown_key(struct conf_loader *ld, yaml_node_t *k, const struct conf_key *keys,
                       const char *what)
{
    const char *name = (const char *)k->data.scalar.value;
    const char *best = NULL;
    size_t best_d = 3;

    for (const struct conf_key *c = keys; c->name; c++) {
        size_t d = distance(name, c->name);
        if (d < best_d) {
            best_d = d;
            best = c->name;
        }
    }
    if (best)
        return conf_err(ld, k, "unknown key '%s' in %s (did you mean '%s'?)", name, what, best);
    return conf_err(ld, k, "unknown key '%s' in %s", name, what);
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
    if (!*s || *end || errno) {
        rc = conf_err(ld, v, "'%s' must be an integer, got '%s'", c->name, s);
    } else if (n < c->min || n > c->max) {
        rc = conf_err(ld, v, "'%s' must be %lld..%lld, got %lld", c->name, c->min, c->max, n);
    }
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
    if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
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
            buf_free(&list);
            free(s);
            return 0;
        }
        buf_printf(&list, "%s%s", i ? ", " : "", c->names[i]);
    }
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

    switch (c->type) {
    case CONF_K_STR: {
        char *s = conf_scalar(ld, v, c->name);
        if (!s)
            return -EINVAL;
        free(*(char **)field);
        *(char **)field = s;
        return 0;
    }
    case CONF_K_INT:
        rc = parse_number(ld, v, c, &n);
        if (rc == 0)
            *(int *)field = (int)n;
        return rc;
    case CONF_K_UINT:
        rc = parse_number(ld, v, c, &n);
        if (rc == 0)
            *(unsigned *)field = (unsigned)n;
        return rc;
    case CONF_K_SIZE:
        rc = parse_number(ld, v, c, &n);
        if (rc == 0)
            *(size_t *)field = (size_t)n;
        return rc;
    case CONF_K_BOOL:
        return parse_bool(ld, v, c->name, (bool *)field);
    case CONF_K_ENUM:
        return parse_enum(ld, v, c, (int *)field);
    case CONF_K_CUSTOM:
        return c->parse(ld, v, obj);
    }
    return -EINVAL;
}

int conf_apply(struct conf_loader *ld, yaml_node_t *map, const struct conf_key *keys, void *obj,
               const char *what)
{
    int rc = 0;

    if (map->type != YAML_MAPPING_NODE)
        return conf_err(ld, map, "%s must be a mapping of keys", what);
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
        name = (const char *)k->data.scalar.value;
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *qk = conf_node(ld, q->key);
            if (qk->type == YAML_SCALAR_NODE && !strcmp((char *)qk->data.scalar.value, name)) {
                struct conf_mark first = conf_mark_of(ld, qk);
                rc = conf_err(ld, k, "duplicate key '%s' in %s (first at line %d)", name, what,
                              first.line);
                goto next;
            }
        }
        for (c = keys; c->name && strcmp(c->name, name); c++)
            ;
        if (!c->name) {
            rc = unknown_key(ld, k, keys, what);
            continue;
        }
        r = apply_key(ld, v, c, obj);
        if (r < 0)
            rc = r;
    next:;
    }
    return rc;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? strndup(path, (size_t)(slash - path + 1)) : strdup("");
}

static int add_file_name(struct conf *conf, const char *path, const char **stored)
{
    char **grown = realloc(conf->files, (conf->n_files + 1) * sizeof(*conf->files));

    if (!grown)
        return -ENOMEM;
    conf->files = grown;
    grown[conf->n_files] = strdup(path);
    if (!grown[conf->n_files])
        return -ENOMEM;
    *stored = grown[conf->n_files++];
    return 0;
}

/* include: one path or a list; relative to the including file; glob patterns allowed. */
static int read_includes(struct conf_loader *ld, yaml_node_t *value)
{
    char *dir = dir_of(ld->file->path);
    yaml_node_item_t *items = NULL, single = 0;
    size_t n = 0;
    int rc = 0;

    if (!dir)
        return -ENOMEM;
    if (value->type == YAML_SCALAR_NODE) {
        single = (yaml_node_item_t)(value - ld->file->doc.nodes.start) + 1;
        items = &single;
        n = 1;
    } else if (value->type == YAML_SEQUENCE_NODE) {
        items = value->data.sequence.items.start;
        n = (size_t)(value->data.sequence.items.top - items);
    } else {
        free(dir);
        return conf_err(ld, value, "'include' must be a file name or a list of file names");
    }
    for (size_t i = 0; i < n; i++) {
        struct conf_file *here = ld->file;
        yaml_node_t *it = conf_node(ld, items[i]);
        char *name = conf_scalar(ld, it, "include");
        char *path = NULL;
        glob_t g;
        int r;

        if (!name) {
            rc = -EINVAL;
            continue;
        }
        if (asprintf(&path, "%s%s", name[0] == '/' ? "" : dir, name) < 0) {
            free(name);
            rc = -ENOMEM;
            break;
        }
        if (strpbrk(name, "*?[") && glob(path, 0, NULL, &g) == 0) {
            for (size_t k = 0; k < g.gl_pathc; k++) {
                r = conf_read_file(ld, g.gl_pathv[k], it);
                ld->file = here;
                if (r < 0)
                    rc = r;
            }
            globfree(&g);
        } else if (!strpbrk(name, "*?[")) {
            r = conf_read_file(ld, path, it);
            ld->file = here;
            if (r < 0)
                rc = r;
        }
        free(path);
        free(name);
    }
    free(dir);
    return rc;
}

static int walk_file(struct conf_loader *ld)
{
    yaml_node_t *root = yaml_document_get_root_node(&ld->file->doc);
    yaml_node_t *include = NULL;
    int rc = 0;

    if (!root)
        return 0; /* an empty file configures nothing */
    if (root->type != YAML_MAPPING_NODE)
        return conf_err(ld, root, "the top level must be a mapping of sections");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = conf_node(ld, p->key), *v = conf_node(ld, p->value);
        int r;

        if (k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, "include")) {
            include = v;
            continue;
        }
        if (k->type != YAML_SCALAR_NODE) {
            rc = conf_err(ld, k, "section names must be plain names");
            continue;
        }
        r = conf_section(ld, (const char *)k->data.scalar.value, k, v);
        if (r < 0)
            rc = r;
    }
    /* Included files come after this file's own entries. */
    if (include) {
        int r = read_includes(ld, include);
        if (r < 0)
            rc = r;
    }
    return rc;
}

int conf_read_file(struct conf_loader *ld, const char *path, const yaml_node_t *from)
{
    struct conf_file f = {0};
    yaml_parser_t parser;
    char real[PATH_MAX];
    FILE *fp;
    int rc;

    fp = fopen(path, "r");
    if (!fp) {
        int e = errno;
        if (from)
            conf_err(ld, from, "cannot open include '%s': %s", path, strerror(e));
        else
            fprintf(ld->diag->out, "%s: error: cannot open: %s\n", path, strerror(e));
        return from ? -EINVAL : -e;
    }
    if (!realpath(path, real))
        snprintf(real, sizeof(real), "%s", path);
    for (size_t i = 0; i < ld->depth; i++) {
        if (strcmp(ld->stack[i], real) == 0) {
            fclose(fp);
            return conf_err(ld, from, "include cycle: '%s' includes itself", path);
        }
    }
    if (ld->depth >= sizeof(ld->stack) / sizeof(ld->stack[0])) {
        fclose(fp);
        return conf_err(ld, from, "includes nested too deeply at '%s'", path);
    }
    rc = add_file_name(ld->conf, path, &f.path);
    if (rc < 0) {
        fclose(fp);
        return rc;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, &f.doc)) {
        struct conf_mark m = {f.path, (int)parser.problem_mark.line + 1,
                              (int)parser.problem_mark.column + 1};
        rc = conf_err_at(ld, &m, "YAML syntax: %s%s%s", parser.problem ? parser.problem : "error",
                         parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        fclose(fp);
        return rc;
    }
    yaml_parser_delete(&parser);
    fclose(fp);
    ld->stack[ld->depth++] = strdup(real);
    ld->file = &f;
    rc = walk_file(ld);
    free((char *)ld->stack[--ld->depth]);
    yaml_document_delete(&f.doc);
    return rc;
}
