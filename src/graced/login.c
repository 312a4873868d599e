/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * login.c - the page's login and logout (--users-file), on any folder's
 * URL:
 *   GET  ?login    the login page (a form; no script needed)
 *   POST ?login    user=...&password=... (application/x-www-form-urlencoded):
 *                  checked as a Basic login is (auth.c), then a session
 *                  (session.c: the cookie) and 303 back to the folder
 *   POST ?logout   the session ends, the cookie is cleared, 303 back
 * Both POSTs are refused from another site's page (Origin, as every write
 * is: a login forced on a visitor is an attack too), and the cookie is
 * SameSite=Strict. Why a cookie and not Basic: session.c.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#define LOGIN_BODY 4096 /* a login form's body, at most */

static int query_is(struct grace_request *req, const char *word)
{
    const char *q = grace_request_query(req);
    return q && !strcmp(q, word);
}

int graced_is_login(struct grace_request *req)
{
    return query_is(req, "login");
}

int graced_is_logout(struct grace_request *req)
{
    return query_is(req, "logout");
}

/* 303 to the folder the request was sent to, as files.c builds its
 * redirects: from the decoded path, encoded again, so it stays here */
static void back(struct grace_request *req, struct graced *g)
{
    char rel[4096], loc[3 * 4096 + 4];
    int trailing;
    size_t n;
    loc[0] = '/';
    loc[1] = '\0';
    if (graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 0), &trailing) == 0 &&
        rel[0]) {
        char *slash = trailing ? NULL : strrchr(rel, '/');
        if (!trailing) /* a file's URL: its folder */
            slash ? (void)(*slash = '\0') : (void)(rel[0] = '\0');
        n = 1 + graced_path_encode(rel, loc + 1, sizeof(loc) - 3);
        if (rel[0]) {
            loc[n++] = '/';
            loc[n] = '\0';
        }
    }
    grace_response_add_header(req, "Location", loc);
    grace_response_add_header(req, "Cache-Control", "no-store");
    graced_reply(req, 303, NULL);
}

static void base64(const unsigned char *in, size_t n, char *out)
{
    static const char b[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = b[v >> 18 & 63];
        out[o++] = b[v >> 12 & 63];
        out[o++] = i + 1 < n ? b[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b[v & 63] : '=';
    }
    out[o] = '\0';
}

/* The password was right: a session, and back to the folder. */
static void logged_in(struct grace_request *req, struct graced *g)
{
    const char *who = graced_who(g);
    if (!who || graced_session_open(g, req, who, graced_auth_stamp(g, who)) < 0) {
        graced_reply(req, 500, "cannot keep this login (a user name over 255 bytes?)\n");
        return;
    }
    graced_log(LOG_INFO, "page login: %s", who);
    if (graced_wants_json(req)) {
        struct evbuffer *out = evbuffer_new();
        if (!out) {
            graced_reply(req, 500, "out of memory\n");
            return;
        }
        evbuffer_add_printf(out, "{\"user\":");
        graced_json_str(out, who);
        evbuffer_add_printf(out, "}\n");
        grace_response_add_header(req, "Content-Type", "application/json");
        grace_response_add_header(req, "Cache-Control", "no-store");
        grace_reply_buffer(req, 200, out);
        evbuffer_free(out);
        return;
    }
    back(req, g);
}

static void on_body(struct grace_request *req, struct evbuffer *body, void *arg)
{
    struct graced *g = arg;
    size_t n = evbuffer_get_length(body);
    char text[LOGIN_BODY + 1], user[512], pass[512], pair[1100], basic[1600];
    int ok;
    evbuffer_remove(body, text, n);
    text[n] = '\0';
    ok = graced_form_field(text, "user", user, sizeof(user)) == 0 &&
         graced_form_field(text, "password", pass, sizeof(pass)) == 0 && user[0] &&
         !strchr(user, ':');
    explicit_bzero(text, sizeof(text));
    if (!ok) {
        explicit_bzero(pass, sizeof(pass));
        graced_session_challenge(g, req, "wrong user or password\n");
        return;
    }
    snprintf(pair, sizeof(pair), "%s:%s", user, pass);
    explicit_bzero(pass, sizeof(pass));
    memcpy(basic, "Basic ", 6);
    base64((const unsigned char *)pair, strlen(pair), basic + 6);
    explicit_bzero(pair, sizeof(pair));
    graced_auth_login(req, g, basic, logged_in);
    explicit_bzero(basic, sizeof(basic));
}

void graced_login(struct grace_request *req, struct graced *g)
{
    if (!g->o.users_file) {
        graced_reply(req, 404, "no logins here (no --users-file)\n");
        return;
    }
    if (!graced_web_write_origin_ok(req, g)) {
        graced_reply(req, 403, "a page from another site may not log in here\n");
        return;
    }
    if (grace_request_collect_body(req, LOGIN_BODY, on_body, g) < 0)
        graced_reply(req, 413, "a login form is 4 KiB at most\n");
}

void graced_logout(struct grace_request *req, struct graced *g)
{
    if (!graced_web_write_origin_ok(req, g)) {
        graced_reply(req, 403, "a page from another site may not log out here\n");
        return;
    }
    graced_session_close(g, req);
    back(req, g);
}

void graced_login_page(struct grace_request *req, struct graced *g)
{
    char user[GRACED_SESSION_USER], rel[4096];
    uint64_t stamp;
    struct evbuffer *out;
    struct graced_page pg = {.rel = "", .title = "Log in to", .max_body = g->o.max_body};
    int trailing;
    if (!g->o.users_file) {
        graced_reply(req, 404, "no logins here (no --users-file)\n");
        return;
    }
    if (graced_session_user(g, req, user, sizeof(user), &stamp) &&
        stamp == graced_auth_stamp(g, user)) {
        back(req, g); /* logged in already */
        return;
    }
    if (!(out = evbuffer_new())) {
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    if (graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 0), &trailing) == 0)
        pg.rel = rel;
    graced_web_nonce(pg.nonce);
    graced_page_begin(out, &pg);
    graced_page_login_form(out, NULL);
    graced_page_end(out, &pg);
    graced_web_page_csp(req, pg.nonce);
    grace_response_add_header(req, "Content-Type", "text/html; charset=utf-8");
    grace_response_add_header(req, "Cache-Control", "no-store");
    grace_reply_buffer(req, 200, out);
    evbuffer_free(out);
}
