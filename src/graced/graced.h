/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * graced.h - shared declarations of the graced daemon.
 *
 *   main.c     start-up, workers, signals, the event loop, TLS certificates
 *   options.c  command line: getopt_long, sizes and times
 *   files.c    static files: path confinement, types, validators, ranges
 *   upload.c   PUT/POST uploads: early checks, temp file, fsync, rename
 *   log.c      error log (levels) and access log (Combined Log Format)
 *   sock.c     listening sockets and systemd socket activation
 *   path.c     URL paths to confined names: decoding, hidden names, folders
 *   listing.c  directory listings (--list-dirs): HTML with the upload form, JSON
 *   multipart.c  a streaming multipart/form-data parser (no I/O)
 *   form.c     POST of multipart/form-data to a folder: each file part stored
 *   delete.c   DELETE of a file or an empty folder
 */
#ifndef GRACED_H
#define GRACED_H

#include <gracehttp.h>

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/stat.h>

struct event_base;
struct evbuffer;

#define GRACED_MAX_LISTEN 16
#define GRACED_MAX_CERTS 16

/* Name prefix of upload temporary files: never served, removed at start
 * when stale: the PID in the name is gone, or untouched for
 * --stale-upload-age. */
#define GRACED_TMP_PREFIX ".graced-tmp."

struct graced_opts {
    const char *listen[GRACED_MAX_LISTEN];
    int nlisten;
    const char *tls_listen[GRACED_MAX_LISTEN]; /* --tls-listen */
    int ntls_listen;
    const char *tls_cert[GRACED_MAX_CERTS], *tls_key[GRACED_MAX_CERTS]; /* pairs, in order */
    int ncert, nkey;
    int64_t hsts;             /* --hsts max-age in seconds; -1: off */
    const char *root;
    const char *upload_dir;
    const char *token_file;
    int64_t max_body;
    int workers;
    const char *access_log;
    int log_level;
    const char *pid_file;
    int64_t shutdown_timeout_ms;
    const char *metrics_path;
    int64_t stale_upload_age_ms; /* --stale-upload-age */
    int64_t restart_delay_max_ms; /* --restart-delay-max */
    int list_dirs;            /* --list-dirs */
    int show_hidden;          /* --show-hidden: dot-names listed and served */
    int no_overwrite;         /* --no-overwrite: every PUT is If-None-Match: * */
    int64_t list_max;         /* --list-max: entries in one listing */
    struct grace_config *cfg; /* library options by their documented names */
};

struct graced {
    struct graced_opts o;
    struct event_base *base;
    struct grace_server *srv;
    struct grace_tls *tls;   /* this worker's certificates; NULL without TLS */
    int root_fd, upload_fd;  /* O_PATH/O_DIRECTORY handles */
    char *root_real;         /* realpath of the root */
    char *token;             /* --auth-token-file, malloc'ed */
    size_t token_len;
    int worker;              /* 1..N */
    int supervised;          /* one of --workers N > 1: the parent decides */
    unsigned long upload_seq;
    struct graced_fcache *fcache; /* files.c: small files, kept a second */
};

/* options.c: 0 to run, 1 after --help/--version, -1 on error (printed) */
int graced_parse_options(struct graced_opts *o, int argc, char **argv);

/* log.c */
enum { LOG_ERR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };
void graced_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void graced_log_set_level(int level);
int graced_access_log_open(const char *path);
int graced_access_log_reopen(void);
void graced_access_log_close(void);
void graced_access(const struct grace_response_info *ri, void *arg);

/* sock.c: the listening sockets of every worker, opened before forking:
 * each --listen and --tls-listen address (SO_REUSEPORT between workers), or
 * systemd's (a socket named "https" or "tls" in LISTEN_FDNAMES speaks TLS) */
#define GRACED_MAX_WORKERS 64
#define GRACED_MAX_SOCKS 16
struct graced_socks {
    int fd[GRACED_MAX_WORKERS][GRACED_MAX_SOCKS];
    int tls[GRACED_MAX_SOCKS]; /* socket i of every worker speaks TLS */
    int per_worker;
    int ntls;                  /* how many of them */
    int systemd;
};
int graced_open_listeners(const struct graced_opts *o, struct graced_socks *s);
void graced_announce(const struct graced_socks *s);
int graced_parse_hostport(const char *s, char *host, size_t hostlen, int *port);

/* files.c */
void graced_serve_file(struct grace_request *req, struct graced *g);
void graced_files_forget(struct graced *g, const char *name);
void graced_files_cache_free(struct graced *g);

/* path.c: decoding flags */
#define GRACED_PATH_WRITE 1     /* refusals worded for writes; UTF-8 and length checked */
#define GRACED_PATH_HIDDEN_OK 2 /* --show-hidden */
/* URL path -> relative name ("a/b c.txt", "" for the top); 0 or a status:
 * reads 400 (escape, NUL, control bytes), 403 ("..", encoded slash),
 * 404 (dot-names, temporary files), 414; writes 400 for any refused name */
int graced_path_decode(const char *in, char *out, size_t outlen, int flags, int *trailing_slash);
/* one decoded name: 0 or a status (400 control bytes, 403 "..", dot-names, 404 temp names) */
int graced_name_check(const char *seg, size_t n, int flags);
int graced_utf8_valid(const char *s, size_t n);
/* percent-encode a relative path for a URL (keeps '/'); returns the length */
size_t graced_path_encode(const char *in, char *out, size_t outlen);
/* open directory rel[0..len) below top, each segment O_NOFOLLOW, creating
 * missing ones if create: an fd, or a negative errno (-ELOOP: a symlink) */
int graced_path_open_dir(int top, const char *rel, size_t len, int create);
/* a negative errno of the above or of a file operation -> HTTP status */
int graced_errno_status(int err);
static inline int graced_path_flags(const struct graced *g, int write)
{
    return (write ? GRACED_PATH_WRITE : 0) | (g->o.show_hidden ? GRACED_PATH_HIDDEN_OK : 0);
}

/* files.c: the ETag graced gives a file */
void graced_etag(const struct stat *sb, char *out, size_t n);
/* does an ETag list (If-Match, If-None-Match) hold etag? weak: W/ ignored */
int graced_etag_match(const char *list, const char *etag, int weak);

/* listing.c: answer GET of directory dirfd (rel: its decoded path) */
void graced_list_dir(struct grace_request *req, struct graced *g, const char *rel, int dirfd);
/* Accept asks for JSON */
int graced_wants_json(struct grace_request *req);
/* s as a JSON string (quoted; bytes that are not UTF-8 become U+FFFD) */
void graced_json_str(struct evbuffer *out, const char *s);
/* s escaped for HTML text and attributes (not UTF-8: U+FFFD) */
void graced_html_esc(struct evbuffer *out, const char *s);

/* form.c: POST multipart/form-data to a folder */
int graced_is_multipart(struct grace_request *req);
void graced_form_upload(struct grace_request *req, struct graced *g);

/* delete.c */
void graced_delete(struct grace_request *req, struct graced *g);

/* upload.c */
void graced_upload(struct grace_request *req, struct graced *g);
/* uploads enabled and the client allowed to write? else answers (405, 401), returns 0 */
int graced_write_allowed(struct grace_request *req, struct graced *g);
int graced_clean_stale(struct graced *g);
int graced_load_token(struct graced *g);

/* main.c: reply and log in one step */
int graced_reply(struct grace_request *req, int status, const char *body);

#endif
