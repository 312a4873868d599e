/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * files.c - static files: GET and HEAD below --root.
 *
 * The path is percent-decoded and split into segments (path.c); "..", NUL,
 * control bytes, our own temporary upload names and, unless --show-hidden,
 * dot-names are refused before anything is opened. The file is then opened
 * below the root (path.c: openat2 RESOLVE_BENEATH, or the kernel's answer
 * to "what did we really open?" on older kernels), which refuses symlinks
 * that leave the root without a check-then-open race.
 *
 * Validators and conditionals (ETag, Last-Modified, If-None-Match,
 * If-Modified-Since), single ranges, --cache-control, precompressed
 * siblings (--precompressed: "a.js.br" or "a.js.gz" for "a.js" when the
 * client accepts that encoding), and a small cache of small files.
 *
 * A file that really lies in the upload tree (its real path is below
 * --upload-dir's, however the URL reached it) was written by a visitor: it
 * is served with "Content-Security-Policy: sandbox", so an uploaded page or
 * SVG runs in an opaque origin without scripts, forms or popups, never as
 * this site (unless --trust-uploads).
 */
#define _GNU_SOURCE
#include "graced.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <stdint.h>
#include <unistd.h>

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"}, {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"}, {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"}, {"xml", "application/xml"},
    {"svg", "image/svg+xml"}, {"png", "image/png"}, {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"}, {"gif", "image/gif"}, {"webp", "image/webp"},
    {"avif", "image/avif"}, {"ico", "image/vnd.microsoft.icon"}, {"pdf", "application/pdf"},
    {"zip", "application/zip"}, {"gz", "application/gzip"}, {"tar", "application/x-tar"},
    {"wasm", "application/wasm"}, {"mp4", "video/mp4"}, {"webm", "video/webm"},
    {"mp3", "audio/mpeg"}, {"wav", "audio/wav"}, {"ogg", "audio/ogg"},
    {"woff", "font/woff"}, {"woff2", "font/woff2"}, {"ttf", "font/ttf"}, {"otf", "font/otf"},
};

static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (!strcasecmp(dot + 1, types[i].ext))
                return types[i].type;
    return "application/octet-stream";
}

/* What a response says of a file, worked out once per cache fill. */
struct file_meta {
    const char *type;
    char etag[64];
    char lm[40]; /* Last-Modified */
};

/* name: the file served (its extension gives the type) */
static void file_meta(const char *name, const struct stat *sb, struct file_meta *m)
{
    m->type = content_type(name);
    graced_etag(sb, m->etag, sizeof(m->etag));
    graced_http_date(sb->st_mtime, m->lm, sizeof(m->lm));
}

static time_t parse_http_date(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return end && !*end ? timegm(&tm) : (time_t)-1;
}

/*
 * A single "bytes=" range against size. Returns 1 with [*start, *len] for
 * 206, 0 to ignore the header (malformed or several ranges: 200), -1 for 416.
 */
static int parse_range(const char *r, off_t size, off_t *start, off_t *len)
{
    char *end;
    long long a, b;
    if (strncmp(r, "bytes=", 6) || strchr(r, ','))
        return 0;
    r += 6;
    if (*r == '-') { /* suffix: the last n bytes */
        b = strtoll(r + 1, &end, 10);
        if (*end || end == r + 1 || b < 0)
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *start = size > b ? size - b : 0;
        *len = size - *start;
        return 1;
    }
    a = strtoll(r, &end, 10);
    if (end == r || *end != '-' || a < 0)
        return 0;
    r = end + 1;
    if (*r == '\0') {
        b = size - 1;
    } else {
        b = strtoll(r, &end, 10);
        if (*end || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    if (b >= size)
        b = size - 1;
    *start = a;
    *len = b - a + 1;
    return 1;
}

/*
 * A small cache of small files (like nginx's open_file_cache, or h2o's):
 * content and stat of files up to 32 KiB, reused for one second, so a hot
 * small file costs no open/fstat/read/close. Uploads forget their entry at
 * once; a change made by anything else shows within a second.
 */
#define CACHE_SLOTS 256
#define CACHE_MAX_FILE 32768
#define CACHE_VALID_MS 1000

struct fcache_entry {
    char key[256];  /* decoded request path, "/" appended for directories */
    int64_t loaded_ms;
    struct stat sb;
    struct file_meta meta;
    int sandbox;    /* an uploaded file (in_upload_tree) */
    char *data;
};

struct graced_fcache {
    struct fcache_entry e[CACHE_SLOTS];
};

static struct fcache_entry *cache_slot(struct graced *g, const char *key)
{
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    if (!g->fcache && !(g->fcache = calloc(1, sizeof(*g->fcache))))
        return NULL;
    return &g->fcache->e[h % CACHE_SLOTS];
}

static struct fcache_entry *cache_get(struct graced *g, const char *key)
{
    struct fcache_entry *e = strlen(key) < sizeof(e->key) ? cache_slot(g, key) : NULL;
    if (e && e->data && !strcmp(e->key, key) && graced_mono_ms() - e->loaded_ms < CACHE_VALID_MS)
        return e;
    return NULL;
}

/* Read a small regular file into the cache; NULL if it does not fit. */
static struct fcache_entry *cache_put(struct graced *g, const char *key, const char *name, int fd,
                                      const struct stat *sb)
{
    struct fcache_entry *e;
    char *data;
    if (sb->st_size > CACHE_MAX_FILE || strlen(key) >= sizeof(e->key) ||
        !(e = cache_slot(g, key)))
        return NULL;
    if (!(data = malloc((size_t)sb->st_size + 1)))
        return NULL;
    if (pread(fd, data, (size_t)sb->st_size, 0) != sb->st_size) {
        free(data);
        return NULL;
    }
    free(e->data);
    e->data = data;
    strcpy(e->key, key);
    e->sb = *sb;
    file_meta(name, sb, &e->meta);
    e->loaded_ms = graced_mono_ms();
    return e;
}

void graced_files_forget(struct graced *g, const char *name)
{
    struct fcache_entry *e = g->fcache ? cache_slot(g, name) : NULL;
    if (e && !strcmp(e->key, name)) {
        free(e->data);
        e->data = NULL;
    }
}

void graced_files_cache_free(struct graced *g)
{
    free(g->upload_real);
    g->upload_real = NULL;
    if (!g->fcache)
        return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        free(g->fcache->e[i].data);
    free(g->fcache);
    g->fcache = NULL;
}

/* The real path of an open fd (/proc/self/fd), malloc'ed; NULL if unknown. */
static char *fd_path(int fd)
{
    char link[64], real[4096];
    ssize_t n;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, real, sizeof(real) - 1);
    if (n <= 0)
        return NULL;
    real[n] = '\0';
    return strdup(real);
}

/*
 * Is the open file fd in the upload tree? Its real path is asked of the
 * kernel, so a symlink of the site's leading into the upload folder (or a
 * root that is the upload folder, or inside it) is seen for what it is. An
 * unknown answer counts as an upload: the sandbox is the safe side.
 */
static int in_upload_tree(struct graced *g, int fd)
{
    char *p;
    size_t ul;
    int in;
    if (g->upload_fd < 0 || g->o.trust_uploads)
        return 0;
    if (!g->upload_real && !(g->upload_real = fd_path(g->upload_fd)))
        return 1;
    if (!(p = fd_path(fd)))
        return 1;
    ul = strlen(g->upload_real);
    in = !strncmp(p, g->upload_real, ul) && (p[ul] == '/' || p[ul] == '\0' || ul == 1);
    free(p);
    return in;
}

/*
 * q-value of coding in an Accept-Encoding value: 1000 for "q=1", 0 if
 * absent or refused. "*" stands for codings not named.
 */
static int accept_q(const char *ae, const char *coding, const char *alias)
{
    int star = 0, found = -1;
    const char *p = ae;
    while (*p) {
        size_t n;
        int q = 1000;
        const char *semi, *end;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        end = p + strcspn(p, ",");
        n = strcspn(p, ";, \t");
        semi = memchr(p, ';', (size_t)(end - p));
        if (semi) { /* ;q=0.5 */
            const char *qp = semi + 1;
            while (*qp == ' ')
                qp++;
            if ((*qp == 'q' || *qp == 'Q') && qp[1] == '=') {
                double v = strtod(qp + 2, NULL);
                q = v <= 0 ? 0 : v >= 1 ? 1000 : (int)(v * 1000 + 0.5);
                if (q == 0 && v > 0)
                    q = 1;
            }
        }
        if ((n == strlen(coding) && !strncasecmp(p, coding, n)) ||
            (alias && n == strlen(alias) && !strncasecmp(p, alias, n)))
            found = q;
        else if (n == 1 && *p == '*')
            star = q;
        p = end;
    }
    return found >= 0 ? found : star;
}

/* The precompressed sibling of rel ("a/b.html.br" or ".gz" for "a/b.html")
 * if the client accepts that encoding: fd >= 0 and *enc "br" or "gzip",
 * else -1. */
static int precompressed(struct grace_request *req, struct graced *g, const char *rel,
                         const char **enc)
{
    static const struct {
        const char *coding, *alias, *ext;
    } codings[] = {{"br", NULL, ".br"}, {"gzip", "x-gzip", ".gz"}};
    const char *ae = grace_request_header(req, "Accept-Encoding");
    char alt[4200];
    if (!g->o.precompressed || !ae || !rel[0])
        return -1;
    for (size_t i = 0; i < sizeof(codings) / sizeof(codings[0]); i++) {
        struct stat sb;
        int fd;
        if (!accept_q(ae, codings[i].coding, codings[i].alias))
            continue;
        if ((size_t)snprintf(alt, sizeof(alt), "%s%s", rel, codings[i].ext) >= sizeof(alt))
            return -1;
        /* confined below the root like the file itself */
        if ((fd = graced_open_beneath(g, alt)) < 0)
            continue;
        if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
            close(fd);
            continue;
        }
        *enc = codings[i].coding;
        return fd;
    }
    return -1;
}

/*
 * 301 to the folder's URL, built from the decoded, normalized path and
 * percent-encoded again: "//evil.com" is "/evil.com/", never "//evil.com/",
 * which a browser reads as another site, nor "/\evil.com/" (the same to a
 * browser): a Location that starts with one '/' and a path stays here.
 */
static void redirect_dir(struct grace_request *req, const char *rel)
{
    char loc[3 * 4096 + 8];
    const char *q = grace_request_query(req);
    size_t n;
    loc[0] = '/';
    n = 1 + graced_path_encode(rel, loc + 1, sizeof(loc) - 3);
    loc[n++] = '/';
    loc[n] = '\0';
    if (q && n + 1 + strlen(q) < sizeof(loc))
        snprintf(loc + n, sizeof(loc) - n, "?%s", q);
    grace_response_add_header(req, "Location", loc);
    graced_reply(req, 301, "moved: add a trailing slash\n");
}

void graced_serve_file(struct grace_request *req, struct graced *g)
{
    char rel[4096], key[4097], hdr[128];
    struct file_meta fm;
    const struct file_meta *m = &fm;
    int trailing, st, fd = -1, status = 200, sandbox = 0;
    struct stat sb;
    off_t start = 0, len;
    const char *v, *data = NULL, *encoding = NULL;
    struct fcache_entry *e;

    if ((st = graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 0), &trailing))) {
        graced_reply(req, st, st == 403 ? "forbidden\n" : st == 404 ? "not found\n"
                                                                    : "bad path\n");
        return;
    }
    snprintf(key, sizeof(key), "%s%s", rel, trailing && rel[0] ? "/" : "");
    if (g->o.precompressed && !trailing) {
        /* a sibling is never cached: its key would be the sibling's own name */
        grace_response_add_header(req, "Vary", "Accept-Encoding");
        if ((fd = precompressed(req, g, rel, &encoding)) >= 0 && fstat(fd, &sb) < 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) {
        sandbox = in_upload_tree(g, fd);
        file_meta(rel, &sb, &fm); /* the type of the file, validators of the sibling */
        snprintf(fm.etag + strlen(fm.etag) - 1, sizeof(fm.etag) - strlen(fm.etag) + 1, "-%s\"",
                 encoding);
        grace_response_add_header(req, "Content-Encoding", encoding);
    } else if ((e = cache_get(g, key))) {
        sb = e->sb;
        data = e->data;
        m = &e->meta;
        sandbox = e->sandbox;
    } else {
        fd = graced_open_beneath(g, rel[0] ? rel : ".");
        if (fd >= 0 && fstat(fd, &sb) < 0) {
            close(fd);
            fd = -1;
        }
        if (fd >= 0 && S_ISDIR(sb.st_mode)) {
            if (!trailing && rel[0]) {
                close(fd);
                redirect_dir(req, rel);
                return;
            }
            /* rel has room for any decoded path, not always for the index
             * name after it: such a path is as long as it may get */
            if (strlen(rel) + sizeof("/index.html") > sizeof(rel)) {
                close(fd);
                graced_reply(req, 414, "bad path\n");
                return;
            }
            size_t dl = strlen(rel);
            strcat(rel, rel[0] ? "/index.html" : "index.html");
            int ifd = graced_open_beneath(g, rel);
            if (ifd < 0 && errno == ENOENT && g->o.list_dirs) {
                rel[dl] = '\0';
                graced_list_dir(req, g, rel, fd); /* takes fd */
                return;
            }
            close(fd);
            fd = ifd;
            if (fd >= 0 && fstat(fd, &sb) < 0) {
                close(fd);
                fd = -1;
            }
        } else if (fd >= 0 && trailing && rel[0]) {
            /* "/file.txt/" names a folder that is not there (as nginx says) */
            close(fd);
            graced_reply(req, 404, "not found\n");
            return;
        }
        if (fd < 0) {
            st = errno == EXDEV || errno == EACCES || errno == ELOOP ? 403 : 404;
            graced_reply(req, st, st == 403 ? "forbidden\n" : "not found\n");
            return;
        }
        if (!S_ISREG(sb.st_mode)) {
            close(fd);
            graced_reply(req, 404, "not found\n");
            return;
        }
        sandbox = in_upload_tree(g, fd);
        if ((e = cache_put(g, key, rel, fd, &sb))) {
            close(fd);
            fd = -1;
            data = e->data;
            m = &e->meta;
            e->sandbox = sandbox;
        } else {
            file_meta(rel, &sb, &fm);
        }
    }
    if (sandbox) /* also on a 304, which updates what a cache holds */
        grace_response_add_header(req, "Content-Security-Policy", "sandbox");
    grace_response_add_header(req, "ETag", m->etag);
    grace_response_add_header(req, "Last-Modified", m->lm);
    if (g->o.cache_control)
        grace_response_add_header(req, "Cache-Control", g->o.cache_control);

    /* conditionals: If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2) */
    if ((v = grace_request_header(req, "If-None-Match"))) {
        if (graced_etag_match(v, m->etag, 1))
            status = 304;
    } else if ((v = grace_request_header(req, "If-Modified-Since"))) {
        time_t ims = parse_http_date(v);
        if (ims != (time_t)-1 && sb.st_mtime <= ims)
            status = 304;
    }
    if (status == 304) {
        if (fd >= 0)
            close(fd);
        graced_reply(req, 304, NULL);
        return;
    }

    grace_response_add_header(req, "Accept-Ranges", "bytes");
    len = sb.st_size;
    v = grace_request_header(req, "Range");
    const char *ifr = grace_request_header(req, "If-Range");
    if (v && (!ifr || !strcmp(ifr, m->etag) || !strcmp(ifr, m->lm))) {
        int r = parse_range(v, sb.st_size, &start, &len);
        if (r < 0) {
            if (fd >= 0)
                close(fd);
            snprintf(hdr, sizeof(hdr), "bytes */%lld", (long long)sb.st_size);
            grace_response_add_header(req, "Content-Range", hdr);
            graced_reply(req, 416, "range not satisfiable\n");
            return;
        }
        if (r > 0) {
            status = 206;
            snprintf(hdr, sizeof(hdr), "bytes %lld-%lld/%lld", (long long)start,
                     (long long)(start + len - 1), (long long)sb.st_size);
            grace_response_add_header(req, "Content-Range", hdr);
        } else {
            len = sb.st_size;
        }
    }
    /* only now: a 416 carries its own text/plain body */
    grace_response_add_header(req, "Content-Type", m->type);
    if (data)
        grace_reply(req, status, data + start, (size_t)len);
    else
        grace_reply_file(req, status, fd, start, len);
}

const char *graced_content_type(const char *name)
{
    return content_type(name);
}
