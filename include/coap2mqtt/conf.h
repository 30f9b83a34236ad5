/* SPDX-License-Identifier: MIT */
/* The configuration model: what the YAML files declare, after validation. */
#ifndef COAP2MQTT_CONF_H
#define COAP2MQTT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Where a value came from; file points into conf->files (owned by the conf). */
struct conf_mark {
    const char *file;
    int line; /* one-based */
    int col;  /* one-based */
};

enum conf_scheme {
    CONF_SCHEME_COAP,  /* coap://  plain UDP */
    CONF_SCHEME_COAPS, /* coaps:// DTLS */
};

struct conf_listener {
    enum conf_scheme scheme;
    char *host; /* literal address without brackets: "0.0.0.0", "::", "127.0.0.1" */
    uint16_t port;
    struct conf_mark mark;
};

/* A static attribute of a device: key and its value as JSON text ("\"x\"", "42", "true"). */
struct conf_attr {
    char *key;
    char *json;
};

struct conf_device {
    char *name;         /* required, unique */
    char *type;         /* default "default" */
    char *token;        /* access token in the path; NULL when none */
    char *psk_identity; /* DTLS PSK identity; NULL when none */
    uint8_t *psk_key;   /* raw key bytes (YAML: psk_key text, or psk_key_hex) */
    size_t psk_key_len;
    char *cert_cn; /* certificate CN naming this device; NULL when none */
    char *address; /* its own CoAP server: coap://host:port or coaps:// (PSK); NULL: none */
    struct conf_attr *attrs;
    size_t n_attrs;
    struct conf_mark mark;
};

/* Route method bits: bit (code) for CoAP request codes 1..7. */
#define CONF_METHOD_GET (1u << 1)
#define CONF_METHOD_POST (1u << 2)
#define CONF_METHOD_PUT (1u << 3)
#define CONF_METHOD_DELETE (1u << 4)
#define CONF_METHOD_FETCH (1u << 5)
#define CONF_METHOD_PATCH (1u << 6)
#define CONF_METHOD_IPATCH (1u << 7)

/* How a route names the device that sent a request. */
enum conf_identity {
    CONF_ID_TOKEN,   /* a path variable holds an access token (identity_var) */
    CONF_ID_DTLS,    /* the DTLS session: PSK identity or certificate CN */
    CONF_ID_PATH,    /* a path variable holds the device name (identity_var) */
    CONF_ID_PAYLOAD, /* a field of the decoded body holds the name (identity_var) */
    CONF_ID_NONE,    /* anonymous: {device} is not available */
};

/* Body formats (decoders); also used as bits in conf_route.formats. */
enum conf_format {
    CONF_FMT_JSON,
    CONF_FMT_CBOR,
    CONF_FMT_TEXT,
    CONF_FMT_CSV,
    CONF_FMT_OCTETS,
    CONF_FMT__COUNT
};

/* What is published. */
enum conf_output {
    CONF_OUT_JSON, /* re-encode as JSON (default) */
    CONF_OUT_CBOR, /* re-encode as CBOR */
    CONF_OUT_RAW,  /* the request body bytes as received (only with shape body) */
};

/* How the published document is built from the decoded body. */
enum conf_shape {
    CONF_SHAPE_BODY,       /* the body itself */
    CONF_SHAPE_TIMESERIES, /* {"<device>":[{"ts":ms,"values":{...}}]} (ThingsBoard gateway
                              telemetry) */
    CONF_SHAPE_BY_DEVICE,  /* {"<device>":{...}} (ThingsBoard gateway attributes) */
    CONF_SHAPE_ENVELOPE,   /* {"device":..,"type":..,"route":..,"ts":ms,"data":body} */
    CONF_SHAPE_REPLY,      /* {"device":..,"id":<path variable id>,"data":body} (RPC replies) */
};

/* Messages held for a device that is not observing now (server-side RPC to sleepy devices):
 * each is delivered once, in order; what waits too long or overflows is reported. */
struct conf_queue {
    int max;            /* messages per device, default 16 */
    int expiry;         /* seconds a message may wait, default 300 */
    char *report_topic; /* template ({device}, {gateway}): {"device","id","data":{"error"}} */
    char *id_field;     /* the message's id, copied into the report; default "id" */
};

/* Shared attributes a read asks for that the cache lacks are asked of the server
 * (ThingsBoard gateway API: {"id","device","client":false,"keys":[..]} and its response). */
struct conf_fetch {
    char *topic;          /* where the request goes, template ({gateway}) */
    char *response_topic; /* where the answer comes, template ({gateway}) */
    int timeout;          /* seconds, default 5: then the read answers what is known */
};

/* A gateway resource that devices observe (RFC 7641), fed by MQTT messages. */
struct conf_observe {
    char *subscribe;          /* MQTT topic filter template; {device} matches one level */
    char *device_field;       /* the device is named by this payload field (shared topics) */
    char *data_field;         /* notify this field of the payload instead of all of it */
    char *require;            /* only messages whose data has this key (e.g. "method") */
    int cache_shared;         /* 1: keep the data as the device's shared attributes */
    bool confirmable;         /* CON notifications (default true) */
    struct conf_queue *queue; /* NULL: the resource holds the latest message (a state) */
    struct conf_fetch *fetch; /* NULL: reads answer from the cache only */
};

/* An MQTT message becomes a CoAP request to a device that runs a CoAP server. */
struct conf_command {
    char *subscribe;         /* topic filter template: {device} and other whole-level {vars} */
    unsigned method;         /* one CoAP request code: 1 GET, 2 POST, 3 PUT, 4 DELETE */
    char *method_var;        /* or the subscribe's {variable} naming it per message; NULL: fixed */
    char *path;              /* on the device: "/valve"; may use the subscribe's {vars} */
    enum conf_format format; /* how the MQTT payload is sent: json, cbor, text, octets */
    bool confirmable;        /* CON (default) with retransmission, or NON */
    char *reply_topic;       /* template: {"device","code","data"} or {"device","error"} */
    int timeout;             /* seconds for the whole exchange, default 30 */
};

/* A request answered from MQTT (client-side RPC): published with an id, the first message
 * on its reply topic becomes the CoAP response. */
struct conf_request {
    char *reply_topic; /* template; must use {request_id} */
    int timeout;       /* seconds before 5.04, default 10 */
};

enum conf_csv_layout {
    CONF_CSV_KEYS,      /* values in the order of csv.keys */
    CONF_CSV_NAME_TYPE, /* name,type,key,value,key,value,... */
};

/* When a device is answered. */
enum conf_ack {
    CONF_ACK_DEFAULT,  /* broker for QoS >= 1, received for QoS 0 */
    CONF_ACK_RECEIVED, /* once the gateway has taken (spooled) the reading */
    CONF_ACK_BROKER,   /* once the broker has acknowledged it (CON requests) */
};

/* A required query parameter: literal value, or a capture when value is "{var}". */
struct conf_query {
    char *name;
    char *value;
};

struct conf_route {
    char *name;       /* required, unique */
    unsigned methods; /* CONF_METHOD_* bits; default POST|PUT */
    char *path;       /* URI template, "/api/v1/{token}/telemetry" */
    struct conf_query *query;
    size_t n_query;
    enum conf_identity identity; /* default CONF_ID_TOKEN if path has {token}, else NONE */
    char *identity_var; /* path variable or payload field; default "token" / "deviceName" */
    char *type_field;   /* payload identity: field holding the device type (optional) */
    char *body_field;   /* payload identity: field holding the data (optional) */
    bool allow_unknown; /* accept device names not configured (path/payload identity) */
    unsigned formats;   /* bits (1u << CONF_FMT_*); first listed = default without Content-Format */
    enum conf_format default_format;
    enum conf_csv_layout csv_layout;
    char **csv_keys;
    size_t n_csv_keys;
    char csv_separator; /* default ',' */
    enum conf_output output;
    enum conf_shape shape;
    char *topic; /* MQTT topic template */
    int qos;     /* 0..2, default 1 */
    bool retain;
    enum conf_ack ack;            /* default: broker for QoS 1 and 2, received for QoS 0 */
    struct conf_observe *observe; /* NULL for uplink routes */
    struct conf_request *request; /* NULL unless the request is answered from MQTT */
    struct conf_command *command; /* NULL unless MQTT messages become requests to devices */
    int cache_client;             /* 1: keep the body as the device's client attributes */
    struct conf_mark mark;
};

enum conf_mqtt_protocol {
    CONF_MQTT_311,
    CONF_MQTT_5,
};

struct conf_mqtt {
    char *url;       /* mqtt://host:port or mqtts://host:port; NULL or "" = none configured */
    char *client_id; /* default "coap2mqtt-<gateway name>" */
    char *username;
    char *password;
    char *ca_file;
    char *cert_file;
    char *key_file;
    bool verify;                      /* verify the broker certificate, default true */
    enum conf_mqtt_protocol protocol; /* default 3.1.1 */
    int keepalive;                    /* seconds, default 30 */
    char *status_topic;               /* template; default "coap2mqtt/{gateway}/status" */
    int reconnect_min;                /* seconds, default 1 */
    int reconnect_max;                /* seconds, default 60 */
    int inflight;       /* messages handed to the broker and not yet acknowledged, default 100 */
    int drain_rate;     /* messages per second to the broker, 0 = unlimited (default) */
    int session_expiry; /* seconds the broker keeps the session; 0 = clean sessions (default) */
};

struct conf_spool {
    char *dir;           /* NULL: memory only */
    size_t max_messages; /* default 10000 */
    size_t max_bytes;    /* default 16 MiB */
    bool fsync;          /* default false */
    int retry_after;     /* Max-Age of the 5.03 sent when full, default 30 */
};

struct conf_stats {
    char *topic;  /* template, retained; default "coap2mqtt/{gateway}/stats", "" disables */
    int interval; /* seconds, default 60 */
};

/* Published once per device and MQTT connection before its first data. */
struct conf_announce {
    char *topic;            /* template, NULL = no announcement */
    char *payload;          /* template; values are JSON-escaped when expanded */
    char *attributes_topic; /* template: a device's static attributes as {"<device>":{...}} */
    int qos;
};

struct conf_coap {
    struct conf_listener *listeners;
    size_t n_listeners;
    char *psk_hint;           /* identity hint sent to PSK clients, default NULL */
    char *cert_file;          /* PKI: server certificate (PEM) */
    char *key_file;           /* PKI: server private key (PEM) */
    char *ca_file;            /* PKI: CA that signs client certificates */
    bool require_client_cert; /* default false */
    unsigned max_sessions;    /* default 1000 */
    size_t max_body_size;     /* bytes, default 65536 */
    unsigned block_size;      /* preferred block size for Block2, default 1024 */
    unsigned session_timeout; /* idle seconds before a session is dropped, default 300 */
    /* Sessions that have not shown a device's credentials: at most this many (the oldest
     * idle one goes), dropped after this many idle seconds; defaults 256 and 10. */
    unsigned max_unauth_sessions;
    unsigned unauth_timeout;
    unsigned keepalive;      /* ping sessions idle this long (seconds); 0 = off (default) */
    unsigned ack_timeout;    /* RFC 7252 ACK_TIMEOUT for the gateway's CON messages, default 2 */
    unsigned max_retransmit; /* RFC 7252 MAX_RETRANSMIT, default 4 */
};

struct conf {
    char *gateway_name; /* default "coap2mqtt" */
    int log_level;      /* LOG_ERR..LOG_DEBUG, default LOG_INFO */
    bool log_syslog;
    struct conf_coap coap;
    struct conf_mqtt mqtt;
    struct conf_announce announce;
    struct conf_spool spool;
    struct conf_stats stats;
    struct conf_device *devices;
    size_t n_devices;
    struct conf_route *routes;
    size_t n_routes;
    char **files; /* every file read, for marks */
    size_t n_files;
};

/* Error sink: conf_load() writes one line per error ("file:line:col: error: ...") to out. */
struct conf_diag {
    FILE *out;
    int n_errors;
    int n_warnings; /* printed too, but the configuration loads */
    int max_errors; /* stop reporting after this many; 0 = 50 */
};

/**
 * Load and validate a configuration file and everything it includes.
 * Environment variables ${VAR} and ${VAR:-default} are expanded in scalars.
 * @param path  main YAML file
 * @param out   receives the configuration on success (free with conf_free())
 * @param diag  error sink; every independent error is reported
 * @return 0 on success, -EINVAL when the configuration is invalid (diag has the errors),
 *         -ENOENT / -EIO / -ENOMEM on failure to read the main file.
 */
int conf_load(const char *path, struct conf **out, struct conf_diag *diag);

void conf_free(struct conf *conf);

/* Look-ups by name; NULL when absent. */
const struct conf_route *conf_route_find(const struct conf *conf, const char *name);
const struct conf_device *conf_device_find(const struct conf *conf, const char *name);

#endif
