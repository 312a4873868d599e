/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_options.c - graced's table of options (src/graced/options.c):
 *  - the documents: every option has its entry in docs/graced.8 (a .TP
 *    heading of OPTIONS), every option graced.8 heads is one, and every
 *    limit (the library's and graced's own) has its row in
 *    docs/tuning.md: an option cannot be in the table and not in the docs,
 *    or the other way round;
 *  - every library option (enum grace_opt) is one row, under its name;
 *  - parsing: a table of command lines and the values they set, then one of
 *    command lines and the one line graced says on stderr; and for every
 *    option that takes a value, a bad value or none is one line naming it;
 *  - --help: every option, in lines of at most 80 columns.
 * The documents are read from $top_srcdir (else the current directory).
 */
#include "graced.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ARGS 40

static char *slurp(const char *rel)
{
    const char *top = getenv("top_srcdir");
    char path[4096];
    FILE *fp;
    long n;
    char *s;
    snprintf(path, sizeof(path), "%s/%s", top && *top ? top : ".", rel);
    fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "cannot read %s", path);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    rewind(fp);
    s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(fread(s, 1, (size_t)n, fp), n);
    s[n] = '\0';
    fclose(fp);
    return s;
}

/* the options graced.8 heads: "\-\-name" in the line after each .TP, one
 * per line of out ("\nname\n..."), so that strstr("\nname\n") finds one */
static char *man_options(void)
{
    char *man = slurp("docs/graced.8"), *out = calloc(1, strlen(man) + 2), *p = man;
    size_t o = 0;
    ck_assert_ptr_nonnull(out);
    out[o++] = '\n';
    while ((p = strstr(p, "\n.TP\n"))) {
        char *line = p + 5, *end = strchr(line, '\n');
        if (!end)
            break;
        for (char *q = line; q < end && (q = strstr(q, "\\-\\-")) && q < end;) {
            q += 4;
            while (q < end && ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') ||
                               !strncmp(q, "\\-", 2))) {
                if (*q == '\\')
                    q++;
                out[o++] = *q++;
            }
            out[o++] = '\n';
        }
        p = end;
    }
    out[o] = '\0';
    free(man);
    return out;
}

static int listed(const char *list, const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "\n%s\n", name);
    return strstr(list, key) != NULL;
}

START_TEST(test_man_page)
{
    char *heads = man_options();
    struct graced_option_info in;
    for (int i = 0; graced_option_info(i, &in) == 0; i++)
        ck_assert_msg(listed(heads, in.name), "--%s is not in docs/graced.8 (a .TP heading "
                      "under OPTIONS)", in.name);
    /* and the other way: graced.8 documents no option graced does not have */
    for (char *p = heads + 1, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        int found = 0;
        *nl = '\0';
        for (int i = 0; !found && graced_option_info(i, &in) == 0; i++)
            found = !strcmp(in.name, p);
        ck_assert_msg(found, "docs/graced.8 documents --%s, which graced does not have", p);
        *nl = '\n';
    }
    free(heads);
}
END_TEST

START_TEST(test_tuning)
{
    char *doc = slurp("docs/tuning.md");
    struct graced_option_info in;
    for (int i = 0; graced_option_info(i, &in) == 0; i++) {
        char key[128];
        if (!in.limit)
            continue;
        snprintf(key, sizeof(key), "\n| `%s`", in.name);
        ck_assert_msg(strstr(doc, key) != NULL, "--%s is a limit: give it a row "
                      "(\"| `%s` ...\") in docs/tuning.md", in.name, in.name);
    }
    free(doc);
}
END_TEST

START_TEST(test_library_options)
{
    struct graced_option_info in, other;
    for (int opt = 0; opt < GRACE_OPT__COUNT; opt++) {
        int rows = 0;
        if (opt == GRACE_OPT_REUSEPORT)
            continue; /* graced opens its sockets itself: --workers */
        for (int i = 0; graced_option_info(i, &in) == 0; i++)
            rows += in.lib == opt || !strcmp(in.name, grace_opt_name(opt));
        ck_assert_msg(rows == 1, "library option %s: %d rows in graced's table", grace_opt_name(opt),
                      rows);
    }
    for (int i = 0; graced_option_info(i, &in) == 0; i++) {
        if (in.lib >= 0) {
            ck_assert_str_eq(in.name, grace_opt_name(in.lib));
            ck_assert_msg(in.limit && in.arg, "--%s", in.name);
        }
        for (int j = 0; j < i && graced_option_info(j, &other) == 0; j++)
            ck_assert_msg(strcmp(in.name, other.name), "--%s twice", in.name);
    }
}
END_TEST

/* ---------------------------------------------------------------- parsing */

struct result {
    int rc;
    char err[4096]; /* what went to stderr */
    char out[16384]; /* ... and stdout */
};

static size_t drain(FILE *f, char *buf, size_t n)
{
    size_t got;
    fflush(f);
    rewind(f);
    got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    return got;
}

/* graced_parse_options() on argv (NULL-terminated, without "graced"), with
 * stdout and stderr caught; o is the caller's to free (free_opts). */
static void parse(char **args, struct graced_opts *o, struct result *r)
{
    char *argv[MAX_ARGS + 2];
    int argc = 1, saved[2];
    FILE *cap[2];
    argv[0] = "graced";
    while (args[argc - 1] && argc <= MAX_ARGS) {
        argv[argc] = args[argc - 1];
        argc++;
    }
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < 2; i++) {
        cap[i] = tmpfile();
        ck_assert_ptr_nonnull(cap[i]);
        saved[i] = dup(i + 1);
        dup2(fileno(cap[i]), i + 1);
    }
    r->rc = graced_parse_options(o, argc, argv);
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < 2; i++) {
        dup2(saved[i], i + 1);
        close(saved[i]);
    }
    drain(cap[0], r->out, sizeof(r->out));
    drain(cap[1], r->err, sizeof(r->err));
    fclose(cap[0]);
    fclose(cap[1]);
}

static void free_opts(struct graced_opts *o)
{
    grace_config_free(o->cfg);
    free((char *)o->metrics_path);
}

static const struct {
    const char *argv[4];
    int repeat;       /* the argv this many times */
    const char *err;  /* the line on stderr, without "graced: " and the line end */
} refused[] = {
    {{"--workers", "0"}, 1, "--workers 0: a number from 1 to 64"},
    {{"--workers", ""}, 1, "--workers : a number from 1 to 64"},
    {{"--sync-threads", "65"}, 1, "--sync-threads 65: a number from 1 to 64"},
    {{"--backlog", "x"}, 1, "--backlog x: a number from 1 to 1000000"},
    {{"--auth-fail-limit", "1000001"}, 1, "--auth-fail-limit 1000001: a number from 1 to 1000000"},
    {{"--list-max", "5k"}, 1, "--list-max 5k: a number from 1 to 10000000"},
    {{"--hsts", "-1"}, 1, "--hsts -1: expected a number of seconds"},
    {{"--hsts", "99999999999999999999"}, 1,
     "--hsts 99999999999999999999: expected a number of seconds"},
    {{"--stale-upload-age", "1d"}, 1, "--stale-upload-age 1d: expected a time like 10s"},
    {{"--shutdown-timeout", "-5"}, 1, "--shutdown-timeout -5: expected a time like 10s"},
    {{"--warn-interval", "x"}, 1, "--warn-interval x: expected a time like 1m"},
    {{"--proxy-timeout", "0"}, 1, "--proxy-timeout 0: expected a time like 10s"},
    {{"--restart-delay-max", "0.1ms"}, 1, "--restart-delay-max 0.1ms: expected a time like 10s"},
    {{"--max-body-size", "1T"}, 1, "--max-body-size 1T: invalid value"},
    {{"--max-body-size", "9999999999999G"}, 1, "--max-body-size 9999999999999G: invalid value"},
    {{"--header-timeout", "25h"}, 1, "--header-timeout 25h: invalid value"},
    {{"--header-timeout", "0"}, 1, "--header-timeout 0: invalid value"},
    {{"--max-request-line", "63"}, 1, "--max-request-line 63: invalid value"},
    {{"--linger", "yes"}, 1, "--linger yes: invalid value"},
    {{"--log-level", "trace"}, 1, "--log-level trace: error, warn, info or debug"},
    {{"--listen", "::1:80"}, 1, "--listen ::1:80: expected ADDR:PORT or [IPv6]:PORT"},
    {{"--proxy-tls-listen", "x"}, 1, "--proxy-tls-listen x: expected ADDR:PORT or [IPv6]:PORT"},
    {{"--cors", "https://a.example/"}, 1,
     "--cors https://a.example/: one origin like https://example.org, or *"},
    {{"--cors-write", "ftp://x"}, 1, "--cors-write ftp://x: one origin like https://example.org, or *"},
    {{"--metrics-allow", "10.0.0.0/33"}, 1, "--metrics-allow 10.0.0.0/33: expected ADDR or ADDR/BITS"},
    {{"--proxy-from", "x"}, 1, "--proxy-from x: expected ADDR or ADDR/BITS"},
    {{"--cache-control", "a\nb"}, 1, "--cache-control: a header value, e.g. 'max-age=3600'"},
    {{"--cache-control", ""}, 1, "--cache-control: a header value, e.g. 'max-age=3600'"},
    {{"--metrics", "/m/"}, 1,
     "--metrics /m/: a path starting with / (and not ending with one), e.g. /metrics"},
    {{"--metrics", "/m/../.."}, 1,
     "--metrics /m/../..: a path starting with / (and not ending with one), e.g. /metrics"},
    {{"--health", "/a/../b"}, 1, "--health /a/../b: a plain path starting with /, such as /healthz"},
    {{"--health", "healthz"}, 1, "--health healthz: a plain path starting with /, such as /healthz"},
    {{"--root"}, 1, "option --root needs a value (see --help)"},
    {{"-x"}, 1, "unknown option -x (see --help)"},
    {{"--nope"}, 1, "unknown option --nope (see --help)"},
    {{"--reuseport", "1"}, 1, "unknown option --reuseport (see --help)"},
    {{"--list-dirs=1"}, 1, "unknown option --list-dirs=1 (see --help)"},
    {{"--li"}, 1, "unknown option --li (see --help)"}, /* ambiguous: --listen, --list-... */
    {{"x"}, 1, "unexpected argument x (see --help)"},
    {{"--listen", "127.0.0.1:1"}, 17, "at most 16 --listen addresses"},
    {{"--proxy-listen", "127.0.0.1:1"}, 17, "at most 16 --proxy-listen addresses"},
    {{"--tls-cert", "a"}, 17, "at most 16 certificates"},
    {{"--tls-key", "a"}, 17, "at most 16 certificates"},
    {{"--cors", "*"}, 17, "at most 16 --cors"},
    {{"--metrics-allow", "::1"}, 17, "at most 16 --metrics-allow"},
    /* what one option asks of another */
    {{"--tls-cert", "a"}, 1, "1 --tls-cert but 0 --tls-key: give them in pairs"},
    {{"--tls-listen", "127.0.0.1:1"}, 1,
     "--tls-listen 127.0.0.1:1 needs --tls-cert FILE and --tls-key FILE"},
    {{"--proxy-tls-listen", "127.0.0.1:1"}, 1,
     "--proxy-tls-listen 127.0.0.1:1 needs --tls-cert FILE and --tls-key FILE"},
    {{"--auth-token-file", "/t"}, 1, "--auth-token-file /t guards uploads: it needs --upload-dir DIR"},
    {{"--private"}, 1, "--private needs --users-file FILE"},
};

START_TEST(test_refused)
{
    char *args[MAX_ARGS + 1];
    char want[512];
    int n = 0;
    struct graced_opts o;
    struct result r;
    for (int k = 0; k < refused[_i].repeat; k++)
        for (int j = 0; j < 4 && refused[_i].argv[j]; j++)
            args[n++] = (char *)refused[_i].argv[j];
    args[n] = NULL;
    parse(args, &o, &r);
    snprintf(want, sizeof(want), "graced: %s\n", refused[_i].err);
    ck_assert_msg(r.rc == -1, "%s: rc %d", refused[_i].err, r.rc);
    ck_assert_str_eq(r.err, want);
    free_opts(&o);
}
END_TEST

START_TEST(test_defaults)
{
    struct graced_opts o;
    struct result r;
    char *args[] = {NULL};
    parse(args, &o, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_str_eq(r.err, "");
    ck_assert_str_eq(o.root, ".");
    ck_assert_int_eq(o.nlisten, 1);
    ck_assert_str_eq(o.listen[0], "127.0.0.1:8080");
    ck_assert_int_eq(o.listen_default, 1);
    ck_assert_int_eq(o.max_body, INT64_C(1) << 30);
    ck_assert_int_eq(o.workers, 1);
    ck_assert_int_eq(o.log_level, LOG_INFO);
    ck_assert_int_eq(o.shutdown_timeout_ms, 10000);
    ck_assert_int_eq(o.hsts, -1);
    ck_assert_int_eq(o.stale_upload_age_ms, 3600000);
    ck_assert_int_eq(o.sync_threads, 2);
    ck_assert_int_eq(o.restart_delay_max_ms, 10000);
    ck_assert_int_eq(o.list_max, 10000);
    ck_assert_int_eq(o.auth_cache_ms, 60000);
    ck_assert_int_eq(o.auth_fail_limit, 10);
    ck_assert_int_eq(o.auth_max_pending, 16);
    ck_assert_int_eq(o.proxy_timeout_ms, 5000);
    ck_assert_int_eq(o.warn_interval_ms, 60000);
    ck_assert_int_eq(o.backlog, 511);
    ck_assert_ptr_null(o.upload_dir);
    ck_assert_int_eq(o.list_dirs, 0);
    /* every request but an upload: a small body limit */
    ck_assert_int_eq(grace_config_get(o.cfg, GRACE_OPT_MAX_BODY_SIZE), GRACED_OTHER_BODY);
    ck_assert_int_eq(grace_config_get(o.cfg, GRACE_OPT_HEADER_TIMEOUT), 10000);
    free_opts(&o);
}
END_TEST

START_TEST(test_values)
{
    struct graced_opts o;
    struct result r;
    char *args[] = {"--listen", "127.0.0.1:1", "--listen=[::1]:2", "--tls-cert", "c", "--tls-key",
                    "k", "--tls-listen", "127.0.0.1:3", "--hsts", "0", "--upload-dir", "/u",
                    "--list-dirs", "--show-hidden", "--stale-upload-age", "1.5s", "--max-body-size",
                    "10", "--log-level", "debug", "--metrics", "//m/./x", "--metrics", "/n",
                    "--health", "/h", "--header-timeout", "500ms", "--linger", "off",
                    "--max-header-fields", "1K", "--cors", "*", "--workers", "3", NULL};
    parse(args, &o, &r);
    ck_assert_msg(r.rc == 0, "%s", r.err);
    ck_assert_int_eq(o.nlisten, 2);
    ck_assert_str_eq(o.listen[1], "[::1]:2");
    ck_assert_int_eq(o.listen_default, 0);
    ck_assert_int_eq(o.ncert, 1);
    ck_assert_int_eq(o.nkey, 1);
    ck_assert_int_eq(o.ntls_listen, 1);
    ck_assert_int_eq(o.hsts, 0);
    ck_assert_str_eq(o.upload_dir, "/u");
    ck_assert_int_eq(o.list_dirs, 1);
    ck_assert_int_eq(o.show_hidden, 1);
    ck_assert_int_eq(o.stale_upload_age_ms, 1500);
    ck_assert_int_eq(o.max_body, 10);
    ck_assert_int_eq(grace_config_get(o.cfg, GRACE_OPT_MAX_BODY_SIZE), 10);
    ck_assert_int_eq(o.log_level, LOG_DEBUG);
    ck_assert_str_eq(o.metrics_path, "/n"); /* the last one, normalized */
    ck_assert_str_eq(o.health_path, "/h");
    ck_assert_int_eq(grace_config_get(o.cfg, GRACE_OPT_HEADER_TIMEOUT), 500);
    ck_assert_int_eq(grace_config_get(o.cfg, GRACE_OPT_LINGER), 0);
    ck_assert_int_eq(grace_config_get(o.cfg, GRACE_OPT_MAX_HEADER_FIELDS), 1024);
    ck_assert_int_eq(o.ncors, 1);
    ck_assert_int_eq(o.workers, 3);
    free_opts(&o);
    char *m[] = {"--metrics", "//m/./x", NULL};
    parse(m, &o, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_str_eq(o.metrics_path, "/m/x");
    free_opts(&o);
}
END_TEST

/* Every option with a value: none, or a bad one, is one line naming it. */
START_TEST(test_every_option)
{
    struct graced_option_info in;
    for (int i = 0; graced_option_info(i, &in) == 0; i++) {
        struct graced_opts o;
        struct result r;
        char opt[80], want[160];
        char *none[] = {opt, NULL}, *bad[] = {opt, "bad!", NULL};
        if (!in.arg)
            continue;
        snprintf(opt, sizeof(opt), "--%s", in.name);
        parse(none, &o, &r);
        snprintf(want, sizeof(want), "graced: option --%s needs a value (see --help)\n", in.name);
        ck_assert_int_eq(r.rc, -1);
        ck_assert_str_eq(r.err, want);
        free_opts(&o);
        parse(bad, &o, &r);
        if (r.rc == 0) { /* a file name, say: anything goes */
            ck_assert_str_eq(r.err, "");
        } else { /* one line that names it (--tls-cert alone: "1 --tls-cert but 0 --tls-key") */
            snprintf(want, sizeof(want), "--%s", in.name);
            ck_assert_int_eq(r.rc, -1);
            ck_assert_msg(!strncmp(r.err, "graced: ", 8) && strstr(r.err, want) &&
                          strchr(r.err, '\n') == r.err + strlen(r.err) - 1,
                          "--%s bad!: %s", in.name, r.err);
        }
        free_opts(&o);
    }
}
END_TEST

START_TEST(test_help)
{
    struct graced_opts o;
    struct result r;
    struct graced_option_info in;
    char *args[] = {"--help", NULL}, *h[] = {"-h", NULL};
    parse(args, &o, &r);
    ck_assert_int_eq(r.rc, 1);
    ck_assert_str_eq(r.err, "");
    ck_assert(!strncmp(r.out, "usage: graced [options]\n", 24));
    for (int i = 0; graced_option_info(i, &in) == 0; i++) {
        char key[128];
        snprintf(key, sizeof(key), "\n  --%s ", in.name);
        ck_assert_msg(strstr(r.out, key) != NULL, "--help does not show --%s", in.name);
    }
    for (char *p = r.out, *nl; (nl = strchr(p, '\n')); p = nl + 1)
        ck_assert_msg(nl - p <= 80, "--help line over 80 columns: %.*s", (int)(nl - p), p);
    free_opts(&o);
    char out[sizeof(r.out)];
    memcpy(out, r.out, sizeof(out));
    parse(h, &o, &r);
    ck_assert_int_eq(r.rc, 1);
    ck_assert_str_eq(r.out, out);
    free_opts(&o);
}
END_TEST

static Suite *options_suite(void)
{
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("docs");
    tcase_add_test(tc, test_man_page);
    tcase_add_test(tc, test_tuning);
    tcase_add_test(tc, test_library_options);
    suite_add_tcase(s, tc);
    tc = tcase_create("parse");
    tcase_add_loop_test(tc, test_refused, 0, (int)(sizeof(refused) / sizeof(refused[0])));
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_every_option);
    tcase_add_test(tc, test_help);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(options_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
