/* SPDX-License-Identifier: MIT */
/* JSON codec: strict RFC 8259 parsing under a depth bound, compact serialisation. */
#include <errno.h>
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include <json-c/json.h>

#include "codec_internal.h"

/*
 * RFC 8259's grammar, checked before json-c parses: json-c (even with JSON_TOKENER_STRICT)
 * lets in NaN, Infinity, '-.5', '1.', single quotes and raw control characters in strings,
 * none of which the consumers behind the broker accept. Returns the offset of the first
 * byte that breaks the grammar, or len.
 */
struct grammar {
    const uint8_t *s;
    size_t len, pos;
    int depth;
    int rc;          /* -ERANGE: a number json-c cannot hold (why says how); -ENOMEM */
    const char *why; /* static text */
    size_t num_len;  /* of the number at pos, with -ERANGE */
};

static void skip_ws(struct grammar *g)
{
    while (g->pos < g->len && (g->s[g->pos] == ' ' || g->s[g->pos] == '\t' ||
                               g->s[g->pos] == '\n' || g->s[g->pos] == '\r'))
        g->pos++;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

size_t codec_json_number_end(const uint8_t *s, size_t len, size_t pos)
{
    size_t p = pos;

    if (p < len && s[p] == '-')
        p++;
    if (p < len && s[p] == '0') {
        p++;
    } else if (p < len && s[p] >= '1' && s[p] <= '9') {
        while (p < len && is_digit(s[p]))
            p++;
    } else {
        return pos;
    }
    if (p < len && s[p] == '.') {
        p++;
        if (p >= len || !is_digit(s[p]))
            return pos;
        while (p < len && is_digit(s[p]))
            p++;
    }
    if (p < len && (s[p] == 'e' || s[p] == 'E')) {
        p++;
        if (p < len && (s[p] == '+' || s[p] == '-'))
            p++;
        if (p >= len || !is_digit(s[p]))
            return pos;
        while (p < len && is_digit(s[p]))
            p++;
    }
    return p;
}

/*
 * json-c holds integers as int64 or uint64 and other numbers as doubles, and changes what does
 * not fit without a word: it clamps 18446744073709551616 to 18446744073709551615 and
 * -9223372036854775809 to INT64_MIN, reads 1e999 as infinity (which CBOR carries, and JSON
 * and the gateway's own CBOR reader have no form for) and 1e-999 as 0. So a JSON document
 * would reach MQTT, or a CBOR device, as a different number; it is refused instead. A double
 * that is merely rounded (0.1, or more digits than a double holds) is what RFC 8259 6 expects.
 */
int codec_json_number_check(const uint8_t *s, size_t len, const char **why)
{
    char small[64], *text = len < sizeof(small) ? small : malloc(len + 1);
    bool integer = !memchr(s, '.', len) && !memchr(s, 'e', len) && !memchr(s, 'E', len);
    int rc = 0;

    if (!text)
        return -ENOMEM;
    memcpy(text, s, len); /* the body is not NUL-terminated */
    text[len] = '\0';
    errno = 0;
    if (integer) {
        if (text[0] == '-')
            (void)strtoll(text, NULL, 10);
        else
            (void)strtoull(text, NULL, 10);
        if (errno == ERANGE) {
            *why = "does not fit a 64-bit integer";
            rc = -ERANGE;
        }
    } else {
        double d = strtod(text, NULL);

        if (isinf(d)) {
            *why = "is beyond a 64-bit float";
            rc = -ERANGE;
        } else if (d == 0 && errno == ERANGE) { /* 0e999 is a zero, 1e-999 is not */
            *why = "rounds to zero in a 64-bit float";
            rc = -ERANGE;
        }
    }
    if (text != small)
        free(text);
    return rc;
}

static bool g_string(struct grammar *g)
{
    g->pos++; /* the opening quote */
    while (g->pos < g->len) {
        uint8_t c = g->s[g->pos];
        if (c < 0x20)
            return false; /* pos stays on the control character */
        g->pos++;
        if (c == '"')
            return true;
        if (c == '\\') {
            if (g->pos >= g->len)
                return false;
            c = g->s[g->pos++];
            if (c == 'u') {
                for (int i = 0; i < 4; i++, g->pos++)
                    if (g->pos >= g->len || !isxdigit(g->s[g->pos]))
                        return false;
            } else if (!strchr("\"\\/bfnrt", c)) {
                return false;
            }
        }
    }
    return false;
}

static bool g_value(struct grammar *g);

static bool g_container(struct grammar *g, uint8_t close)
{
    if (++g->depth > CODEC_MAX_DEPTH)
        return false;
    g->pos++;
    skip_ws(g);
    if (g->pos < g->len && g->s[g->pos] == close) {
        g->pos++;
        g->depth--;
        return true;
    }
    for (;;) {
        skip_ws(g);
        if (close == '}') {
            if (g->pos >= g->len || g->s[g->pos] != '"' || !g_string(g))
                return false;
            skip_ws(g);
            if (g->pos >= g->len || g->s[g->pos] != ':')
                return false;
            g->pos++;
        }
        if (!g_value(g))
            return false;
        skip_ws(g);
        if (g->pos < g->len && g->s[g->pos] == ',') {
            g->pos++;
            continue;
        }
        if (g->pos < g->len && g->s[g->pos] == close) {
            g->pos++;
            g->depth--;
            return true;
        }
        return false;
    }
}

static bool g_literal(struct grammar *g, const char *word)
{
    size_t n = strlen(word);

    if (g->len - g->pos < n || memcmp(g->s + g->pos, word, n) != 0)
        return false;
    g->pos += n;
    return true;
}

static bool g_value(struct grammar *g)
{
    size_t end;

    skip_ws(g);
    if (g->pos >= g->len)
        return false;
    switch (g->s[g->pos]) {
    case '{':
        return g_container(g, '}');
    case '[':
        return g_container(g, ']');
    case '"':
        return g_string(g);
    case 't':
        return g_literal(g, "true");
    case 'f':
        return g_literal(g, "false");
    case 'n':
        return g_literal(g, "null");
    default:
        end = codec_json_number_end(g->s, g->len, g->pos);
        if (end == g->pos)
            return false;
        g->rc = codec_json_number_check(g->s + g->pos, end - g->pos, &g->why);
        if (g->rc < 0) {
            g->num_len = end - g->pos;
            return false; /* pos stays on the number */
        }
        g->pos = end;
        return true;
    }
}

/* Where the grammar breaks (len when it holds; len + 1: the body ran out); *depth_hit when
 * nesting is too deep; g->rc for a number out of range. */
static size_t grammar_error_at(struct grammar *g, bool *depth_hit)
{
    *depth_hit = false;
    if (!g_value(g)) {
        *depth_hit = g->depth > CODEC_MAX_DEPTH;
        return g->pos < g->len ? g->pos : g->len + 1;
    }
    skip_ws(g);
    return g->pos;
}

int codec_json_decode(const uint8_t *body, size_t len, struct json_object **out, char *err,
                      size_t errlen)
{
    struct json_tokener *tok;
    struct json_object *doc;
    enum json_tokener_error jerr;
    size_t used, bad;

    if (len == 0) {
        snprintf(err, errlen, "invalid JSON: empty body");
        return -EINVAL;
    }
    /* json-c would accept invalid UTF-8 inside strings without this check. */
    bad = codec_utf8_check(body, len);
    if (bad != len) {
        snprintf(err, errlen, "invalid JSON at offset %zu: not UTF-8", bad);
        return -EINVAL;
    }
    if (len > INT32_MAX) {
        snprintf(err, errlen, "invalid JSON: body too large");
        return -EINVAL;
    }
    {
        struct grammar g = {.s = body, .len = len};
        bool too_deep;

        bad = grammar_error_at(&g, &too_deep);
        if (g.rc == -ENOMEM)
            return -ENOMEM;
        if (g.rc == -ERANGE) {
            snprintf(err, errlen, "number out of range at offset %zu: %.*s%s %s", bad,
                     g.num_len > 24 ? 24 : (int)g.num_len, (const char *)body + bad,
                     g.num_len > 24 ? "..." : "", g.why);
            return -ERANGE;
        }
        if (too_deep)
            snprintf(err, errlen, "invalid JSON at offset %zu: nested deeper than %d", bad,
                     CODEC_MAX_DEPTH);
        else if (bad > len)
            snprintf(err, errlen, "invalid JSON at offset %zu: unexpected end of body", len);
        else if (bad < len)
            snprintf(err, errlen, "invalid JSON at offset %zu: unexpected '%c'", bad,
                     body[bad] >= 0x20 && body[bad] < 0x7f ? body[bad] : '?');
        if (bad != len)
            return -EINVAL;
    }
    tok = json_tokener_new_ex(CODEC_MAX_DEPTH);
    if (!tok)
        return -ENOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    doc = json_tokener_parse_ex(tok, (const char *)body, (int)len);
    jerr = json_tokener_get_error(tok);
    used = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue) {
        /* A top-level number or literal ("42", "null") only ends at the end of input: say so
         * with a terminating NUL, as json-c asks. */
        doc = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        used = len;
    }
    json_tokener_free(tok);
    if (jerr == json_tokener_continue) {
        json_object_put(doc);
        snprintf(err, errlen, "invalid JSON at offset %zu: unexpected end of body", len);
        return -EINVAL;
    }
    if (jerr != json_tokener_success) {
        snprintf(err, errlen, "invalid JSON at offset %zu: %s", used,
                 json_tokener_error_desc(jerr));
        return -EINVAL;
    }
    while (used < len &&
           (body[used] == ' ' || body[used] == '\t' || body[used] == '\n' || body[used] == '\r'))
        used++;
    if (used != len) {
        json_object_put(doc);
        snprintf(err, errlen, "invalid JSON at offset %zu: trailing data", used);
        return -EINVAL;
    }
    /* json-c represents a bare "null" as NULL. */
    *out = doc;
    return 0;
}

int codec_encode_json(struct json_object *doc, struct buf *out)
{
    size_t len;
    const char *s = json_object_to_json_string_length(
        doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

    if (!s)
        return -ENOMEM;
    return buf_append(out, s, len);
}
