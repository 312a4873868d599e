/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * main.c - graced: the start-up checks, then one worker (worker.c) or the
 * supervisor of several (supervisor.c).
 *
 * Every start-up problem (bad option, unreadable directory, port in use,
 * a certificate that does not load) is one line on stderr and exit status 2.
 * With --workers N the listening sockets are opened first, then N processes
 * each run their own event_base and their own TLS context; the parent
 * forwards SIGTERM/SIGINT/SIGHUP and restarts a worker that ends early.
 */
#include "graced.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --root, --upload-dir: a directory we may read (and write); its fd, or -1
 * after one line on stderr */
static int open_dir(const char *opt, const char *path, int need_write)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || faccessat(fd, ".", need_write ? R_OK | W_OK | X_OK : R_OK | X_OK, 0) < 0) {
        fprintf(stderr, "graced: %s %s: %s\n", opt, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    static struct graced g;
    static struct graced_socks socks;
    int rc;

    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file size limit is a write error (507) */
    /* an upload's buffer (up to 1 MiB) is freed as it reaches the disk;
     * glibc would give that memory back to the kernel each time (trim at
     * 128 KiB) and fault it in again: 2.7x the CPU of a streamed upload */
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    rc = graced_parse_options(&g.o, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    graced_log_set_level(g.o.log_level);
    graced_notify_init();
    g.upload_fd = -1;
    if ((g.root_fd = open_dir("--root", g.o.root, 0)) < 0)
        return 2;
    if (!(g.root_real = realpath(g.o.root, NULL))) {
        fprintf(stderr, "graced: --root %s: %s\n", g.o.root, strerror(errno));
        return 2;
    }
    if (g.o.upload_dir && (g.upload_fd = open_dir("--upload-dir", g.o.upload_dir, 1)) < 0)
        return 2;
    if (g.o.token_file && graced_load_token(&g) < 0) {
        fprintf(stderr, "graced: --auth-token-file %s: %s\n", g.o.token_file,
                errno == EINVAL  ? "no token on the first line"
                : errno == EILSEQ ? "the token has a space, control or non-ASCII byte"
                                  : strerror(errno));
        return 2;
    }
    /* the certificates are loaded here, once, so that a bad one is a
     * start-up error; every worker (also one restarted later) has a copy */
    if (g.o.ncert && !(g.tls = graced_certs_load(&g.o)))
        return 2;
    if (graced_auth_load(&g) < 0 || graced_proxy_init(&g) < 0 || graced_metrics_init(&g) < 0 ||
        graced_locktab_init(&g) < 0)
        return 2;
    graced_web_check_options(&g.o);
    graced_access_log_skip(g.o.health_path);
    if (g.o.access_log && graced_access_log_open(g.o.access_log) < 0) {
        fprintf(stderr, "graced: --access-log %s: %s\n", g.o.access_log, strerror(errno));
        return 2;
    }
    if (g.upload_fd >= 0)
        graced_clean_stale(&g);
    if (graced_open_listeners(&g.o, &socks) < 0)
        return 2;
    if (g.tls && !socks.ntls) {
        graced_log(LOG_WARN, "--tls-cert given, but no TLS listener (--tls-listen)");
        grace_tls_free(g.tls);
        g.tls = NULL;
        g.o.ncert = 0;
    }
    if (g.o.pid_file) {
        FILE *fp = fopen(g.o.pid_file, "we");
        if (!fp || fprintf(fp, "%d\n", (int)getpid()) < 0 || fclose(fp) != 0) {
            fprintf(stderr, "graced: --pid-file %s: %s\n", g.o.pid_file, strerror(errno));
            return 2;
        }
    }
    if (g.o.upload_dir)
        graced_log(LOG_INFO, "uploads into %s%s", g.o.upload_dir,
                   g.token_len ? " (token required)" : "");
    if (g.tls)
        graced_log(LOG_INFO, "TLS with %d certificate(s), default %s", g.o.ncert, g.o.tls_cert[0]);

    if (g.o.workers == 1) {
        g.worker = 1;
        rc = graced_worker_run(&g, &socks, 0);
    } else {
        /* the supervisor keeps the certificates (read again on SIGHUP, the
         * old kept if the files are broken): a worker restarted later
         * starts with what its siblings serve, not with whatever the files
         * hold then */
        rc = graced_supervise(&g, &socks);
        if (g.tls)
            grace_tls_free(g.tls);
        g.tls = NULL;
    }
    if (g.o.pid_file)
        unlink(g.o.pid_file);
    graced_access_log_close();
    grace_config_free(g.o.cfg);
    graced_auth_free(&g);
    free(g.root_real);
    free(g.token);
    close(g.root_fd);
    if (g.upload_fd >= 0)
        close(g.upload_fd);
    graced_log(LOG_INFO, "stopped");
    return rc;
}
