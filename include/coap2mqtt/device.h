/* SPDX-License-Identifier: MIT */
/*
 * Devices: configured ones indexed by name, access token, PSK identity and certificate CN,
 * plus devices first seen at run time (payload-named, allow_unknown routes). All of it can be
 * rebuilt from the configuration; the only run-time state is per MQTT connection.
 */
#ifndef COAP2MQTT_DEVICE_H
#define COAP2MQTT_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "coap2mqtt/conf.h"

/* Devices created at run time, at most; more get 5.03 (a bound against name flooding). */
#define DEVICE_MAX_DYNAMIC 10000

struct device {
    const char *name;
    const char *type;
    const struct conf_device *conf; /* NULL for devices first seen at run time */
    bool announced; /* the announce message went out on the current MQTT connection */
    uint64_t last_seen_ms;
    /* Where it last spoke from (commands to its own server when it has no address). */
    struct sockaddr_storage last_addr;
    uint32_t last_addr_len; /* 0: never heard from */
    int last_ifindex;
    bool last_dtls;
};

int device_registry_init(const struct conf *conf);
void device_registry_free(void);
/* The token is compared through its SHA-256 digest (wolfCrypt), in constant time. */
struct device *device_by_token(const char *token, size_t len);
struct device *device_by_psk_identity(const uint8_t *id, size_t len);
struct device *device_by_cn(const char *cn, size_t len);
struct device *device_by_name(const char *name, size_t len);
/**
 * Find or create a run-time device.
 * @return the device, or NULL with *err = -ENOSPC (too many) / -ENOMEM.
 */
struct device *device_get_or_add(const char *name, size_t len, const char *type, int *err);
/* A new MQTT connection: every device must be announced again. */
void device_registry_reset_announced(void);
size_t device_registry_count(void);

#endif
