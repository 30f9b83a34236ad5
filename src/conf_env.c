/* SPDX-License-Identifier: MIT */
/* ${VAR} and ${VAR:-default} substitution from the environment in configuration scalars. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"

int conf_env_expand(const char *in, char **out, char *bad, size_t badlen)
{
    struct buf b = BUF_INIT;
    const char *s = in;
    int rc = 0;

    while (*s && rc == 0) {
        if (s[0] == '$' && s[1] == '$') {
            rc = buf_append_byte(&b, '$');
            s += 2;
        } else if (s[0] == '$' && s[1] == '{') {
            const char *end = strchr(s + 2, '}');
            const char *dflt;
            char name[128];
            size_t nlen;
            const char *val;

            if (!end) {
                snprintf(bad, badlen, "unterminated '${' in '%s'", in);
                rc = -EINVAL;
                break;
            }
            dflt = strstr(s + 2, ":-");
            if (dflt && dflt > end)
                dflt = NULL;
            nlen = (size_t)((dflt ? dflt : end) - (s + 2));
            if (nlen == 0 || nlen >= sizeof(name)) {
                snprintf(bad, badlen, "bad variable reference in '%s'", in);
                rc = -EINVAL;
                break;
            }
            memcpy(name, s + 2, nlen);
            name[nlen] = '\0';
            val = getenv(name);
            if (val && (*val || !dflt))
                rc = buf_append_str(&b, val);
            else if (dflt)
                rc = buf_append(&b, dflt + 2, (size_t)(end - dflt - 2));
            else {
                snprintf(bad, badlen, "environment variable '%s' is not set (use ${%s:-default})",
                         name, name);
                rc = -EINVAL;
            }
            s = end + 1;
        } else {
            rc = buf_append_byte(&b, (uint8_t)*s);
            s++;
        }
    }
    if (rc < 0) {
        buf_free(&b);
        return rc;
    }
    if (!b.data && buf_reserve(&b, 0) < 0)
        return -ENOMEM;
    *out = buf_steal(&b);
    return 0;
}
