/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * page.c - graced's own page, around what listing.c, search.c and the
 * login put in it: the head with its style, a header (the folders on the
 * way as links, the search box, who is logged in), the status line that
 * screen readers announce, and the script. One page, no framework, nothing
 * from another site: the style and script are page.css and page.js,
 * embedded at build time (embed.sh), and run under the page's strict
 * Content-Security-Policy by the nonce each answer gets (web.c). No inline
 * handlers: the script finds what it needs by id and data- attributes.
 *
 * Without JavaScript the page still works: links, sorting (server side),
 * search (a GET form), the upload form (a POST form), login and logout
 * (POST forms). With it, page.js adds uploads with progress, speed and
 * cancel (whole folders, drag and drop), delete, rename and new folder.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

/* page_assets.c, made by embed.sh from page.css and page.js */
extern const char graced_page_css[], graced_page_js[];

/* "/a/b/" of rel "a/b", escaped for HTML */
static void folder_text(struct evbuffer *out, const char *rel)
{
    evbuffer_add(out, "/", 1);
    graced_html_esc(out, rel);
    if (rel[0])
        evbuffer_add(out, "/", 1);
}

/* The folders on the way, each a link; the last is the page itself. */
static void crumbs(struct evbuffer *out, const char *rel)
{
    char name[256], href[3 * 4096 + 4];
    size_t n = strlen(rel), start = 0;
    evbuffer_add_printf(out, "<nav class=\"crumbs\" aria-label=\"Folders\"><ol><li><a href=\"/\"%s>"
                             "Home</a></li>",
                        n ? "" : " aria-current=\"page\"");
    while (start < n) {
        const char *slash = strchr(rel + start, '/');
        size_t end = slash ? (size_t)(slash - rel) : n, len = end - start;
        char *path = strndup(rel, end);
        if (!path)
            return;
        href[0] = '/';
        graced_path_encode(path, href + 1, sizeof(href) - 2);
        free(path);
        strcat(href, "/");
        if (len >= sizeof(name))
            len = sizeof(name) - 1;
        memcpy(name, rel + start, len);
        name[len] = '\0';
        evbuffer_add_printf(out, "<li><a href=\"%s\"%s>", href,
                            end == n ? " aria-current=\"page\"" : "");
        graced_html_esc(out, name);
        evbuffer_add_printf(out, "</a></li>");
        start = end + 1;
    }
    evbuffer_add_printf(out, "</ol></nav>\n");
}

void graced_page_begin(struct evbuffer *out, const struct graced_page *p)
{
    evbuffer_add_printf(out, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                             "<meta name=\"viewport\" content=\"width=device-width, "
                             "initial-scale=1\"><meta name=\"color-scheme\" content=\"light "
                             "dark\"><title>");
    evbuffer_add_printf(out, "%s ", p->title ? p->title : "Index of");
    folder_text(out, p->rel);
    evbuffer_add_printf(out, "</title>\n<style nonce=\"%s\">\n%s</style></head>\n", p->nonce,
                        graced_page_css);
    /* what the script needs to know, none of it secret */
    evbuffer_add_printf(out, "<body data-write=\"%d\" data-max=\"%lld\" data-token=\"%d\" "
                             "data-hidden=\"%d\" data-tus=\"%d\"",
                        p->write, (long long)p->max_body, p->token, p->hidden, p->tus);
    if (p->user) {
        evbuffer_add_printf(out, " data-user=\"");
        graced_html_esc(out, p->user);
        evbuffer_add_printf(out, "\"");
    }
    evbuffer_add_printf(out, ">\n<header>");
    crumbs(out, p->rel);
    if (p->search)
        evbuffer_add_printf(out, "<form class=\"search\" role=\"search\" method=\"get\" "
                                 "action=\"./\"><label class=\"vh\" for=\"q\">Search names below "
                                 "this folder</label><input type=\"search\" id=\"q\" name=\"q\" "
                                 "placeholder=\"Search below this folder\" value=\"");
    if (p->search && p->q)
        graced_html_esc(out, p->q);
    if (p->search)
        evbuffer_add_printf(out, "\"><button type=\"submit\">Search</button></form>");
    if (p->user) {
        evbuffer_add_printf(out, "<div class=\"who\"><span class=\"user\" title=\"logged in\">");
        graced_html_esc(out, p->user);
        evbuffer_add_printf(out, "</span>");
        /* the user's rules for this folder, in words (perms.c; the rows'
         * buttons say it for each entry) */
        if (p->rights)
            evbuffer_add_printf(out, " <span class=\"may\" id=\"may\">%s</span>",
                                p->write ? "may upload and change files here"
                                         : "may only read here");
        evbuffer_add_printf(out, " <form method=\"post\" action=\"?logout\" class=\"inline\">"
                                 "<button type=\"submit\" id=\"logout\">Log out</button></form>"
                                 "</div>");
    } else if (p->login) {
        evbuffer_add_printf(out, "<div class=\"who\"><a class=\"button\" id=\"login\" "
                                 "href=\"?login\">Log in</a></div>");
    }
    evbuffer_add_printf(out, "</header>\n<main id=\"main\">\n<h1>%s ",
                        p->title ? p->title : "Index of");
    folder_text(out, p->rel);
    evbuffer_add_printf(out, "</h1>\n");
}

void graced_page_status(struct evbuffer *out)
{
    /* announced by screen readers as it changes; the script writes it */
    evbuffer_add_printf(out, "<p id=\"answer\" role=\"status\" aria-live=\"polite\"></p>\n");
}

void graced_page_end(struct evbuffer *out, const struct graced_page *p)
{
    evbuffer_add_printf(out, "</main>\n<script nonce=\"%s\">\n%s</script>\n</body></html>\n",
                        p->nonce, graced_page_js);
}

void graced_page_login_form(struct evbuffer *out, const char *msg)
{
    evbuffer_add_printf(out, "<form class=\"login\" method=\"post\" action=\"?login\">");
    if (msg) {
        evbuffer_add_printf(out, "<p class=\"err\" role=\"alert\">");
        graced_html_esc(out, msg);
        evbuffer_add_printf(out, "</p>");
    }
    evbuffer_add_printf(out, "<p><label for=\"user\">User</label><br><input id=\"user\" "
                             "name=\"user\" autocomplete=\"username\" autocapitalize=\"none\" "
                             "required></p><p><label for=\"password\">Password</label><br>"
                             "<input id=\"password\" name=\"password\" type=\"password\" "
                             "autocomplete=\"current-password\" required></p><p><button "
                             "type=\"submit\" class=\"primary\">Log in</button></p></form>\n");
}
