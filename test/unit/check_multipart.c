/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_multipart.c - the streaming multipart/form-data parser: every body
 * fed whole, split in two at every point, split in three at every pair of
 * points (short bodies; not with GRACE_TEST_QUICK, as under valgrind), and one
 * byte at a time; each must give the same
 * parts, names and bytes. Malformed bodies must fail, however they are cut.
 */
#include "multipart.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the callbacks saw, as one string: "<name|filename>data</>" per part.
 * Data pieces are concatenated, so any split must give the same log. */
struct rec {
    char log[8192];
    size_t len;
    int begins, ends, fail_at_begin;
};

static void rec_add(struct rec *r, const char *s, size_t n)
{
    ck_assert_uint_lt(r->len + n, sizeof(r->log));
    memcpy(r->log + r->len, s, n);
    r->len += n;
    r->log[r->len] = '\0';
}

static int cb_begin(const char *name, const char *filename, void *arg)
{
    struct rec *r = arg;
    char buf[2048];
    int n = snprintf(buf, sizeof(buf), "<%s|%s>", name ? name : "(null)",
                     filename ? filename : "(null)");
    r->begins++;
    rec_add(r, buf, (size_t)n);
    return r->fail_at_begin && r->begins == r->fail_at_begin ? -ENOSPC : 0;
}

static int cb_data(const char *data, size_t len, void *arg)
{
    ck_assert_uint_gt(len, 0);
    rec_add(arg, data, len);
    return 0;
}

static int cb_end(void *arg)
{
    struct rec *r = arg;
    r->ends++;
    rec_add(r, "</>", 3);
    return 0;
}

static const struct graced_mp_cb cbs = {cb_begin, cb_data, cb_end};

/* Feed body cut at the given points (sorted, ncuts of them); returns the
 * first error of feed or end, and the log in r. */
static int run(const char *boundary, const char *body, size_t len, const size_t *cuts,
               int ncuts, struct rec *r, size_t max_header)
{
    struct graced_mp *mp;
    size_t at = 0;
    int rc = 0;
    memset(r, 0, sizeof(*r));
    mp = graced_mp_new(boundary, max_header, &cbs, r);
    ck_assert_ptr_nonnull(mp);
    for (int i = 0; i <= ncuts && rc == 0; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        /* each piece in its own heap buffer: an over-read shows under ASan */
        char *piece = malloc(to - at + 1);
        memcpy(piece, body + at, to - at);
        rc = graced_mp_feed(mp, piece, to - at);
        free(piece);
        at = to;
    }
    if (rc == 0)
        rc = graced_mp_end(mp);
    graced_mp_free(mp);
    return rc;
}

/* The body must give want (and rc want_rc) whole, in two pieces cut
 * anywhere, in three pieces (bodies up to 300 bytes), and byte by byte. */
static void every_split(const char *boundary, const char *body, size_t len, const char *want,
                        int want_rc)
{
    struct rec r;
    size_t cuts[2];
    int rc = run(boundary, body, len, NULL, 0, &r, 1024);
    ck_assert_int_eq(rc, want_rc);
    if (want)
        ck_assert_str_eq(r.log, want);
    for (size_t a = 0; a <= len; a++) {
        cuts[0] = a;
        rc = run(boundary, body, len, cuts, 1, &r, 1024);
        ck_assert_msg(rc == want_rc, "split at %zu: rc %d, want %d", a, rc, want_rc);
        if (want)
            ck_assert_msg(!strcmp(r.log, want), "split at %zu: got %s", a, r.log);
        if (len <= 300 && !getenv("GRACE_TEST_QUICK")) /* valgrind: two pieces only */
            for (size_t b = a; b <= len; b++) {
                cuts[1] = b;
                rc = run(boundary, body, len, cuts, 2, &r, 1024);
                ck_assert_msg(rc == want_rc, "split at %zu,%zu: rc %d", a, b, rc);
                if (want)
                    ck_assert_msg(!strcmp(r.log, want), "split at %zu,%zu: got %s", a, b,
                                  r.log);
            }
    }
    {
        size_t *all = malloc(len * sizeof(*all));
        for (size_t i = 0; i < len; i++)
            all[i] = i + 1;
        rc = run(boundary, body, len, all, len ? (int)len - 1 : 0, &r, 1024);
        free(all);
        ck_assert_int_eq(rc, want_rc);
        if (want)
            ck_assert_str_eq(r.log, want);
    }
}

#define SPLIT(b, body, want, rc) every_split(b, body, sizeof(body) - 1, want, rc)

START_TEST(test_browser_body)
{
    /* what Chromium sends for a form with a file and a text field */
    SPLIT("----WebKitFormBoundaryX3bY",
          "------WebKitFormBoundaryX3bY\r\n"
          "Content-Disposition: form-data; name=\"file\"; filename=\"a b.txt\"\r\n"
          "Content-Type: text/plain\r\n\r\n"
          "hello\r\nworld\r\n"
          "------WebKitFormBoundaryX3bY\r\n"
          "Content-Disposition: form-data; name=\"note\"\r\n\r\n"
          "just text\r\n"
          "------WebKitFormBoundaryX3bY--\r\n",
          "<file|a b.txt>hello\r\nworld</><note|(null)>just text</>", 0);
}
END_TEST

START_TEST(test_near_delimiters_in_data)
{
    /* pieces of the delimiter inside the content are content */
    SPLIT("xyz",
          "--xyz\r\n"
          "Content-Disposition: form-data; name=\"f\"; filename=\"d.bin\"\r\n\r\n"
          "\r\r\n\r\n-\r\n--\r\n--x\r\n--xy\r--xyz-not\n--xyz"
          "\r\n--xyz--",
          "<f|d.bin>\r\r\n\r\n-\r\n--\r\n--x\r\n--xy\r--xyz-not\n--xyz</>", 0);
    /* "\r\n--xyzA": the boundary followed by something other than CRLF,
     * "--" or padding is a malformed body (RFC 2046 forbids such content) */
    SPLIT("xyz", "--xyz\r\n\r\nabc\r\n--xyzA\r\n--xyz--", NULL, -EPROTO);
}
END_TEST

START_TEST(test_preamble_padding_epilogue)
{
    SPLIT("b", "preamble\r\nmore\r\n--b  \t\r\nContent-Disposition: form-data; name=n\r\n\r\n"
               "v\r\n--b--\r\nepilogue --b\r\n",
          "<n|(null)>v</>", 0);
    /* an empty part, a part without headers, an empty body of parts */
    SPLIT("b", "--b\r\n\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"e\"; filename=\"\"\r\n"
               "\r\n\r\n--b--",
          "<(null)|(null)></><e|></>", 0);
    SPLIT("b", "--b--", "", 0);
}
END_TEST

START_TEST(test_filenames)
{
    SPLIT("q", "--q\r\nContent-Disposition: form-data; name=\"f\"; "
               "filename=\"C:\\\\Users\\\\me\\\\r%22s.txt\"\r\n\r\n1\r\n"
               "--q\r\ncontent-disposition: form-data; name=f; filename=\"../../etc/passwd\"\r\n"
               "\r\n2\r\n"
               "--q\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"; "
               "filename*=UTF-8''%C3%A9t%C3%A9.txt\r\n\r\n3\r\n--q--",
          "<f|r\"s.txt>1</><f|passwd>2</><f|\xc3\xa9t\xc3\xa9.txt>3</>", 0);
}
END_TEST

START_TEST(test_malformed)
{
    SPLIT("b", "--b\r\n\r\nno end", NULL, -EPROTO);       /* truncated */
    SPLIT("b", "--b\r\n\r\ndata\r\n--b", NULL, -EPROTO);  /* no closing "--" */
    SPLIT("b", "--bX\r\n", NULL, -EPROTO);                /* junk after the boundary */
    SPLIT("b", "--b-x", NULL, -EPROTO);
    SPLIT("b", "--b\rX", NULL, -EPROTO);
    SPLIT("b", "no delimiter at all", NULL, -EPROTO);
}
END_TEST

START_TEST(test_header_limit)
{
    char body[4096];
    struct rec r;
    int n = snprintf(body, sizeof(body), "--b\r\nContent-Disposition: form-data; name=\"%0800d\""
                                         "\r\n\r\nx\r\n--b--", 0);
    ck_assert_int_eq(run("b", body, (size_t)n, NULL, 0, &r, 1024), 0);
    ck_assert_int_eq(run("b", body, (size_t)n, NULL, 0, &r, 512), -EMSGSIZE);
    ck_assert_int_eq(r.begins, 0);
}
END_TEST

START_TEST(test_callback_error_stops)
{
    struct graced_mp *mp;
    struct rec r;
    static const char body[] = "--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b--";
    memset(&r, 0, sizeof(r));
    r.fail_at_begin = 2;
    mp = graced_mp_new("b", 1024, &cbs, &r);
    ck_assert_int_eq(graced_mp_feed(mp, body, sizeof(body) - 1), -ENOSPC);
    ck_assert_int_eq(graced_mp_feed(mp, "more", 4), -ENOSPC); /* sticky */
    ck_assert_int_eq(graced_mp_end(mp), -ENOSPC);
    ck_assert_str_eq(r.log, "<(null)|(null)>1</><(null)|(null)>");
    graced_mp_free(mp);
}
END_TEST

START_TEST(test_boundary_param)
{
    char b[80];
    ck_assert_int_eq(graced_mp_boundary("multipart/form-data; boundary=abc", b, sizeof(b)), 0);
    ck_assert_str_eq(b, "abc");
    ck_assert_int_eq(graced_mp_boundary("Multipart/Form-Data;charset=x;BOUNDARY=\"a b:c\"", b,
                                        sizeof(b)), 0);
    ck_assert_str_eq(b, "a b:c");
    ck_assert_int_eq(graced_mp_boundary("multipart/form-data", b, sizeof(b)), -EINVAL);
    ck_assert_int_eq(graced_mp_boundary("multipart/mixed; boundary=a", b, sizeof(b)), -EINVAL);
    ck_assert_int_eq(graced_mp_boundary("multipart/form-data; boundary=", b, sizeof(b)), -EINVAL);
    ck_assert_int_eq(graced_mp_boundary("multipart/form-data; boundary=\"a\rb\"", b, sizeof(b)),
                     -EINVAL);
    ck_assert_int_eq(graced_mp_boundary("multipart/form-data; boundary=0123456789012345678901234"
                                        "5678901234567890123456789012345678901234567890x",
                                        b, sizeof(b)), -EINVAL); /* 71 characters */
    ck_assert_ptr_null(graced_mp_new("a\r\nb", 100, &cbs, NULL));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("multipart");
    TCase *t = tcase_create("multipart");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_browser_body);
    tcase_add_test(t, test_near_delimiters_in_data);
    tcase_add_test(t, test_preamble_padding_epilogue);
    tcase_add_test(t, test_filenames);
    tcase_add_test(t, test_malformed);
    tcase_add_test(t, test_header_limit);
    tcase_add_test(t, test_callback_error_stops);
    tcase_add_test(t, test_boundary_param);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
