/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_fields.c - the header values graced parses itself
 * (src/graced/fields.c): numbers, structured-field Booleans, base64, tus's
 * Upload-Metadata and Content-Disposition's file name. Tables of inputs
 * and what each gives or why it is refused; every input ends (with its
 * NUL) at a guard page, so an over-read crashes.
 */
#include "graced.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char *page;  /* two pages: the second one unmapped for reads */
static long psize;

static void setup(void)
{
    psize = sysconf(_SC_PAGESIZE);
    page = mmap(NULL, (size_t)psize * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                0);
    ck_assert_ptr_ne(page, MAP_FAILED);
    ck_assert_int_eq(mprotect(page + psize, (size_t)psize, PROT_NONE), 0);
}

/* s (and its NUL) as the last bytes before the guard page */
static const char *guarded(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = page + psize - n;
    ck_assert_uint_le(n, (size_t)psize);
    memcpy(p, s, n);
    return p;
}

static const struct {
    const char *in;
    int64_t want;
} uints[] = {
    {"0", 0}, {"7", 7}, {"1048576", 1048576}, {"999999999999999999", 999999999999999999LL},
    {"1000000000000000000", -1}, /* 19 digits: refused, never wrapped */
    {"", -1}, {"-1", -1}, {"+1", -1}, {" 1", -1}, {"1 ", -1}, {"0x10", -1}, {"1.0", -1},
    {"12a", -1},
};

START_TEST(test_uint)
{
    ck_assert_msg(graced_field_uint(guarded(uints[_i].in)) == uints[_i].want, "%s",
                  uints[_i].in);
}
END_TEST

static const struct {
    const char *in;
    int want;
} bools[] = {
    {"?1", 1}, {"?0", 0}, {"1", -1}, {"true", -1}, {"?2", -1}, {"?", -1}, {"", -1}, {"?1 ", -1},
    {"?10", -1},
};

START_TEST(test_bool)
{
    ck_assert_int_eq(graced_field_bool(guarded(bools[_i].in)), bools[_i].want);
    ck_assert_int_eq(graced_field_bool(NULL), -1);
}
END_TEST

static const struct {
    const char *in;
    int len;          /* -1: refused */
    const char *out;
} b64s[] = {
    {"aGVsbG8udHh0", 9, "hello.txt"}, {"YQ==", 1, "a"}, {"YQ", 1, "a"}, {"YWI=", 2, "ab"},
    {"", 0, ""}, {"YW Jj", -1, NULL}, {"YW*j", -1, NULL}, {"YWJj\n", -1, NULL},
    {"AA==", 1, "\0"}, {"/+8=", 2, "\xff\xef"},
};

START_TEST(test_b64)
{
    char out[64];
    const char *in = guarded(b64s[_i].in);
    int got = graced_b64decode(in, strlen(in), out, sizeof(out));
    ck_assert_int_eq(got, b64s[_i].len);
    if (got >= 0)
        ck_assert_mem_eq(out, b64s[_i].out, (size_t)got);
    /* an output one byte too small is refused, never overrun */
    if (got > 0)
        ck_assert_int_eq(graced_b64decode(in, strlen(in), out, (size_t)got), -1);
}
END_TEST

static const struct {
    const char *in, *key;
    int rc;
    const char *out;
} metas[] = {
    {"filename aGVsbG8udHh0", "filename", 1, "hello.txt"},
    {"filetype dGV4dC9wbGFpbg==,filename aGVsbG8udHh0", "filename", 1, "hello.txt"},
    {"filetype dGV4dC9wbGFpbg==, filename aGVsbG8udHh0", "filename", 1, "hello.txt"},
    {"is_confidential,filename aGVsbG8udHh0", "filename", 1, "hello.txt"},
    {"filenamex YQ==,filename Yg==", "filename", 1, "b"}, /* the key whole, not a prefix */
    {"name YQ==", "filename", 0, NULL},
    {"", "filename", 0, NULL},
    {"filename", "filename", -1, NULL},        /* a key without a value */
    {"filename @@@", "filename", -1, NULL},    /* not base64 */
    {"filename YQ== ", "filename", -1, NULL},  /* trailing space */
    {"filename YQBi", "filename", 1, "a\x01" "b"}, /* "a\0b": NUL made a control byte */
    {"filename ", "filename", 1, ""},
};

START_TEST(test_metadata)
{
    char out[64];
    int rc = graced_tus_metadata(guarded(metas[_i].in), metas[_i].key, out, sizeof(out));
    ck_assert_msg(rc == metas[_i].rc, "%s: %d, want %d", metas[_i].in, rc, metas[_i].rc);
    if (rc == 1)
        ck_assert_str_eq(out, metas[_i].out);
}
END_TEST

START_TEST(test_metadata_long)
{
    char md[200], out[8];
    snprintf(md, sizeof(md), "filename %s", "aGVsbG8udHh0"); /* 9 bytes into 8 */
    ck_assert_int_eq(graced_tus_metadata(guarded(md), "filename", out, sizeof(out)), -1);
}
END_TEST

static const struct {
    const char *in;
    int rc;
    const char *out;
} cds[] = {
    {"attachment; filename=\"a b.txt\"", 1, "a b.txt"},
    {"attachment; filename=plain.txt", 1, "plain.txt"},
    {"attachment; filename=plain.txt; size=3", 1, "plain.txt"},
    {"attachment; filename=\"q\\\"uote\\\\.txt\"", 1, "q\"uote\\.txt"},
    {"attachment; filename*=UTF-8''%C3%A9t%C3%A9.txt", 1, "\xc3\xa9t\xc3\xa9.txt"},
    {"attachment; filename=\"fallback.txt\"; filename*=UTF-8''real.txt", 1, "real.txt"},
    {"attachment; FILENAME=\"up.txt\"", 1, "up.txt"},
    {"attachment; filename*=UTF-8''a%00b", 1, "a\x01" "b"},
    {"attachment", 0, NULL},
    {"attachment; filename=\"open", -1, NULL},
    {"attachment; filename=\"\"", -1, NULL},
    {"attachment; filename*=UTF-8''%G1", -1, NULL},
    {"attachment; filename*=UTF-8''%4", -1, NULL},
};

START_TEST(test_disposition)
{
    char out[64];
    int rc = graced_disposition_filename(guarded(cds[_i].in), out, sizeof(out));
    ck_assert_msg(rc == cds[_i].rc, "%s: %d, want %d", cds[_i].in, rc, cds[_i].rc);
    if (rc == 1)
        ck_assert_str_eq(out, cds[_i].out);
}
END_TEST

START_TEST(test_disposition_bounds)
{
    char out[4];
    ck_assert_int_eq(graced_disposition_filename(NULL, out, sizeof(out)), 0);
    ck_assert_int_eq(graced_disposition_filename(guarded("x; filename=abcd"), out, sizeof(out)),
                     -1);
    ck_assert_int_eq(graced_disposition_filename(guarded("x; filename=abc"), out, sizeof(out)), 1);
    ck_assert_int_eq(graced_disposition_filename(guarded("x; filename=\"abcd\""), out,
                                                 sizeof(out)), -1);
}
END_TEST

static const struct {
    const char *in, *name;
    int rc;
    const char *out;
} forms[] = {
    {"user=alice&password=pw", "user", 0, "alice"},
    {"user=alice&password=pw", "password", 0, "pw"},
    {"xuser=bob&user=alice", "user", 0, "alice"},      /* a name is whole */
    {"q=a+b%20c%2Bd", "q", 0, "a b c+d"},
    {"q=%e2%82%ac", "q", 0, "\xe2\x82\xac"},
    {"q=100%", "q", 0, "100%"},                        /* not an escape: kept */
    {"q=%4", "q", 0, "%4"},
    {"q=", "q", 0, ""},
    {"q=a%00b", "q", -1, NULL},                        /* a NUL byte */
    {"q=0123456789", "q", -1, NULL},                   /* one byte too long */
    {"p=1", "q", -1, NULL},
    {"q", "q", -1, NULL},
};

START_TEST(test_form_field)
{
    char out[10];
    int rc = graced_form_field(guarded(forms[_i].in), forms[_i].name, out, sizeof(out));
    ck_assert_msg(rc == forms[_i].rc, "%s: %d, want %d", forms[_i].in, rc, forms[_i].rc);
    if (rc == 0)
        ck_assert_str_eq(out, forms[_i].out);
}
END_TEST

#define N(a) (int)(sizeof(a) / sizeof((a)[0]))

static Suite *fields_suite(void)
{
    Suite *s = suite_create("fields");
    TCase *tc = tcase_create("fields");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, test_uint, 0, N(uints));
    tcase_add_loop_test(tc, test_bool, 0, N(bools));
    tcase_add_loop_test(tc, test_b64, 0, N(b64s));
    tcase_add_loop_test(tc, test_metadata, 0, N(metas));
    tcase_add_test(tc, test_metadata_long);
    tcase_add_loop_test(tc, test_disposition, 0, N(cds));
    tcase_add_test(tc, test_disposition_bounds);
    tcase_add_loop_test(tc, test_form_field, 0, N(forms));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fields_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
