/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * zip.c - GET /folder/?zip: the folder as a zip file, streamed while it is
 * made, nothing of it held whole in memory.
 *
 * First a count on the pool (walk.c, what a listing shows: no dot-names,
 * no links, only what the user may read): more than --zip-max-files
 * entries or --zip-max-size bytes of files is answered 409 before anything
 * is sent, with the bound in the answer. Then the stream, on the loop and
 * at the client's pace: a piece is made only while less than ZIP_HIGH is
 * queued for the client, then grace_reply_on_drain() says when to go on.
 * Each file is read ZIP_PIECE at a time, its CRC-32 computed as it goes,
 * so its local header carries no sizes (general purpose bit 3) and a data
 * descriptor follows the data; entries are stored, not compressed (most of
 * what people share is compressed already, and it keeps the CPU cost per
 * byte that of a copy). The central directory grows in a temporary file
 * (tmpfile(3)), not in memory, and is sent at the end. ZIP64 where needed:
 * a file of 4 GiB or more (8-byte sizes in its descriptor, a zip64 extra
 * field), an offset past 4 GiB, more than 65535 entries, then the zip64
 * end records. Names are UTF-8 (bit 11), times DOS and Unix (the "UT"
 * extra field), modes Unix. A tree that grew past a bound after the count,
 * or a read that fails, ends the connection: the client sees a broken
 * download, never a zip silently short of files.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ZIP_HIGH (256 * 1024) /* queued for the client before waiting for it */
#define ZIP_PIECE (64 * 1024) /* read from a file at a time */
#define ZIP_MAX32 0xffffffffu

/* ---------------------------------------------------------------- CRC-32 */

static uint32_t crc_table[8][256];

/* slicing by 8 (the table of the reflected polynomial, and seven more for
 * the bytes that follow): a byte costs about one table look-up */
static void crc_init(void)
{
    if (crc_table[0][1])
        return;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n >= 8) {
        uint32_t a = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                            (uint32_t)p[3] << 24);
        crc = crc_table[7][a & 0xff] ^ crc_table[6][(a >> 8) & 0xff] ^
              crc_table[5][(a >> 16) & 0xff] ^ crc_table[4][a >> 24] ^ crc_table[3][p[4]] ^
              crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---------------------------------------------------------------- records */

struct rec {
    unsigned char b[128 + 4096 + 256];
    size_t n;
};

static void put16(struct rec *r, unsigned v)
{
    r->b[r->n++] = (unsigned char)v;
    r->b[r->n++] = (unsigned char)(v >> 8);
}

static void put32(struct rec *r, uint32_t v)
{
    put16(r, v & 0xffff);
    put16(r, v >> 16);
}

static void put64(struct rec *r, uint64_t v)
{
    put32(r, (uint32_t)v);
    put32(r, (uint32_t)(v >> 32));
}

static void putn(struct rec *r, const void *p, size_t n)
{
    memcpy(r->b + r->n, p, n);
    r->n += n;
}

/* DOS time and date (local time, as zip tools read them; 1980 at least) */
static void dos_time(time_t t, unsigned *tm_out, unsigned *date_out)
{
    struct tm tm;
    localtime_r(&t, &tm);
    if (tm.tm_year < 80) {
        *tm_out = 0;
        *date_out = (1 << 5) | 1;
        return;
    }
    *tm_out = (unsigned)(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2);
    *date_out = (unsigned)((tm.tm_year - 80) << 9 | (tm.tm_mon + 1) << 5 | tm.tm_mday);
}

/* what an entry's records need to know */
struct ent {
    char name[4096 + 2];  /* "a/b.txt", "a/" for a folder */
    size_t nlen;
    int dir, big;         /* big: zip64 sizes (4 GiB or more) */
    uint32_t mode;
    time_t mtime;
    uint32_t crc;
    uint64_t size, offset;
};

static unsigned flags_of(const struct ent *e)
{
    return 0x0800 | (e->dir ? 0 : 0x0008); /* UTF-8 names; files: data descriptor */
}

static uint32_t unix_time(time_t t)
{
    return t < 0 ? 0 : t > (time_t)ZIP_MAX32 ? ZIP_MAX32 : (uint32_t)t;
}

static void local_header(struct rec *r, const struct ent *e)
{
    unsigned t, d;
    dos_time(e->mtime, &t, &d);
    r->n = 0;
    put32(r, 0x04034b50);
    put16(r, e->big ? 45 : 20);
    put16(r, flags_of(e));
    put16(r, 0); /* stored */
    put16(r, t);
    put16(r, d);
    put32(r, 0); /* CRC, sizes: in the descriptor (a folder's are 0) */
    put32(r, e->big ? ZIP_MAX32 : 0);
    put32(r, e->big ? ZIP_MAX32 : 0);
    put16(r, (unsigned)e->nlen);
    put16(r, 9 + (e->big ? 20 : 0));
    putn(r, e->name, e->nlen);
    put16(r, 0x5455); /* "UT": modification time, Unix */
    put16(r, 5);
    r->b[r->n++] = 1;
    put32(r, unix_time(e->mtime));
    if (e->big) { /* zip64: the sizes are the descriptor's, 8 bytes each */
        put16(r, 0x0001);
        put16(r, 16);
        put64(r, 0);
        put64(r, 0);
    }
}

static void descriptor(struct rec *r, const struct ent *e)
{
    r->n = 0;
    put32(r, 0x08074b50);
    put32(r, e->crc);
    if (e->big) {
        put64(r, e->size);
        put64(r, e->size);
    } else {
        put32(r, (uint32_t)e->size);
        put32(r, (uint32_t)e->size);
    }
}

static void central_header(struct rec *r, const struct ent *e)
{
    unsigned t, d;
    int zsize = e->big || e->size >= ZIP_MAX32, zoff = e->offset >= ZIP_MAX32;
    unsigned extra = (zsize ? 16 : 0) + (zoff ? 8 : 0);
    dos_time(e->mtime, &t, &d);
    r->n = 0;
    put32(r, 0x02014b50);
    put16(r, 3 << 8 | 45); /* made by Unix, 4.5 */
    put16(r, zsize || zoff ? 45 : 20);
    put16(r, flags_of(e));
    put16(r, 0);
    put16(r, t);
    put16(r, d);
    put32(r, e->crc);
    put32(r, zsize ? ZIP_MAX32 : (uint32_t)e->size);
    put32(r, zsize ? ZIP_MAX32 : (uint32_t)e->size);
    put16(r, (unsigned)e->nlen);
    put16(r, 9 + (extra ? 4 + extra : 0));
    put16(r, 0); /* comment */
    put16(r, 0); /* disk */
    put16(r, 0); /* internal attributes */
    put32(r, (uint32_t)e->mode << 16 | (e->dir ? 0x10 : 0));
    put32(r, zoff ? ZIP_MAX32 : (uint32_t)e->offset);
    putn(r, e->name, e->nlen);
    put16(r, 0x5455);
    put16(r, 5);
    r->b[r->n++] = 1;
    put32(r, unix_time(e->mtime));
    if (extra) {
        put16(r, 0x0001);
        put16(r, extra);
        if (zsize) {
            put64(r, e->size);
            put64(r, e->size);
        }
        if (zoff)
            put64(r, e->offset);
    }
}

/* ---------------------------------------------------------------- the stream */

enum { Z_COUNT, Z_NEXT, Z_DATA, Z_CENTRAL, Z_DONE };

struct zip {
    struct graced_job job;      /* the count, on the pool */
    struct graced *g;
    struct grace_request *req;
    struct graced_access *access;
    struct graced_walk *walk;
    int dirfd;                  /* the folder */
    char rel[4096];
    int show_hidden, gone, cancelled, state;
    int64_t max_files, max_size;
    /* the count */
    int64_t files, bytes;
    int over, failed;
    /* the stream */
    struct ent e;
    int fd;                     /* the file being sent */
    uint64_t left;
    uint64_t offset;            /* bytes sent so far */
    int64_t entries;
    FILE *central;              /* the central directory in the making */
    uint64_t central_size;
    int cd_started;             /* being sent, from cd_off */
    uint64_t cd_off;
    unsigned char *buf;
};

static void zip_free(struct zip *z)
{
    if (z->fd >= 0)
        close(z->fd);
    if (z->dirfd >= 0)
        close(z->dirfd);
    if (z->central)
        fclose(z->central);
    graced_walk_free(z->walk);
    graced_access_free(z->access);
    free(z->buf);
    free(z);
}

int graced_is_zip(struct grace_request *req)
{
    const char *q = grace_request_query(req);
    for (const char *p = q; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
        if (!strncmp(p, "zip", 3) && (p[3] == '\0' || p[3] == '&' || p[3] == '='))
            return 1;
    return 0;
}

/* On the pool: how many entries and bytes, up to just past the bounds. */
static void count_work(struct graced_job *j)
{
    struct zip *z = (struct zip *)j;
    struct graced_walk *w = graced_walk_new(z->dirfd, z->rel, z->show_hidden, z->access);
    struct graced_walk_entry e;
    if (!w) {
        z->failed = 1;
        return;
    }
    while (graced_walk_next(w, &e) == 1) {
        if (e.skip)
            continue;
        z->files++;
        if (S_ISREG(e.st.st_mode))
            z->bytes += (int64_t)e.st.st_size;
        if (z->files > z->max_files || z->bytes > z->max_size) {
            z->over = 1;
            break;
        }
    }
    graced_walk_free(w);
}

static int send_rec(struct zip *z, const struct rec *r)
{
    z->offset += r->n;
    return grace_reply_chunk(z->req, (const char *)r->b, r->n);
}

static int add_central(struct zip *z)
{
    struct rec r;
    central_header(&r, &z->e);
    z->central_size += r.n;
    z->entries++;
    return fwrite(r.b, 1, r.n, z->central) == r.n ? 0 : -1;
}

/* The next entry: its local header out (a folder: whole). 1 if there was
 * one, 0 at the end, -1 to abort. */
static int next_entry(struct zip *z)
{
    struct graced_walk_entry w;
    struct rec r;
    int r1;
    while ((r1 = graced_walk_next(z->walk, &w)) == 1) {
        struct ent *e = &z->e;
        struct stat sb;
        if (w.skip)
            continue;
        if (z->entries + 1 > z->max_files)
            return -1; /* grew past the bound since the count */
        memset(e, 0, sizeof(*e));
        e->dir = S_ISDIR(w.st.st_mode);
        e->nlen = (size_t)snprintf(e->name, sizeof(e->name), "%s%s", w.path, e->dir ? "/" : "");
        if (e->nlen >= sizeof(e->name) - 1)
            continue;
        e->mtime = w.st.st_mtime;
        e->mode = (uint32_t)(w.st.st_mode & 07777) | (e->dir ? 040000 : 0100000);
        e->offset = z->offset;
        if (e->dir) {
            local_header(&r, e);
            if (send_rec(z, &r) < 0 || add_central(z) < 0)
                return -1;
            return 1;
        }
        z->fd = openat(graced_walk_dirfd(z->walk), w.name,
                       O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (z->fd < 0 || fstat(z->fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
            if (z->fd >= 0)
                close(z->fd);
            z->fd = -1;
            continue; /* gone, or not ours to read: as a listing leaves it out */
        }
        if ((uint64_t)sb.st_size + (uint64_t)z->bytes > (uint64_t)INT64_MAX)
            return -1;
        z->bytes += (int64_t)sb.st_size;
        if (z->bytes > z->max_size)
            return -1;
        z->left = (uint64_t)sb.st_size; /* what it holds now: no more, maybe less */
        e->big = z->left >= ZIP_MAX32;
        local_header(&r, e);
        if (send_rec(z, &r) < 0)
            return -1;
        z->state = Z_DATA;
        return 1;
    }
    return 0;
}

/* A piece of the file, or its end: the descriptor and its central record.
 * 0, or -1 to abort. */
static int data_piece(struct zip *z)
{
    struct rec r;
    size_t want = z->left < ZIP_PIECE ? (size_t)z->left : ZIP_PIECE;
    ssize_t n = want ? read(z->fd, z->buf, want) : 0;
    if (n < 0) {
        graced_log(LOG_WARN, "zip of /%s: reading %s: %s", z->rel, z->e.name, strerror(errno));
        return -1;
    }
    if (n > 0) {
        z->e.crc = crc32_update(z->e.crc, z->buf, (size_t)n);
        z->e.size += (uint64_t)n;
        z->left -= (uint64_t)n;
        z->offset += (uint64_t)n;
        return grace_reply_chunk(z->req, (const char *)z->buf, (size_t)n) < 0 ? -1 : 0;
    }
    /* the end (a file that shrank meanwhile ends early: its sizes say so) */
    close(z->fd);
    z->fd = -1;
    descriptor(&r, &z->e);
    if (send_rec(z, &r) < 0 || add_central(z) < 0)
        return -1;
    z->state = Z_NEXT;
    return 0;
}

/* A piece of the central directory; after the last, the end records.
 * 1 when all is sent, 0 for more, -1 to abort. */
static int central_piece(struct zip *z)
{
    struct rec r;
    uint64_t cd_off = z->cd_off;
    size_t n;
    if (!z->cd_started) {
        z->cd_started = 1;
        z->cd_off = cd_off = z->offset;
        if (fflush(z->central) != 0 || fseek(z->central, 0, SEEK_SET) != 0)
            return -1;
    }
    if ((n = fread(z->buf, 1, ZIP_PIECE, z->central)) > 0) {
        z->offset += n;
        return grace_reply_chunk(z->req, (const char *)z->buf, n) < 0 ? -1 : 0;
    }
    if (ferror(z->central) || z->offset - cd_off != z->central_size)
        return -1;
    if (z->entries > 0xffff || cd_off >= ZIP_MAX32 || z->central_size >= ZIP_MAX32) {
        uint64_t z64 = z->offset;
        r.n = 0;
        put32(&r, 0x06064b50); /* zip64 end of central directory */
        put64(&r, 44);
        put16(&r, 3 << 8 | 45);
        put16(&r, 45);
        put32(&r, 0);
        put32(&r, 0);
        put64(&r, (uint64_t)z->entries);
        put64(&r, (uint64_t)z->entries);
        put64(&r, z->central_size);
        put64(&r, cd_off);
        put32(&r, 0x07064b50); /* its locator */
        put32(&r, 0);
        put64(&r, z64);
        put32(&r, 1);
        if (send_rec(z, &r) < 0)
            return -1;
    }
    r.n = 0;
    put32(&r, 0x06054b50);
    put16(&r, 0);
    put16(&r, 0);
    put16(&r, z->entries > 0xffff ? 0xffff : (unsigned)z->entries);
    put16(&r, z->entries > 0xffff ? 0xffff : (unsigned)z->entries);
    put32(&r, z->central_size >= ZIP_MAX32 ? ZIP_MAX32 : (uint32_t)z->central_size);
    put32(&r, cd_off >= ZIP_MAX32 ? ZIP_MAX32 : (uint32_t)cd_off);
    put16(&r, 0);
    return send_rec(z, &r) < 0 ? -1 : 1;
}

static void pump(struct zip *z);

static void drained(struct grace_request *req, void *arg)
{
    (void)req;
    pump(arg);
}

/* Make the zip while the client keeps up; the request ends it (finished). */
static void pump(struct zip *z)
{
    while (grace_reply_pending(z->req) < ZIP_HIGH) {
        int rc = 0;
        if (z->state == Z_NEXT) {
            rc = next_entry(z);
            if (rc == 0)
                z->state = Z_CENTRAL;
            else if (rc > 0)
                rc = 0;
        } else if (z->state == Z_DATA) {
            rc = data_piece(z);
        } else if (z->state == Z_CENTRAL) {
            rc = central_piece(z);
            if (rc > 0) {
                z->state = Z_DONE;
                grace_reply_end(z->req); /* finished() frees z */
                return;
            }
        }
        if (rc < 0) {
            /* a zip cut short must not look whole: the connection ends */
            graced_log(LOG_WARN, "zip of /%s cut after %lld entries: the tree changed past a "
                       "bound, or a read failed", z->rel, (long long)z->entries);
            grace_conn_drop(grace_request_conn(z->req), GRACE_DROP_ABORT);
            return;
        }
    }
    grace_reply_on_drain(z->req, drained, z);
}

static void finished(struct grace_request *req, int err, void *arg)
{
    struct zip *z = arg;
    if (z->state == Z_COUNT) { /* the count still runs: its done frees */
        z->gone = 1;
        z->cancelled = err == -ECANCELED;
        return;
    }
    if (err && z->state != Z_DONE)
        graced_log(LOG_INFO, "zip of /%s: the client left after %llu bytes", z->rel,
                   (unsigned long long)z->offset);
    zip_free(z);
}

static void header_name(struct grace_request *req, const char *rel)
{
    char v[2 * 3 * 256 + 128], enc[3 * 256 + 8], ascii[256];
    const char *leaf = strrchr(rel, '/');
    size_t n = 0;
    leaf = leaf ? leaf + 1 : rel[0] ? rel : "files";
    /* a plain ASCII fallback, and the name itself (RFC 6266, RFC 8187) */
    for (const char *p = leaf; *p && n < sizeof(ascii) - 5; p++)
        ascii[n++] = (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\' && *p != '%') ? *p : '_';
    ascii[n] = '\0';
    graced_path_encode(leaf, enc, sizeof(enc));
    for (char *p = enc; *p; p++) /* attr-char: no ';' ',' '=' '(' ')' ... */
        if (strchr("!$&'()*+,;=:@/", *p))
            *p = '_';
    snprintf(v, sizeof(v), "attachment; filename=\"%s.zip\"; filename*=UTF-8''%s.zip", ascii,
             enc);
    grace_response_add_header(req, "Content-Disposition", v);
}

/* The count is done (on the loop): 409 over a bound, else the stream. */
static void count_done(struct graced_job *j)
{
    struct zip *z = (struct zip *)j;
    struct grace_request *req = z->req;
    char msg[400];

    if (z->gone) {
        if (!z->cancelled)
            grace_reply(req, 500, NULL, 0); /* completes our side: the request goes */
        zip_free(z); /* finished() left it to us */
        return;
    }
    z->state = Z_NEXT;
    if (z->failed) {
        graced_reply(req, 500, "cannot read this folder\n");
        return;
    }
    if (z->over) {
        if (z->files > z->max_files)
            snprintf(msg, sizeof(msg), "too big for one zip: this folder holds more than %lld "
                     "files and folders (--zip-max-files); download its subfolders one by one\n",
                     (long long)z->max_files);
        else
            snprintf(msg, sizeof(msg), "too big for one zip: the files below this folder are "
                     "more than %lld bytes (--zip-max-size); download its subfolders one by "
                     "one\n", (long long)z->max_size);
        graced_reply(req, 409, msg);
        return;
    }
    z->bytes = 0;
    if (!(z->walk = graced_walk_new(z->dirfd, z->rel, z->show_hidden, z->access)) ||
        !(z->central = tmpfile()) || !(z->buf = malloc(ZIP_PIECE))) {
        graced_log(LOG_ERR, "zip of /%s: %s", z->rel, strerror(errno));
        graced_reply(req, 500, "cannot make the zip\n");
        return;
    }
    header_name(req, z->rel);
    grace_response_add_header(req, "Content-Type", "application/zip");
    grace_response_add_header(req, "Cache-Control", "no-store");
    if (grace_reply_start(req, 200) < 0)
        return;
    if (!strcmp(grace_request_method(req), "HEAD")) {
        grace_reply_end(req);
        return;
    }
    pump(z);
}

void graced_zip(struct grace_request *req, struct graced *g)
{
    char rel[4096];
    struct zip *z;
    struct stat sb;
    int st, trailing, fd;

    if ((st = graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 0), &trailing))) {
        graced_reply(req, st, st == 403 ? "forbidden\n" : st == 404 ? "not found\n" : "bad path\n");
        return;
    }
    fd = graced_open_beneath(g, rel[0] ? rel : ".");
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        graced_serve_file(req, g); /* a file's ?zip is the file */
        return;
    }
    if (g->o.zip_max_files == 0) {
        close(fd);
        graced_reply(req, 403, "zips of folders are off here (--zip-max-files 0)\n");
        return;
    }
    if (!(z = calloc(1, sizeof(*z))) || !(z->access = graced_access_of(g, graced_who(g)))) {
        free(z);
        close(fd);
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    crc_init();
    z->g = g;
    z->req = req;
    z->dirfd = fd;
    z->fd = -1;
    z->state = Z_COUNT;
    z->show_hidden = g->o.show_hidden;
    z->max_files = g->o.zip_max_files;
    z->max_size = g->o.zip_max_size;
    snprintf(z->rel, sizeof(z->rel), "%s", rel);
    z->job.work = count_work;
    z->job.done = count_done;
    grace_request_on_finish(req, finished, z);
    graced_pool_run(g->pool, &z->job);
}
