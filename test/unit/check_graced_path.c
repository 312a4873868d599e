/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_graced_path.c - graced's rules for names (src/graced/path.c) on top
 * of the library's decoding: a table of URL paths, for reads and writes,
 * and what each becomes or why it is refused; each path and its normal
 * form end at a guard page. Then the same for form filenames
 * (graced_name_sanitise).
 */
#include "graced.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define R 0                        /* a read */
#define W GRACED_PATH_WRITE        /* a write */
#define H GRACED_PATH_HIDDEN_OK    /* --show-hidden */

static char n1023[1100], n1024[1100], n255[300], n256[300], long3[400];

static const struct {
    const char *in;   /* NULL: one of the long names above, by index */
    int flags;
    int status;       /* 0: accepted */
    const char *out;  /* when accepted */
    int trailing;
} cases[] = {
    {"/", R, 0, "", 1},
    {"/a/b%20c.txt", R, 0, "a/b c.txt", 0},
    {"/a/b/", R, 0, "a/b", 1},
    {"//a///b", R, 0, "a/b", 0},
    {"/a/./b/.", R, 0, "a/b", 0},
    {"/%2e/a", R, 0, "a", 0},
    {"/%2e", R, 0, "", 0},
    {"/...", R | H, 0, "...", 0},    /* not "..": a dot-name */
    {"/...", R, 404, NULL, 0},
    {"/..a/b..", R | H, 0, "..a/b..", 0},
    {"/%C3%A9t%C3%A9", W, 0, "\xc3\xa9t\xc3\xa9", 0},
    {"/%ff", R, 0, "\xff", 0},
    {"/%ff", W, 400, NULL, 0},       /* a stored name is UTF-8 */
    /* ".." is refused, never resolved (the library would resolve it) */
    {"/a/../b", R, 403, NULL, 0},
    {"/a/../b", W, 400, NULL, 0},    /* writes: 400 whatever the rule */
    {"/a/%2e%2E/b", R, 403, NULL, 0},
    {"/a/.%2e", R, 403, NULL, 0},
    {"/a/b/..", R, 403, NULL, 0},
    /* ... after the checks of the names before it, in order */
    {"/.x/../y", R, 404, NULL, 0},
    {"/.graced-tmp.1.a/../b", R, 404, NULL, 0},
    /* dot-names */
    {"/.hidden", R, 404, NULL, 0},   /* reads: as if absent */
    {"/a/.git/config", R, 404, NULL, 0},
    {"/.hidden", W, 400, NULL, 0},
    {"/.hidden", R | H, 0, ".hidden", 0},
    {"/.hidden", W | H, 0, ".hidden", 0},
    /* our temporary files: never, --show-hidden or not */
    {"/.graced-tmp.1.x", R, 404, NULL, 0},
    {"/.graced-tmp.1.x", R | H, 404, NULL, 0},
    {"/d/.graced-tmp.1.x", W | H, 400, NULL, 0},
    /* control bytes (guard.c refuses them first, with its own message) */
    {"/a%0Ab", R, 400, NULL, 0},
    {"/a%7f", W, 400, NULL, 0},
    /* no normal form: the library answers 400 before graced sees it */
    {"/a%2fb", R, 400, NULL, 0},
    {"/a%00b", R, 400, NULL, 0},
    {"/../x", R, 400, NULL, 0},
    {"/%zz", R, 400, NULL, 0},
    /* lengths: a name of 1023 bytes is looked up, 1024 is 414; writes take
     * names of up to 255 bytes; the whole name must fit the caller's buffer */
    {NULL, R, 0, NULL, 0},   /* n1023 */
    {NULL, R, 414, NULL, 0}, /* n1024 */
    {NULL, W, 0, NULL, 0},   /* n255 */
    {NULL, W, 400, NULL, 0}, /* n256 */
    {NULL, R, 414, NULL, 0}, /* long3: three names of 100 bytes, 64-byte buffer */
};

static const char *const longs[] = {n1023, n1024, n255, n256, long3};

static char *guard[2]; /* last byte before a PROT_NONE page, two of them */

static void setup(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < 2; i++) {
        char *m = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(m, MAP_FAILED);
        ck_assert_int_eq(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
        guard[i] = m + pg;
    }
    struct {
        char *buf;
        size_t n;
    } names[4] = {{n1023, 1023}, {n1024, 1024}, {n255, 255}, {n256, 256}};
    for (int i = 0; i < 4; i++) {
        names[i].buf[0] = '/';
        memset(names[i].buf + 1, 'n', names[i].n);
        names[i].buf[names[i].n + 1] = '\0';
    }
    char *p = long3;
    for (int i = 0; i < 3; i++) {
        *p++ = '/';
        memset(p, 'a' + i, 100);
        p += 100;
    }
    *p = '\0';
}

START_TEST(test_path_table)
{
    int nlong = 0;
    for (int i = 0; i < _i; i++)
        nlong += !cases[i].in;
    const char *in = cases[_i].in ? cases[_i].in : longs[nlong];
    size_t n = strlen(in), outlen = cases[_i].in || nlong != 4 ? 4096 : 64;
    char *raw = guard[0] - n - 1, *norm = NULL, out[4096];
    int trailing = -1;
    memcpy(raw, in, n + 1);
    /* the normal form as the library makes it for the request, ending at
     * the other guard page (NULL: none, the library's 400) */
    char tmp[2048];
    ssize_t nl = grace_path_normalize(raw, n, tmp, sizeof(tmp));
    if (nl >= 0) {
        norm = guard[1] - nl - 1;
        memcpy(norm, tmp, (size_t)nl + 1);
    }
    int st = graced_path_decode(raw, norm, out, outlen, cases[_i].flags, &trailing);
    ck_assert_msg(st == cases[_i].status, "%.60s flags %d: status %d, want %d", in,
                  cases[_i].flags, st, cases[_i].status);
    if (st == 0 && cases[_i].out)
        ck_assert_str_eq(out, cases[_i].out);
    if (st == 0 && !cases[_i].in)
        ck_assert_str_eq(out, in + 1);
    if (st == 0)
        ck_assert_int_eq(trailing, cases[_i].trailing);
}
END_TEST

static const struct {
    const char *in;
    int flags;
    int status;
    const char *out;
} names[] = {
    {"report.pdf", 0, 0, "report.pdf"},
    {"\xc3\xa9t\xc3\xa9.txt", 0, 0, "\xc3\xa9t\xc3\xa9.txt"},
    {"a\x01" "b\x7f", 0, 0, "a_b_"},     /* control bytes */
    {"a\xff" "b", 0, 0, "a_b"},          /* not UTF-8 */
    {"a\xc3", 0, 0, "a_"},               /* a sequence cut short */
    {".git", 0, 0, "_git"},              /* a leading dot */
    {".git", H, 0, ".git"},
    {"..", 0, 400, NULL},
    {".", H, 400, NULL},
    {"", 0, 400, NULL},
    {".graced-tmp.1.x", 0, 0, "_graced-tmp.1.x"},
    {".graced-tmp.1.x", H, 404, NULL},   /* never our temporary name */
};

START_TEST(test_sanitise_table)
{
    char out[256];
    int st = graced_name_sanitise(names[_i].in, out, sizeof(out), names[_i].flags);
    ck_assert_msg(st == names[_i].status, "name %d: status %d, want %d", _i, st,
                  names[_i].status);
    if (!st)
        ck_assert_str_eq(out, names[_i].out);
}
END_TEST

START_TEST(test_sanitise_long)
{
    char in[600], out[300];
    memset(in, 'x', 599);
    in[599] = '\0';
    ck_assert_int_eq(graced_name_sanitise(in, out, sizeof(out), 0), 0);
    ck_assert_uint_eq(strlen(out), 255);
    /* a multi-byte character is never cut in two at the bound */
    for (int i = 0; i < 200; i++)
        memcpy(in + 2 * i, "\xc3\xa9", 2);
    in[400] = '\0';
    ck_assert_int_eq(graced_name_sanitise(in, out, sizeof(out), 0), 0);
    ck_assert_uint_eq(strlen(out), 254);
    ck_assert_int_eq(graced_utf8_valid(out, strlen(out)), 1);
}
END_TEST

static Suite *graced_path_suite(void)
{
    Suite *s = suite_create("graced_path");
    TCase *tc = tcase_create("path");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, test_path_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    suite_add_tcase(s, tc);
    tc = tcase_create("sanitise");
    tcase_add_loop_test(tc, test_sanitise_table, 0, (int)(sizeof(names) / sizeof(names[0])));
    tcase_add_test(tc, test_sanitise_long);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(graced_path_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
