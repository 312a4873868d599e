/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * listing.c - directory listings (--list-dirs).
 *
 * HTML for browsers (name, size, date; the column heads sort on the server
 * through ?sort=name|size|date&order=asc|desc, so no script is needed) and
 * JSON when the request's Accept names application/json. Every name is
 * escaped for where it lands: HTML text, an attribute, a URL, a JSON string.
 * Dot-names are left out unless --show-hidden; our temporary upload files
 * always are.
 *
 * Names GET cannot serve (control bytes) are shown escaped and unlinked,
 * never left out silently; bidi controls (U+202E...) are shown as \u
 * escapes, never obeyed, so "rtl\u202Egnp.exe" cannot pass for "rtlexe.png";
 * such names are marked. A symbolic link is followed only where GET follows
 * it (inside the root): one leading out is not shown, and the listing says
 * how many were left out, so no size or date of a file outside leaks.
 * The HTML page has a strict Content-Security-Policy: its own script and
 * style by a fresh nonce, no framing.
 *
 * Bounded: at most --list-max entries are read and sorted; past that the
 * listing says it was cut (readdir order, so not necessarily the first by
 * name). A folder that uploads land in (the upload tree's folder at the same
 * path is this very folder) also gets the upload form, which works as a
 * plain form and, with JavaScript, posts with XHR, shows progress and puts
 * the server's answer - a 201, but also a 413 or 401 - in the page.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct entry {
    char *name;
    int64_t size;
    time_t mtime;
    int dir;
    int odd;  /* graced_name_odd() */
    int write; /* the one asking may change it */
};

enum { BY_NAME, BY_SIZE, BY_DATE };

struct sort_key {
    int by, desc;
};

/* qsort has no context argument: the key is set right before each call */
static __thread struct sort_key sort_by;

static int cmp_entry(const void *pa, const void *pb)
{
    const struct entry *a = pa, *b = pb;
    int r = 0;
    if (a->dir != b->dir)
        return b->dir - a->dir; /* folders first, whatever the order */
    if (sort_by.by == BY_SIZE)
        r = a->size < b->size ? -1 : a->size > b->size;
    else if (sort_by.by == BY_DATE)
        r = a->mtime < b->mtime ? -1 : a->mtime > b->mtime;
    if (r == 0)
        r = strcmp(a->name, b->name);
    return sort_by.desc ? -r : r;
}

/* The upload form: plain HTML that posts without JavaScript; page.js
 * takes it over (one file at a time, progress, cancel, folders). */
static void html_form(struct evbuffer *out, int token)
{
    evbuffer_add_printf(out, "<form id=\"upload\" method=\"post\" enctype=\"multipart/form-data\">"
                             "<label for=\"files\">Upload files</label> <input id=\"files\" "
                             "type=\"file\" name=\"file\" multiple required> ");
    if (token)
        evbuffer_add_printf(out, "<label class=\"vh\" for=\"token\">Upload token</label><input "
                                 "type=\"password\" id=\"token\" name=\"token\" placeholder=\"upload "
                                 "token\" autocomplete=\"off\"> ");
    evbuffer_add_printf(out, "<button type=\"submit\" class=\"primary\">Upload</button></form>");
}

static void html_sort_link(struct evbuffer *out, const char *label, const char *key, int by,
                           const struct sort_key *k)
{
    int desc = k->by == by ? !k->desc : 0;
    evbuffer_add_printf(out, "<th class=\"%s\"", key);
    if (k->by == by) /* the column the rows are in the order of */
        evbuffer_add_printf(out, " aria-sort=\"%s\"", k->desc ? "descending" : "ascending");
    evbuffer_add_printf(out, "><a href=\"?sort=%s&amp;order=%s\">%s%s</a></th>", key,
                        desc ? "desc" : "asc", label,
                        k->by == by ? (k->desc ? " &#9660;" : " &#9650;") : "");
}

static const char odd_title[] =
    " class=\"odd\" title=\"this name holds control or direction characters: shown as \\x and "
    "\\u escapes\"";

/* One row: the name linked (unless GET could not serve it), its size and
 * date; data-name for the script, data-w where this user may change it. */
static void html_row(struct evbuffer *out, const struct entry *e, int acts)
{
    char href[3 * 256 + 8], sz[32], date[32];
    struct tm tm;
    graced_path_encode(e->name, href, sizeof(href));
    gmtime_r(&e->mtime, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M", &tm);
    evbuffer_add_printf(out, "<tr data-name=\"");
    graced_html_esc(out, e->name);
    evbuffer_add_printf(out, "\" data-dir=\"%d\"%s><td class=\"name\">", e->dir,
                        e->write && !(e->odd & 1) ? " data-w=\"1\"" : "");
    /* "./" first: a name like "a:b" must not read as a URL scheme; a name
     * with control bytes has no URL GET would serve: no link */
    if (e->odd & 1)
        evbuffer_add_printf(out, "<span%s>", odd_title);
    else
        evbuffer_add_printf(out, "<a href=\"./%s%s\"%s>", href, e->dir ? "/" : "",
                            e->odd ? odd_title : "");
    graced_html_esc(out, e->name);
    evbuffer_add_printf(out, "%s%s</td>", e->dir ? "/" : "", e->odd & 1 ? "</span>" : "</a>");
    if (e->dir) {
        evbuffer_add_printf(out, "<td class=\"size\">-</td>");
    } else {
        graced_human_size(e->size, sz, sizeof(sz));
        evbuffer_add_printf(out, "<td class=\"size\" title=\"%lld bytes\">%s</td>",
                            (long long)e->size, sz);
    }
    evbuffer_add_printf(out, "<td class=\"date\" title=\"UTC\">%s</td>%s</tr>\n", date,
                        acts ? "<td class=\"act\"></td>" : "");
}

static void html_body(struct evbuffer *out, const struct graced_page *pg, struct entry *e,
                      size_t n, int cut, size_t links, const struct sort_key *k, int form)
{
    graced_page_begin(out, pg);
    evbuffer_add_printf(out, "<div class=\"tools\">");
    if (form)
        html_form(out, pg->token);
    evbuffer_add_printf(out, "<a class=\"button\" id=\"zip\" href=\"?zip\" download>Download as "
                             "zip</a></div>\n");
    graced_page_status(out);
    if (form)
        evbuffer_add_printf(out, "<ul id=\"uploads\" aria-label=\"Uploads\"></ul>\n");
    evbuffer_add_printf(out, "<table id=\"list\"><thead><tr>");
    html_sort_link(out, "Name", "name", BY_NAME, k);
    html_sort_link(out, "Size", "size", BY_SIZE, k);
    html_sort_link(out, "Modified", "date", BY_DATE, k);
    if (pg->write)
        evbuffer_add_printf(out, "<th class=\"act\"><span class=\"vh\">Actions</span></th>");
    evbuffer_add_printf(out, "</tr></thead><tbody>\n");
    if (pg->rel[0])
        evbuffer_add_printf(out, "<tr><td class=\"name\"><a href=\"../\">../</a></td>"
                                 "<td class=\"size\"></td><td class=\"date\"></td>%s</tr>\n",
                            pg->write ? "<td class=\"act\"></td>" : "");
    for (size_t i = 0; i < n; i++)
        html_row(out, &e[i], pg->write);
    evbuffer_add_printf(out, "</tbody></table>\n<p id=\"count\">%zu entr%s", n,
                        n == 1 ? "y" : "ies");
    if (cut)
        evbuffer_add_printf(out, "; <strong>listing cut at %zu entries (--list-max): the folder "
                                 "holds more</strong>", n);
    if (links)
        evbuffer_add_printf(out, "; %zu symbolic link%s not shown: %s out of the root, where "
                                 "graced does not follow", links, links == 1 ? "" : "s",
                            links == 1 ? "it leads" : "they lead");
    evbuffer_add_printf(out, "</p>\n");
    graced_page_end(out, pg);
}

static void json_body(struct evbuffer *out, const char *rel, struct entry *e, size_t n, int cut,
                      size_t links, int form, const struct graced *g, const char *who, int write)
{
    char path[4200];
    snprintf(path, sizeof(path), "/%s%s", rel, rel[0] ? "/" : "");
    evbuffer_add_printf(out, "{\"path\":");
    graced_json_str(out, path);
    evbuffer_add_printf(out, ",\"user\":");
    if (who && who != graced_who_token)
        graced_json_str(out, who);
    else
        evbuffer_add_printf(out, "null");
    evbuffer_add_printf(out, ",\"write\":%s,\"login\":%s", write ? "true" : "false",
                        g->o.users_file && !who ? "true" : "false");
    evbuffer_add_printf(out, ",\"upload\":%s,\"truncated\":%s,\"hidden_links\":%zu,"
                             "\"entries\":[",
                        form ? "true" : "false", cut ? "true" : "false", links);
    for (size_t i = 0; i < n; i++) {
        evbuffer_add_printf(out, "%s\n{\"name\":", i ? "," : "");
        graced_json_str(out, e[i].name);
        evbuffer_add_printf(out, ",\"type\":\"%s\",\"size\":%lld,\"mtime\":%lld}",
                            e[i].dir ? "dir" : "file", (long long)e[i].size,
                            (long long)e[i].mtime);
    }
    evbuffer_add_printf(out, "]}\n");
}

static void parse_sort(const char *q, struct sort_key *k)
{
    k->by = BY_NAME;
    k->desc = 0;
    if (!q)
        return;
    for (const char *p = q; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (!strncmp(p, "sort=size", 9)) k->by = BY_SIZE;
        else if (!strncmp(p, "sort=date", 9)) k->by = BY_DATE;
        else if (!strncmp(p, "order=desc", 10)) k->desc = 1;
    }
}

/*
 * A symbolic link in the folder: followed only as GET follows it, below the
 * root (graced_open_beneath); *sb becomes its target's. One leading out is
 * counted in *links and left out, so nothing of the outside (size, date,
 * that it exists) shows; a dangling one is left out as it always was.
 */
static int follow(const struct graced *g, int dirfd, const char *rel, const char *nm,
                  struct stat *sb, size_t *links)
{
    char path[4096 + 256 + 2];
    int fd, ok;
    snprintf(path, sizeof(path), "%s%s%s", rel, rel[0] ? "/" : "", nm);
    fd = graced_open_beneath(g, path);
    if (fd < 0) {
        if (errno == EXDEV || errno == ELOOP)
            (*links)++;
        /* resolved inside the root, but not ours to read: listed as GET
         * would answer it (403), with what stat says */
        return errno == EACCES && fstatat(dirfd, nm, sb, 0) == 0;
    }
    ok = fstat(fd, sb) == 0;
    close(fd);
    return ok;
}

/* Do uploads to this folder's URL land in this folder? */
static int writable(const struct graced *g, const char *rel, int dirfd)
{
    struct stat a, b;
    int fd, same;
    if (g->upload_fd < 0)
        return 0;
    fd = graced_path_open_dir(g->upload_fd, rel, strlen(rel), 0);
    if (fd < 0)
        return 0;
    same = fstat(fd, &a) == 0 && fstat(dirfd, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
    close(fd);
    return same;
}

void graced_list_dir(struct grace_request *req, struct graced *g, const char *rel, int dirfd)
{
    size_t max = (size_t)g->o.list_max, n = 0, cap = 64, links = 0;
    struct graced_page pg = {0};
    struct entry *e = malloc(cap * sizeof(*e));
    struct evbuffer *out = evbuffer_new();
    struct sort_key k;
    const char *who = graced_who(g); /* while this call lasts */
    int write = writable(g, rel, dirfd) && graced_may(g, who, rel, GRACED_MAY_WRITE);
    /* the form also for someone who has the token to type in */
    int form = write || (writable(g, rel, dirfd) && !who && g->token_len);
    int json = graced_wants_json(req), cut = 0;
    char path[4096 + 256 + 2];
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;

    if (!d && fd >= 0)
        close(fd);
    if (!e || !out || !d) {
        graced_reply(req, 500, "cannot list this folder\n");
        goto done;
    }
    while ((de = readdir(d))) {
        struct stat sb;
        const char *nm = de->d_name;
        int odd = graced_name_odd(nm);
        if (!strcmp(nm, ".") || !strcmp(nm, ".."))
            continue;
        /* dot-names (unless --show-hidden) and our temporary files are not
         * shown, as GET does not serve them; names with control bytes are
         * (escaped, unlinked): a listing does not hide what a folder holds */
        if ((nm[0] == '.' && !g->o.show_hidden) ||
            !strncmp(nm, GRACED_TMP_PREFIX, sizeof(GRACED_TMP_PREFIX) - 1) ||
            (!(odd & 1) && graced_name_check(nm, strlen(nm), graced_path_flags(g, 0))))
            continue;
        if (n == max) {
            cut = 1;
            break;
        }
        if (n == cap) {
            struct entry *ne = realloc(e, (cap = cap * 2) * sizeof(*e));
            if (!ne)
                break;
            e = ne;
        }
        if (fstatat(dirfd, nm, &sb, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISLNK(sb.st_mode) && !follow(g, dirfd, rel, nm, &sb, &links))
            continue;
        if (!(S_ISDIR(sb.st_mode) || S_ISREG(sb.st_mode)))
            continue;
        /* --private with rules: only what this user may read, or pass
         * through on the way to it */
        snprintf(path, sizeof(path), "%s%s%s", rel, rel[0] ? "/" : "", nm);
        if (!graced_may(g, who, path, GRACED_MAY_READ | (S_ISDIR(sb.st_mode) ? GRACED_MAY_PASS : 0)))
            continue;
        e[n].odd = odd;
        if (!(e[n].name = strdup(nm)))
            break;
        e[n].dir = S_ISDIR(sb.st_mode);
        e[n].write = write && graced_may(g, who, path, GRACED_MAY_WRITE);
        e[n].size = e[n].dir ? 0 : (int64_t)sb.st_size;
        e[n].mtime = sb.st_mtime;
        n++;
    }
    parse_sort(grace_request_query(req), &k);
    sort_by = k;
    qsort(e, n, sizeof(*e), cmp_entry);
    if (json) {
        json_body(out, rel, e, n, cut, links, form, g, who, write);
    } else {
        pg.rel = rel;
        pg.write = write;
        pg.token = form && !who && g->token_len;
        pg.tus = form; /* resumable.c: on wherever uploads are */
        pg.login = g->o.users_file && !who;
        pg.search = 1;
        pg.hidden = g->o.show_hidden;
        pg.max_body = g->o.max_body;
        pg.user = who != graced_who_token ? who : NULL;
        pg.rights = 1;
        graced_web_nonce(pg.nonce);
        html_body(out, &pg, e, n, cut, links, &k, form);
    }
    graced_web_page_csp(req, json ? NULL : pg.nonce);
    grace_response_add_header(req, "Content-Type",
                              json ? "application/json" : "text/html; charset=utf-8");
    grace_response_add_header(req, "Vary", "Accept");
    grace_response_add_header(req, "Cache-Control", "no-cache");
    grace_reply_buffer(req, 200, out);
done:
    if (d)
        closedir(d);
    close(dirfd);
    for (size_t i = 0; i < n; i++)
        free(e[i].name);
    free(e);
    if (out)
        evbuffer_free(out);
}
