/* SPDX-License-Identifier: MIT */
/* Fuzz target: the configuration loader, conf_load(), on any text: YAML, every section's
 * keys, includes and globs, ${VAR} expansion and the whole-configuration checks.
 *
 * The input is the main file, main.yaml; a line "#file: NAME" (a YAML comment, so any
 * configuration is an input as it is) starts another file of that name, which the main file
 * can include. The loader sees only these files, in memory: its fopen(), access(),
 * realpath(), glob() and getenv() calls are linked to the functions below
 * (-Wl,--wrap=..., see meson.build), so no file outside the input is ever read (/etc/passwd
 * or a glob of "/ *" finds nothing) and the environment is the fixed table below: the same
 * input always does the same thing, on any machine. Everything loaded is freed
 * (LeakSanitizer checks). FUZZ_CONF_DIAG=1 prints the loader's messages. */
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Both names of each: with _FILE_OFFSET_BITS=64 (meson's default) the loader calls fopen64()
 * and glob64(). */
typedef int glob_err_fn(const char *, int);
FILE *__real_fopen(const char *path, const char *mode);
FILE *__real_fopen64(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode);
FILE *__wrap_fopen64(const char *path, const char *mode);
int __real_access(const char *path, int mode);
int __wrap_access(const char *path, int mode);
char *__real_realpath(const char *path, char *resolved);
char *__wrap_realpath(const char *path, char *resolved);
int __real_glob(const char *pattern, int flags, glob_err_fn *errfunc, glob_t *g);
int __real_glob64(const char *pattern, int flags, glob_err_fn *errfunc, glob_t *g);
int __wrap_glob(const char *pattern, int flags, glob_err_fn *errfunc, glob_t *g);
int __wrap_glob64(const char *pattern, int flags, glob_err_fn *errfunc, glob_t *g);
void __real_globfree(glob_t *g);
void __real_globfree64(glob_t *g);
void __wrap_globfree(glob_t *g);
void __wrap_globfree64(glob_t *g);
char *__real_getenv(const char *name);
char *__wrap_getenv(const char *name);

#define ROOT "/fuzz/"
#define MAX_FILES 16
#define SEPARATOR "#file: "

struct vfile {
    char name[PATH_MAX]; /* canonical: "/fuzz/main.yaml" */
    char *data;
    size_t len;
};

static struct vfile files[MAX_FILES];
static size_t n_files;
static bool active; /* only while conf_load() runs: replay.c reads its corpus with fopen() */

/* The environment the configuration sees. */
static const char *const env[][2] = {
    {"C2M_GATEWAY", "fuzz-gw"}, {"C2M_EMPTY", ""},
    {"C2M_INC", "inc"},         {"MQTT_URL", "mqtt://127.0.0.1:1883"},
    {"HOME", "/fuzz"},
};

/* path, relative to /fuzz/ unless absolute, with "", "." and ".." components resolved as
 * text ("/.." is "/"); false when too long. */
static bool canonical(const char *path, char *out)
{
    char tmp[PATH_MAX];
    size_t len = 0;

    if (snprintf(tmp, sizeof(tmp), "%s%s", path[0] == '/' ? "" : ROOT, path) >= (int)sizeof(tmp))
        return false;
    for (char *save = NULL, *c = strtok_r(tmp, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!strcmp(c, "."))
            continue;
        if (!strcmp(c, "..")) {
            while (len > 0 && out[--len] != '/')
                ;
            continue;
        }
        /* out never grows longer than tmp */
        len += (size_t)snprintf(out + len, PATH_MAX - len, "/%s", c);
    }
    if (len == 0)
        out[len++] = '/';
    out[len] = '\0';
    return true;
}

static const struct vfile *find(const char *path)
{
    char name[PATH_MAX];

    if (!canonical(path, name))
        return NULL;
    for (size_t i = 0; i < n_files; i++)
        if (!strcmp(files[i].name, name))
            return &files[i];
    return NULL;
}

/* A directory: the canonical path is a prefix of a file's, up to a '/'. */
static bool is_dir(const char *path)
{
    char name[PATH_MAX];
    size_t len;

    if (!canonical(path, name))
        return false;
    len = strlen(name);
    for (size_t i = 0; i < n_files; i++)
        if (!strncmp(files[i].name, name, len) &&
            (name[len - 1] == '/' || files[i].name[len] == '/'))
            return true;
    return false;
}

static FILE *vfs_fopen(const char *path)
{
    const struct vfile *f = find(path);

    if (!f) {
        errno = is_dir(path) ? EISDIR : ENOENT;
        return NULL;
    }
    return fmemopen(f->data, f->len, "r"); /* glibc takes a zero size */
}

FILE *__wrap_fopen(const char *path, const char *mode)
{
    return active ? vfs_fopen(path) : __real_fopen(path, mode);
}

FILE *__wrap_fopen64(const char *path, const char *mode)
{
    return active ? vfs_fopen(path) : __real_fopen64(path, mode);
}

int __wrap_access(const char *path, int mode)
{
    if (!active)
        return __real_access(path, mode);
    if (find(path) || is_dir(path))
        return 0;
    errno = ENOENT;
    return -1;
}

char *__wrap_realpath(const char *path, char *resolved)
{
    if (!active)
        return __real_realpath(path, resolved);
    if (!find(path) && !is_dir(path)) {
        errno = ENOENT;
        return NULL;
    }
    if (!resolved)
        resolved = malloc(PATH_MAX);
    if (resolved)
        canonical(path, resolved);
    return resolved;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void vfs_globfree(glob_t *g)
{
    for (size_t i = 0; g->gl_pathv && i < g->gl_pathc; i++)
        free(g->gl_pathv[i]);
    free(g->gl_pathv);
    g->gl_pathv = NULL;
    g->gl_pathc = 0;
}

/* The files whose names match the pattern, relative when it is, sorted. */
static int vfs_glob(const char *pattern, glob_t *g)
{
    char pat[PATH_MAX];

    memset(g, 0, sizeof(*g));
    if (!canonical(pattern, pat))
        return GLOB_NOMATCH;
    g->gl_pathv = calloc(MAX_FILES + 1, sizeof(char *));
    if (!g->gl_pathv)
        return GLOB_NOSPACE;
    for (size_t i = 0; i < n_files; i++) {
        const char *name = files[i].name;

        if (fnmatch(pat, name, FNM_PATHNAME | FNM_PERIOD) != 0)
            continue;
        if (pattern[0] != '/')
            name += strlen(ROOT);
        g->gl_pathv[g->gl_pathc] = strdup(name);
        if (!g->gl_pathv[g->gl_pathc]) {
            vfs_globfree(g);
            return GLOB_NOSPACE;
        }
        g->gl_pathc++;
    }
    qsort(g->gl_pathv, g->gl_pathc, sizeof(char *), cmp_str);
    return g->gl_pathc ? 0 : GLOB_NOMATCH;
}

int __wrap_glob(const char *pattern, int flags, glob_err_fn *errfunc, glob_t *g)
{
    return active ? vfs_glob(pattern, g) : __real_glob(pattern, flags, errfunc, g);
}

int __wrap_glob64(const char *pattern, int flags, glob_err_fn *errfunc, glob_t *g)
{
    return active ? vfs_glob(pattern, g) : __real_glob64(pattern, flags, errfunc, g);
}

void __wrap_globfree(glob_t *g)
{
    if (active)
        vfs_globfree(g);
    else
        __real_globfree(g);
}

void __wrap_globfree64(glob_t *g)
{
    if (active)
        vfs_globfree(g);
    else
        __real_globfree64(g);
}

char *__wrap_getenv(const char *name)
{
    if (!active)
        return __real_getenv(name);
    for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
        if (!strcmp(env[i][0], name))
            return (char *)env[i][1];
    return NULL;
}

/* Split the input into files: main.yaml, then one per "#file: NAME" line (a bad name, one
 * given twice, or more than MAX_FILES files: the line stays in the file before it). */
static void split(char *text, size_t size)
{
    const size_t sep = strlen(SEPARATOR);
    char *p = text, *end = text + size;

    n_files = 1;
    canonical("main.yaml", files[0].name);
    files[0].data = text;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *line_end = nl ? nl : end;
        size_t len = (size_t)(line_end - p);

        if (len > sep && !memcmp(p, SEPARATOR, sep) && n_files < MAX_FILES) {
            struct vfile *f = &files[n_files];
            char name[256];

            len -= sep;
            if (len < sizeof(name) && !memchr(p + sep, '\0', len)) {
                memcpy(name, p + sep, len);
                name[len] = '\0';
                if (!find(name) && canonical(name, f->name) && strcmp(f->name, "/")) {
                    files[n_files - 1].len = (size_t)(p - files[n_files - 1].data);
                    f->data = nl ? nl + 1 : end;
                    n_files++;
                }
            }
        }
        p = nl ? nl + 1 : end;
    }
    files[n_files - 1].len = (size_t)(end - files[n_files - 1].data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *out;
    struct conf_diag diag = {0};
    struct conf *conf = NULL;
    char *text = malloc(size + 1);
    int rc;

    if (!out)
        out = __real_getenv("FUZZ_CONF_DIAG") ? stderr : fopen("/dev/null", "w");
    if (!text || !out)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    split(text, size);
    diag.out = out;
    active = true;
    rc = conf_load("main.yaml", &conf, &diag);
    active = false;
    if (rc == 0) {
        /* valid: no error reported, every device and route found by its (unique) name */
        if (!conf || diag.n_errors || !conf->coap.n_listeners || !conf->gateway_name)
            abort();
        for (size_t i = 0; i < conf->n_devices; i++)
            if (!conf->devices[i].name ||
                conf_device_find(conf, conf->devices[i].name) != &conf->devices[i])
                abort();
        for (size_t i = 0; i < conf->n_routes; i++)
            if (!conf->routes[i].name || !conf->routes[i].path || !conf->routes[i].topic ||
                conf_route_find(conf, conf->routes[i].name) != &conf->routes[i])
                abort();
    } else if (rc != -EINVAL || conf || !diag.n_errors) {
        abort(); /* invalid: at least one error reported, nothing handed out */
    }
    conf_free(conf);
    free(text);
    return 0;
}
