/* SPDX-License-Identifier: MIT */
/* Fuzz target: device bodies in every format under the codecs' bounds, and the round trip
 * JSON -> CBOR -> JSON of whatever decodes (the same document both ways). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "coap2mqtt/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(struct json_object *doc)
{
    struct buf cbor = BUF_INIT;
    struct json_object *back = NULL;
    char err[160];

    /* codec_decode() refuses what CBOR cannot carry, so the encoders must succeed. */
    if (codec_encode_cbor(doc, &cbor) < 0)
        abort();
    if (codec_decode(CONF_FMT_CBOR, cbor.data, cbor.len, NULL, &back, err, sizeof(err)) < 0)
        abort();
    /* the same values (JSON text may differ: 2.5e3 comes back as 2500.0) */
    if (!json_object_equal(doc, back))
        abort();
    json_object_put(back);
    buf_free(&cbor);
}

/* Input: one byte choosing the format, then the body. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char ka[] = "a", kb[] = "b", kc[] = "c";
    static char *const keys[] = {ka, kb, kc};
    struct codec_opts opts = {.csv_keys = keys, .n_csv_keys = 3, .csv_separator = ','};
    struct json_object *doc = NULL;
    enum conf_format fmt;
    char err[160];

    if (size < 1)
        return 0;
    fmt = (enum conf_format)(data[0] % CONF_FMT__COUNT);
    opts.csv_layout = data[0] & 0x80 ? CONF_CSV_NAME_TYPE : CONF_CSV_KEYS;
    if (codec_decode(fmt, data + 1, size - 1, &opts, &doc, err, sizeof(err)) == 0 && doc &&
        fmt != CONF_FMT_OCTETS)
        round_trip(doc);
    json_object_put(doc);
    return 0;
}
