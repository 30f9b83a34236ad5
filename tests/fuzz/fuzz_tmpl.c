/* SPDX-License-Identifier: MIT */
/* Fuzz target: URI templates and topic expansion with hostile paths and values. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/tmpl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool lookup(void *ctx, const char *name, struct tmpl_slice *v)
{
    const struct tmpl_vars *vars = ctx;

    for (size_t i = 0; i < vars->n; i++) {
        if (strcmp(vars->name[i], name) == 0) {
            *v = vars->value[i];
            return true;
        }
    }
    return false;
}

/* Input: "template\npath/segments/separated/by/slash". */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = strndup((const char *)data, size);
    char *nl = text ? strchr(text, '\n') : NULL;
    struct tmpl_path *p = NULL;
    struct tmpl_str *t = NULL;
    struct tmpl_slice segs[64];
    struct tmpl_vars vars = {0};
    struct buf out = BUF_INIT;
    size_t n = 0;
    char err[128];

    if (!nl) {
        free(text);
        return 0;
    }
    *nl = '\0';
    for (char *s = nl + 1; *s && n < 64;) {
        char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        segs[n].s = s;
        segs[n++].len = len;
        s += len + (e ? 1 : 0);
    }
    if (tmpl_path_parse(text, &p, err, sizeof(err)) == 0 && tmpl_path_match(p, segs, n, &vars) &&
        tmpl_str_parse(text, &t, err, sizeof(err)) == 0)
        tmpl_str_expand(t, lookup, &vars, TMPL_TOPIC | TMPL_JSON, &out, NULL);
    tmpl_str_free(t);
    tmpl_path_free(p);
    buf_free(&out);
    free(text);
    return 0;
}
