/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hello.c - the smallest gracehttp server: any request -> 200 "hello world".
 * Used by the throughput benchmarks, so its path is kept lean.
 *   hello [--host H] [--port P] [--tls-cert CHAIN.pem --tls-key KEY.pem]
 * (default 127.0.0.1:8080; with a certificate it speaks HTTPS on that port)
 */
#include <gracehttp.h>

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hello(struct grace_request *req, void *arg)
{
    static const char body[] = "hello world\n";
    (void)arg;
    grace_reply(req, 200, body, sizeof(body) - 1);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *cert = NULL, *key = NULL;
    struct grace_tls *tls = NULL;
    int port = 8080, rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tls-cert") && i + 1 < argc)
            cert = argv[++i];
        else if (!strcmp(argv[i], "--tls-key") && i + 1 < argc)
            key = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--host H] [--port P] [--tls-cert F --tls-key F]\n",
                    argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is an error code, not a signal */
    if (cert || key) {
        if (!cert || !key || !(tls = grace_tls_new()) ||
            (rc = grace_tls_add_cert(tls, cert, key)) < 0) {
            fprintf(stderr, "hello: TLS: %s\n", tls ? grace_tls_last_error(tls)
                                                   : "needs --tls-cert and --tls-key");
            return 2;
        }
    }
    struct event_base *base = event_base_new();
    struct grace_config *cfg = grace_config_new();
    if (!base || !cfg)
        return 1;
    grace_config_set(cfg, GRACE_OPT_MAX_CONNECTIONS, 100000);
    struct grace_server *srv = grace_server_new(base, cfg);
    grace_config_free(cfg);
    if (!srv)
        return 1;
    grace_server_set_handler(srv, hello, NULL);
    rc = grace_server_listen(srv, host, port, tls); /* tls NULL: plain */
    grace_tls_free(tls); /* the listener keeps its reference */
    if (rc < 0) {
        fprintf(stderr, "hello: listen %s:%d: %s\n", host, port, grace_strerror(rc));
        return 2;
    }
    printf("hello: listening on %s:%d\n", host, grace_server_port(srv, 0));
    fflush(stdout);
    event_base_dispatch(base);
    grace_server_free(srv);
    event_base_free(base);
    return 0;
}
