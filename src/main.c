/* SPDX-License-Identifier: MIT */
/* coap2mqtt: arguments, start-up order, signals and exit codes. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2m_build.h"
#include "coap2mqtt/conf.h"
#include "coap2mqtt/device.h"
#include "coap2mqtt/log.h"
#include "coap2mqtt/loop.h"
#include "coap2mqtt/north.h"
#include "coap2mqtt/request.h"
#include "coap2mqtt/attrs_fetch.h"
#include "coap2mqtt/route.h"
#include "coap2mqtt/south.h"
#include "coap2mqtt/spool.h"
#include "coap2mqtt/stats.h"
#include "coap2mqtt/uplink.h"

/* Exit codes, as documented in docs/configuration.md and the README. */
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define EXIT_CONFIG 3

/* How long a stop may take to hand buffered readings to the broker. */
#define SHUTDOWN_FLUSH_MS 5000

static void usage(FILE *out)
{
    fprintf(out, "usage: coap2mqtt -c FILE [-t] [-V] [-h]\n"
                 "  -c FILE  configuration file (YAML)\n"
                 "  -t       check the configuration and exit (0 valid, 3 invalid)\n"
                 "  -V       print the version and the libcoap DTLS backend\n"
                 "  -h       this help\n"
                 "exit codes: 0 ok, 1 runtime failure, 2 bad command line, 3 invalid "
                 "configuration\n");
}

static void on_stop_signal(int signo)
{
    log_msg(LOG_NOTICE, "main: stopping signal=%s", strsignal(signo));
    loop_stop();
}

static void on_hup(int signo)
{
    (void)signo;
    log_msg(LOG_NOTICE, "main: SIGHUP ignored: restart the service to apply a new configuration");
}

/* Every reading goes through the spool; north drains it as the broker allows. */
static int publish_spooled(void *ctx, const char *topic, const uint8_t *payload, size_t len,
                           int qos, bool retain, struct answer_later *waiter)
{
    uint64_t seq;
    int rc;

    (void)ctx;
    rc = spool_put(topic, payload, len, qos, retain, waiter, &seq);
    if (rc == 0)
        north_pump();
    return rc;
}

static void on_usr1(int signo)
{
    (void)signo;
    stats_log();
}

static void on_north_connected(void *arg)
{
    (void)arg;
    device_registry_reset_announced();
}

static int run(const struct conf *conf)
{
    struct route_table *routes = NULL;
    struct uplink_ops ops = {.publish = publish_spooled, .request = request_send};
    struct spool_limits limits = {
        .max_messages = conf->spool.max_messages,
        .max_bytes = conf->spool.max_bytes,
        .dir = conf->spool.dir,
        .fsync = conf->spool.fsync,
    };
    char err[256];
    int rc;

    rc = loop_init();
    if (rc < 0) {
        log_msg(LOG_ERR, "main: cannot create the event loop: %s", strerror(-rc));
        return EXIT_RUNTIME;
    }
    signal(SIGPIPE, SIG_IGN);
    if (loop_signal_add(SIGTERM, on_stop_signal) < 0 ||
        loop_signal_add(SIGINT, on_stop_signal) < 0 || loop_signal_add(SIGHUP, on_hup) < 0 ||
        loop_signal_add(SIGUSR1, on_usr1) < 0) {
        log_msg(LOG_ERR, "main: cannot install signal handlers");
        loop_done();
        return EXIT_RUNTIME;
    }
    rc = device_registry_init(conf);
    if (rc == 0)
        rc = stats_init(conf);
    if (rc == 0)
        rc = spool_open(&limits);
    if (rc == 0)
        rc = route_table_build(conf, &routes, err, sizeof(err));
    if (rc == -EINVAL)
        log_msg(LOG_ERR, "main: %s", err);
    if (rc == 0)
        rc = uplink_init(conf, routes, &ops);
    if (rc == 0)
        rc = north_init(conf, on_north_connected, NULL);
    north_set_acked(south_answer_acked);
    if (rc == 0)
        rc = south_init(conf);
    if (rc == 0) {
        size_t n_filters;
        char *const *filters = south_observe_filters(&n_filters);
        rc = north_subscribe(filters, n_filters, south_observe_message);
    }
    if (rc == 0)
        rc = request_init(conf, south_answer_give, south_answer_free);
    if (rc == 0)
        rc = attrs_fetch_init(conf, south_answer_give, south_answer_free);
    if (rc == 0) {
        log_msg(LOG_NOTICE, "main: ready gateway=%s listeners=%zu routes=%zu devices=%zu",
                conf->gateway_name, conf->coap.n_listeners, conf->n_routes, conf->n_devices);
        north_start();
        stats_start();
        rc = loop_run();
    }
    /* Hand what is in flight to the broker, take in the acknowledgements, keep the rest. */
    north_stop(SHUTDOWN_FLUSH_MS);
    loop_drain_jobs();
    request_free();
    attrs_fetch_free();
    spool_close(south_answer_free);
    south_free();
    north_free();
    stats_free();
    uplink_free();
    route_table_free(routes);
    device_registry_free();
    loop_done();
    return rc < 0 ? EXIT_RUNTIME : 0;
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    bool check_only = false;
    struct conf *conf = NULL;
    struct conf_diag diag = {.out = stderr};
    int opt, rc;

    while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
        switch (opt) {
        case 'c':
            file = optarg;
            break;
        case 't':
            check_only = true;
            break;
        case 'V':
            printf("coap2mqtt %s (libcoap DTLS backend: %s)\n", C2M_VERSION, C2M_COAP_BACKEND);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!file || optind != argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    rc = conf_load(file, &conf, &diag);
    if (rc < 0) {
        if (rc != -EINVAL)
            fprintf(stderr, "%s: error: cannot load: %s\n", file, strerror(-rc));
        return EXIT_CONFIG;
    }
    if (check_only) {
        fprintf(stderr, "%s: configuration ok (%zu routes, %zu devices)\n", file, conf->n_routes,
                conf->n_devices);
        conf_free(conf);
        return 0;
    }
    log_open(conf->log_level, conf->log_syslog, "coap2mqtt");
    log_hook_libraries();
    rc = run(conf);
    conf_free(conf);
    log_close();
    return rc;
}
