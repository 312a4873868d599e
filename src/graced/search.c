/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * search.c - GET /folder/?q=words: the names below a folder that hold every
 * word (ASCII letters in any case), as a page or as JSON (Accept:
 * application/json).
 *
 * The walk reads directories, which may wait on the disk, so it runs on the
 * worker's pool (pool.c), one search at a time per worker (a few more wait
 * their turn, then 503), and it is bounded: at most --search-max entries
 * visited and --search-time spent, at most --list-max matches kept; the
 * answer says when a bound cut it. It sees what a listing shows: no
 * dot-names (unless --show-hidden), none of graced's temporary files, no
 * symbolic link followed, and with --private only what the user may read
 * (a copy of their rules travels with the job: a reload meanwhile cannot
 * pull them away).
 */
#define _GNU_SOURCE
#include "graced.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SEARCH_QUEUE 8   /* searches waiting per worker, then 503 */
#define SEARCH_WORDS 8
#define SEARCH_Q_MAX 256 /* bytes of the words */

struct match {
    char *path; /* relative to the folder searched */
    int dir;
    int64_t size;
    time_t mtime;
};

struct search {
    struct graced_job job;
    struct graced *g;
    struct grace_request *req;
    struct search *next;   /* the worker's queue */
    int gone, cancelled;
    /* the job's own */
    int dirfd;             /* the folder searched */
    char rel[4096];        /* its path below the root */
    char q[SEARCH_Q_MAX + 1];
    char low[SEARCH_Q_MAX + 1]; /* q lowercased, cut into the words */
    char *words[SEARCH_WORDS];
    int nwords;
    int show_hidden;
    struct graced_access *access;
    int64_t max_visits, max_ms;
    size_t max_matches;
    /* results */
    struct match *m;
    size_t n, cap;
    int64_t visited;
    const char *cut;       /* why it stopped early, or NULL */
    int failed;
};

/* the worker's searches: the one running, then those waiting */
struct search_queue {
    struct search *running, *head, *tail;
    int waiting;
};
static struct search_queue queue; /* a worker's: each is a process of its own */

int graced_is_search(struct grace_request *req)
{
    const char *q = grace_request_query(req);
    for (const char *p = q; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
        if (!strncmp(p, "q=", 2))
            return 1;
    return 0;
}

/* q's value, form-decoded ('+' a space, %XX), into out; 0, or -1 if it is
 * too long or not UTF-8 or holds a control byte */
static int query_words(const char *query, char *out, size_t outlen)
{
    size_t n;
    if (graced_form_field(query, "q", out, outlen) < 0)
        return -1;
    n = strlen(out);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            return -1;
    return graced_utf8_valid(out, n) ? 0 : -1;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s |= 0x20;
}

static int matches(const struct search *s, const char *name)
{
    char low[256];
    snprintf(low, sizeof(low), "%s", name);
    lower(low);
    for (int i = 0; i < s->nwords; i++)
        if (!strstr(low, s->words[i]))
            return 0;
    return 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int keep(struct search *s, const char *path, const struct stat *sb)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct match *m = realloc(s->m, cap * sizeof(*m));
        if (!m)
            return -1;
        s->m = m;
        s->cap = cap;
    }
    if (!(s->m[s->n].path = strdup(path)))
        return -1;
    s->m[s->n].dir = S_ISDIR(sb->st_mode);
    s->m[s->n].size = S_ISDIR(sb->st_mode) ? 0 : (int64_t)sb->st_size;
    s->m[s->n].mtime = sb->st_mtime;
    s->n++;
    return 0;
}

/* On a pool thread: walk the folder (walk.c) until done or a bound. */
static void search_work(struct graced_job *j)
{
    struct search *s = (struct search *)j;
    struct graced_walk *w = graced_walk_new(s->dirfd, s->rel, s->show_hidden, s->access);
    struct graced_walk_entry e;
    int64_t t0 = now_ms();

    if (!w) {
        s->failed = 1;
        return;
    }
    while (graced_walk_next(w, &e) == 1) {
        if (++s->visited > s->max_visits) {
            s->visited--;
            s->cut = "entries";
            break;
        }
        if ((s->visited & 255) == 0 && now_ms() - t0 > s->max_ms) {
            s->cut = "time";
            break;
        }
        if (e.skip || !e.readable || !matches(s, e.name))
            continue;
        if (s->n == s->max_matches) {
            s->cut = "matches";
            break;
        }
        if (keep(s, e.path, &e.st) < 0) {
            s->failed = 1;
            break;
        }
    }
    graced_walk_free(w);
}

static void search_free(struct search *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->m[i].path);
    free(s->m);
    graced_access_free(s->access);
    if (s->dirfd >= 0)
        close(s->dirfd);
    free(s);
}

static const char *why_cut(const char *cut)
{
    return !strcmp(cut, "entries") ? "stopped after --search-max entries"
         : !strcmp(cut, "time")    ? "stopped after --search-time"
                                   : "stopped at --list-max matches";
}

static void answer_html(struct search *s, struct evbuffer *out, struct graced_page *pg)
{
    char href[3 * (4096 + 256) + 8], sz[32], date[32];
    graced_page_begin(out, pg);
    graced_page_status(out);
    evbuffer_add_printf(out, "<p id=\"summary\">%zu match%s for \u201c", s->n,
                        s->n == 1 ? "" : "es");
    graced_html_esc(out, s->q);
    evbuffer_add_printf(out, "\u201d below this folder (%lld entries looked at%s%s). "
                             "<a href=\"./\">Back to the folder</a></p>\n",
                        (long long)s->visited, s->cut ? "; " : "", s->cut ? why_cut(s->cut) : "");
    evbuffer_add_printf(out, "<table id=\"list\"><thead><tr><th class=\"name\">Name</th>"
                             "<th class=\"size\">Size</th><th class=\"date\">Modified</th>"
                             "</tr></thead><tbody>\n");
    for (size_t i = 0; i < s->n; i++) {
        const struct match *m = &s->m[i];
        const char *slash = strrchr(m->path, '/');
        struct tm tm;
        graced_path_encode(m->path, href, sizeof(href));
        gmtime_r(&m->mtime, &tm);
        strftime(date, sizeof(date), "%Y-%m-%d %H:%M", &tm);
        evbuffer_add_printf(out, "<tr><td class=\"name\"><a href=\"./%s%s\">", href,
                            m->dir ? "/" : "");
        graced_html_esc(out, slash ? slash + 1 : m->path);
        evbuffer_add_printf(out, "%s</a>", m->dir ? "/" : "");
        if (slash) { /* where it is */
            char *dir = strndup(m->path, (size_t)(slash - m->path));
            evbuffer_add_printf(out, "<br><span class=\"path\">in ");
            graced_html_esc(out, dir ? dir : "");
            evbuffer_add_printf(out, "/</span>");
            free(dir);
        }
        if (m->dir) {
            evbuffer_add_printf(out, "</td><td class=\"size\">-</td>");
        } else {
            graced_human_size(m->size, sz, sizeof(sz));
            evbuffer_add_printf(out, "</td><td class=\"size\" title=\"%lld bytes\">%s</td>",
                                (long long)m->size, sz);
        }
        evbuffer_add_printf(out, "<td class=\"date\" title=\"UTC\">%s</td></tr>\n", date);
    }
    evbuffer_add_printf(out, "</tbody></table>\n");
    graced_page_end(out, pg);
}

static void answer_json(struct search *s, struct evbuffer *out)
{
    char path[4200];
    snprintf(path, sizeof(path), "/%s%s", s->rel, s->rel[0] ? "/" : "");
    evbuffer_add_printf(out, "{\"path\":");
    graced_json_str(out, path);
    evbuffer_add_printf(out, ",\"q\":");
    graced_json_str(out, s->q);
    evbuffer_add_printf(out, ",\"visited\":%lld,\"truncated\":%s,\"cut\":", (long long)s->visited,
                        s->cut ? "true" : "false");
    if (s->cut)
        graced_json_str(out, s->cut);
    else
        evbuffer_add_printf(out, "null");
    evbuffer_add_printf(out, ",\"matches\":[");
    for (size_t i = 0; i < s->n; i++) {
        evbuffer_add_printf(out, "%s\n{\"path\":", i ? "," : "");
        graced_json_str(out, s->m[i].path);
        evbuffer_add_printf(out, ",\"type\":\"%s\",\"size\":%lld,\"mtime\":%lld}",
                            s->m[i].dir ? "dir" : "file", (long long)s->m[i].size,
                            (long long)s->m[i].mtime);
    }
    evbuffer_add_printf(out, "]}\n");
}

static void start_next(struct graced *g);

/* On the loop: the walk is done. */
static void search_done(struct graced_job *j)
{
    struct search *s = (struct search *)j;
    struct graced *g = s->g;
    struct evbuffer *out;
    int json;

    queue.running = NULL;
    if (s->cancelled) { /* the server is gone with the request */
        search_free(s);
        return;
    }
    grace_request_on_finish(s->req, NULL, NULL);
    if (s->gone) { /* complete our side: that releases it */
        grace_reply(s->req, 500, NULL, 0);
    } else if (s->failed || !(out = evbuffer_new())) {
        graced_reply(s->req, 500, "the search failed\n");
    } else {
        json = graced_wants_json(s->req);
        if (json) {
            answer_json(s, out);
            graced_web_page_csp(s->req, NULL);
        } else {
            struct graced_page pg = {.rel = s->rel, .title = "Search in", .search = 1,
                                     .q = s->q, .max_body = g->o.max_body};
            graced_web_nonce(pg.nonce);
            answer_html(s, out, &pg);
            graced_web_page_csp(s->req, pg.nonce);
        }
        grace_response_add_header(s->req, "Content-Type",
                                  json ? "application/json" : "text/html; charset=utf-8");
        grace_response_add_header(s->req, "Vary", "Accept");
        grace_response_add_header(s->req, "Cache-Control", "no-cache");
        grace_reply_buffer(s->req, 200, out);
        evbuffer_free(out);
    }
    search_free(s);
    start_next(g);
}

/* The request ended while its search waited or ran. */
static void search_gone(struct grace_request *req, int err, void *arg)
{
    struct search *s = arg;
    (void)req;
    s->gone = 1;
    s->cancelled = err == -ECANCELED;
}

static void start_next(struct graced *g)
{
    struct search *s;
    while (!queue.running && (s = queue.head)) {
        if (!(queue.head = s->next))
            queue.tail = NULL;
        queue.waiting--;
        if (s->gone && !s->cancelled) { /* never started: release it */
            grace_request_on_finish(s->req, NULL, NULL);
            grace_reply(s->req, 500, NULL, 0);
            search_free(s);
            continue;
        }
        if (s->cancelled) {
            search_free(s);
            continue;
        }
        queue.running = s;
        graced_pool_run(g->pool, &s->job);
    }
}

void graced_search(struct grace_request *req, struct graced *g)
{
    char rel[4096];
    struct search *s;
    struct stat sb;
    int st, trailing, fd;
    char *w, *sp = NULL;

    if ((st = graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 0), &trailing))) {
        graced_reply(req, st, st == 403 ? "forbidden\n" : st == 404 ? "not found\n" : "bad path\n");
        return;
    }
    fd = graced_open_beneath(g, rel[0] ? rel : ".");
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISDIR(sb.st_mode) || !g->o.list_dirs) {
        if (fd >= 0)
            close(fd);
        graced_serve_file(req, g); /* a file's ?q= is just the file */
        return;
    }
    if (!(s = calloc(1, sizeof(*s)))) {
        close(fd);
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    s->dirfd = fd;
    if (query_words(grace_request_query(req), s->q, sizeof(s->q)) < 0) {
        search_free(s);
        graced_reply(req, 400, "the search words are too long or hold a control byte\n");
        return;
    }
    if (!s->q[strspn(s->q, " ")]) { /* nothing to look for: the folder */
        search_free(s);
        graced_serve_file(req, g);
        return;
    }
    if (queue.waiting >= SEARCH_QUEUE) {
        search_free(s);
        grace_response_add_header(req, "Retry-After", "1");
        graced_reply(req, 503, "too many searches at once; try again\n");
        return;
    }
    s->g = g;
    s->req = req;
    s->job.work = search_work;
    s->job.done = search_done;
    snprintf(s->rel, sizeof(s->rel), "%s", rel);
    s->show_hidden = g->o.show_hidden;
    s->max_visits = g->o.search_max;
    s->max_ms = g->o.search_time_ms;
    s->max_matches = (size_t)g->o.list_max;
    if (!(s->access = graced_access_of(g, graced_who(g)))) {
        search_free(s);
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    /* the words, lowercased; more than SEARCH_WORDS: the first ones */
    memcpy(s->low, s->q, sizeof(s->low));
    lower(s->low);
    for (w = strtok_r(s->low, " ", &sp); w && s->nwords < SEARCH_WORDS; w = strtok_r(NULL, " ", &sp))
        s->words[s->nwords++] = w;
    grace_request_on_finish(req, search_gone, s);
    if (queue.tail)
        queue.tail->next = s;
    else
        queue.head = s;
    queue.tail = s;
    queue.waiting++;
    start_next(g);
}
