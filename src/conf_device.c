/* SPDX-License-Identifier: MIT */
/* Configuration of devices: keys, PSKs, static attributes as JSON, unique credentials. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"

#define PSK_MAX 64 /* bytes; longer keys add nothing and some DTLS stacks refuse them */

static int set_key(struct conf_loader *ld, yaml_node_t *v, struct conf_device *d, uint8_t *key,
                   size_t len)
{
    if (d->psk_key) {
        free(key);
        return conf_err(ld, v, "device '%s' has both 'psk_key' and 'psk_key_hex'; give one",
                        d->name);
    }
    d->psk_key = key;
    d->psk_key_len = len;
    return 0;
}

static int parse_psk_key(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_device *d = obj;
    char *s = conf_scalar(ld, v, "psk_key");
    size_t n;

    if (!s)
        return -EINVAL;
    n = strlen(s);
    if (n == 0 || n > PSK_MAX) {
        free(s);
        return conf_err(ld, v, "'psk_key' must be 1..%d bytes, got %zu", PSK_MAX, n);
    }
    return set_key(ld, v, d, (uint8_t *)s, n);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The key is a secret: messages give positions, never its text. */
static int parse_psk_key_hex(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_device *d = obj;
    char *s = conf_scalar(ld, v, "psk_key_hex");
    uint8_t *key;
    size_t n;
    int rc = 0;

    if (!s)
        return -EINVAL;
    n = strlen(s);
    for (size_t i = 0; i < n && rc == 0; i++)
        if (hexval(s[i]) < 0)
            rc = conf_err(ld, v,
                          "'psk_key_hex' has a non-hex character at position %zu; expected "
                          "0-9, a-f, A-F",
                          i + 1);
    if (rc == 0 && (n == 0 || n % 2 || n > 2 * PSK_MAX))
        rc = conf_err(ld, v, "'psk_key_hex' must be an even number of hex digits, 2..%d; got %zu",
                      2 * PSK_MAX, n);
    key = rc == 0 ? malloc(n / 2) : NULL;
    if (rc == 0 && !key) {
        ld->oom = true;
        rc = -ENOMEM;
    }
    if (rc < 0) {
        free(s);
        return rc;
    }
    for (size_t i = 0; i < n / 2; i++)
        key[i] = (uint8_t)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
    free(s);
    return set_key(ld, v, d, key, n / 2);
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return n > 0;
}

/* Append digits without leading zeros (JSON forbids them), keeping at least one. */
static int append_digits(struct buf *b, const char *s, size_t n)
{
    while (n > 1 && *s == '0') {
        s++;
        n--;
    }
    return buf_append(b, s, n);
}

/* json_number() ran out of memory (NULL means "not a number"). */
static char json_oom_mark;
#define JSON_OOM (&json_oom_mark)

/*
 * A YAML core-schema number as JSON text, or NULL when s is not one: [-+]digits, 0x/0o
 * integers, and floats (".5", "1.", "1e3"), rewritten into JSON's stricter grammar.
 * .inf and .nan have no JSON form and stay strings.
 */
static char *json_number(const char *s)
{
    struct buf b = BUF_INIT;
    const char *p = s, *dot, *exp;
    size_t int_len, frac_len = 0;
    bool neg = false;
    int rc = 0;

    if ((s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) && s[2]) {
        char *end;
        unsigned long long v;
        errno = 0;
        v = strtoull(s + 2, &end, s[1] == 'x' ? 16 : 8);
        if (*end || errno || !isxdigit((unsigned char)s[2]))
            return NULL;
        rc = buf_printf(&b, "%llu", v);
        goto out;
    }
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    dot = p + strspn(p, "0123456789");
    int_len = (size_t)(dot - p);
    exp = dot;
    if (*dot == '.') {
        frac_len = strspn(dot + 1, "0123456789");
        exp = dot + 1 + frac_len;
    }
    if (int_len == 0 && frac_len == 0)
        return NULL;
    if (*exp == 'e' || *exp == 'E') {
        const char *d = exp + 1 + (exp[1] == '-' || exp[1] == '+');
        if (!all_digits(d, strlen(d)))
            return NULL;
    } else if (*exp) {
        return NULL;
    }
    if (neg)
        rc |= buf_append_byte(&b, '-');
    rc |= int_len ? append_digits(&b, p, int_len) : buf_append_byte(&b, '0');
    if (*dot == '.') {
        rc |= buf_append_byte(&b, '.');
        rc |= frac_len ? buf_append(&b, dot + 1, frac_len) : buf_append_byte(&b, '0');
    }
    rc |= buf_append_str(&b, exp);
out:
    if (rc < 0) {
        buf_free(&b);
        return JSON_OOM;
    }
    return buf_steal(&b);
}

/* Plain YAML scalars that are null, booleans or numbers stay JSON literals; the rest (and
 * everything quoted) become JSON strings. */
static char *attr_json(const yaml_node_t *v, const char *s)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const trues[] = {"true", "True", "TRUE"};
    static const char *const falses[] = {"false", "False", "FALSE"};
    struct buf b = BUF_INIT;
    char *num;
    int rc;

    if (conf_scalar_plain(v)) {
        for (size_t i = 0; i < 5; i++)
            if (!strcmp(s, nulls[i]))
                return strdup("null");
        for (size_t i = 0; i < 3; i++) {
            if (!strcmp(s, trues[i]))
                return strdup("true");
            if (!strcmp(s, falses[i]))
                return strdup("false");
        }
        num = json_number(s);
        if (num == JSON_OOM)
            return NULL;
        if (num)
            return num;
    }
    rc = buf_append_byte(&b, '"');
    rc |= buf_append_json_escaped(&b, s, strlen(s));
    rc |= buf_append_byte(&b, '"');
    if (rc < 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b);
}

static int parse_attributes(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_device *d = obj;
    char what[128];
    int rc = 0;

    if (conf_node_empty(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return conf_err(ld, v, "'attributes' must be a mapping of names to values");
    d->attrs = calloc(conf_map_len(v) + 1, sizeof(*d->attrs));
    if (!d->attrs) {
        ld->oom = true;
        return -ENOMEM;
    }
    snprintf(what, sizeof(what), "'attributes' of device '%s'", d->name);
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *k = conf_node(ld, p->key), *val = conf_node(ld, p->value);
        char *key, *s;

        if (conf_key_dup(ld, v, p, what)) {
            rc = -EINVAL;
            continue;
        }
        key = conf_scalar(ld, k, "attributes");
        s = key ? conf_scalar(ld, val, key) : NULL;
        if (key && s) {
            char *json = attr_json(val, s);
            if (!json) {
                ld->oom = true;
                free(key);
                free(s);
                return -ENOMEM;
            }
            d->attrs[d->n_attrs].key = key;
            d->attrs[d->n_attrs].json = json;
            d->n_attrs++;
        } else {
            free(key);
            rc = -EINVAL;
        }
        free(s);
    }
    return rc;
}

#define D_OFF(f) offsetof(struct conf_device, f)
/* coap://host:port or coaps://host:port, host a literal address ([v6] in brackets). */
static int check_address(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                         void *obj)
{
    const char *a = ((struct conf_device *)obj)->address, *rest;
    char host[64];
    unsigned port;

    (void)c;
    if (!a)
        return 0; /* "": no address (CONF_F_EMPTY_NULL) */
    rest = !strncmp(a, "coap://", 7) ? a + 7 : !strncmp(a, "coaps://", 8) ? a + 8 : NULL;
    if (!rest ||
        (rest[0] == '[' ? sscanf(rest, "[%63[0-9a-fA-F:.]]:%u", host, &port)
                        : sscanf(rest, "%63[0-9.]:%u", host, &port)) != 2 ||
        port == 0 || port > 65535)
        return conf_err(ld, v,
                        "'address' in %s must be coap://ADDRESS:PORT or "
                        "coaps://ADDRESS:PORT with a literal IPv4 or [IPv6] address, got '%s'",
                        ld->what, a);
    return 0;
}

/* clang-format off */
const struct conf_key conf_device_keys[] = {
    {CONF_KEY("name", STR, D_OFF(name)), .check = conf_check_nonempty},
    {CONF_KEY("type", STR, D_OFF(type)), .def_str = "default", .check = conf_check_nonempty},
    {CONF_KEY("token", STR, D_OFF(token)), .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("psk_identity", STR, D_OFF(psk_identity)), .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("psk_key", CUSTOM, 0), .parse = parse_psk_key},
    {CONF_KEY("psk_key_hex", CUSTOM, 0), .parse = parse_psk_key_hex},
    {CONF_KEY("cert_cn", STR, D_OFF(cert_cn)), .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("attributes", CUSTOM, 0), .parse = parse_attributes},
    {CONF_KEY("address", STR, D_OFF(address)), .flags = CONF_F_EMPTY_NULL,
     .check = check_address},
    {.name = NULL},
};
/* clang-format on */

int conf_device_read(struct conf_loader *ld, yaml_node_t *v, struct conf_device *d, size_t idx)
{
    yaml_node_t *name;
    char what[96];
    int rc;

    d->mark = conf_mark_of(ld, v);
    if (v->type != YAML_MAPPING_NODE)
        return conf_err(ld, v, "device #%zu must be a mapping of keys", idx + 1);
    /* The name first, so every later message can say which device it is about. */
    name = conf_map_get(ld, v, "name");
    if (!name)
        return conf_err(ld, v, "device #%zu has no 'name'", idx + 1);
    d->name = conf_scalar(ld, name, "name");
    if (!d->name)
        return -EINVAL;
    if (!*d->name)
        return conf_err(ld, name, "device #%zu has an empty 'name'", idx + 1);
    if (conf_defaults(conf_device_keys, d) < 0) {
        ld->oom = true;
        return -ENOMEM;
    }
    snprintf(what, sizeof(what), "device '%s'", d->name);
    rc = conf_apply(ld, v, conf_device_keys, d, what);
    if (rc == -ENOMEM)
        return rc;
    if (d->psk_identity && !d->psk_key && !conf_map_get(ld, v, "psk_key") &&
        !conf_map_get(ld, v, "psk_key_hex"))
        rc = conf_err(ld, v, "device '%s' has a 'psk_identity' but no 'psk_key' or 'psk_key_hex'",
                      d->name);
    if (d->psk_key && !d->psk_identity)
        rc = conf_err(ld, v, "device '%s' has a PSK but no 'psk_identity'", d->name);
    if (d->address && !strncmp(d->address, "coaps://", 8) && !d->psk_identity)
        rc = conf_err(ld, conf_map_get(ld, v, "address"),
                      "device '%s' has a coaps:// address but no PSK to speak DTLS with", d->name);
    return rc;
}

static int report_name(struct conf_loader *ld, size_t later, size_t first, void *ctx)
{
    const struct conf_device *a = &ld->conf->devices[later], *b = &ld->conf->devices[first];

    (void)ctx;
    return conf_err_at(ld, &a->mark, "duplicate device name '%s' (first defined at %s:%d:%d)",
                       a->name, b->mark.file, b->mark.line, b->mark.col);
}

/* Two devices must not share a credential: look-ups would pick one silently. */
static int report_credential(struct conf_loader *ld, size_t later, size_t first, void *ctx)
{
    const struct conf_device *a = &ld->conf->devices[later], *b = &ld->conf->devices[first];

    return conf_err_at(ld, &a->mark, "device '%s' has the same %s as device '%s' (%s:%d:%d)",
                       a->name, (const char *)ctx, b->name, b->mark.file, b->mark.line,
                       b->mark.col);
}

int conf_devices_check(struct conf_loader *ld)
{
    const struct conf *c = ld->conf;
    static const struct {
        size_t offset;
        const char *what;
    } creds[] = {
        {D_OFF(token), "token"},
        {D_OFF(psk_identity), "psk_identity"},
        {D_OFF(cert_cn), "cert_cn"},
    };
    int rc = 0;

    if (conf_find_dups(ld, c->devices, c->n_devices, sizeof(*c->devices), D_OFF(name), report_name,
                       NULL) < 0)
        rc = -EINVAL;
    for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++)
        if (conf_find_dups(ld, c->devices, c->n_devices, sizeof(*c->devices), creds[i].offset,
                           report_credential, (void *)creds[i].what) < 0)
            rc = -EINVAL;
    return rc;
}

void conf_device_free(struct conf_device *d)
{
    free(d->name);
    free(d->type);
    free(d->token);
    free(d->psk_identity);
    free(d->psk_key);
    free(d->cert_cn);
    free(d->address);
    for (size_t k = 0; k < d->n_attrs; k++) {
        free(d->attrs[k].key);
        free(d->attrs[k].json);
    }
    free(d->attrs);
}
