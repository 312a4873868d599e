/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * session.c - logins on the page: a session cookie naming a login kept in
 * memory the workers share.
 *
 * Why not Basic auth for the page: a browser that was given Basic
 * credentials (through its own prompt) sends them with every request until
 * it is closed, and no page can make it forget them: there is no logout. So
 * the page logs in with a form (login.c), the password is checked as a
 * Basic login is (auth.c: the same cache, limits and timing), and the
 * browser gets a cookie: graced_session=<128 random bits>, HttpOnly (no
 * script reads it), SameSite=Strict (no other site's page sends it),
 * Path=/, Secure over TLS, Max-Age --session-time. Logging out removes the
 * session here, in every worker at once, and clears the cookie.
 *
 * The table is an anonymous MAP_SHARED mapping made before the workers are
 * forked (as metrics.c's), --max-sessions slots under a robust
 * process-shared mutex (a worker that dies holding it does not stop the
 * others). A slot keeps the user's name and a stamp of their password hash
 * (auth.c): a changed password or a removed user ends the session at its
 * next use. Full, the oldest login ends.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <errno.h>
#include <event2/buffer.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define COOKIE "graced_session"
#define ID_LEN 22 /* graced_web_nonce(): 128 bits, base64url */

struct slot {
    char id[ID_LEN + 1];   /* "" for a free slot */
    char user[GRACED_SESSION_USER];
    uint64_t stamp;
    int64_t born_ms, until_ms;
};

struct graced_sessions {
    pthread_mutex_t mu;
    size_t n, bytes;
    struct slot s[];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* one clock for every process */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int graced_sessions_init(struct graced *g)
{
    size_t n = (size_t)g->o.max_sessions;
    size_t bytes = sizeof(struct graced_sessions) + n * sizeof(struct slot);
    pthread_mutexattr_t at;
    struct graced_sessions *t;
    if (!g->o.users_file)
        return 0;
    t = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED) {
        fprintf(stderr, "graced: --max-sessions %zu: shared memory: %s\n", n, strerror(errno));
        return -1;
    }
    pthread_mutexattr_init(&at);
    pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&t->mu, &at);
    pthread_mutexattr_destroy(&at);
    t->n = n;
    t->bytes = bytes;
    g->sessions = t;
    return 0;
}

void graced_sessions_free(struct graced *g)
{
    if (!g->sessions)
        return;
    explicit_bzero(g->sessions->s, g->sessions->n * sizeof(struct slot));
    munmap(g->sessions, g->sessions->bytes);
    g->sessions = NULL;
}

static void lock(struct graced_sessions *t)
{
    if (pthread_mutex_lock(&t->mu) == EOWNERDEAD) /* its owner died: slots are whole */
        pthread_mutex_consistent(&t->mu);
}

/* The request's session id (its cookie), into id; 0 if it has none. */
static int cookie_id(struct grace_request *req, char id[ID_LEN + 1])
{
    size_t pos = 0;
    const char *v;
    while ((v = grace_request_header_next(req, "Cookie", &pos))) {
        for (const char *p = v; p && *p;) {
            p += strspn(p, " \t;");
            if (!strncmp(p, COOKIE "=", sizeof(COOKIE))) {
                const char *val = p + sizeof(COOKIE);
                size_t n = strcspn(val, "; \t");
                if (n == ID_LEN && strspn(val, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                "0123456789-_") >= ID_LEN) {
                    memcpy(id, val, ID_LEN);
                    id[ID_LEN] = '\0';
                    return 1;
                }
            }
            p = strchr(p, ';');
        }
    }
    return 0;
}

static int same(const char *a, const char *b)
{
    unsigned char d = 0;
    for (int i = 0; i < ID_LEN; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

int graced_session_user(struct graced *g, struct grace_request *req, char *user, size_t n,
                        uint64_t *stamp)
{
    struct graced_sessions *t = g->sessions;
    char id[ID_LEN + 1];
    int64_t now = mono_ms();
    int found = 0;
    if (!t || !cookie_id(req, id))
        return 0;
    lock(t);
    for (size_t i = 0; i < t->n && !found; i++) {
        struct slot *s = &t->s[i];
        if (!s->id[0] || !same(s->id, id))
            continue;
        if (s->until_ms <= now) { /* over: its slot is free again */
            memset(s, 0, sizeof(*s));
            break;
        }
        found = snprintf(user, n, "%s", s->user) < (int)n;
        *stamp = s->stamp;
    }
    pthread_mutex_unlock(&t->mu);
    return found;
}

int graced_session_open(struct graced *g, struct grace_request *req, const char *user,
                        uint64_t stamp)
{
    struct graced_sessions *t = g->sessions;
    struct slot *pick = NULL;
    char id[24], v[200];
    int64_t now = mono_ms();
    if (!t || strlen(user) >= GRACED_SESSION_USER)
        return -1;
    graced_web_nonce(id);
    lock(t);
    for (size_t i = 0; i < t->n; i++) {
        struct slot *s = &t->s[i];
        if (!s->id[0] || s->until_ms <= now) {
            pick = s;
            break;
        }
        if (!pick || s->born_ms < pick->born_ms)
            pick = s; /* full: the oldest login ends */
    }
    memset(pick, 0, sizeof(*pick));
    memcpy(pick->id, id, ID_LEN);
    snprintf(pick->user, sizeof(pick->user), "%s", user);
    pick->stamp = stamp;
    pick->born_ms = now;
    pick->until_ms = now + g->o.session_time_ms;
    pthread_mutex_unlock(&t->mu);
    snprintf(v, sizeof(v), COOKIE "=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict%s", id,
             (long long)(g->o.session_time_ms / 1000),
             grace_request_tls_version(req) ? "; Secure" : "");
    explicit_bzero(id, sizeof(id));
    return grace_response_add_header(req, "Set-Cookie", v);
}

void graced_session_close(struct graced *g, struct grace_request *req)
{
    struct graced_sessions *t = g->sessions;
    char id[ID_LEN + 1];
    if (t && cookie_id(req, id)) {
        lock(t);
        for (size_t i = 0; i < t->n; i++)
            if (t->s[i].id[0] && same(t->s[i].id, id))
                memset(&t->s[i], 0, sizeof(t->s[i]));
        pthread_mutex_unlock(&t->mu);
    }
    grace_response_add_header(req, "Set-Cookie",
                              COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
}

int graced_is_browser(struct grace_request *req)
{
    return grace_request_header(req, "Sec-Fetch-Mode") != NULL;
}

/*
 * 401 for a request that needs a login. A browser (it sends Sec-Fetch-*)
 * is never given a Basic challenge, which would make it prompt and then
 * keep the password for good: a page load gets the login page, anything
 * else a short text; both name the cookie login. Other clients get Basic.
 */
void graced_session_challenge(struct graced *g, struct grace_request *req, const char *msg)
{
    const char *mode = grace_request_header(req, "Sec-Fetch-Mode");
    struct evbuffer *out;
    struct graced_page pg = {.rel = "", .title = "Log in to", .search = 0};
    char rel[4096];
    int trailing;
    if (!mode) {
        grace_response_add_header(req, "WWW-Authenticate",
                                  "Basic realm=\"graced\", charset=\"UTF-8\"");
        graced_reply(req, 401, msg);
        return;
    }
    grace_response_add_header(req, "WWW-Authenticate",
                              "Cookie realm=\"graced\", form-action=\"?login\", "
                              "cookie-name=\"" COOKIE "\"");
    if (strcmp(mode, "navigate") || !(out = evbuffer_new())) {
        graced_reply(req, 401, msg);
        return;
    }
    if (graced_path_of(req, rel, sizeof(rel), graced_path_flags(g, 0), &trailing) == 0)
        pg.rel = rel;
    pg.max_body = g->o.max_body;
    graced_web_nonce(pg.nonce);
    graced_page_begin(out, &pg);
    graced_page_login_form(out, strstr(msg, "wrong") ? "Wrong user or password." : NULL);
    graced_page_end(out, &pg);
    graced_web_page_csp(req, pg.nonce);
    grace_response_add_header(req, "Content-Type", "text/html; charset=utf-8");
    grace_response_add_header(req, "Cache-Control", "no-store");
    grace_reply_buffer(req, 401, out);
    evbuffer_free(out);
}
