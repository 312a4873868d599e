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

static void human_size(int64_t n, char *out, size_t len)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, len, "%lld B", (long long)n);
    else
        snprintf(out, len, "%.1f %s", v, unit[u]);
}

/* the upload form's script; the page's <script nonce=...> tag comes first */
static const char form_script[] =
    "(function () {\n"
    "  var f = document.getElementById('upload');\n"
    "  if (!f || !window.FormData || !window.XMLHttpRequest) return;\n"
    "  f.addEventListener('submit', function (e) {\n"
    "    e.preventDefault();\n"
    "    var x = new XMLHttpRequest(), d = new FormData(f), t = f.elements.token;\n"
    "    var p = document.getElementById('progress'), a = document.getElementById('answer');\n"
    "    if (t) d.delete('token');\n"
    "    x.open('POST', location.pathname);\n"
    "    if (t && t.value) x.setRequestHeader('Authorization', 'Bearer ' + t.value);\n"
    "    x.setRequestHeader('Accept', 'application/json');\n"
    "    p.hidden = false; p.value = 0; a.className = ''; a.textContent = 'uploading...';\n"
    "    x.upload.onprogress = function (ev) {\n"
    "      if (ev.lengthComputable) p.value = 100 * ev.loaded / ev.total;\n"
    "    };\n"
    "    x.onload = function () {\n"
    "      a.dataset.status = x.status;\n"
    "      a.className = x.status < 300 ? 'ok' : 'err';\n"
    "      a.textContent = x.status + ' ' + x.statusText + ': ' + x.responseText;\n"
    "      if (x.status < 300) p.value = 100;\n"
    "    };\n"
    "    x.onerror = function () {\n"
    "      a.dataset.status = 0; a.className = 'err';\n"
    "      a.textContent = 'the connection failed before an answer came';\n"
    "    };\n"
    "    x.send(d);\n"
    "  });\n"
    "})();\n";

static void html_head(struct evbuffer *out, const char *rel, const char *nonce)
{
    evbuffer_add_printf(out, "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
                             "<meta name=\"viewport\" content=\"width=device-width\">"
                             "<title>Index of /");
    graced_html_esc(out, rel);
    evbuffer_add_printf(out, "%s</title>\n<style nonce=\"%s\">body{font-family:sans-serif;"
                             "margin:1em 2em}table{border-collapse:collapse}td,th{padding:.15em "
                             "1em;text-align:left}td.n{text-align:right}th a{color:inherit}"
                             ".ok{color:#070}.err{color:#b00}.odd{background:#fde8c8}</style>"
                             "</head>\n<body><h1>Index of /",
                        rel[0] ? "/" : "", nonce);
    graced_html_esc(out, rel);
    evbuffer_add_printf(out, "%s</h1>\n", rel[0] ? "/" : "");
}

static void html_form(struct evbuffer *out, const struct graced *g, const char *nonce)
{
    evbuffer_add_printf(out,
                        "<form id=\"upload\" method=\"post\" enctype=\"multipart/form-data\">"
                        "<input type=\"file\" name=\"file\" multiple required> ");
    if (g->token_len)
        evbuffer_add_printf(out, "<input type=\"password\" name=\"token\" "
                                 "placeholder=\"upload token\" autocomplete=\"off\"> ");
    evbuffer_add_printf(out, "<button type=\"submit\">Upload</button> "
                             "<progress id=\"progress\" max=\"100\" value=\"0\" hidden></progress>"
                             "<p id=\"answer\" role=\"status\"></p></form>\n"
                             "<script nonce=\"%s\">\n%s</script>\n",
                        nonce, form_script);
}

static void html_sort_link(struct evbuffer *out, const char *label, const char *key, int by,
                           const struct sort_key *k)
{
    int desc = k->by == by ? !k->desc : 0;
    evbuffer_add_printf(out, "<th><a href=\"?sort=%s&amp;order=%s\">%s%s</a></th>", key,
                        desc ? "desc" : "asc", label,
                        k->by == by ? (k->desc ? " &#9660;" : " &#9650;") : "");
}

static const char odd_title[] =
    " class=\"odd\" title=\"this name holds control or direction characters: shown as \\x and "
    "\\u escapes\"";

static void html_body(struct evbuffer *out, const struct graced *g, const char *rel,
                      struct entry *e, size_t n, int cut, size_t links, const struct sort_key *k,
                      int form, const char *nonce)
{
    char href[3 * 256 + 8], sz[32], date[32];
    html_head(out, rel, nonce);
    if (form)
        html_form(out, g, nonce);
    evbuffer_add_printf(out, "<table><thead><tr>");
    html_sort_link(out, "Name", "name", BY_NAME, k);
    html_sort_link(out, "Size", "size", BY_SIZE, k);
    html_sort_link(out, "Modified", "date", BY_DATE, k);
    evbuffer_add_printf(out, "</tr></thead><tbody>\n");
    if (rel[0])
        evbuffer_add_printf(out, "<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    for (size_t i = 0; i < n; i++) {
        struct tm tm;
        graced_path_encode(e[i].name, href, sizeof(href));
        gmtime_r(&e[i].mtime, &tm);
        strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", &tm);
        /* "./" first: a name like "a:b" must not read as a URL scheme; a
         * name with control bytes has no URL GET would serve: no link */
        if (e[i].odd & 1)
            evbuffer_add_printf(out, "<tr><td><span%s>", odd_title);
        else
            evbuffer_add_printf(out, "<tr><td><a href=\"./%s%s\"%s>", href, e[i].dir ? "/" : "",
                                e[i].odd ? odd_title : "");
        graced_html_esc(out, e[i].name);
        evbuffer_add_printf(out, "%s%s</td>", e[i].dir ? "/" : "", e[i].odd & 1 ? "</span>" : "</a>");
        if (e[i].dir) {
            evbuffer_add_printf(out, "<td class=\"n\">-</td>");
        } else {
            human_size(e[i].size, sz, sizeof(sz));
            evbuffer_add_printf(out, "<td class=\"n\" title=\"%lld bytes\">%s</td>",
                                (long long)e[i].size, sz);
        }
        evbuffer_add_printf(out, "<td>%s</td></tr>\n", date);
    }
    evbuffer_add_printf(out, "</tbody></table>\n<p>%zu entr%s", n, n == 1 ? "y" : "ies");
    if (cut)
        evbuffer_add_printf(out, "; <strong>listing cut at %zu entries (--list-max): the folder "
                                 "holds more</strong>", n);
    if (links)
        evbuffer_add_printf(out, "; %zu symbolic link%s not shown: %s out of the root, where "
                                 "graced does not follow", links, links == 1 ? "" : "s",
                            links == 1 ? "it leads" : "they lead");
    evbuffer_add_printf(out, "</p>\n</body></html>\n");
}

static void json_body(struct evbuffer *out, const char *rel, struct entry *e, size_t n, int cut,
                      size_t links, int form)
{
    char path[4200];
    snprintf(path, sizeof(path), "/%s%s", rel, rel[0] ? "/" : "");
    evbuffer_add_printf(out, "{\"path\":");
    graced_json_str(out, path);
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
    char nonce[24];
    struct entry *e = malloc(cap * sizeof(*e));
    struct evbuffer *out = evbuffer_new();
    struct sort_key k;
    int cut = 0, form = writable(g, rel, dirfd), json = graced_wants_json(req);
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
        e[n].odd = odd;
        if (!(e[n].name = strdup(nm)))
            break;
        e[n].dir = S_ISDIR(sb.st_mode);
        e[n].size = e[n].dir ? 0 : (int64_t)sb.st_size;
        e[n].mtime = sb.st_mtime;
        n++;
    }
    parse_sort(grace_request_query(req), &k);
    sort_by = k;
    qsort(e, n, sizeof(*e), cmp_entry);
    graced_web_nonce(nonce);
    if (json)
        json_body(out, rel, e, n, cut, links, form);
    else
        html_body(out, g, rel, e, n, cut, links, &k, form, nonce);
    graced_web_page_csp(req, json ? NULL : nonce);
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
