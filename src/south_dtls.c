/* SPDX-License-Identifier: MIT */
/* DTLS set-up: per-device PSKs chosen by identity, certificates with the client CN kept. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/device.h"
#include "coap2mqtt/log.h"
#include "south_internal.h"

static struct {
    const struct conf *conf;
    coap_bin_const_t *keys; /* per configured device, indexed like conf->devices */
    struct log_limit rejected_log;
} D = {.rejected_log = LOG_LIMIT_INIT("south: rejected PSK identity/certificate")};

/* libcoap copies the key it gets back, so pointing into the configuration is enough. */
static const coap_bin_const_t *psk_for_identity(coap_bin_const_t *identity, coap_session_t *session,
                                                void *arg)
{
    struct device *dev;

    (void)session;
    (void)arg;
    dev = identity ? device_by_psk_identity(identity->s, identity->length) : NULL;
    if (!dev || !dev->conf || !dev->conf->psk_key_len) {
        log_msg_limited(&D.rejected_log, LOG_INFO,
                        "south: rejected PSK identity=\"%.*s\" reason=\"unknown identity\"",
                        identity ? (int)identity->length : 0,
                        identity ? (const char *)identity->s : "");
        return NULL;
    }
    return &D.keys[dev->conf - D.conf->devices];
}

/* Called per chain depth (OpenSSL: 1 then 0; GnuTLS: 0 only): the device is the leaf (0). */
static int check_cn(const char *cn, const uint8_t *cert, size_t cert_len, coap_session_t *session,
                    unsigned depth, int validated, void *arg)
{
    (void)cert;
    (void)cert_len;
    (void)arg;
    if (!validated) {
        log_msg_limited(&D.rejected_log, LOG_INFO,
                        "south: rejected certificate cn=\"%s\" depth=%u reason=\"not valid\"",
                        cn ? cn : "", depth);
        return 0;
    }
    if (depth != 0)
        return 1;
    if (!cn || !device_by_cn(cn, strlen(cn))) {
        log_msg_limited(&D.rejected_log, LOG_INFO,
                        "south: rejected certificate cn=\"%s\" reason=\"unknown device\"",
                        cn ? cn : "");
        return 0;
    }
    return south_session_set_cn(session, cn) == 0;
}

int south_dtls_setup(coap_context_t *ctx, const struct conf *conf)
{
    coap_dtls_spsk_t psk;
    size_t n_psk = 0;

    D.conf = conf;
    if (!coap_dtls_is_supported()) {
        log_msg(LOG_ERR, "south: this libcoap has no DTLS support");
        return -EINVAL;
    }
    D.keys = calloc(conf->n_devices ? conf->n_devices : 1, sizeof(*D.keys));
    if (!D.keys)
        return -ENOMEM;
    for (size_t i = 0; i < conf->n_devices; i++) {
        D.keys[i].s = conf->devices[i].psk_key;
        D.keys[i].length = conf->devices[i].psk_key_len;
        if (conf->devices[i].psk_identity && conf->devices[i].psk_key_len)
            n_psk++;
    }
    if (n_psk) {
        memset(&psk, 0, sizeof(psk));
        psk.version = COAP_DTLS_SPSK_SETUP_VERSION;
        psk.validate_id_call_back = psk_for_identity;
        if (conf->coap.psk_hint) {
            psk.psk_info.hint.s = (const uint8_t *)conf->coap.psk_hint;
            psk.psk_info.hint.length = strlen(conf->coap.psk_hint);
        }
        if (!coap_context_set_psk2(ctx, &psk)) {
            log_msg(LOG_ERR, "south: cannot set up DTLS-PSK");
            return -EINVAL;
        }
    }
    if (conf->coap.cert_file) {
        coap_dtls_pki_t pki;

        memset(&pki, 0, sizeof(pki));
        pki.version = COAP_DTLS_PKI_SETUP_VERSION;
        pki.verify_peer_cert = conf->coap.require_client_cert;
        pki.check_common_ca = conf->coap.require_client_cert;
        pki.cert_chain_validation = 1;
        pki.cert_chain_verify_depth = 3;
        pki.validate_cn_call_back = conf->coap.require_client_cert ? check_cn : NULL;
        pki.pki_key.key_type = COAP_PKI_KEY_PEM;
        pki.pki_key.key.pem.public_cert = conf->coap.cert_file;
        pki.pki_key.key.pem.private_key = conf->coap.key_file;
        pki.pki_key.key.pem.ca_file = conf->coap.ca_file;
        if (!coap_context_set_pki(ctx, &pki)) {
            log_msg(LOG_ERR, "south: cannot set up DTLS certificates cert=%s key=%s",
                    conf->coap.cert_file, conf->coap.key_file);
            return -EINVAL;
        }
    }
    log_msg(LOG_INFO, "south: DTLS ready psk_devices=%zu certificates=%s client_cert=%s", n_psk,
            conf->coap.cert_file ? "yes" : "no",
            conf->coap.require_client_cert ? "required" : "not asked");
    return 0;
}

void south_dtls_free(void)
{
    free(D.keys);
    memset(&D, 0, sizeof(D));
    D.rejected_log = (struct log_limit)LOG_LIMIT_INIT("south: rejected PSK identity/certificate");
}

enum uplink_auth south_dtls_session_auth(const coap_session_t *session, const char **id,
                                         size_t *len)
{
    const coap_bin_const_t *psk_id;
    const char *cn;

    *id = NULL;
    *len = 0;
    if (coap_session_get_proto(session) != COAP_PROTO_DTLS)
        return UPLINK_AUTH_NONE;
    /* libcoap 4.3.1 returns a zero-length identity, not NULL, on non-PSK sessions. */
    psk_id = coap_session_get_psk_identity(session);
    if (psk_id && psk_id->length) {
        *id = (const char *)psk_id->s;
        *len = psk_id->length;
        return UPLINK_AUTH_PSK;
    }
    cn = south_session_cn(session);
    if (cn) {
        *id = cn;
        *len = strlen(cn);
        return UPLINK_AUTH_CERT;
    }
    return UPLINK_AUTH_ANON;
}
