/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * perms.c - who may read and write where: the rules after the password of
 * a --users-file line, and graced_may(), the one question every handler
 * asks of them.
 *
 *   alice:HASH:rw                  the whole tree (as before)
 *   bob:HASH:r
 *   carol:HASH:/photos:rw,/:r      below /photos read and write, elsewhere read
 *   dave:HASH:/inbox:rw,/inbox/old:-
 *
 * A rule is a URL path (percent-escapes allowed: %2C for a comma, %3A for a
 * colon) and r, rw or - (nothing). The most specific rule wins: the one
 * whose path is the longest prefix of the request's path, by whole
 * segments (/photos covers /photos/a.jpg, not /photos2); no rule covering
 * a path means nothing there. Reads need a rule only with --private; a
 * folder on the way to one a user may read (/ and /a for a rule /a/b:r) may
 * be listed, and its listing shows only what leads there.
 *
 * The table is keyed by name (sorted, binary search), so graced_may() is
 * cheap enough for every entry of a listing or a zip. auth.c fills it when
 * it reads the users file and swaps it whole on a reload.
 */
#define _GNU_SOURCE
#include "graced.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct rule {
    char *path;  /* decoded, relative: "photos/2024", "" for the top */
    size_t len;
    int may;     /* GRACED_MAY_READ | GRACED_MAY_WRITE, or 0 */
};

struct graced_rules {
    struct rule *r; /* longest path first: the first that covers a path wins */
    size_t n;
};

struct person {
    char *name;
    struct graced_rules rules;
};

struct graced_perms {
    struct person *p; /* sorted by name once complete */
    size_t n, cap;
    int sorted;
};

/* the identity of a request that came with the bearer token */
const char graced_who_token[] = "";

static void rules_clear(struct graced_rules *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        free(rs->r[i].path);
    free(rs->r);
    rs->r = NULL;
    rs->n = 0;
}

static int by_length(const void *a, const void *b)
{
    const struct rule *x = a, *y = b;
    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

/* One rule's path, made the relative name graced_path_of() would make of
 * that URL path: 0, or -1 with why filled. */
static int rule_path(const char *in, size_t n, char **out, char *why, size_t whylen)
{
    char *raw = strndup(in, n), *norm = malloc(n + 2), *rel = malloc(n + 2);
    int st = -1, trailing;
    if (!raw || !norm || !rel) {
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    if (raw[0] != '/' || grace_path_normalize(raw, n, norm, n + 2) < 0 ||
        graced_path_decode(raw, norm, rel, n + 2, GRACED_PATH_HIDDEN_OK, &trailing)) {
        snprintf(why, whylen, "the rule's path \"%s\" is not a path like /photos "
                 "(percent-escapes allowed, no ..)", raw);
        goto done;
    }
    *out = rel;
    rel = NULL;
    st = 0;
done:
    free(raw);
    free(norm);
    free(rel);
    return st;
}

/*
 * "r", "rw", or rules "PATH:r|rw|-" separated by commas: 0, or -1 with
 * why filled (nothing kept).
 */
static int rules_parse(const char *spec, struct graced_rules *rs, char *why, size_t whylen)
{
    const char *p = spec;
    rs->r = NULL;
    rs->n = 0;
    if (!strcmp(spec, "r") || !strcmp(spec, "rw")) {
        if (!(rs->r = calloc(1, sizeof(*rs->r))) || !(rs->r[0].path = strdup(""))) {
            free(rs->r);
            rs->r = NULL;
            snprintf(why, whylen, "out of memory");
            return -1;
        }
        rs->r[0].may = GRACED_MAY_READ | (spec[1] ? GRACED_MAY_WRITE : 0);
        rs->n = 1;
        return 0;
    }
    if (spec[0] != '/') {
        snprintf(why, whylen, "permissions must be r, rw, or rules like /photos:rw,/:r");
        return -1;
    }
    while (*p) {
        const char *end = p + strcspn(p, ","), *colon = end;
        struct rule *nr;
        char *path;
        int may;
        while (colon > p && *colon != ':')
            colon--;
        if (colon == p || *colon != ':') {
            snprintf(why, whylen, "a rule is PATH:r, PATH:rw or PATH:- (\"%.*s\")",
                     (int)(end - p), p);
            goto fail;
        }
        if ((size_t)(end - colon) == 2 && colon[1] == 'r')
            may = GRACED_MAY_READ;
        else if ((size_t)(end - colon) == 3 && !strncmp(colon + 1, "rw", 2))
            may = GRACED_MAY_READ | GRACED_MAY_WRITE;
        else if ((size_t)(end - colon) == 2 && colon[1] == '-')
            may = 0;
        else {
            snprintf(why, whylen, "a rule's permission is r, rw or - (\"%.*s\")",
                     (int)(end - p), p);
            goto fail;
        }
        if (rule_path(p, (size_t)(colon - p), &path, why, whylen) < 0)
            goto fail;
        for (size_t i = 0; i < rs->n; i++)
            if (!strcmp(rs->r[i].path, path)) {
                snprintf(why, whylen, "two rules for /%s", path);
                free(path);
                goto fail;
            }
        if (!(nr = realloc(rs->r, (rs->n + 1) * sizeof(*nr)))) {
            free(path);
            snprintf(why, whylen, "out of memory");
            goto fail;
        }
        rs->r = nr;
        rs->r[rs->n].path = path;
        rs->r[rs->n].len = strlen(path);
        rs->r[rs->n].may = may;
        rs->n++;
        p = *end ? end + 1 : end;
        if (*end && !*p) {
            snprintf(why, whylen, "a comma with no rule after it");
            goto fail;
        }
    }
    qsort(rs->r, rs->n, sizeof(*rs->r), by_length);
    return 0;
fail:
    rules_clear(rs);
    return -1;
}

/* Does rule path p (len n) cover rel: rel itself or below it? */
static int covers(const char *p, size_t n, const char *rel)
{
    return n == 0 || (!strncmp(rel, p, n) && (rel[n] == '\0' || rel[n] == '/'));
}

static int rules_at(const struct graced_rules *rs, const char *rel)
{
    if (!rel) { /* anywhere: every right some rule gives */
        int may = 0;
        for (size_t i = 0; i < rs->n; i++)
            may |= rs->r[i].may;
        return may;
    }
    for (size_t i = 0; i < rs->n; i++) /* longest first */
        if (covers(rs->r[i].path, rs->r[i].len, rel))
            return rs->r[i].may;
    return 0;
}

/* Is rel a folder strictly on the way to a path some rule lets read? */
static int rules_on_the_way(const struct graced_rules *rs, const char *rel)
{
    size_t n = strlen(rel);
    for (size_t i = 0; i < rs->n; i++)
        if ((rs->r[i].may & GRACED_MAY_READ) && rs->r[i].len > n &&
            (n == 0 || (!strncmp(rs->r[i].path, rel, n) && rs->r[i].path[n] == '/')))
            return 1;
    return 0;
}

struct graced_perms *graced_perms_new(void)
{
    return calloc(1, sizeof(struct graced_perms));
}

void graced_perms_free(struct graced_perms *pm)
{
    if (!pm)
        return;
    for (size_t i = 0; i < pm->n; i++) {
        free(pm->p[i].name);
        rules_clear(&pm->p[i].rules);
    }
    free(pm->p);
    free(pm);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct person *)a)->name, ((const struct person *)b)->name);
}

int graced_perms_add(struct graced_perms *pm, const char *name, const char *spec, char *why,
                     size_t whylen)
{
    struct graced_rules rs;
    if (rules_parse(spec, &rs, why, whylen) < 0)
        return -1;
    /* a name given twice: the later line wins, as auth.c finds the last */
    for (size_t i = 0; i < pm->n; i++)
        if (!strcmp(pm->p[i].name, name)) {
            rules_clear(&pm->p[i].rules);
            pm->p[i].rules = rs;
            return 0;
        }
    if (pm->n == pm->cap) {
        size_t cap = pm->cap ? pm->cap * 2 : 16;
        struct person *np = realloc(pm->p, cap * sizeof(*np));
        if (!np)
            goto oom;
        pm->p = np;
        pm->cap = cap;
    }
    if (!(pm->p[pm->n].name = strdup(name)))
        goto oom;
    pm->p[pm->n].rules = rs;
    pm->n++;
    pm->sorted = 0;
    return 0;
oom:
    rules_clear(&rs);
    snprintf(why, whylen, "out of memory");
    return -1;
}

static const struct graced_rules *rules_of(const struct graced_perms *pm, const char *name)
{
    struct person key = {.name = (char *)name};
    const struct person *p;
    if (!pm)
        return NULL;
    if (!pm->sorted) {
        qsort(pm->p, pm->n, sizeof(*pm->p), by_name);
        ((struct graced_perms *)pm)->sorted = 1;
    }
    p = bsearch(&key, pm->p, pm->n, sizeof(*pm->p), by_name);
    return p ? &p->rules : NULL;
}

/* What decides: the options that matter, who (a user's rules, or none),
 * and the path. */
struct basis {
    int private_read, users_file, uploads, token_len;
};

static void basis_of(const struct graced *g, struct basis *b)
{
    b->private_read = g->o.private_read;
    b->users_file = g->o.users_file != NULL;
    b->uploads = g->o.upload_dir != NULL;
    b->token_len = g->token_len != 0;
}

/* kind: 0 nobody, 1 the token, 2 a user (rs: theirs, NULL if unknown) */
static int decide(const struct basis *b, int kind, const struct graced_rules *rs,
                  const char *path, int want)
{
    int may = 0;
    if (kind < 2) {
        /* the token holder writes; anyone reads unless --private; without
         * --users-file or a token the upload tree is open */
        if (!b->private_read || !b->users_file || kind == 1)
            may |= GRACED_MAY_READ;
        if (kind == 1 || (!b->users_file && !b->token_len))
            may |= GRACED_MAY_WRITE;
    } else if (rs) {
        may = rules_at(rs, path);
        if (!b->private_read)
            may |= GRACED_MAY_READ;
        if ((want & GRACED_MAY_PASS) && !(may & GRACED_MAY_READ) && path &&
            rules_on_the_way(rs, path))
            may |= GRACED_MAY_READ;
    }
    if (!b->uploads)
        may &= ~GRACED_MAY_WRITE;
    want &= GRACED_MAY_READ | GRACED_MAY_WRITE;
    return (may & want) == want;
}

int graced_may(const struct graced *g, const char *user, const char *path, int want)
{
    struct basis b;
    basis_of(g, &b);
    if (!user || user == graced_who_token || !g->perms)
        return decide(&b, user == graced_who_token, NULL, path, want);
    return decide(&b, 2, rules_of(g->perms, user), path, want);
}

int graced_may_below(const struct graced *g, const char *user, const char *path, int want)
{
    const struct graced_rules *rs;
    struct basis b;
    size_t n = strlen(path);
    if (!graced_may(g, user, path, want))
        return 0;
    if (!user || user == graced_who_token || !g->perms || !(rs = rules_of(g->perms, user)))
        return 1; /* no rules per path: one answer for the whole tree */
    basis_of(g, &b);
    for (size_t i = 0; i < rs->n; i++)
        if (rs->r[i].len > n && (n == 0 || (!strncmp(rs->r[i].path, path, n) &&
                                            rs->r[i].path[n] == '/')) &&
            !decide(&b, 2, rs, rs->r[i].path, want))
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- copies */

struct graced_access {
    struct basis b;
    int kind;
    int known;  /* the user has rules */
    struct graced_rules rules;
};

struct graced_access *graced_access_of(const struct graced *g, const char *user)
{
    struct graced_access *a = calloc(1, sizeof(*a));
    const struct graced_rules *rs;
    if (!a)
        return NULL;
    basis_of(g, &a->b);
    a->kind = !user || user == graced_who_token || !g->perms ? user == graced_who_token : 2;
    if (a->kind < 2 || !(rs = rules_of(g->perms, user)))
        return a;
    a->known = 1;
    if (rs->n && !(a->rules.r = calloc(rs->n, sizeof(*rs->r)))) {
        free(a);
        return NULL;
    }
    for (size_t i = 0; i < rs->n; i++) {
        a->rules.r[i] = rs->r[i];
        if (!(a->rules.r[i].path = strdup(rs->r[i].path))) {
            a->rules.n = i;
            graced_access_free(a);
            return NULL;
        }
    }
    a->rules.n = rs->n;
    return a;
}

int graced_access_may(const struct graced_access *a, const char *path, int want)
{
    return decide(&a->b, a->kind, a->known ? &a->rules : NULL, path, want);
}

void graced_access_free(struct graced_access *a)
{
    if (!a)
        return;
    rules_clear(&a->rules);
    free(a);
}
