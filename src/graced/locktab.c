/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * locktab.c - WebDAV's write locks, one table for every worker.
 *
 * A lock must be seen by whichever worker the next request lands on, so
 * the table is an anonymous MAP_SHARED mapping made before the workers are
 * forked (as metrics.c's counters are), guarded by a process-shared, robust
 * mutex: a worker that dies holding it leaves it to the next one, which
 * marks it consistent (a slot is published by its expiry, written last).
 * Nothing blocks under the mutex: no I/O, no allocation.
 *
 * --dav-locks slots (a full table answers 503); a lock ends at its timeout
 * (capped by --dav-lock-timeout; "Infinite" is the cap), by UNLOCK, or with
 * its resource (DELETE, MOVE). Expired slots are free: no sweep is needed.
 * Times are CLOCK_MONOTONIC, one clock for all processes of the machine.
 * Not shared: other instances of a fleet (another host, another graced on
 * the same folder) see none of these locks (docs/graced.8 says so).
 *
 * A lock is rooted at a path ("a/b", "" for the top); depth infinity
 * covers everything below it too. Tokens are "urn:uuid:" and 122 random
 * bits.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct slot {
    int64_t expires_ms; /* 0: free (or expired once past) */
    int64_t timeout_s;
    int shared, infinite;
    char token[GRACED_LOCK_TOKEN];
    char owner[GRACED_LOCK_OWNER];
    char root[GRACED_LOCK_PATH];
};

struct graced_locktab {
    pthread_mutex_t mu;
    int nslots;
    int active; /* slots in use, maybe expired: 0 lets checks skip the table */
    struct slot slot[];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int graced_locktab_init(struct graced *g)
{
    size_t size = sizeof(struct graced_locktab) + (size_t)g->o.dav_locks * sizeof(struct slot);
    pthread_mutexattr_t ma;
    struct graced_locktab *t;
    if (!g->o.upload_dir)
        return 0; /* no writes: no locks */
    t = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED) {
        fprintf(stderr, "graced: the WebDAV lock table (%zu bytes): %s\n", size, strerror(errno));
        return -1;
    }
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&t->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    t->nslots = (int)g->o.dav_locks;
    g->locks = t;
    return 0;
}

static void lock_table(struct graced_locktab *t)
{
    if (pthread_mutex_lock(&t->mu) == EOWNERDEAD)
        pthread_mutex_consistent(&t->mu); /* a worker died in here: slots are whole */
}

static void unlock_table(struct graced_locktab *t)
{
    pthread_mutex_unlock(&t->mu);
}

static int live(const struct slot *s, int64_t now)
{
    return s->expires_ms > now;
}

/* Under the mutex: is the slot free? An expired lock is freed here. */
static int reap(struct graced_locktab *t, struct slot *s, int64_t now)
{
    if (s->expires_ms == 0)
        return 1;
    if (s->expires_ms > now)
        return 0;
    s->expires_ms = 0;
    t->active--;
    return 1;
}

/* Does a lock rooted at root (infinite or not) cover path? */
static int covers(const struct slot *s, const char *path)
{
    size_t n = strlen(s->root);
    if (!strcmp(s->root, path))
        return 1;
    if (!s->infinite)
        return 0;
    return n == 0 || (!strncmp(s->root, path, n) && path[n] == '/');
}

/* Is the lock's root strictly below path? */
static int below(const struct slot *s, const char *path)
{
    size_t n = strlen(path);
    if (!strcmp(s->root, path))
        return 0;
    return n == 0 ? s->root[0] != '\0' : !strncmp(s->root, path, n) && s->root[n] == '/';
}

static void view(const struct slot *s, int64_t now, struct graced_lock *l)
{
    l->token = s->token;
    l->owner = s->owner;
    l->root = s->root;
    l->shared = s->shared;
    l->infinite = s->infinite;
    l->timeout_s = s->timeout_s;
    l->left_s = (s->expires_ms - now + 999) / 1000;
}

int graced_locktab_active(const struct graced *g)
{
    return g->locks && __atomic_load_n(&g->locks->active, __ATOMIC_RELAXED) > 0;
}

int graced_locktab_find(struct graced *g, const char *path, unsigned what,
                        int (*fn)(const struct graced_lock *l, void *arg), void *arg)
{
    struct graced_locktab *t = g->locks;
    int64_t now = now_ms();
    int n = 0, stop = 0;
    if (!graced_locktab_active(g))
        return 0;
    lock_table(t);
    for (int i = 0; i < t->nslots && !stop; i++) {
        struct slot *s = &t->slot[i];
        struct graced_lock l;
        if (reap(t, s, now))
            continue;
        if (!(((what & GRACED_LOCK_SELF) && covers(s, path)) ||
              ((what & GRACED_LOCK_BELOW) && below(s, path))))
            continue;
        n++;
        if (fn) {
            view(s, now, &l);
            stop = fn(&l, arg);
        }
    }
    unlock_table(t);
    return n;
}

static void new_token(char *out)
{
    unsigned char b[16];
    struct timespec ts;
    if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
        clock_gettime(CLOCK_REALTIME, &ts); /* no entropy yet: unique, not secret */
        memcpy(b, &ts, sizeof(ts) < sizeof(b) ? sizeof(ts) : sizeof(b));
        b[15] ^= (unsigned char)getpid();
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant */
    snprintf(out, GRACED_LOCK_TOKEN,
             "urn:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int graced_locktab_add(struct graced *g, const char *path, int shared, int infinite,
                       int64_t timeout_s, const char *owner, char *token)
{
    struct graced_locktab *t = g->locks;
    int64_t now = now_ms();
    struct slot *free_slot = NULL;
    if (!t)
        return -ENOSYS;
    if (strlen(path) >= GRACED_LOCK_PATH || strlen(owner) >= GRACED_LOCK_OWNER)
        return -ENAMETOOLONG;
    lock_table(t);
    for (int i = 0; i < t->nslots; i++) {
        struct slot *s = &t->slot[i];
        if (reap(t, s, now)) {
            if (!free_slot)
                free_slot = s;
            continue;
        }
        /* exclusive conflicts with any lock on it, shared with exclusive ones */
        if ((covers(s, path) || (infinite && below(s, path))) && (!shared || !s->shared)) {
            unlock_table(t);
            return -EBUSY;
        }
    }
    if (!free_slot) {
        unlock_table(t);
        return -ENOSPC;
    }
    t->active++;
    free_slot->shared = shared;
    free_slot->infinite = infinite;
    free_slot->timeout_s = timeout_s;
    snprintf(free_slot->root, sizeof(free_slot->root), "%s", path);
    snprintf(free_slot->owner, sizeof(free_slot->owner), "%s", owner);
    new_token(free_slot->token);
    strcpy(token, free_slot->token);
    __atomic_store_n(&free_slot->expires_ms, now + timeout_s * 1000, __ATOMIC_RELEASE);
    unlock_table(t);
    return 0;
}

/* The live lock with this token that covers path (NULL: any path). */
static struct slot *by_token(struct graced_locktab *t, const char *path, const char *token,
                             size_t len, int64_t now)
{
    for (int i = 0; i < t->nslots; i++) {
        struct slot *s = &t->slot[i];
        if (live(s, now) && strlen(s->token) == len && !memcmp(s->token, token, len) &&
            (!path || covers(s, path)))
            return s;
    }
    return NULL;
}

int graced_locktab_refresh(struct graced *g, const char *path, const char *token, size_t len,
                           int64_t timeout_s, int (*fn)(const struct graced_lock *l, void *arg),
                           void *arg)
{
    struct graced_locktab *t = g->locks;
    int64_t now = now_ms();
    struct slot *s;
    struct graced_lock l;
    if (!t)
        return -ENOENT;
    lock_table(t);
    if (!(s = by_token(t, path, token, len, now))) {
        unlock_table(t);
        return -ENOENT;
    }
    s->timeout_s = timeout_s;
    s->expires_ms = now + timeout_s * 1000;
    view(s, now, &l);
    fn(&l, arg);
    unlock_table(t);
    return 0;
}

int graced_locktab_remove(struct graced *g, const char *path, const char *token, size_t len)
{
    struct graced_locktab *t = g->locks;
    struct slot *s;
    if (!t)
        return -ENOENT;
    lock_table(t);
    if (!(s = by_token(t, path, token, len, now_ms()))) {
        unlock_table(t);
        return -ENOENT;
    }
    s->expires_ms = 0;
    t->active--;
    unlock_table(t);
    return 0;
}

int graced_locktab_holds(struct graced *g, const char *path, const char *token, size_t len)
{
    struct graced_locktab *t = g->locks;
    int found;
    if (!graced_locktab_active(g))
        return 0;
    lock_table(t);
    found = by_token(t, path, token, len, now_ms()) != NULL;
    unlock_table(t);
    return found;
}

void graced_locktab_drop(struct graced *g, const char *path)
{
    struct graced_locktab *t = g->locks;
    if (!graced_locktab_active(g))
        return;
    lock_table(t);
    for (int i = 0; i < t->nslots; i++) {
        struct slot *s = &t->slot[i];
        if (s->expires_ms && (!strcmp(s->root, path) || below(s, path))) {
            s->expires_ms = 0;
            t->active--;
        }
    }
    unlock_table(t);
}
