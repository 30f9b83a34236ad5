/* SPDX-License-Identifier: MIT */
/* ${VAR} and ${VAR:-default} substitution from the environment in configuration scalars. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"

#define EXPECTED "expected ${NAME} or ${NAME:-default}"

/* Shell variable names: a letter or '_', then letters, digits and '_'. */
static bool name_valid(const char *s, size_t len)
{
    if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* One ${...} reference starting at s; appends its value and returns the text after it. */
static const char *expand_one(const char *in, const char *s, struct buf *b, char *bad,
                              size_t badlen, int *rc)
{
    const char *end = strchr(s + 2, '}');
    const char *dflt, *val;
    char name[128];
    size_t nlen;

    if (!end) {
        snprintf(bad, badlen, "unterminated '${' in '%s'; " EXPECTED, in);
        *rc = -EINVAL;
        return NULL;
    }
    dflt = strstr(s + 2, ":-");
    if (dflt && dflt > end)
        dflt = NULL;
    nlen = (size_t)((dflt ? dflt : end) - (s + 2));
    if (!name_valid(s + 2, nlen) || nlen >= sizeof(name)) {
        snprintf(bad, badlen, "bad variable name '%.*s' in '%s'; " EXPECTED, (int)nlen, s + 2, in);
        *rc = -EINVAL;
        return NULL;
    }
    memcpy(name, s + 2, nlen);
    name[nlen] = '\0';
    val = getenv(name);
    /* As in the shell, ":-" also replaces a variable that is set but empty. */
    if (val && (*val || !dflt)) {
        *rc = buf_append_str(b, val);
    } else if (dflt) {
        *rc = buf_append(b, dflt + 2, (size_t)(end - dflt - 2));
    } else {
        snprintf(bad, badlen, "environment variable '%s' is not set (use ${%s:-default})", name,
                 name);
        *rc = -EINVAL;
    }
    return end + 1;
}

int conf_env_expand(const char *in, char **out, char *bad, size_t badlen)
{
    struct buf b = BUF_INIT;
    const char *s = in;
    int rc = 0;

    while (s && *s && rc == 0) {
        if (s[0] == '$' && s[1] == '$') {
            rc = buf_append_byte(&b, '$');
            s += 2;
        } else if (s[0] == '$' && s[1] == '{') {
            s = expand_one(in, s, &b, bad, badlen, &rc);
        } else {
            /* Copy up to the next '$' at once. */
            size_t n = strcspn(s + 1, "$") + 1;
            rc = buf_append(&b, s, n);
            s += n;
        }
    }
    if (rc == 0 && !b.data)
        rc = buf_reserve(&b, 1); /* "" still needs a string */
    if (rc < 0) {
        buf_free(&b);
        return rc;
    }
    *out = buf_steal(&b);
    return 0;
}
