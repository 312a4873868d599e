/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * util.c - small helpers every module uses: one of each.
 */
#include "util.h"

#include "gracehttp.h"

#include <string.h>
#include <time.h>

/* Monotonic time: deadlines that survive clock changes. */
int64_t grace__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t grace__now_ms(void)
{
    return grace__now_us() / 1000;
}

struct timeval grace__ms_tv(int64_t ms)
{
    struct timeval tv;
    if (ms < 0)
        ms = 0;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return tv;
}

const char *grace_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status"; /* WebDAV, RFC 4918 */
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

/* "Date: <IMF-fixdate>\r\n", formatted once per second. */
void grace__date_header(struct grace_date *d, char *out, size_t *len)
{
    time_t now = time(NULL);
    if (now != d->sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(d->line, sizeof(d->line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        d->sec = now;
    }
    *len = strlen(d->line);
    memcpy(out, d->line, *len + 1);
}

