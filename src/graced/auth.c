/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * auth.c - who may read and who may write: the users file (--users-file,
 * lines "name:crypt-hash:r" or "name:crypt-hash:rw"), checked with HTTP
 * Basic auth, and the bearer token of --auth-token-file for uploads.
 *
 * A crypt(3) check costs CPU by design (yescrypt's default: about 90 ms
 * here, sha512-crypt about 1 ms), so it never runs on the event loop:
 *  - each worker hands checks to a pool of one thread (pool.c, beside the
 *    upload pool: a login never waits for a disk, and one check at a time
 *    takes at most one core, at the pool's lower priority) and answers the
 *    request when the check is done (the connection waits, nothing else
 *    does); at most --auth-max-pending checks wait at once, more are
 *    answered 503;
 *  - a successful (user, password) is remembered for --auth-cache-time, and
 *    later requests with the same credentials skip crypt;
 *  - a client address that failed --auth-fail-limit times within a minute
 *    is answered 429 without any crypt call until the minute is over;
 *  - every check costs the same, whatever the name: a hash's kind is its
 *    scheme with its cost ("$y$j9T", "$2b$12", "$6$rounds=N"), and a check
 *    runs one crypt of each kind in the file: the user's own hash for
 *    theirs, and for each other kind the hash of a user of that kind (an
 *    unknown name: one of each kind, none its own). Same kind, same work:
 *    equal by construction, not by a measurement (which a busy machine
 *    would blur), and real work, which a busy machine slows alike, where a
 *    sleep would not be. Timing tells neither which names exist nor which
 *    hash a name has; a file with several kinds makes every check cost
 *    their sum, and is warned about (its cheap hashes are still cheap to
 *    crack).
 * Every answer here is given when the headers arrive, before any body byte
 * is read: the library then closes gracefully and the client gets it.
 */
#define _GNU_SOURCE
#include "config.h"
#include "graced.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#ifdef GRACED_HAVE_CRYPT
#include <crypt.h>
#endif

#define AUTH_MAX_USERS 4096
#define AUTH_CACHE_SLOTS 64
#define AUTH_FAIL_SLOTS 256
#define AUTH_FAIL_WINDOW_MS 60000
#define AUTH_MAX_CRED 512 /* base64 of "user:password" */
#define AUTH_KINDS 16      /* kinds of hash (scheme and cost) in one file: each check runs them all */
#define AUTH_COST_CACHE 32 /* kinds whose cost was measured (for the warning), across reloads */

struct user {
    char *name, *hash;
    int write;
    int kind;      /* index in the file's kinds */
};

/* The users of one version of the file, and a user of each kind of hash. */
struct userset {
    struct user *u;
    int n;
    int rep[AUTH_KINDS];
    int nkinds;
};

struct cache_entry {
    char cred[AUTH_MAX_CRED]; /* the header's base64, as sent */
    size_t len;
    int user;
    int64_t until_ms;
};

struct fail_entry {
    unsigned char addr[16];
    int family;
    int count;
    int64_t since_ms;
};

/* One password check handed to the auth pool. */
struct check {
    struct graced_job job; /* first: the pool's */
    struct graced *g;
    struct grace_request *req;
    graced_cont_cb cont;
    int write;
    char *pads;    /* a hash of each other kind, checked too: "h1\0h2\0...\0\0" */
    int ok;        /* the check's answer (set by the pool thread) */
    int gone;      /* the request ended while waiting */
    int cancelled; /* ... and may not be touched (server freed) */
    char cred[AUTH_MAX_CRED]; /* base64 as sent, for the cache */
    size_t cred_len;
    char name[AUTH_MAX_CRED];
    char *hash;    /* a copy: a reload may free the users meanwhile */
    char password[AUTH_MAX_CRED];
};

/* What one check against a kind of hash costs: "$y$j9T", "$6", "$6$rounds=N" */
struct cost {
    char kind[64];
    int64_t us;
};

struct graced_auth {
    struct user *users;
    int nusers;
    int rep[AUTH_KINDS];    /* a user of each kind of hash in the file */
    int nkinds;
    struct cost costs[AUTH_COST_CACHE]; /* kept across reloads */
    int ncosts;
    struct cache_entry cache[AUTH_CACHE_SLOTS];
    struct fail_entry fails[AUTH_FAIL_SLOTS];
    struct graced_pool *pool; /* one thread, made at the first check */
    int pending;            /* checks not yet answered */
};

static void free_users(struct user *u, int n)
{
    for (int i = 0; i < n; i++) {
        free(u[i].name);
        free(u[i].hash);
    }
    free(u);
}

/*
 * A hash's kind: its scheme and cost, the part of its setting before the
 * salt. "$2b$12$<salt and digest>" is "$2b$12" (bcrypt has no '$' between
 * them); "$7$<N, r, p in 11 characters><salt>$digest" is "$7$" and those 11
 * (scrypt); "_<count in 4><salt><digest>" is those 5 (BSDi); any other
 * hash without its last two '$' fields: "$y$j9T$salt$digest" is "$y$j9T",
 * "$6$rounds=N$salt$digest" "$6$rounds=N", "$6$salt$digest" "$6"; DES and
 * bigcrypt (no '$': one cost) "".
 */
static void hash_kind(const char *hash, char *out, size_t n)
{
    const char *end = strrchr(hash, '$');
    size_t len, hl = strlen(hash);
    if (hl >= 7 && hash[0] == '$' && hash[1] == '2' && hash[3] == '$' && hash[6] == '$') {
        len = 6;
    } else if (hl >= 14 && !strncmp(hash, "$7$", 3)) {
        len = 14;
    } else if (hl >= 5 && hash[0] == '_') {
        len = 5;
    } else {
        if (end && end > hash) {
            const char *p = end - 1;
            while (p > hash && *p != '$')
                p--;
            end = p;
        }
        len = end ? (size_t)(end - hash) : 0;
    }
    if (len >= n)
        len = n - 1;
    memcpy(out, hash, len);
    out[len] = '\0';
}

/* Each user's kind, and a user of each kind; 0, or -1 with a reason. */
static int assign_kinds(struct userset *us, char *why, size_t whylen)
{
    us->nkinds = 0;
    for (int i = 0; i < us->n; i++) {
        char kind[64], other[64];
        int k = 0;
        hash_kind(us->u[i].hash, kind, sizeof(kind));
        for (; k < us->nkinds; k++) {
            hash_kind(us->u[us->rep[k]].hash, other, sizeof(other));
            if (!strcmp(kind, other))
                break;
        }
        if (k == us->nkinds) {
            if (k == AUTH_KINDS) {
                snprintf(why, whylen, "more than %d kinds of hash (scheme and cost): every check "
                         "runs one of each", AUTH_KINDS);
                return -1;
            }
            us->rep[us->nkinds++] = i;
        }
        us->u[i].kind = k;
    }
    return 0;
}

/* Read the users file. 0, or -1 with a reason in why. */
static int load_users(const char *path, struct userset *out, char *why, size_t whylen)
{
    FILE *fp = fopen(path, "re");
    struct user *u = NULL;
    int n = 0, line = 0;
    char buf[1024];

    if (!fp) {
        snprintf(why, whylen, "%s", strerror(errno));
        return -1;
    }
    while (fgets(buf, sizeof(buf), fp)) {
        char *name = buf, *hash, *perms, *end;
        line++;
        buf[strcspn(buf, "\r\n")] = '\0';
        if (buf[0] == '#' || buf[0] == '\0')
            continue;
        hash = strchr(name, ':');
        perms = strrchr(name, ':');
        if (!hash || hash == perms || hash == name) {
            snprintf(why, whylen, "line %d: expected name:hash:perms", line);
            goto fail;
        }
        *hash++ = '\0';
        *perms++ = '\0';
        if (strcmp(perms, "r") && strcmp(perms, "rw")) {
            snprintf(why, whylen, "line %d: perms must be r or rw", line);
            goto fail;
        }
#ifdef GRACED_HAVE_CRYPT
        if (crypt_checksalt(hash) != CRYPT_SALT_OK) {
            snprintf(why, whylen, "line %d: not a crypt(3) hash this system supports "
                     "(make one with mkpasswd -m yescrypt)", line);
            goto fail;
        }
#endif
        for (end = name; *end; end++)
            if ((unsigned char)*end <= ' ' || *end == 0x7f)
                break;
        if (*end) {
            snprintf(why, whylen, "line %d: a user name without spaces or controls", line);
            goto fail;
        }
        if (n == AUTH_MAX_USERS) {
            snprintf(why, whylen, "more than %d users", AUTH_MAX_USERS);
            goto fail;
        }
        struct user *nu = realloc(u, sizeof(*u) * (size_t)(n + 1));
        if (!nu) {
            snprintf(why, whylen, "out of memory");
            goto fail;
        }
        u = nu;
        u[n].name = strdup(name);
        u[n].hash = strdup(hash);
        u[n].write = !strcmp(perms, "rw");
        n++;
        if (!u[n - 1].name || !u[n - 1].hash) {
            snprintf(why, whylen, "out of memory");
            goto fail;
        }
    }
    fclose(fp);
    out->u = u;
    out->n = n;
    if (assign_kinds(out, why, whylen) == 0)
        return 0;
    free_users(u, n);
    return -1;
fail:
    fclose(fp);
    free_users(u, n);
    return -1;
}

/*
 * What a check against each kind of hash in the file costs, for the
 * warning only (equal costs come from running one hash of each kind, not
 * from these figures): measured once per kind, kept across reloads, so a
 * reload costs nothing unless a new kind appears.
 */
static void measure_costs(struct graced_auth *a, const char *path)
{
#ifdef GRACED_HAVE_CRYPT
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    int64_t lo = -1, hi = -1, sum = 0;
    for (int k = 0; k < a->nkinds && cd; k++) {
        const char *hash = a->users[a->rep[k]].hash;
        char kind[64];
        int c = 0;
        int64_t us = -1;
        hash_kind(hash, kind, sizeof(kind));
        while (c < a->ncosts && strcmp(a->costs[c].kind, kind))
            c++;
        if (c < a->ncosts) {
            us = a->costs[c].us;
        } else {
            /* the faster of two: the first also pays for first use (memory
             * yescrypt maps), and a busy machine only ever adds */
            for (int r = 0; r < 2; r++) {
                int64_t t0 = graced_mono_us(), t;
                (void)crypt_rn("graced: not a password", hash, cd, sizeof(*cd));
                t = graced_mono_us() - t0;
                if (r == 0 || t < us)
                    us = t;
            }
            if (a->ncosts < AUTH_COST_CACHE) {
                snprintf(a->costs[a->ncosts].kind, sizeof(a->costs[0].kind), "%s", kind);
                a->costs[a->ncosts++].us = us;
            }
        }
        sum += us;
        if (us > hi)
            hi = us;
        if (lo < 0 || us < lo)
            lo = us;
    }
    if (lo >= 0 && hi > 2 * lo)
        graced_log(LOG_WARN, "--users-file %s mixes hash costs (%.1f ms to %.1f ms a check): "
                   "every check runs one of each of its %d kinds (%.1f ms), so timing tells no "
                   "names apart, but the cheaper hashes are cheaper to crack (mkpasswd -m "
                   "yescrypt)", path, (double)lo / 1000, (double)hi / 1000, a->nkinds,
                   (double)sum / 1000);
    if (cd) {
        explicit_bzero(cd, sizeof(*cd));
        free(cd);
    }
#else
    (void)a;
    (void)path;
#endif
}

/* A version of the file takes the place of the one before. */
static void use_users(struct graced_auth *a, const struct userset *us)
{
    free_users(a->users, a->nusers);
    a->users = us->u;
    a->nusers = us->n;
    memcpy(a->rep, us->rep, sizeof(a->rep));
    a->nkinds = us->nkinds;
}

int graced_auth_load(struct graced *g)
{
    struct userset us;
    char why[256];
    if (!g->o.users_file)
        return 0;
#ifndef GRACED_HAVE_CRYPT
    fprintf(stderr, "graced: --users-file: this graced was built without libcrypt "
                    "(configure found no crypt.h; Debian: libcrypt-dev)\n");
    return -1;
#endif
    if (!(g->auth = calloc(1, sizeof(*g->auth)))) {
        fprintf(stderr, "graced: out of memory\n");
        return -1;
    }
    if (load_users(g->o.users_file, &us, why, sizeof(why)) < 0) {
        fprintf(stderr, "graced: --users-file %s: %s\n", g->o.users_file, why);
        return -1;
    }
    use_users(g->auth, &us);
    if (g->auth->nusers == 0)
        graced_log(LOG_WARN, "--users-file %s: no users", g->o.users_file);
    measure_costs(g->auth, g->o.users_file);
    return 0;
}

void graced_auth_reload(struct graced *g)
{
    struct userset us;
    char why[256];
    if (!g->auth)
        return;
    if (load_users(g->o.users_file, &us, why, sizeof(why)) < 0) {
        graced_log(LOG_ERR, "worker %d: users not reloaded, keeping the old ones: %s: %s",
                   g->worker, g->o.users_file, why);
        return;
    }
    use_users(g->auth, &us);
    measure_costs(g->auth, g->o.users_file);
    /* a removed user or a changed password must not live on in the cache */
    memset(g->auth->cache, 0, sizeof(g->auth->cache));
    graced_log(LOG_INFO, "worker %d: %d user(s) loaded", g->worker, us.n);
}

static void check_free(struct check *c)
{
    explicit_bzero(c->password, sizeof(c->password));
    explicit_bzero(c->cred, sizeof(c->cred));
    free(c->hash);
    free(c->pads);
    free(c);
}

/* A worker ends, after its server: the checks queued still run (their
 * requests were cancelled with the server: check_done only frees them). */
void graced_auth_stop(struct graced *g)
{
    if (!g->auth)
        return;
    graced_pool_free(g->auth->pool);
    g->auth->pool = NULL;
}

void graced_auth_free(struct graced *g)
{
    if (!g->auth)
        return;
    graced_auth_stop(g);
    free_users(g->auth->users, g->auth->nusers);
    explicit_bzero(g->auth->cache, sizeof(g->auth->cache));
    free(g->auth);
    g->auth = NULL;
}

static int ct_equal(const char *a, const char *b, size_t n)
{
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

static size_t cache_slot(const char *cred, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)cred[i]) * 16777619u;
    return h % AUTH_CACHE_SLOTS;
}

/* The client's address as a fail-table key. */
static struct fail_entry *fail_slot(struct graced_auth *a, const struct grace_request *req,
                                    int create)
{
    const struct sockaddr *sa = grace_request_peer(req, NULL);
    unsigned char key[16] = {0};
    size_t klen = 0;
    uint32_t h = 2166136261u;
    struct fail_entry *f;
    if (!sa)
        return NULL;
    if (sa->sa_family == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        klen = 4;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        klen = 16;
    } else {
        return NULL;
    }
    for (size_t i = 0; i < klen; i++)
        h = (h ^ key[i]) * 16777619u;
    f = &a->fails[h % AUTH_FAIL_SLOTS];
    if (f->family == sa->sa_family && !memcmp(f->addr, key, 16))
        return f;
    if (!create)
        return NULL;
    /* a collision takes the slot over: the bound is per slot, a little
     * looser than per address, never tighter for a quiet client */
    memset(f, 0, sizeof(*f));
    f->family = sa->sa_family;
    memcpy(f->addr, key, 16);
    f->since_ms = graced_mono_ms();
    return f;
}

static void peer_text(const struct grace_request *req, char *out, size_t n)
{
    const struct sockaddr *sa = grace_request_peer(req, NULL);
    snprintf(out, n, "?");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n);
}

/* Log names safely: printable ASCII only. */
static void safe_name(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (; *in && o + 1 < n; in++)
        out[o++] = (*in > ' ' && *in < 0x7f) ? *in : '?';
    out[o] = '\0';
}

/* ---------------------------------------------------------------- the upload token */

/* The first line of --auth-token-file, without the line end and the
 * spaces or tabs around it. -1 with errno: EINVAL for no token (an empty or
 * blank line), EILSEQ for a byte no client can send in a header (control
 * characters, spaces inside, non-ASCII). Any length: nothing is cut. */
int graced_load_token(struct graced *g)
{
    FILE *fp = fopen(g->o.token_file, "re");
    char *line = NULL, *t;
    size_t cap = 0, n;
    ssize_t got;
    if (!fp)
        return -1;
    got = getline(&line, &cap, fp);
    fclose(fp);
    if (got < 0) {
        free(line);
        return errno = EINVAL, -1;
    }
    n = strcspn(line, "\r\n");
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    line[n] = '\0';
    t = line + strspn(line, " \t");
    n = strlen(t);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f) {
            free(line);
            return errno = EILSEQ, -1;
        }
    if (n == 0) {
        free(line);
        return errno = EINVAL, -1;
    }
    memmove(line, t, n + 1);
    free(g->token);
    g->token = line;
    g->token_len = n;
    return 0;
}

/* Compare without an early exit, so timing does not leak the token. The
 * scheme is case-insensitive (RFC 9110 11.1), then one or more spaces. */
int graced_token_ok(const struct graced *g, const char *auth)
{
    size_t n;
    unsigned char diff = 0;
    if (!auth || strncasecmp(auth, "Bearer ", 7))
        return 0;
    auth += 7;
    auth += strspn(auth, " ");
    n = strlen(auth);
    for (size_t i = 0; i < g->token_len; i++)
        diff |= (unsigned char)(g->token[i] ^ (i < n ? auth[i] : 0));
    return diff == 0 && n == g->token_len;
}

/* ---------------------------------------------------------------- the check */

/* On the pool's thread: crypt, then one hash of each other kind (the top
 * of the file says why). */
static void check_work(struct graced_job *j)
{
    struct check *c = (struct check *)j;
    c->ok = 0;
#ifdef GRACED_HAVE_CRYPT
    struct crypt_data *cd = calloc(1, sizeof(*cd)); /* large: not on the stack */
    if (cd) {
        const char *out = crypt_rn(c->password, c->hash, cd, sizeof(*cd));
        size_t hl = strlen(c->hash);
        c->ok = out && strlen(out) == hl && ct_equal(out, c->hash, hl);
        for (const char *p = c->pads; p && *p; p += strlen(p) + 1)
            (void)crypt_rn(c->password, p, cd, sizeof(*cd));
        explicit_bzero(cd, sizeof(*cd));
        free(cd);
    }
#endif
    explicit_bzero(c->password, sizeof(c->password));
}

static void challenge(struct grace_request *req, const char *msg)
{
    grace_response_add_header(req, "WWW-Authenticate", "Basic realm=\"graced\", charset=\"UTF-8\"");
    graced_reply(req, 401, msg);
}

int graced_auth_may(const struct graced *g, int user, const char *rel, int write)
{
    (void)rel; /* the users file gives a login one right for the whole tree */
    if (user < 0 || !g->auth || user >= g->auth->nusers)
        return 1;
    return !write || g->auth->users[user].write;
}

/* A user is known: may they do it, at the request's path and (COPY, MOVE)
 * at its Destination? Then go on, or answer 403. */
static void allowed(struct graced *g, struct grace_request *req, int user, int write,
                    graced_cont_cb cont)
{
    const char *dest = grace_request_header(req, "Destination");
    char rel[4096];
    int trailing;
    if (!graced_auth_may(g, user, graced_path_of(req, rel, sizeof(rel),
                                                 graced_path_flags(g, write), &trailing)
                                      ? NULL
                                      : rel,
                         write) ||
        (dest && write &&
         !graced_auth_may(g, user, graced_path_uri(req, dest, strlen(dest), rel, sizeof(rel),
                                                   graced_path_flags(g, 1), &trailing)
                                       ? NULL
                                       : rel,
                          1))) {
        graced_reply(req, 403, "this user may not write\n");
        return;
    }
    cont(req, g);
}

static void count_failure(struct graced *g, struct grace_request *req, const char *name)
{
    struct fail_entry *f = fail_slot(g->auth, req, 1);
    int64_t now = graced_mono_ms();
    char who[64], addr[64];
    if (f) {
        if (now - f->since_ms >= AUTH_FAIL_WINDOW_MS) {
            f->since_ms = now;
            f->count = 0;
        }
        f->count++;
    }
    safe_name(name, who, sizeof(who));
    peer_text(req, addr, sizeof(addr));
    graced_log(LOG_WARN, "login failed for user \"%s\" from %s (%d in this minute)", who, addr,
               f ? f->count : 0);
}

/* The check is done: on the event loop again. */
static void check_done(struct graced_job *j)
{
    struct check *c = (struct check *)j;
    struct graced *g = c->g;
    struct graced_auth *a = g->auth;
    int user = -1;

    a->pending--;
    if (c->cancelled) { /* the request no longer exists */
        check_free(c);
        return;
    }
    grace_request_on_finish(c->req, NULL, NULL);
    if (c->gone) { /* the client left: complete our side, which releases it */
        grace_reply(c->req, 500, NULL, 0);
        check_free(c);
        return;
    }
    /* by name again, with the hash checked: the users may have been
     * reloaded meanwhile, and a changed password must not pass */
    for (int i = 0; c->ok && i < a->nusers; i++)
        if (!strcmp(a->users[i].name, c->name) && !strcmp(a->users[i].hash, c->hash))
            user = i;
    if (user < 0) {
        count_failure(g, c->req, c->name);
        challenge(c->req, "wrong user or password\n");
    } else {
        if (g->o.auth_cache_ms > 0) {
            struct cache_entry *ce = &a->cache[cache_slot(c->cred, c->cred_len)];
            memcpy(ce->cred, c->cred, c->cred_len);
            ce->len = c->cred_len;
            ce->user = user;
            ce->until_ms = graced_mono_ms() + g->o.auth_cache_ms;
        }
        allowed(g, c->req, user, c->write, c->cont);
    }
    check_free(c);
}

/* The request ended while its check was waiting. */
static void check_gone(struct grace_request *req, int err, void *arg)
{
    struct check *c = arg;
    c->gone = 1;
    c->cancelled = err == -ECANCELED;
}

/* The hashes of a user of each kind but own, "h1\0h2\0...\0\0" (NULL for
 * none); 0 or -1. */
static int pads_make(const struct graced_auth *a, int own, char **out)
{
    size_t len = 1, o = 0;
    char *p;
    *out = NULL;
    if (a->nkinds < 2)
        return 0;
    for (int k = 0; k < a->nkinds; k++)
        len += k == own ? 0 : strlen(a->users[a->rep[k]].hash) + 1;
    if (!(p = malloc(len)))
        return -1;
    for (int k = 0; k < a->nkinds; k++) {
        size_t n;
        if (k == own)
            continue;
        n = strlen(a->users[a->rep[k]].hash) + 1;
        memcpy(p + o, a->users[a->rep[k]].hash, n);
        o += n;
    }
    p[o] = '\0';
    *out = p;
    return 0;
}

/*
 * "Authorization: Basic ..." for a request that needs a user: from the
 * cache at once, or refused at once (malformed, too many failures, too
 * many checks waiting), or handed to the pool.
 */
static void basic_check(struct graced *g, struct grace_request *req, const char *auth, int write,
                        graced_cont_cb cont)
{
    struct graced_auth *a = g->auth;
    char plain[AUTH_MAX_CRED];
    const char *cred;
    size_t len;
    struct cache_entry *ce;
    struct fail_entry *f;
    int64_t now = graced_mono_ms();
    int user = -1;
    char *colon;
    struct check *c;

    if (!auth || strncasecmp(auth, "Basic ", 6)) {
        challenge(req, "login needed\n");
        return;
    }
    for (cred = auth + 6; *cred == ' '; cred++)
        ;
    len = strlen(cred);
    if (len == 0 || len >= AUTH_MAX_CRED || graced_b64decode(cred, len, plain, sizeof(plain)) < 0 ||
        !(colon = strchr(plain, ':'))) {
        challenge(req, "login needed\n");
        return;
    }
    ce = &a->cache[cache_slot(cred, len)];
    if (g->o.auth_cache_ms > 0 && ce->len == len && ce->until_ms > now &&
        ct_equal(ce->cred, cred, len)) {
        explicit_bzero(plain, sizeof(plain));
        graced_log(LOG_DEBUG, "auth: %s from cache", a->users[ce->user].name);
        allowed(g, req, ce->user, write, cont);
        return;
    }
    if ((f = fail_slot(a, req, 0)) && now - f->since_ms < AUTH_FAIL_WINDOW_MS &&
        f->count >= g->o.auth_fail_limit) {
        explicit_bzero(plain, sizeof(plain));
        grace_response_add_header(req, "Retry-After", "60");
        graced_reply(req, 429, "too many failed logins; try again in a minute\n");
        return;
    }
    *colon = '\0';
    for (int i = 0; i < a->nusers; i++)
        if (!strcmp(a->users[i].name, plain))
            user = i;
    if (a->nusers == 0) {
        count_failure(g, req, plain);
        explicit_bzero(plain, sizeof(plain));
        challenge(req, "wrong user or password\n");
        return;
    }
    if (a->pending >= g->o.auth_max_pending ||
        (!a->pool && !(a->pool = graced_pool_new(g->base, 1))) ||
        !(c = calloc(1, sizeof(*c)))) {
        explicit_bzero(plain, sizeof(plain));
        graced_log(LOG_WARN, "login checks: %d waiting; answering 503", a->pending);
        grace_response_add_header(req, "Retry-After", "1");
        graced_reply(req, 503, "too many logins being checked; try again\n");
        return;
    }
    c->job.work = check_work;
    c->job.done = check_done;
    c->g = g;
    c->req = req;
    c->cont = cont;
    c->write = write;
    memcpy(c->cred, cred, len);
    c->cred_len = len;
    strcpy(c->name, plain);
    strcpy(c->password, colon + 1);
    explicit_bzero(plain, sizeof(plain));
    /* one hash of each kind (the top of the file says why): the user's own
     * for theirs, a user's of each other kind; an unknown name gets the
     * first kind's in place of its own, and cannot pass, as check_done
     * looks the name up again */
    if (!(c->hash = strdup(a->users[user >= 0 ? user : a->rep[0]].hash)) ||
        pads_make(a, user >= 0 ? a->users[user].kind : 0, &c->pads) < 0) {
        check_free(c);
        graced_reply(req, 500, "out of memory\n");
        return;
    }
    a->pending++;
    grace_request_on_finish(req, check_gone, c);
    graced_pool_run(a->pool, &c->job);
}

void graced_authorize(struct grace_request *req, struct graced *g, int write, graced_cont_cb cont)
{
    const char *auth = grace_request_header(req, "Authorization");

    if (write && g->token_len && graced_token_ok(g, auth)) {
        cont(req, g);
    } else if (!g->auth) {
        if (!write || !g->token_len) {
            cont(req, g);
        } else {
            grace_response_add_header(req, "WWW-Authenticate", "Bearer");
            graced_reply(req, 401, "missing or wrong token\n");
        }
    } else if (!write && !g->o.private_read) {
        cont(req, g);
    } else {
        basic_check(g, req, auth, write, cont);
    }
}

/* The login of a request that graced_authorize() let through: its
 * Authorization header is then the one that was checked. */
void graced_auth_owner(const struct grace_request *req, const struct graced *g, char *out,
                       size_t n)
{
    const char *auth = grace_request_header(req, "Authorization");
    char plain[AUTH_MAX_CRED], *colon;
    size_t len;
    out[0] = '\0';
    if (!auth)
        return;
    if (g->token_len && graced_token_ok(g, auth)) {
        snprintf(out, n, "token");
        return;
    }
    if (!g->auth || strncasecmp(auth, "Basic ", 6))
        return;
    for (auth += 6; *auth == ' '; auth++)
        ;
    len = strlen(auth);
    if (len && len < AUTH_MAX_CRED && graced_b64decode(auth, len, plain, sizeof(plain)) >= 0 &&
        (colon = strchr(plain, ':'))) {
        *colon = '\0';
        snprintf(out, n, "user %s", plain);
    }
    explicit_bzero(plain, sizeof(plain));
}
