/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * xml.c - the XML of WebDAV: a request body (PROPFIND, PROPPATCH, LOCK)
 * read into a small tree, and what answers write (escaped text, an element
 * written back with its namespaces).
 *
 * expat parses, with namespaces resolved (a name is its namespace URI and
 * its local name: prefixes mean nothing to WebDAV). A DOCTYPE ends the
 * parse at once: without a DTD there is no entity to expand, so no
 * "billion laughs" either; bodies are small anyway (GRACED_OTHER_BODY) and
 * the tree is bounded in depth and in nodes. Everything lives in one arena,
 * freed at once.
 *
 * An element is written back (a dead property's value) with its namespace
 * declared as the default on every element whose namespace differs from
 * its parent's, and attributes in a namespace with prefixes of their own:
 * the text stands alone, whatever surrounds it in an answer.
 */
#include "graced.h"

#include <event2/buffer.h>
#include <expat.h>
#include <stdlib.h>
#include <string.h>

#define XML_MAX_DEPTH 32
#define XML_MAX_NODES 4096
#define NS_SEP '\x01' /* no XML 1.0 text can hold it: never part of a URI */
#define XML_NS_URI "http://www.w3.org/XML/1998/namespace"

struct block {
    struct block *next;
    size_t used, size;
    char data[];
};

struct graced_xml_doc {
    struct block *blocks;
    struct graced_xml *root, *cur, *last_text;
    int depth, nodes, bad;
    XML_Parser p;
};

static void *arena(struct graced_xml_doc *d, size_t n)
{
    struct block *b = d->blocks;
    n = (n + 15) & ~(size_t)15;
    if (!b || b->size - b->used < n) {
        size_t size = n > 8192 ? n : 8192;
        if (!(b = malloc(sizeof(*b) + size)))
            return NULL;
        b->size = size;
        b->used = 0;
        b->next = d->blocks;
        d->blocks = b;
    }
    b->used += n;
    return memset(b->data + b->used - n, 0, n);
}

static char *dup_n(struct graced_xml_doc *d, const char *s, size_t n)
{
    char *c = arena(d, n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

/* "uri\1local" (or "local": no namespace) into ns and name */
static int split(struct graced_xml_doc *d, const char *full, const char **ns, const char **name)
{
    const char *sep = strchr(full, NS_SEP);
    *ns = sep ? dup_n(d, full, (size_t)(sep - full)) : "";
    *name = dup_n(d, sep ? sep + 1 : full, strlen(sep ? sep + 1 : full));
    return *ns && *name ? 0 : -1;
}

static void stop(struct graced_xml_doc *d)
{
    d->bad = 1;
    XML_StopParser(d->p, XML_FALSE);
}

static struct graced_xml *add_node(struct graced_xml_doc *d)
{
    struct graced_xml *x, **at;
    if (++d->nodes > XML_MAX_NODES || !(x = arena(d, sizeof(*x)))) {
        stop(d);
        return NULL;
    }
    x->parent = d->cur;
    if (d->cur) {
        for (at = &d->cur->child; *at; at = &(*at)->next)
            ;
        *at = x;
    }
    return x;
}

static void on_start(void *arg, const XML_Char *name, const XML_Char **atts)
{
    struct graced_xml_doc *d = arg;
    struct graced_xml *x;
    size_t n = 0;
    if (d->bad)
        return;
    if (++d->depth > XML_MAX_DEPTH || (d->root && !d->cur) || !(x = add_node(d))) {
        stop(d);
        return;
    }
    if (split(d, name, &x->ns, &x->name) < 0) {
        stop(d);
        return;
    }
    while (atts[n])
        n += 2;
    if (!(x->attrs = arena(d, (n / 2 * 3 + 1) * sizeof(char *)))) {
        stop(d);
        return;
    }
    for (size_t i = 0, o = 0; i < n; i += 2, o += 3)
        if (split(d, atts[i], &x->attrs[o], &x->attrs[o + 1]) < 0 ||
            !(x->attrs[o + 2] = dup_n(d, atts[i + 1], strlen(atts[i + 1])))) {
            stop(d);
            return;
        }
    if (!d->root)
        d->root = x;
    d->cur = x;
    d->last_text = NULL;
}

static void on_end(void *arg, const XML_Char *name)
{
    struct graced_xml_doc *d = arg;
    (void)name;
    if (d->bad)
        return;
    d->depth--;
    d->cur = d->cur->parent;
    d->last_text = NULL;
}

static void on_text(void *arg, const XML_Char *s, int len)
{
    struct graced_xml_doc *d = arg;
    struct graced_xml *t = d->last_text;
    char *joined;
    if (d->bad || !d->cur || len <= 0)
        return;
    if (!t) {
        if (!(t = add_node(d)))
            return;
        t->text = "";
        d->last_text = t;
    }
    /* expat hands text in pieces: joined (the body is small) */
    if (!(joined = arena(d, strlen(t->text) + (size_t)len + 1))) {
        stop(d);
        return;
    }
    strcpy(joined, t->text);
    memcpy(joined + strlen(t->text), s, (size_t)len);
    t->text = joined;
}

static void on_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
                       const XML_Char *pubid, int internal)
{
    (void)name, (void)sysid, (void)pubid, (void)internal;
    stop(arg);
}

int graced_xml_parse(const char *buf, size_t len, struct graced_xml_doc **out,
                     struct graced_xml **root)
{
    struct graced_xml_doc *d = calloc(1, sizeof(*d));
    int ok;
    *out = NULL;
    *root = NULL;
    if (!d)
        return -1;
    if (!(d->p = XML_ParserCreateNS("UTF-8", NS_SEP))) {
        free(d);
        return -1;
    }
    XML_SetUserData(d->p, d);
    XML_SetElementHandler(d->p, on_start, on_end);
    XML_SetCharacterDataHandler(d->p, on_text);
    XML_SetStartDoctypeDeclHandler(d->p, on_doctype);
    XML_SetParamEntityParsing(d->p, XML_PARAM_ENTITY_PARSING_NEVER);
    ok = XML_Parse(d->p, buf, (int)len, XML_TRUE) == XML_STATUS_OK && !d->bad && d->root;
    XML_ParserFree(d->p);
    d->p = NULL;
    if (!ok) {
        graced_xml_free(d);
        return -1;
    }
    *out = d;
    *root = d->root;
    return 0;
}

void graced_xml_free(struct graced_xml_doc *d)
{
    if (!d)
        return;
    while (d->blocks) {
        struct block *b = d->blocks;
        d->blocks = b->next;
        free(b);
    }
    free(d);
}

int graced_xml_is(const struct graced_xml *x, const char *ns, const char *name)
{
    return x && x->name && !strcmp(x->ns, ns) && !strcmp(x->name, name);
}

struct graced_xml *graced_xml_child(const struct graced_xml *x, const char *ns, const char *name)
{
    for (struct graced_xml *c = x ? x->child : NULL; c; c = c->next)
        if (graced_xml_is(c, ns, name))
            return c;
    return NULL;
}

/* ---------------------------------------------------------------- writing */

void graced_xml_esc(struct evbuffer *out, const char *s, size_t n)
{
    size_t i = 0, run = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        size_t len = 1;
        if (c == '&') rep = "&amp;";
        else if (c == '<') rep = "&lt;";
        else if (c == '>') rep = "&gt;";
        else if (c == '"') rep = "&quot;";
        else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') rep = "\xef\xbf\xbd";
        else if (c == '\r') rep = "&#13;"; /* kept as such, not read back as \n */
        else if (c >= 0x80) {
            len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (i + len > n || !graced_utf8_valid(s + i, len))
                rep = "\xef\xbf\xbd", len = 1;
            /* U+FFFE and U+FFFF are no XML characters either */
            else if (len == 3 && c == 0xef && (unsigned char)s[i + 1] == 0xbf &&
                     (unsigned char)s[i + 2] >= 0xbe)
                rep = "\xef\xbf\xbd";
        }
        if (rep) {
            evbuffer_add(out, s + i - run, run);
            evbuffer_add(out, rep, strlen(rep));
            run = 0;
        } else {
            run += len;
        }
        i += len;
    }
    evbuffer_add(out, s + n - run, run);
}

static void esc(struct evbuffer *out, const char *s)
{
    graced_xml_esc(out, s, strlen(s));
}

static void write_el(struct evbuffer *out, const struct graced_xml *x, const char *parent_ns)
{
    int pre = 0;
    if (!x->name) {
        esc(out, x->text);
        return;
    }
    evbuffer_add_printf(out, "<%s", x->name);
    if (!parent_ns || strcmp(parent_ns, x->ns)) {
        evbuffer_add_printf(out, " xmlns=\"");
        esc(out, x->ns);
        evbuffer_add(out, "\"", 1);
    }
    for (const char **a = x->attrs; a && a[0]; a += 3) {
        if (!a[0][0]) {
            evbuffer_add_printf(out, " %s=\"", a[1]);
        } else if (!strcmp(a[0], XML_NS_URI)) {
            evbuffer_add_printf(out, " xml:%s=\"", a[1]);
        } else {
            evbuffer_add_printf(out, " xmlns:a%d=\"", pre);
            esc(out, a[0]);
            evbuffer_add_printf(out, "\" a%d:%s=\"", pre++, a[1]);
        }
        esc(out, a[2]);
        evbuffer_add(out, "\"", 1);
    }
    if (!x->child) {
        evbuffer_add(out, "/>", 2);
        return;
    }
    evbuffer_add(out, ">", 1);
    for (const struct graced_xml *c = x->child; c; c = c->next)
        write_el(out, c, x->ns);
    evbuffer_add_printf(out, "</%s>", x->name);
}

void graced_xml_write(struct evbuffer *out, const struct graced_xml *x)
{
    write_el(out, x, NULL);
}
