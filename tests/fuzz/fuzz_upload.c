/* SPDX-License-Identifier: MIT */
/* Fuzz target: any sequence of Block1 blocks from a few sessions to a few targets. The
 * reassembly must stay within its bounds and hand over only bodies it was given in order. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/loop.h"
#include "../../src/south_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct south_upload_limits LIMITS = {
    .max_body = 2048,
    .max_uploads = 6,
    .max_per_peer = 2,
    .max_total_bytes = 6144,
    .idle_ms = 60000,
};

/* Input: 6-byte headers (session, target, NUM high/low, SZX|M|cf, length), each followed by
 * that many payload bytes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool loop_up;
    static const char *const keys[] = {"/a", "/b", "/api/v1/T/telemetry"};
    static uint8_t payload[255 * 5];
    int sessions[4];
    size_t i = 0;

    if (!loop_up)
        loop_up = loop_init() == 0;
    south_upload_init(&LIMITS);
    while (i + 6 <= size) {
        struct south_upload_step st;
        struct south_upload_block b = {
            .session = &sessions[data[i] % 4],
            .key = (const uint8_t *)keys[data[i + 1] % 3],
            .num = (unsigned)(data[i + 2] << 8 | data[i + 3]) % 300,
            .szx = data[i + 4] & 7,
            .more = (data[i + 4] >> 3) & 1,
            .content_format = (data[i + 4] >> 4) & 1 ? 60 : 50,
            .declared = data[i + 1] >> 2 ? (size_t)data[i + 1] << 5 : 0,
            .len = data[i + 5] * 5u,
        };
        b.key_len = strlen((const char *)b.key);
        i += 6;
        if (b.len > size - i)
            b.len = size - i;
        memcpy(payload, data + i, b.len);
        b.data = payload;
        i += b.len;
        switch (south_upload_block(&b, &st)) {
        case SOUTH_UPLOAD_DONE:
            if (st.len > LIMITS.max_body || (st.len && !st.body))
                abort();
            south_upload_done(st.upload);
            break;
        case SOUTH_UPLOAD_ERROR:
            if (st.code < 400 || st.code > 599 || !st.diag)
                abort();
            break;
        default:
            break;
        }
        if (south_upload_count() > LIMITS.max_uploads ||
            south_upload_bytes() > LIMITS.max_total_bytes)
            abort();
        if (data[i - 1] == 0xff)
            south_upload_session_gone(&sessions[0]);
    }
    south_upload_free();
    return 0;
}
