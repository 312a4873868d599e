/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * log.c - the error log (stderr, by level) and the access log in Combined
 * Log Format with one more quoted field at the end, the TLS version.
 * SIGHUP reopens the access log (for logrotate). Each line is one
 * write(2) of at most PIPE_BUF bytes: whole lines from every worker, nothing
 * buffered to lose at exit.
 */
#include "graced.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Fields are cut so that a line never exceeds this: a write(2) of up to
 * PIPE_BUF bytes to a pipe is atomic, so workers never splice lines. */
#define ACCESS_LINE_MAX PIPE_BUF

static int log_level = LOG_INFO;
static int access_fd = -1;
static const char *access_path;
static const char *skip_path; /* --health: a probe every second would fill the log */

void graced_log_set_level(int level)
{
    log_level = level;
}

/* Write a whole line with one write(2): lines from several workers sharing
 * a file (O_APPEND) or a pipe (PIPE_BUF) then never splice, and nothing
 * waits in a stdio buffer that _exit() or a crash would lose. */
static void write_line(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* a log that cannot be written does not stop serving */
        buf += w;
        n -= (size_t)w;
    }
}

void graced_log(int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[1024];
    va_list ap;
    int n, m;
    if (level > log_level)
        return;
    n = snprintf(line, sizeof(line), "graced[%d]: %s: ", (int)getpid(), names[level]);
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n = n + m < (int)sizeof(line) - 1 ? n + m : (int)sizeof(line) - 2;
    line[n++] = '\n';
    write_line(STDERR_FILENO, line, (size_t)n);
}

static int open_log(const char *path)
{
    if (!strcmp(path, "-"))
        return STDOUT_FILENO;
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int graced_access_log_open(const char *path)
{
    access_path = path;
    access_fd = open_log(path);
    return access_fd >= 0 ? 0 : -1;
}

int graced_access_log_reopen(void)
{
    int fd;
    if (!access_path || !strcmp(access_path, "-"))
        return 0;
    if ((fd = open_log(access_path)) < 0)
        return -1; /* keep writing to the old one */
    close(access_fd);
    access_fd = fd;
    return 0;
}

void graced_access_log_close(void)
{
    if (access_fd > STDERR_FILENO)
        close(access_fd);
    access_fd = -1;
}

/* A line being built; what does not fit is cut (see log_quoted). */
struct line {
    char buf[ACCESS_LINE_MAX];
    size_t len;
};

static void put(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct line *l, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(l->buf + l->len, sizeof(l->buf) - l->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        l->len += (size_t)n < sizeof(l->buf) - l->len ? (size_t)n : sizeof(l->buf) - l->len - 1;
}

/* A header value made safe for a quoted log field, at most max bytes of
 * it: longer values end in "..." so a line stays below PIPE_BUF. */
static void log_quoted(struct line *l, const char *s, size_t max)
{
    size_t start = l->len;
    if (!s) {
        put(l, "-");
        return;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (l->len - start + 4 > max) {
            put(l, "...");
            return;
        }
        if (c == '"' || c == '\\' || c < 0x20 || c > 0x7e)
            put(l, "\\x%02x", c);
        else
            l->buf[l->len++] = (char)c;
    }
    l->buf[l->len] = '\0';
}

/*
 * One Combined Log Format line per response, written when the response has
 * left (grace_server_on_response): also the library's own error answers,
 * which have no request ("-"), and responses cut short (their bytes so far).
 * The Combined fields come first, so their parsers still work; then the TLS
 * version: "TLSv1.3", "TLSv1.2", or "-" for plain HTTP (also for the
 * library's own answers).
 */
void graced_access_log_skip(const char *path)
{
    skip_path = path;
}

void graced_access(const struct grace_response_info *ri, void *arg)
{
    const struct grace_request *req = grace_response_info_request(ri);
    char host[INET6_ADDRSTRLEN] = "-", when[64];
    const struct sockaddr *sa;
    uint64_t bytes = grace_response_info_body_bytes(ri);
    time_t now;
    struct tm tm;
    struct line l;

    if (access_fd < 0 || (req && skip_path && !strcmp(grace_request_path_decoded(req), skip_path)))
        return;
    l.len = 0;
    sa = grace_response_info_peer(ri, NULL);
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof(host));
    now = time(NULL);
    localtime_r(&now, &tm);
    strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S %z", &tm);
    put(&l, "%s - - [%s] \"", host, when);
    if (req) {
        log_quoted(&l, grace_request_method(req), 64);
        put(&l, " ");
        log_quoted(&l, grace_request_target(req), 2048);
        put(&l, " %s", grace_request_version(req));
    } else {
        put(&l, "-"); /* not a request we could parse */
    }
    put(&l, "\" %d ", grace_response_info_status(ri));
    if (bytes > 0)
        put(&l, "%llu", (unsigned long long)bytes);
    else
        put(&l, "-");
    put(&l, " \"");
    log_quoted(&l, req ? grace_request_header(req, "Referer") : NULL, 768);
    put(&l, "\" \"");
    log_quoted(&l, req ? grace_request_header(req, "User-Agent") : NULL, 768);
    put(&l, "\" \"");
    log_quoted(&l, grace_response_info_tls_version(ri), 16);
    put(&l, "\"\n");
    write_line(access_fd, l.buf, l.len);
}
