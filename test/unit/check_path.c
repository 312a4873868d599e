/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_path.c - grace_path_normalize(): a table of paths and what they
 * become (or why they are refused), each also tried with the output buffer
 * one byte short and placed against a guard page.
 */
#include "gracehttp.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const struct {
    const char *in;
    const char *out; /* NULL: refused with -EINVAL */
} cases[] = {
    {"/", "/"},
    {"/admin", "/admin"},
    {"/admin/", "/admin/"},
    {"/a/b/c", "/a/b/c"},
    /* percent-decoding: any byte but '/' and NUL */
    {"/%61dmin", "/admin"},
    {"/%41%44%4d%49%4E", "/ADMIN"},
    {"/a%20b", "/a b"},
    {"/%C3%A9t%C3%A9", "/\xc3\xa9t\xc3\xa9"},
    {"/%25", "/%"},
    {"/%2541dmin", "/%41dmin"}, /* decoded once, never twice */
    {"/a%3Fb%23c", "/a?b#c"},
    {"/a%5Cb", "/a\\b"},
    {"/%c0%af", "/\xc0\xaf"}, /* an overlong '/' is two bytes, not a separator */
    {"/%7E", "/~"},
    {"/%ff", "/\xff"},
    /* control bytes are the application's to judge (a public desync corpus
     * holds %09, %0D and %0A as legal): decoded like any byte, never trimmed */
    {"/a%09b", "/a\tb"},
    {"/a%0Ab", "/a\nb"},
    {"/a%0d%0aSet-Cookie:x", "/a\r\nSet-Cookie:x"},
    {"/%0D%0A", "/\r\n"},
    {"/a%7f", "/a\x7f"},
    {"/a%1F", "/a\x1f"},
    {"/a%01/%09/b", "/a\x01/\t/b"},
    {"/%09/../admin", "/admin"}, /* a segment like any other */
    {"/admin%0A", "/admin\n"}, /* not /admin: a route for /admin does not match */
    /* empty segments */
    {"//admin", "/admin"},
    {"///admin//x//", "/admin/x/"},
    {"//", "/"},
    /* dot segments (RFC 3986 5.2.4), also encoded */
    {"/./admin", "/admin"},
    {"/x/../admin", "/admin"},
    {"/x/y/../../admin", "/admin"},
    {"/%2e/admin", "/admin"},
    {"/%2E%2e/", NULL},
    {"/x/%2e%2e/admin", "/admin"},
    {"/x/.%2E/admin", "/admin"},
    {"/a/.", "/a/"},
    {"/a/..", "/"},
    {"/a/../", "/"},
    {"/a/b/..", "/a/"},
    {"/a/b/../c/./d", "/a/c/d"},
    {"/.", "/"},
    {"/./", "/"},
    {"/a/...", "/a/..."}, /* not a dot segment */
    {"/a/..b", "/a/..b"},
    {"/a/b..", "/a/b.."},
    {"/.hidden", "/.hidden"},
    {"/a//../b", "/b"}, /* "//" is one separator, so ".." removes "a" */
    /* refused */
    {"/..", NULL},
    {"/../admin", NULL},
    {"/a/../..", NULL},
    {"/a/../../b", NULL},
    {"/%2e%2e/admin", NULL},
    {"/x/%2e%2e/%2e%2e/admin", NULL},
    {"/%2Fadmin", NULL},
    {"/admin%2f..%2fx", NULL},
    {"/a%00b", NULL}, /* NUL: a C string cannot carry it */
    {"/%00", NULL},
    {"/%zz", NULL},
    {"/%4", NULL},
    {"/%", NULL},
    {"/a%g0", NULL},
    {"/a%0g", NULL},
    {"admin", NULL},
    {"", NULL},
    {"*", NULL},
    {"http://x/", NULL},
};

static char *guard_end; /* last byte before a PROT_NONE page */

/* s with control bytes as \xNN, for failure messages (one buffer: one call
 * per message) */
static const char *esc(const char *s)
{
    static char b[1024];
    size_t o = 0;
    for (; *s && o + 5 < sizeof(b); s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(b + o, sizeof(b) - o, "\\x%02x", c);
        else
            b[o++] = (char)c;
    }
    b[o] = '\0';
    return b;
}

static void guard_setup(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    ck_assert_int_eq(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
    guard_end = m + pg;
}

START_TEST(test_normalize_table)
{
    const char *in = cases[_i].in, *want = cases[_i].out;
    size_t n = strlen(in);
    /* input and output both end at the guard page: no byte beyond is read
     * or written */
    char *src = guard_end - n;
    memcpy(src, in, n);
    char out[256];
    memset(out, 'X', sizeof(out));
    ssize_t r = grace_path_normalize(src, n, out, n + 1);
    if (!want) {
        ck_assert_msg(r == -EINVAL, "%s: got %zd (%s) want -EINVAL", in, r, r >= 0 ? esc(out) : "");
        return;
    }
    ck_assert_msg(r >= 0, "%s: got %zd want %s", in, r, esc(want));
    ck_assert_msg(!strcmp(out, want), "%s: got something else than %s", in, esc(want));
    ck_assert_uint_eq((size_t)r, strlen(want));
    ck_assert_uint_le((size_t)r, n);
    /* normalizing is idempotent on paths without '%' */
    if (!strchr(want, '%') && want[0] == '/') {
        char again[256];
        ck_assert_int_eq(grace_path_normalize(want, strlen(want), again, sizeof(again)), r);
        ck_assert_str_eq(again, want);
    }
    /* too small an output buffer is refused before anything is written */
    if (n > 0) {
        char small[256];
        memset(small, 'X', sizeof(small));
        ck_assert_int_eq(grace_path_normalize(src, n, small, n), -ENOSPC);
        ck_assert_int_eq(small[0], 'X');
    }
}
END_TEST

START_TEST(test_normalize_args)
{
    char out[8];
    ck_assert_int_eq(grace_path_normalize(NULL, 1, out, sizeof(out)), -EINVAL);
    ck_assert_int_eq(grace_path_normalize("/", 1, NULL, 2), -EINVAL);
    ck_assert_int_eq(grace_path_normalize("/", 1, out, 0), -ENOSPC);
    /* len bytes only: what follows is not looked at */
    ck_assert_int_eq(grace_path_normalize("/ab/../zz", 3, out, 4), 3);
    ck_assert_str_eq(out, "/ab");
}
END_TEST

static Suite *path_suite(void)
{
    Suite *s = suite_create("path");
    TCase *tc = tcase_create("normalize");
    tcase_add_unchecked_fixture(tc, guard_setup, NULL);
    tcase_add_loop_test(tc, test_normalize_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_normalize_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(path_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
