/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * certs.c - the certificates of --tls-cert/--tls-key: loaded at start-up
 * (where a bad one is one line on stderr naming the file) into the context
 * every worker forked then or later has a copy of, and again on SIGHUP by
 * each worker and the supervisor (the old ones stay if the new ones do not
 * load).
 */
#include "graced.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Every --tls-cert/--tls-key pair, in order, into a new context (the first
 * is the default, the others are chosen by SNI). NULL after one line on
 * stderr naming the file. */
struct grace_tls *graced_certs_load(const struct graced_opts *o)
{
    struct grace_tls *tls = grace_tls_new();
    if (!tls && errno == ENOTSUP) {
        fprintf(stderr, "graced: --tls-cert: this libgracehttp was built without TLS "
                        "(configure found no OpenSSL 3)\n");
        return NULL;
    }
    if (!tls) {
        fprintf(stderr, "graced: TLS: %s\n", strerror(errno));
        return NULL;
    }
    for (int i = 0; i < o->ncert; i++) {
        const char *files[2] = {o->tls_cert[i], o->tls_key[i]};
        int rc;
        for (int f = 0; f < 2; f++) { /* an unreadable file: say which */
            int fd = open(files[f], O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                fprintf(stderr, "graced: %s %s: %s\n", f ? "--tls-key" : "--tls-cert", files[f],
                        strerror(errno));
                grace_tls_free(tls);
                return NULL;
            }
            close(fd);
        }
        if ((rc = grace_tls_add_cert(tls, files[0], files[1])) < 0) {
            const char *why = grace_tls_last_error(tls);
            fprintf(stderr, "graced: --tls-cert %s --tls-key %s: %s\n", files[0], files[1],
                    why && *why ? why : grace_strerror(rc));
            grace_tls_free(tls);
            return NULL;
        }
    }
    return tls;
}

/* SIGHUP: read the certificates again; on failure the old ones stay. */
void graced_certs_reload(struct graced *g)
{
    int rc = grace_tls_reload(g->tls);
    if (rc < 0) {
        const char *why = grace_tls_last_error(g->tls);
        graced_log(LOG_ERR, "worker %d: certificates not reloaded, keeping the old ones: %s",
                   g->worker, why && *why ? why : grace_strerror(rc));
    } else {
        graced_log(LOG_INFO, "worker %d: certificates reloaded", g->worker);
    }
}
