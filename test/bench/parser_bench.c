/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * parser_bench.c - parser throughput on a ~700-byte browser request and on
 * a pipelined stream of small requests. Prints one line per input:
 *   browser: 1234.5 MB/s, 1763612 req/s (median of 5 runs)
 * Usage: parser_bench [seconds-per-run]
 */
#include "parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char browser[] =
    "GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n"
    "Host: www.kittyhell.com\r\n"
    "User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_6_3; ja-JP-mac; rv:1.9.2.3) "
    "Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n"
    "Accept-Encoding: gzip,deflate\r\n"
    "Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n"
    "Keep-Alive: 115\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; "
    "__utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; "
    "__utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|"
    "utmcct=/reader/|utmcmd=referral\r\n"
    "\r\n";

static const char small[] = "GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct grace_hfield fields[GRACE_PARSER_DEFAULT_FIELDS];

/* Parse every request in buf[0..len) once; returns the number parsed. */
static size_t parse_all(struct grace_parser *p, const char *buf, size_t len)
{
    size_t off = 0, n = 0, used, bl;
    const char *b;
    while (off < len) {
        enum grace_pev ev = grace_parser_execute(p, buf + off, len - off, &used, &b, &bl);
        off += used;
        if (ev == GRACE_PEV_HEADERS)
            n++;
        else if (ev == GRACE_PEV_ERROR || (ev == GRACE_PEV_AGAIN && !used)) {
            fprintf(stderr, "parse error %s\n", grace_perr_str(p->err));
            exit(1);
        }
    }
    /* the last request's DONE */
    grace_parser_execute(p, buf, 0, &used, &b, &bl);
    return n;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench(const char *name, const char *buf, size_t len, double secs)
{
    struct grace_parser p;
    double mbs[5], rps[5];
    grace_parser_init(&p, NULL, fields);
    for (int r = 0; r < 5; r++) {
        size_t iters = 0, reqs = 0;
        double t0 = now(), t;
        do {
            for (int k = 0; k < 1000; k++)
                reqs += parse_all(&p, buf, len);
            iters += 1000;
        } while ((t = now() - t0) < secs);
        mbs[r] = (double)iters * (double)len / t / 1e6;
        rps[r] = (double)reqs / t;
    }
    qsort(mbs, 5, sizeof(double), cmp);
    qsort(rps, 5, sizeof(double), cmp);
    printf("%s: %.1f MB/s, %.0f req/s (median of 5 runs, %zu bytes per pass)\n", name, mbs[2],
           rps[2], len);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0.5;
    static char pipe[64 * sizeof(small)];
    size_t plen = 0;
    for (int i = 0; i < 64; i++) {
        memcpy(pipe + plen, small, sizeof(small) - 1);
        plen += sizeof(small) - 1;
    }
    bench("browser", browser, sizeof(browser) - 1, secs);
    bench("pipelined-small", pipe, plen, secs);
    return 0;
}
