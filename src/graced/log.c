/*
 * log.c - the error log (stderr, by level) and the access log in Combined
 * Log Format with one more quoted field at the end, the TLS version.
 * SIGHUP reopens the access log (for logrotate).
 */
#include "graced.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = LOG_INFO;
static FILE *access_fp;
static const char *access_path;

void graced_log_set_level(int level)
{
    log_level = level;
}

void graced_log(int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    va_list ap;
    if (level > log_level)
        return;
    fprintf(stderr, "graced[%d]: %s: ", (int)getpid(), names[level]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static FILE *open_log(const char *path)
{
    FILE *fp;
    if (!strcmp(path, "-"))
        return stdout;
    fp = fopen(path, "ae");
    if (fp)
        setvbuf(fp, NULL, _IOLBF, 0);
    return fp;
}

int graced_access_log_open(const char *path)
{
    access_path = path;
    access_fp = open_log(path);
    return access_fp ? 0 : -1;
}

int graced_access_log_reopen(void)
{
    FILE *fp;
    if (!access_path || !strcmp(access_path, "-"))
        return 0;
    if (!(fp = open_log(access_path)))
        return -1; /* keep writing to the old one */
    fclose(access_fp);
    access_fp = fp;
    return 0;
}

void graced_access_log_close(void)
{
    if (access_fp && access_fp != stdout)
        fclose(access_fp);
    else if (access_fp)
        fflush(access_fp);
    access_fp = NULL;
}

/* A header value made safe for a quoted log field. */
static void log_quoted(FILE *fp, const char *s)
{
    if (!s) {
        fputc('-', fp);
        return;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\' || c < 0x20 || c > 0x7e)
            fprintf(fp, "\\x%02x", c);
        else
            fputc(c, fp);
    }
}

/*
 * One Combined Log Format line per response, written when the response has
 * left (grace_server_on_response): also the library's own error answers,
 * which have no request ("-"), and responses cut short (their bytes so far).
 * The Combined fields come first, so their parsers still work; then the TLS
 * version: "TLSv1.3", "TLSv1.2", or "-" for plain HTTP (also for the
 * library's own answers).
 */
void graced_access(const struct grace_response_info *ri, void *arg)
{
    const struct grace_request *req = grace_response_info_request(ri);
    char host[INET6_ADDRSTRLEN] = "-", when[64];
    const struct sockaddr *sa;
    uint64_t bytes = grace_response_info_body_bytes(ri);
    time_t now;
    struct tm tm;

    if (!access_fp)
        return;
    sa = grace_response_info_peer(ri, NULL);
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof(host));
    now = time(NULL);
    localtime_r(&now, &tm);
    strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S %z", &tm);
    fprintf(access_fp, "%s - - [%s] \"", host, when);
    if (req) {
        log_quoted(access_fp, grace_request_method(req));
        fputc(' ', access_fp);
        log_quoted(access_fp, grace_request_target(req));
        fprintf(access_fp, " HTTP/1.%d", grace_request_version_minor(req));
    } else {
        fputc('-', access_fp); /* not a request we could parse */
    }
    fprintf(access_fp, "\" %d ", grace_response_info_status(ri));
    if (bytes > 0)
        fprintf(access_fp, "%llu", (unsigned long long)bytes);
    else
        fputc('-', access_fp);
    fputs(" \"", access_fp);
    log_quoted(access_fp, req ? grace_request_header(req, "Referer") : NULL);
    fputs("\" \"", access_fp);
    log_quoted(access_fp, req ? grace_request_header(req, "User-Agent") : NULL);
    fputs("\" \"", access_fp);
    log_quoted(access_fp, grace_response_info_tls_version(ri));
    fputs("\"\n", access_fp);
}
