/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tls.c - TLS with OpenSSL 3: the context (certificates chosen by SNI, ALPN,
 * rotating session ticket keys, reload) and the TLS transport behind the
 * socket seam (transport.h). It knows no connection and no request: the
 * engine asks the table (ready, version, sni, alpn).
 *
 * The transport reads and writes records on the socket itself (SSL_set_fd):
 * no extra copy. The close is the point of this project, over TLS too:
 *   - shutdown: the response has left; send close_notify, then the FIN;
 *   - discard: after that the TLS session is over for us, so what the
 *     client still sends is dropped on the raw socket (MSG_TRUNC), never
 *     decrypted (but for what OpenSSL already held); the records' headers
 *     are read so that the body's plaintext is counted (the linger's "body
 *     still due"); the plain linger bounds apply unchanged;
 *   - a client's close_notify is an ordinary end of stream, answered with
 *     ours when we close.
 * OpenSSL's per-connection buffers are released while idle
 * (SSL_MODE_RELEASE_BUFFERS).
 */
#include "transport.h"

#include "core.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef GRACE_HAVE_TLS

/* Built without OpenSSL: every entry point says so; no connection ever
 * uses this transport (its open() fails). */
static int notls_open(struct grace_sock *s, struct grace_tls *ctx, const unsigned char *alpn,
                      size_t alpn_len)
{
    return -ENOTSUP;
}
const struct grace_transport grace__tls = {.open = notls_open, .secure = 1};

struct grace_tls *grace_tls_new(void)
{
    errno = ENOTSUP;
    return NULL;
}
int grace_tls_add_cert(struct grace_tls *tls, const char *chain_file, const char *key_file)
{
    return -ENOTSUP;
}
int grace_tls_reload(struct grace_tls *tls)
{
    return -ENOTSUP;
}
const char *grace_tls_last_error(const struct grace_tls *tls)
{
    return "built without TLS";
}
void grace_tls_free(struct grace_tls *tls)
{
}
void grace__tls_ref(struct grace_tls *tls)
{
}

#else

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <openssl/core_names.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Session ticket keys: a new one every 12 hours; tickets made with the one
 * before stay valid (and are renewed) for another 12. */
#define TICKET_KEY_LIFETIME (12 * 3600)
/* Bytes one write call encrypts at most before yielding to the loop. */
#define TLS_WRITE_BUDGET (1u << 20)
/* A plaintext record at most: one SSL_write per record. */
#define TLS_RECORD 16384

struct tls_cert {
    char *chain, *key;
    SSL_CTX *ctx;
    char **names;  /* DNS names (lower case; "*.x" for a wildcard) */
    size_t nnames;
};

struct ticket_key {
    unsigned char name[16], aes[32], hmac[32];
    time_t created;
};

struct grace_tls {
    int refs;
    struct tls_cert *certs;
    size_t ncerts;
    struct ticket_key keys[2]; /* current, previous */
    int nkeys;
    char err[256];
};

/* What a TLS connection keeps: the SSL object, whether a read has to wait
 * for the socket to take our handshake bytes, and whether the last read
 * stopped at its limit (records OpenSSL read ahead may be whole). */
struct tls_conn {
    SSL *ssl;
    const unsigned char *alpn; /* the protocols we offer (the server's) */
    size_t alpn_len;
    unsigned handshaken : 1, read_wants_write : 1, failed : 1, renegotiating : 1, more : 1,
        discarding : 1, framed : 1;
    /* discarding raw (tls_discard): the record being dropped */
    unsigned char hdr[5], hdr_have;
    uint32_t rec_len, rec_left;
};

static void set_err(struct grace_tls *tls, const char *what, const char *file)
{
    unsigned long e = ERR_peek_last_error();
    char reason[160] = "";
    if (e)
        ERR_error_string_n(e, reason, sizeof(reason));
    snprintf(tls->err, sizeof(tls->err), "%s%s%s%s%s", what, file ? " " : "", file ? file : "",
             *reason ? ": " : "", reason);
    ERR_clear_error();
}

/* ---------------------------------------------------------------- tickets */

static int new_ticket_key(struct ticket_key *k)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
        return -1;
    k->created = time(NULL);
    return 0;
}

static void rotate_keys(struct grace_tls *tls)
{
    time_t now = time(NULL);
    if (tls->nkeys && now - tls->keys[0].created < TICKET_KEY_LIFETIME)
        return;
    struct ticket_key k;
    if (new_ticket_key(&k) < 0)
        return; /* keep the old key rather than none */
    tls->keys[1] = tls->keys[0];
    tls->keys[0] = k;
    if (tls->nkeys < 2)
        tls->nkeys++;
}

static int set_mac(EVP_MAC_CTX *hctx, unsigned char *key)
{
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"sha256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params);
}

/* OpenSSL's ticket key callback: 1 key found, 2 found but renew, 0 none. */
static int ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    struct grace_tls *tls = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));

    if (enc) {
        rotate_keys(tls);
        if (!tls->nkeys || RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(key_name, tls->keys[0].name, 16);
        if (!EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, tls->keys[0].aes, iv) ||
            !set_mac(hctx, tls->keys[0].hmac))
            return -1;
        return 1;
    }
    for (int i = 0; i < tls->nkeys; i++) {
        struct ticket_key *k = &tls->keys[i];
        if (memcmp(key_name, k->name, 16))
            continue;
        if (time(NULL) - k->created >= 2 * TICKET_KEY_LIFETIME)
            return 0;
        if (!set_mac(hctx, k->hmac) || !EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, k->aes, iv))
            return -1;
        /* 2: issue a fresh ticket. For TLS 1.3 always: clients use a ticket
         * once (browsers) or keep the newest (wrk), so a resumption that
         * gives none makes the next connection a full handshake */
        return i == 0 && SSL_version(s) < TLS1_3_VERSION ? 1 : 2;
    }
    return 0;
}

/* ---------------------------------------------------------------- SNI, ALPN */

static int name_matches(const char *pattern, const char *name)
{
    if (pattern[0] == '*' && pattern[1] == '.') { /* one label */
        const char *dot = strchr(name, '.');
        return dot && dot != name && !strcasecmp(dot + 1, pattern + 2);
    }
    return !strcasecmp(pattern, name);
}

static int sni_cb(SSL *s, int *alert, void *arg)
{
    struct grace_tls *tls = arg;
    const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);

    if (!name)
        return SSL_TLSEXT_ERR_OK; /* the default certificate */
    for (size_t i = 1; i < tls->ncerts; i++)
        for (size_t j = 0; j < tls->certs[i].nnames; j++)
            if (name_matches(tls->certs[i].names[j], name)) {
                SSL_set_SSL_CTX(s, tls->certs[i].ctx);
                return SSL_TLSEXT_ERR_OK;
            }
    return SSL_TLSEXT_ERR_OK; /* unknown names get the default too */
}

/* ALPN: the first of our offer (the connection's) the client offers too, or a
 * fatal no_application_protocol alert (RFC 7301) for a client that offers
 * only protocols we do not speak. */
static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct tls_conn *t = SSL_get_app_data(s);
    unsigned char *sel;
    if (!t || !t->alpn_len ||
        SSL_select_next_proto(&sel, outlen, t->alpn, (unsigned)t->alpn_len, in, inlen) !=
            OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* A TLS 1.2 client that starts a new handshake on an established
 * connection (renegotiation): refused by OpenSSL (SSL_OP_NO_RENEGOTIATION),
 * and the connection is closed (tls_read). TLS 1.3 post-handshake messages
 * (KeyUpdate) start "handshakes" too: those are fine. */
static void info_cb(const SSL *s, int where, int ret)
{
    struct tls_conn *t = SSL_get_app_data(s);
    if ((where & SSL_CB_HANDSHAKE_START) && t && t->handshaken && SSL_version(s) <= TLS1_2_VERSION)
        t->renegotiating = 1;
}

/* ---------------------------------------------------------------- contexts */

static void cert_names(struct tls_cert *c)
{
    X509 *x = SSL_CTX_get0_certificate(c->ctx);
    GENERAL_NAMES *sans = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
    int n = sans ? sk_GENERAL_NAME_num(sans) : 0;

    c->names = calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; c->names && i < n; i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS)
            c->names[c->nnames++] =
                strndup((const char *)ASN1_STRING_get0_data(g->d.dNSName),
                        (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    if (sans)
        GENERAL_NAMES_free(sans);
    if (c->names && !c->nnames && x) { /* no DNS names: the CN */
        char cn[256];
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
                                      sizeof(cn)) > 0)
            c->names[c->nnames++] = strdup(cn);
    }
}

static SSL_CTX *ctx_new(struct grace_tls *tls, const char *chain, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    static const unsigned char sid[] = "gracehttp";

    if (!ctx) {
        set_err(tls, "SSL_CTX_new", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* forward secrecy and AEAD only for TLS 1.2; TLS 1.3 suites are all fine */
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
    /* we ask for no client certificates: a long chain is an attack */
    SSL_CTX_set_max_cert_list(ctx, 16384);
    /* one read() takes what the socket holds, not a record header and
     * then its body: a full handshake or a request costs half the reads */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20480);
    SSL_CTX_set_app_data(ctx, tls);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, tls);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, tls);
    SSL_CTX_set_info_callback(ctx, info_cb);
    if (SSL_CTX_use_certificate_chain_file(ctx, chain) != 1) {
        set_err(tls, "cannot use certificate chain", chain);
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        set_err(tls, "cannot use private key", key);
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        set_err(tls, "private key does not match certificate", key);
    } else {
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

static void cert_clear(struct tls_cert *c)
{
    for (size_t i = 0; i < c->nnames; i++)
        free(c->names[i]);
    free(c->names);
    SSL_CTX_free(c->ctx);
    free(c->chain);
    free(c->key);
    memset(c, 0, sizeof(*c));
}

static int cert_load(struct grace_tls *tls, struct tls_cert *c, const char *chain, const char *key)
{
    memset(c, 0, sizeof(*c));
    c->chain = strdup(chain);
    c->key = strdup(key);
    if (!c->chain || !c->key) {
        cert_clear(c);
        snprintf(tls->err, sizeof(tls->err), "out of memory");
        return -ENOMEM;
    }
    if (!(c->ctx = ctx_new(tls, chain, key))) {
        cert_clear(c);
        return -EINVAL;
    }
    cert_names(c);
    return 0;
}

struct grace_tls *grace_tls_new(void)
{
    struct grace_tls *tls = calloc(1, sizeof(*tls));
    if (!tls)
        return NULL;
    tls->refs = 1;
    rotate_keys(tls);
    return tls;
}

int grace_tls_add_cert(struct grace_tls *tls, const char *chain_file, const char *key_file)
{
    struct tls_cert *certs;
    int rc;

    if (!tls || !chain_file || !key_file)
        return -EINVAL;
    certs = realloc(tls->certs, sizeof(*certs) * (tls->ncerts + 1));
    if (!certs)
        return -ENOMEM;
    tls->certs = certs;
    if ((rc = cert_load(tls, &certs[tls->ncerts], chain_file, key_file)) < 0)
        return rc;
    tls->ncerts++;
    tls->err[0] = '\0';
    return 0;
}

int grace_tls_reload(struct grace_tls *tls)
{
    struct tls_cert *fresh;
    int rc = 0;

    if (!tls || !tls->ncerts)
        return -EINVAL;
    fresh = calloc(tls->ncerts, sizeof(*fresh));
    if (!fresh)
        return -ENOMEM;
    for (size_t i = 0; i < tls->ncerts && !rc; i++)
        rc = cert_load(tls, &fresh[i], tls->certs[i].chain, tls->certs[i].key);
    if (rc) { /* all or nothing */
        for (size_t i = 0; i < tls->ncerts; i++)
            if (fresh[i].ctx)
                cert_clear(&fresh[i]);
        free(fresh);
        return rc;
    }
    /* open connections hold their own references to the old contexts */
    for (size_t i = 0; i < tls->ncerts; i++)
        cert_clear(&tls->certs[i]);
    free(tls->certs);
    tls->certs = fresh;
    tls->err[0] = '\0';
    return 0;
}

const char *grace_tls_last_error(const struct grace_tls *tls)
{
    return tls ? tls->err : "no context";
}

void grace__tls_ref(struct grace_tls *tls)
{
    tls->refs++;
}

void grace_tls_free(struct grace_tls *tls)
{
    if (!tls || --tls->refs > 0)
        return;
    for (size_t i = 0; i < tls->ncerts; i++)
        cert_clear(&tls->certs[i]);
    free(tls->certs);
    OPENSSL_cleanse(tls->keys, sizeof(tls->keys));
    free(tls);
}

/* ---------------------------------------------------------------- connections */

/* A new TLS session on s->fd, in accept state: -ENOMEM, or -EINVAL if the
 * context has no certificate. */
static int tls_open(struct grace_sock *s, struct grace_tls *tls, const unsigned char *alpn,
                    size_t alpn_len)
{
    struct tls_conn *t;

    if (!tls->ncerts)
        return -EINVAL;
    if (!(t = calloc(1, sizeof(*t))))
        return -ENOMEM;
    if (!(t->ssl = SSL_new(tls->certs[0].ctx)) || SSL_set_fd(t->ssl, s->fd) != 1) {
        SSL_free(t->ssl);
        free(t);
        return -ENOMEM;
    }
    t->alpn = alpn;
    t->alpn_len = alpn_len;
    SSL_set_accept_state(t->ssl);
    SSL_set_app_data(t->ssl, t);
    s->tls = t;
    return 0;
}

static int tls_ready(const struct grace_sock *s)
{
    const struct tls_conn *t = s->tls;
    return !t || t->handshaken;
}

static const char *tls_version(const struct grace_sock *s)
{
    const struct tls_conn *t = s->tls;
    return t ? SSL_get_version(t->ssl) : NULL;
}

static const char *tls_sni(const struct grace_sock *s)
{
    const struct tls_conn *t = s->tls;
    return t ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

static const char *tls_alpn(const struct grace_sock *s, size_t *len)
{
    const struct tls_conn *t = s->tls;
    const unsigned char *p = NULL;
    unsigned int n = 0;

    if (t)
        SSL_get0_alpn_selected(t->ssl, &p, &n);
    *len = n;
    return n ? (const char *)p : NULL;
}

/* The handshake has just completed: count it. */
static void handshaken(struct grace_sock *s, struct tls_conn *t)
{
    t->handshaken = 1;
    CNT(s->srv, TLS_HANDSHAKES);
    if (SSL_session_reused(t->ssl))
        CNT(s->srv, TLS_RESUMED);
}

/* A plain HTTP request on the TLS port: say so in plain HTTP, as the client
 * will read it (one small send; if the socket refuses it, the close says
 * enough). */
static void plain_http_answer(struct grace_sock *s)
{
    static const char answer[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                 "Content-Length: 37\r\nConnection: close\r\n\r\n"
                                 "this port speaks HTTPS, not HTTP/1.1\n";
    (void)!send(s->fd, answer, sizeof(answer) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Map an SSL call's failure to the seam's convention. */
static ssize_t ssl_fail(struct grace_sock *s, struct tls_conn *t, int ret, int reading)
{
    int e = SSL_get_error(t->ssl, ret), err = errno;

    switch (e) {
    case SSL_ERROR_WANT_READ:
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        if (reading)
            t->read_wants_write = 1;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN: /* close_notify, or EOF (IGNORE_UNEXPECTED_EOF) */
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        t->failed = 1;
        if (!t->handshaken)
            CNT(s->srv, TLS_FAILED);
        return err ? -err : -ECONNRESET;
    default: /* a protocol error: garbage, plain HTTP, no common version... */
        if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_HTTP_REQUEST)
            plain_http_answer(s);
        ERR_clear_error();
        t->failed = 1;
        if (!t->handshaken)
            CNT(s->srv, TLS_FAILED);
        return -EPROTO;
    }
}

/* Decrypt into in until max bytes or the socket is empty (so that a short
 * read still means "nothing more now"). Drives the handshake too. */
static ssize_t tls_read(struct grace_sock *s, struct evbuffer *in, size_t max)
{
    struct tls_conn *t = s->tls;
    size_t total = 0;

    t->read_wants_write = 0;
    while (total < max) {
        struct evbuffer_iovec v;
        size_t want = max - total < GRACE_READ_CHUNK ? max - total : GRACE_READ_CHUNK, n = 0;
        int ret;

        if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1)
            return total ? (ssize_t)total : -ENOMEM;
        if (v.iov_len > want)
            v.iov_len = want;
        ERR_clear_error();
        ret = SSL_read_ex(t->ssl, v.iov_base, v.iov_len, &n);
        if (!t->handshaken && SSL_is_init_finished(t->ssl))
            handshaken(s, t);
        if (t->renegotiating) { /* refused, and the end of this connection */
            t->failed = 1;
            CNT(s->srv, TLS_FAILED);
            return -EPROTO;
        }
        if (ret <= 0) {
            ssize_t rc = ssl_fail(s, t, ret, 1);
            t->more = 0;
            if (total && (rc == -EAGAIN || rc == 0))
                return (ssize_t)total; /* EOF or "empty" is seen on the next call */
            return rc;
        }
        v.iov_len = n;
        evbuffer_commit_space(in, &v, 1);
        total += n;
    }
    t->more = 1;
    return (ssize_t)total;
}

/* Encrypt from the front of out, a record at a time, until the socket is
 * full or a budget is spent. Returns plaintext bytes taken. */
static ssize_t tls_write(struct grace_sock *s, struct evbuffer *out)
{
    struct tls_conn *t = s->tls;
    size_t total = 0;

    while (total < TLS_WRITE_BUDGET && evbuffer_get_length(out)) {
        struct evbuffer_iovec v;
        size_t n = 0;
        int ret;

        if (evbuffer_peek(out, -1, NULL, &v, 1) < 1 || !v.iov_base)
            return total ? (ssize_t)total : -EPIPE;
        if (v.iov_len > TLS_RECORD)
            v.iov_len = TLS_RECORD;
        ERR_clear_error();
        ret = SSL_write_ex(t->ssl, v.iov_base, v.iov_len, &n);
        if (ret <= 0) {
            ssize_t rc = ssl_fail(s, t, ret, 0);
            if (rc == 0)
                rc = -EPIPE;
            return total ? (ssize_t)total : rc;
        }
        evbuffer_drain(out, n);
        total += n;
    }
    return (ssize_t)total;
}

/* close_notify, once, where the session is intact. A socket too full for
 * the 24-byte alert goes without it. */
static void close_notify(struct grace_sock *s, struct tls_conn *t)
{
    if (!t->handshaken || t->failed || (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN))
        return;
    ERR_clear_error();
    if (SSL_shutdown(t->ssl) >= 0)
        CNT(s->srv, TLS_CLOSE_NOTIFY);
    ERR_clear_error();
}

/* Our end of the stream: close_notify first, then the FIN. */
static int tls_shutdown(struct grace_sock *s)
{
    close_notify(s, s->tls);
    return shutdown(s->fd, SHUT_WR) < 0 ? -errno : 0;
}

/* Input OpenSSL holds that the socket will not announce again: plaintext
 * decrypted but not taken, or records read ahead when our last read stopped
 * at its limit. Not after a read that found the socket empty: then what
 * OpenSSL holds is a partial record, and asking again would spin. */
static size_t tls_pending(struct grace_sock *s)
{
    struct tls_conn *t = s->tls;
    size_t n = (size_t)SSL_pending(t->ssl);
    return n ? n : t->more && SSL_has_pending(t->ssl);
}

static int tls_waiting(struct grace_sock *s)
{
    return tls_pending(s) || grace__plain.waiting(s);
}

static int tls_read_wants_write(struct grace_sock *s)
{
    struct tls_conn *t = s->tls;
    return t->read_wants_write;
}

/* Closing without a linger (the client already closed, or an abort):
 * answer with our close_notify where the session is intact. */
static void tls_close(struct grace_sock *s)
{
    struct tls_conn *t = s->tls;
    close_notify(s, t);
    SSL_free(t->ssl);
    free(t);
    s->tls = NULL;
    evutil_closesocket(s->fd);
}

/* Bytes a record of application data carries beyond its plaintext: TLS
 * 1.3's tag and inner content type (padding, which clients do not send,
 * would be counted as data), TLS 1.2's AEAD tag and explicit nonce (GCM;
 * ChaCha20-Poly1305 has none). AEAD suites only (ctx_new). */
static uint32_t record_overhead(SSL *ssl)
{
    if (SSL_version(ssl) >= TLS1_3_VERSION)
        return 16 + 1;
    return SSL_CIPHER_get_cipher_nid(SSL_get_current_cipher(ssl)) == NID_chacha20_poly1305
               ? 16 : 16 + 8;
}

/*
 * Drop what the client still sends, raw (MSG_TRUNC): never decrypted. Its
 * plaintext is still counted (*plain), for the linger's "body still due":
 * the records' headers are read (5 bytes each, copied) and each record's
 * plaintext counted once it is whole. The raw stream must start at a
 * header, so what OpenSSL holds at the first call (read ahead, a partial
 * record) is read through it first, with read-ahead off: its last record
 * then ends with the buffer. A header that makes no sense (lost framing)
 * stops the count: from then on nothing is counted (the body looks never
 * complete: its linger keeps the rate check, the safe side). Once no count
 * is wanted (plain NULL: no body due, or its length unknown) none will be:
 * whole chunks are dropped, as on a plain socket.
 */
static ssize_t tls_discard(struct grace_sock *s, size_t n, uint64_t *plain)
{
    struct tls_conn *t = s->tls;
    uint64_t pl = 0;
    ssize_t total = 0;

    if (!t->discarding) {
        t->discarding = 1;
        t->framed = !t->failed && t->handshaken;
        SSL_set_read_ahead(t->ssl, 0);
    }
    if (!plain)
        t->framed = 0;
    if (t->framed && SSL_has_pending(t->ssl)) {
        char buf[16384];
        size_t got = 0;
        int ret;
        ERR_clear_error();
        ret = SSL_read_ex(t->ssl, buf, sizeof(buf) < n ? sizeof(buf) : n, &got);
        if (ret == 1) {
            *plain = got; /* framed: plain is wanted */
            return (ssize_t)got;
        }
        return ssl_fail(s, t, ret, 1); /* -EAGAIN: the rest of a partial record */
    }
    if (!t->framed) {
        if (plain)
            *plain = 0;
        return grace__plain.discard(s, n, NULL);
    }
    while ((size_t)total < n) {
        ssize_t k;
        if (!t->rec_left) { /* a record's header */
            do
                k = recv(s->fd, t->hdr + t->hdr_have, sizeof(t->hdr) - t->hdr_have, MSG_DONTWAIT);
            while (k < 0 && errno == EINTR);
            if (k <= 0) {
                if (total)
                    break;
                return k == 0 ? 0 : errno == EWOULDBLOCK ? -EAGAIN : -errno;
            }
            total += k;
            t->hdr_have += (unsigned char)k;
            if (t->hdr_have < sizeof(t->hdr))
                continue;
            t->hdr_have = 0;
            t->rec_len = (uint32_t)t->hdr[3] << 8 | t->hdr[4];
            if (t->hdr[0] < 20 || t->hdr[0] > 24 || t->hdr[1] != 3 || !t->rec_len ||
                t->rec_len > 16384 + 256) {
                t->framed = 0; /* lost: nothing more is counted */
                break;
            }
            if (t->hdr[0] != 23) /* not application data: carries none */
                t->rec_len = 0;
            t->rec_left = (uint32_t)t->hdr[3] << 8 | t->hdr[4];
            continue;
        }
        k = grace__plain.discard(s, n - (size_t)total < t->rec_left ? n - (size_t)total
                                                                    : t->rec_left, NULL);
        if (k <= 0) {
            if (total && (k == -EAGAIN || k == 0))
                break; /* the end or "empty" is seen on the next call */
            return k;
        }
        total += k;
        t->rec_left -= (uint32_t)k;
        if (!t->rec_left && t->rec_len > record_overhead(t->ssl))
            pl += t->rec_len - record_overhead(t->ssl);
    }
    *plain = pl;
    return total;
}

static size_t tls_unsent(struct grace_sock *s)
{
    return grace__plain.unsent(s);
}

const struct grace_transport grace__tls = {
    .read = tls_read,
    .write = tls_write,
    .shutdown = tls_shutdown,
    .discard = tls_discard,
    .unsent = tls_unsent,
    .close = tls_close,
    .pending = tls_pending,
    .waiting = tls_waiting,
    .read_wants_write = tls_read_wants_write,
    .open = tls_open,
    .ready = tls_ready,
    .version = tls_version,
    .sni = tls_sni,
    .alpn = tls_alpn,
    .splice = NULL, /* records: the socket's bytes are not the application's */
    .secure = 1,
    .raw = 0,
};

#endif /* GRACE_HAVE_TLS */
