/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_tls.c - libFuzzer target for the TLS transport.
 *
 * A TLS server on its own event_base gets one end of a socketpair. The
 * first input byte picks the mode:
 *  - raw (even): the fuzzer's bytes are the client's raw bytes, so every
 *    handshake path (garbage, truncated records, plain HTTP, alerts) runs;
 *  - client (odd): a real OpenSSL client completes a handshake, then the
 *    fuzzer's bytes are the plaintext it sends (requests, bodies, split
 *    anywhere), with actions between slices: close_notify, half-close,
 *    vanish, let timers run. Responses are read as they come.
 * Invariants: no crash, leak or undefined behaviour; every connection ends
 * once our side is done (the loop empties); nothing of the server is left
 * on the loop after grace_server_free.
 */
#define _GNU_SOURCE
#include "gracehttp.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct grace_tls *tls;
static SSL_CTX *cctx;

/* A self-signed P-256 certificate, written once to files for the context. */
static void make_context(void)
{
    char dir[] = "/tmp/fuzz-tls-XXXXXX", cert[64], key[64];
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *f;

    if (!pk || !x || !mkdtemp(dir))
        abort();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, pk, EVP_sha256());
    snprintf(cert, sizeof(cert), "%s/c.pem", dir);
    snprintf(key, sizeof(key), "%s/k.pem", dir);
    if (!(f = fopen(cert, "w")) || !PEM_write_X509(f, x) || fclose(f))
        abort();
    if (!(f = fopen(key, "w")) || !PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) ||
        fclose(f))
        abort();
    tls = grace_tls_new();
    if (!tls || grace_tls_add_cert(tls, cert, key) < 0)
        abort();
    unlink(cert);
    unlink(key);
    rmdir(dir);
    X509_free(x);
    EVP_PKEY_free(pk);
    cctx = SSL_CTX_new(TLS_client_method());
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN);
    make_context();
    return 0;
}

static void collected(struct grace_request *req, struct evbuffer *body, void *arg)
{
    grace_reply(req, 201, "tls body", 8);
}

/* Odd path bytes read the body first; the rest answer early (the linger
 * over TLS: close_notify, FIN, raw discard). */
static void reply(struct grace_request *req, void *arg)
{
    if ((grace_request_path(req)[1] & 1) && grace_request_collect_body(req, 0, collected, NULL) == 0)
        return;
    grace_reply(req, 200, "tls ok", 6);
}

static void drain(int fd)
{
    char buf[65536];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
}

static void run_loop(struct event_base *base, int ms)
{
    struct timeval tv = {0, ms * 1000};
    if (ms) {
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    } else {
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
}

/* Drive a client handshake against the server's loop; 0 when done. */
static int client_handshake(SSL *ssl, struct event_base *base)
{
    for (int i = 0; i < 50; i++) {
        int r = SSL_connect(ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return -1;
        run_loop(base, 0);
    }
    return -1;
}

static void client_read(SSL *ssl)
{
    char buf[16384];
    size_t n;
    while (SSL_read_ex(ssl, buf, sizeof(buf), &n) == 1)
        ;
    ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct event_base *base;
    struct grace_config *cfg;
    struct grace_server *srv;
    SSL *ssl = NULL;
    int sv[2], open = 1;
    size_t at = 2;

    if (size < 2)
        return 0;
    base = event_base_new();
    cfg = grace_config_new();
    grace_config_set(cfg, GRACE_OPT_TLS_HANDSHAKE_TIMEOUT, 5);
    grace_config_set(cfg, GRACE_OPT_HEADER_TIMEOUT, 10);
    grace_config_set(cfg, GRACE_OPT_BODY_TIMEOUT, 5);
    grace_config_set(cfg, GRACE_OPT_KEEPALIVE_TIMEOUT, 5);
    grace_config_set(cfg, GRACE_OPT_WRITE_TIMEOUT, 20);
    grace_config_set(cfg, GRACE_OPT_LINGER_TIMEOUT, 5);
    grace_config_set(cfg, GRACE_OPT_LINGER_TIME, 10);
    grace_config_set(cfg, GRACE_OPT_DRAIN_LIMIT, data[1] * 16);
    grace_config_set(cfg, GRACE_OPT_MAX_BODY_SIZE, 4096);
    srv = grace_server_new(base, cfg);
    grace_config_free(cfg);
    grace_server_set_handler(srv, reply, NULL);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    fcntl(sv[0], F_SETFL, O_NONBLOCK); /* as accepted sockets are: OpenSSL reads with read() */
    struct sockaddr_un peer = {.sun_family = AF_UNIX};
    if (grace_server_adopt_conn(srv, sv[0], (struct sockaddr *)&peer,
                                offsetof(struct sockaddr_un, sun_path), tls) < 0)
        abort();

    if (data[0] & 1) { /* a real client first */
        ssl = SSL_new(cctx);
        SSL_set_fd(ssl, sv[1]);
        if (client_handshake(ssl, base) < 0) {
            SSL_free(ssl);
            ssl = NULL;
        }
    }
    while (at + 2 <= size && open) {
        size_t len = data[at], act = data[at + 1];
        at += 2;
        if (len > size - at)
            len = size - at;
        if (len) {
            size_t w = 0;
            if (ssl)
                SSL_write_ex(ssl, data + at, len, &w);
            else if (send(sv[1], data + at, len, MSG_DONTWAIT) < 0)
                open = 0;
            ERR_clear_error();
        }
        at += len;
        run_loop(base, 0);
        switch (act % 8) {
        case 1: /* close_notify (a real client), then half-close */
            if (ssl)
                SSL_shutdown(ssl);
            shutdown(sv[1], SHUT_WR);
            break;
        case 2: /* vanish */
            open = 0;
            break;
        case 3: /* let timers run */
            run_loop(base, 3);
            break;
        }
        if (ssl)
            client_read(ssl);
        else
            drain(sv[1]);
    }
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < 100 && grace_server_counter(srv, GRACE_CNT_CONN_ACTIVE); i++) {
        if (ssl)
            client_read(ssl);
        drain(sv[1]);
        run_loop(base, 1);
    }
    if (grace_server_counter(srv, GRACE_CNT_CONN_ACTIVE))
        abort(); /* a connection that never ends */
    if (ssl)
        SSL_free(ssl);
    ERR_clear_error();
    close(sv[1]);
    grace_server_free(srv);
    if (event_base_loop(base, EVLOOP_NONBLOCK) != 1)
        abort(); /* something of the server was left on the loop */
    event_base_free(base);
    return 0;
}
