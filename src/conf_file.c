/* SPDX-License-Identifier: MIT */
/* Configuration files: reading, YAML syntax errors, the top level, includes and cycles. */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf_internal.h"

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

static bool has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

/* One include entry: a file, or a glob pattern (sorted; matching nothing is fine, so a
 * conf.d directory may be empty). */
static int read_include(struct conf_loader *ld, yaml_node_t *it, const char *dir)
{
    struct conf_file *here = ld->file;
    char *name = conf_scalar(ld, it, "include");
    char *path = NULL;
    glob_t g;
    int rc = 0, r;

    if (!name)
        return -EINVAL;
    if (!*name) {
        free(name);
        return conf_err(ld, it, "'include' has an empty file name");
    }
    if (asprintf(&path, "%s%s", name[0] == '/' ? "" : dir, name) < 0) {
        free(name);
        ld->oom = true;
        return -ENOMEM;
    }
    if (!has_glob(name)) {
        rc = conf_read_file(ld, path, it);
        ld->file = here;
    } else {
        r = glob(path, GLOB_ERR, NULL, &g);
        if (r == 0) {
            for (size_t k = 0; k < g.gl_pathc; k++) {
                int r2 = conf_read_file(ld, g.gl_pathv[k], it);
                ld->file = here;
                if (r2 < 0)
                    rc = r2;
            }
        } else if (r == GLOB_NOSPACE) {
            ld->oom = true;
            rc = -ENOMEM;
        } else if (r == GLOB_ABORTED) {
            rc = conf_err(ld, it, "cannot read include pattern '%s': %s", path, strerror(errno));
        }
        globfree(&g);
    }
    free(path);
    free(name);
    return rc;
}

/* include: one path or a list; relative to the including file. */
static int read_includes(struct conf_loader *ld, yaml_node_t *value)
{
    char *dir;
    int rc = 0;

    if (conf_node_empty(value))
        return 0;
    if (value->type == YAML_MAPPING_NODE)
        return conf_err(ld, value, "'include' must be a file name or a list of file names");
    dir = dir_of(ld->file->path);
    if (!dir) {
        ld->oom = true;
        return -ENOMEM;
    }
    if (value->type == YAML_SCALAR_NODE) {
        rc = read_include(ld, value, dir);
    } else {
        yaml_node_item_t *items = value->data.sequence.items.start;
        size_t n = conf_seq_len(value);
        /* Items point into the document of this file, which stays loaded meanwhile. */
        for (size_t i = 0; i < n && rc != -ENOMEM; i++) {
            int r = read_include(ld, conf_node(ld, items[i]), dir);
            if (r < 0)
                rc = r;
        }
    }
    free(dir);
    return rc;
}

static int unknown_section(struct conf_loader *ld, yaml_node_t *k)
{
    static const char *const names[] = {"gateway", "coap",    "mqtt",    "announce", "spool",
                                        "stats",   "include", "devices", "routes"};
    const char *name = (const char *)k->data.scalar.value;
    const char *best = conf_suggest(name, names, sizeof(names) / sizeof(names[0]));

    if (best)
        return conf_err(ld, k, "unknown section '%s' (did you mean '%s'?)", name, best);
    return conf_err(ld, k,
                    "unknown section '%s'; expected gateway, coap, mqtt, announce, spool, stats, "
                    "include, devices or routes",
                    name);
}

static int walk_file(struct conf_loader *ld)
{
    yaml_node_t *root = yaml_document_get_root_node(&ld->file->doc);
    yaml_node_t *include = NULL;
    int rc = 0;

    if (!root || conf_node_empty(root))
        return 0; /* an empty file configures nothing */
    if (root->type != YAML_MAPPING_NODE)
        return conf_err(ld, root, "the top level must be a mapping of sections");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = conf_node(ld, p->key), *v = conf_node(ld, p->value);
        const char *key;
        int r;

        if (k->type != YAML_SCALAR_NODE) {
            rc = conf_err(ld, k, "section names must be plain names");
            continue;
        }
        if (conf_key_dup(ld, root, p, "the top level")) {
            rc = -EINVAL;
            continue;
        }
        key = (const char *)k->data.scalar.value;
        if (!strcmp(key, "include")) {
            include = v;
            continue;
        }
        if (!strcmp(key, "gateway") || !strcmp(key, "coap") || !strcmp(key, "mqtt") ||
            !strcmp(key, "announce") || !strcmp(key, "spool") || !strcmp(key, "stats") ||
            !strcmp(key, "devices") || !strcmp(key, "routes"))
            r = conf_section(ld, key, k, v);
        else
            r = unknown_section(ld, k);
        if (r < 0)
            rc = r;
        if (r == -ENOMEM)
            return r;
    }
    /* Included files come after this file's own entries. */
    if (include) {
        int r = read_includes(ld, include);
        if (r < 0)
            rc = r;
    }
    return rc;
}

static int syntax_error(struct conf_loader *ld, const char *path, const yaml_parser_t *parser)
{
    struct conf_mark m = {path, (int)parser->problem_mark.line + 1,
                          (int)parser->problem_mark.column + 1};

    if (parser->error == YAML_MEMORY_ERROR) {
        ld->oom = true;
        return -ENOMEM;
    }
    return conf_err_at(ld, &m, "YAML syntax: %s%s%s", parser->problem ? parser->problem : "error",
                       parser->context ? " " : "", parser->context ? parser->context : "");
}

/* Load the one document of fp; a second document is an error (it would be ignored). */
static int load_document(struct conf_loader *ld, FILE *fp, const char *path, yaml_document_t *doc)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    int rc = 0;

    if (!yaml_parser_initialize(&parser)) {
        ld->oom = true;
        return -ENOMEM;
    }
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, doc)) {
        rc = syntax_error(ld, path, &parser);
        yaml_parser_delete(&parser);
        return rc;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        rc = syntax_error(ld, path, &parser);
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&extra);
        if (root) {
            struct conf_mark m = {path, (int)extra.start_mark.line + 1,
                                  (int)extra.start_mark.column + 1};
            rc = conf_err_at(ld, &m, "a second YAML document ('---'); expected one per file");
        }
        yaml_document_delete(&extra);
    }
    yaml_parser_delete(&parser);
    if (rc < 0)
        yaml_document_delete(doc);
    return rc;
}

/* "a -> b -> a" for the cycle message. */
static void cycle_chain(const struct conf_loader *ld, size_t from, const char *path, char *out,
                        size_t len)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = from; i < ld->depth && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s -> ", ld->stack_path[i]);
    if (used < len)
        snprintf(out + used, len - used, "%s", path);
}

static int open_error(struct conf_loader *ld, const char *path, const yaml_node_t *from, int e)
{
    if (from) {
        conf_err(ld, from, "cannot open include '%s': %s", path, strerror(e));
        return -EINVAL;
    }
    conf_err_at(ld, &(struct conf_mark){path, 0, 0}, "cannot open: %s", strerror(e));
    return -e;
}

int conf_read_file(struct conf_loader *ld, const char *path, const yaml_node_t *from)
{
    struct conf_file f = {0};
    char real[PATH_MAX], chain[512];
    struct stat st;
    FILE *fp;
    int rc;

    fp = fopen(path, "r");
    if (!fp)
        return open_error(ld, path, from, errno);
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(fp);
        return open_error(ld, path, from, EISDIR);
    }
    if (!realpath(path, real))
        snprintf(real, sizeof(real), "%s", path);
    for (size_t i = 0; i < ld->depth; i++) {
        if (strcmp(ld->stack[i], real) == 0) {
            fclose(fp);
            cycle_chain(ld, i, path, chain, sizeof(chain));
            return conf_err(ld, from, "include cycle: %s", chain);
        }
    }
    if (ld->depth >= CONF_INCLUDE_DEPTH) {
        fclose(fp);
        return conf_err(ld, from, "includes nested more than %d deep at '%s'", CONF_INCLUDE_DEPTH,
                        path);
    }
    rc = add_file_name(ld->conf, path, &f.path);
    if (rc == 0)
        rc = load_document(ld, fp, f.path, &f.doc);
    fclose(fp);
    if (rc < 0) {
        if (rc == -ENOMEM)
            ld->oom = true;
        return rc == -ENOMEM ? rc : -EINVAL;
    }
    ld->stack[ld->depth] = strdup(real);
    if (!ld->stack[ld->depth]) {
        yaml_document_delete(&f.doc);
        ld->oom = true;
        return -ENOMEM;
    }
    ld->stack_path[ld->depth++] = f.path;
    ld->file = &f;
    rc = walk_file(ld);
    free(ld->stack[--ld->depth]);
    yaml_document_delete(&f.doc);
    ld->file = NULL;
    return rc;
}
