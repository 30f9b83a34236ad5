/* SPDX-License-Identifier: MIT */
/*
 * Configuration error cases: each file named on the command line (run from tests/conf/cases)
 * must fail to load with -EINVAL and print exactly its leading "# expect: " lines, in order.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coap2mqtt/conf.h"

#define EXPECT "# expect: "

/* The "# expect: " lines of the comment block that opens the file, each ending in "\n". */
static char *read_expected(const char *path)
{
    char *text = NULL, *line = NULL;
    size_t text_len = 0, cap = 0;
    FILE *f = fopen(path, "r");
    FILE *out;

    if (!f)
        return NULL;
    out = open_memstream(&text, &text_len);
    while (out && getline(&line, &cap, f) > 0 && line[0] == '#') {
        if (!strncmp(line, EXPECT, strlen(EXPECT)))
            fputs(line + strlen(EXPECT), out);
    }
    free(line);
    fclose(f);
    if (out)
        fclose(out);
    return text;
}

static void test_case(void **state)
{
    const char *path = *state;
    struct conf_diag diag = {0};
    struct conf *conf = NULL;
    char *want, *got = NULL;
    size_t got_len = 0;
    int rc;

    want = read_expected(path);
    assert_non_null(want);
    assert_true(want[0] != '\0'); /* a case without expectations would pass vacuously */
    diag.out = open_memstream(&got, &got_len);
    assert_non_null(diag.out);
    rc = conf_load(path, &conf, &diag);
    fclose(diag.out);
    assert_string_equal(got, want); /* cmocka prints both texts when they differ */
    assert_int_equal(rc, -EINVAL);
    assert_null(conf);
    assert_true(diag.n_errors > 0);
    free(want);
    free(got);
}

int main(int argc, char **argv)
{
    struct CMUnitTest *tests;
    int rc;

    if (argc < 2) {
        fprintf(stderr, "usage: %s CASE.yaml...  (from tests/conf/cases)\n", argv[0]);
        return 2;
    }
    /* The cases name the variables they expect unset; make sure the environment agrees. */
    unsetenv("C2M_TEST_SURELY_UNSET");
    tests = calloc((size_t)argc - 1, sizeof(*tests));
    if (!tests)
        return 1;
    for (int i = 1; i < argc; i++) {
        tests[i - 1].name = argv[i];
        tests[i - 1].test_func = test_case;
        tests[i - 1].initial_state = argv[i];
    }
    rc = _cmocka_run_group_tests("conf-errors", tests, (size_t)argc - 1, NULL, NULL);
    free(tests);
    return rc;
}
