/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_dav.c - the pure parts of graced's WebDAV: the If header
 * (ifheader.c) and request bodies read and elements written back (xml.c).
 * Tables of inputs and what each becomes or why it is refused; every input
 * is also fed cut at every length (a prefix parses or is refused, never
 * read past: run under ASan and valgrind by setup.sh), from a copy that
 * ends at its last byte.
 */
#include "graced.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- If */

static const struct {
    const char *in;
    int ok;          /* parsed */
    int nlists, n;   /* lists and conditions */
    const char *tok; /* the first condition's text */
    int not1;        /* the second condition's Not */
    const char *tag; /* the first condition's tag, NULL for none */
} ifs[] = {
    {"(<urn:uuid:a>)", 1, 1, 1, "urn:uuid:a", 0, NULL},
    {"  (<urn:a> [\"e-1\"])  (Not <DAV:no-lock>)", 1, 2, 3, "urn:a", 0, NULL},
    {"(<urn:a>) (Not <DAV:no-lock>)", 1, 2, 2, "urn:a", 1, NULL},
    {"(Not<urn:a> [W/\"e\"])", 1, 1, 2, "urn:a", 0, NULL},
    {"<http://h:1/a b/> (<urn:t>) </q> ([\"e\"])", 1, 2, 2, "urn:t", 0, "http://h:1/a b/"},
    {"</coll/> (<urn:t>) (Not <DAV:no-lock>)", 1, 2, 2, "urn:t", 1, "/coll/"},
    {"([\"x\"])", 1, 1, 1, "\"x\"", 0, NULL},
    {"", 0, 0, 0, NULL, 0, NULL},
    {"()", 0, 0, 0, NULL, 0, NULL},
    {"(<a>", 0, 0, 0, NULL, 0, NULL},
    {"(<>)", 0, 0, 0, NULL, 0, NULL},
    {"([])", 0, 0, 0, NULL, 0, NULL},
    {"(x)", 0, 0, 0, NULL, 0, NULL},
    {"(Nota)", 0, 0, 0, NULL, 0, NULL},
    {"<http://h/p>", 0, 0, 0, NULL, 0, NULL},      /* a tag without a list */
    {"<> (<a>)", 0, 0, 0, NULL, 0, NULL},
    {"(<a>) </t> (<b>)", 0, 0, 0, NULL, 0, NULL},  /* untagged, then tagged */
    {"</t> (<a>) (<b>", 0, 0, 0, NULL, 0, NULL},
    {"(<a>) junk", 0, 0, 0, NULL, 0, NULL},
};

START_TEST(test_if_table)
{
    struct graced_if h;
    int rc = graced_if_parse(ifs[_i].in, &h);
    ck_assert_msg((rc == 0) == ifs[_i].ok, "%s: %d", ifs[_i].in, rc);
    if (!ifs[_i].ok)
        return;
    ck_assert_int_eq(h.nlists, ifs[_i].nlists);
    ck_assert_int_eq(h.n, ifs[_i].n);
    ck_assert_int_eq((int)h.c[0].len, (int)strlen(ifs[_i].tok));
    ck_assert(!memcmp(h.c[0].s, ifs[_i].tok, h.c[0].len));
    if (h.n > 1)
        ck_assert_int_eq(h.c[1].not, ifs[_i].not1);
    if (ifs[_i].tag) {
        ck_assert_int_eq((int)h.c[0].taglen, (int)strlen(ifs[_i].tag));
        ck_assert(!memcmp(h.c[0].tag, ifs[_i].tag, h.c[0].taglen));
    } else {
        ck_assert_ptr_null(h.c[0].tag);
    }
}
END_TEST

/* Every prefix of every input: parsed or refused, never read past its end. */
START_TEST(test_if_prefixes)
{
    const char *in = ifs[_i].in;
    size_t n = strlen(in);
    for (size_t k = 0; k <= n; k++) {
        char *cut = malloc(k + 1);
        struct graced_if h;
        memcpy(cut, in, k);
        cut[k] = '\0';
        graced_if_parse(cut, &h);
        free(cut);
    }
}
END_TEST

START_TEST(test_if_bounded)
{
    char buf[64 * 12 + 40];
    struct graced_if h;
    size_t o = 0;
    for (int i = 0; i < GRACED_IF_MAX; i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "(<u:%d>)", i);
    ck_assert_int_eq(graced_if_parse(buf, &h), 0);
    ck_assert_int_eq(h.n, GRACED_IF_MAX);
    snprintf(buf + o, sizeof(buf) - o, "(<u:x>)");
    ck_assert_int_eq(graced_if_parse(buf, &h), -1); /* one more: refused, not cut */
}
END_TEST

/* ---------------------------------------------------------------- XML */

static const struct {
    const char *in;
    int ok;
    const char *ns, *name;   /* the root */
    const char *written;     /* graced_xml_write of the root's first child element */
} xmls[] = {
    {"<D:propfind xmlns:D='DAV:'><D:allprop/></D:propfind>", 1, "DAV:", "propfind",
     "<allprop xmlns=\"DAV:\"/>"},
    {"<?xml version='1.0' encoding='utf-8'?><propfind xmlns='DAV:'> <prop><x xmlns=''/></prop>"
     "</propfind>", 1, "DAV:", "propfind", "<prop xmlns=\"DAV:\"><x xmlns=\"\"/></prop>"},
    /* a dead property's value: namespaces declared where they change */
    {"<u xmlns='DAV:'><t:v xmlns:t='http://e/'><foo xmlns='http://bar'/>a&amp;b&lt;</t:v></u>", 1,
     "DAV:", "u", "<v xmlns=\"http://e/\"><foo xmlns=\"http://bar\"/>a&amp;b&lt;</v>"},
    {"<u><v a='1' xml:lang='fr' xmlns:p='urn:p' p:q='&quot;'>&#65536;</v></u>", 1, "", "u",
     "<v xmlns=\"\" a=\"1\" xml:lang=\"fr\" xmlns:a0=\"urn:p\" a0:q=\"&quot;\">\xf0\x90\x80\x80</v>"},
    {"<u><v>line\r\nnext</v></u>", 1, "", "u", "<v xmlns=\"\">line\nnext</v>"},
    /* refused */
    {"<foo>", 0, NULL, NULL, NULL},
    {"", 0, NULL, NULL, NULL},
    {"<D:propfind xmlns:D='DAV:'><D:prop><bar:foo xmlns:bar=''/></D:prop></D:propfind>", 0, NULL,
     NULL, NULL},
    {"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY b 'bbbb'>]><a>&b;</a>", 0, NULL, NULL, NULL},
    {"<!DOCTYPE a SYSTEM 'file:///etc/passwd'><a/>", 0, NULL, NULL, NULL},
    {"<a>&undefined;</a>", 0, NULL, NULL, NULL},
    {"<a/><b/>", 0, NULL, NULL, NULL},
    {"<a>\x01</a>", 0, NULL, NULL, NULL},
};

START_TEST(test_xml_table)
{
    struct graced_xml_doc *doc;
    struct graced_xml *root, *c;
    struct evbuffer *b;
    size_t n = strlen(xmls[_i].in);
    char *copy = malloc(n + 1), *w;
    int rc;
    memcpy(copy, xmls[_i].in, n + 1);
    rc = graced_xml_parse(copy, n, &doc, &root);
    ck_assert_msg((rc == 0) == xmls[_i].ok, "%s: %d", xmls[_i].in, rc);
    if (rc == 0) {
        ck_assert_str_eq(root->ns, xmls[_i].ns);
        ck_assert_str_eq(root->name, xmls[_i].name);
        for (c = root->child; c && !c->name; c = c->next)
            ;
        ck_assert_ptr_nonnull(c);
        b = evbuffer_new();
        graced_xml_write(b, c);
        evbuffer_add(b, "", 1);
        w = (char *)evbuffer_pullup(b, -1);
        ck_assert_str_eq(w, xmls[_i].written);
        /* what is written reads back as the same */
        {
            struct graced_xml_doc *d2;
            struct graced_xml *r2;
            struct evbuffer *b2 = evbuffer_new();
            ck_assert_int_eq(graced_xml_parse(w, strlen(w), &d2, &r2), 0);
            graced_xml_write(b2, r2);
            evbuffer_add(b2, "", 1);
            ck_assert_str_eq((char *)evbuffer_pullup(b2, -1), w);
            evbuffer_free(b2);
            graced_xml_free(d2);
        }
        evbuffer_free(b);
        graced_xml_free(doc);
    }
    for (size_t k = 0; k < n; k++) /* every cut: refused or parsed, never past */
        if (graced_xml_parse(copy, k, &doc, &root) == 0)
            graced_xml_free(doc);
    free(copy);
}
END_TEST

START_TEST(test_xml_bounds)
{
    char *deep = malloc(40 * 7 + 1), *many = malloc(5000 * 4 + 16);
    struct graced_xml_doc *doc;
    struct graced_xml *root;
    size_t o = 0;
    for (int i = 0; i < 33; i++)
        o += (size_t)sprintf(deep + o, "<a>");
    for (int i = 0; i < 33; i++)
        o += (size_t)sprintf(deep + o, "</a>");
    ck_assert_int_eq(graced_xml_parse(deep, o, &doc, &root), -1); /* 33 levels */
    o = (size_t)sprintf(many, "<r>");
    for (int i = 0; i < 4100; i++)
        o += (size_t)sprintf(many + o, "<b/>");
    o += (size_t)sprintf(many + o, "</r>");
    ck_assert_int_eq(graced_xml_parse(many, o, &doc, &root), -1); /* 4101 nodes */
    free(deep);
    free(many);
}
END_TEST

START_TEST(test_xml_escape)
{
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } e[] = {
        {"a<b>&\"c'", 8, "a&lt;b&gt;&amp;&quot;c'"},
        {"x\x01y", 3, "x\xef\xbf\xbdy"},        /* no control bytes in XML */
        {"\xff\xc3", 2, "\xef\xbf\xbd\xef\xbf\xbd"}, /* not UTF-8 */
        {"\xc3\xa9\xf0\x9f\x98\x80", 6, "\xc3\xa9\xf0\x9f\x98\x80"},
        {"\xef\xbf\xbe", 3, "\xef\xbf\xbd"}, /* U+FFFE is no XML character */
        {"a\rb", 3, "a&#13;b"},
    };
    for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++) {
        struct evbuffer *b = evbuffer_new();
        graced_xml_esc(b, e[i].in, e[i].n);
        evbuffer_add(b, "", 1);
        ck_assert_str_eq((char *)evbuffer_pullup(b, -1), e[i].out);
        evbuffer_free(b);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dav");
    TCase *t = tcase_create("if");
    int failed;
    SRunner *r;
    tcase_add_loop_test(t, test_if_table, 0, sizeof(ifs) / sizeof(ifs[0]));
    tcase_add_loop_test(t, test_if_prefixes, 0, sizeof(ifs) / sizeof(ifs[0]));
    tcase_add_test(t, test_if_bounded);
    suite_add_tcase(s, t);
    t = tcase_create("xml");
    tcase_add_loop_test(t, test_xml_table, 0, sizeof(xmls) / sizeof(xmls[0]));
    tcase_add_test(t, test_xml_bounds);
    tcase_add_test(t, test_xml_escape);
    suite_add_tcase(s, t);
    r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
