/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * parser.h - incremental HTTP/1.1 request parser (internal).
 *
 * Pure: bytes in, one event out per call. No I/O, no libevent, no
 * allocation. The caller owns the bytes and the header array.
 *
 * Contract of grace_parser_execute(): pass every byte not yet consumed,
 * starting at the first unconsumed one. In the header phase nothing but
 * blank lines before the request line is consumed until the whole header
 * block is complete; then the block is consumed at once. On that
 * GRACE_PEV_HEADERS the block is data[consumed - req.header_bytes, consumed)
 * and every grace_span offset is relative to its first byte. Body bytes are consumed piece by piece and returned as
 * slices pointing into the caller's buffer (de-chunked, zero copy).
 * Limits are checked at fixed byte positions, so the same bytes split at
 * any points give the same sequence of events.
 */
#ifndef GRACE_PARSER_H
#define GRACE_PARSER_H

#include <stddef.h>
#include <stdint.h>

enum grace_pev {
    GRACE_PEV_AGAIN = 0, /* need more bytes (some may have been consumed) */
    GRACE_PEV_HEADERS,   /* request line and headers complete: see p->req */
    GRACE_PEV_BODY,      /* a piece of body in *body / *body_len */
    GRACE_PEV_TRAILER,   /* a chunked trailer field: its line (CRLF excluded) in
                            *body / *body_len, p->trailer its name and value */
    GRACE_PEV_DONE,      /* message complete; parser is ready for the next */
    GRACE_PEV_ERROR      /* see p->err; the parser stays in error */
};

/* One named code per failure; grace_perr_status() maps it to the status. */
enum grace_perr {
    GRACE_PERR_NONE = 0,
    GRACE_PERR_METHOD,          /* method is not a token */
    GRACE_PERR_TARGET,          /* bad request-target form or authority */
    GRACE_PERR_TARGET_BYTE,     /* target byte: 8-bit, CTL, SP, DEL, '"', '#', '<', '>' */
    GRACE_PERR_VERSION,         /* malformed HTTP-version */
    GRACE_PERR_VERSION_UNSUP,   /* 505: HTTP/2+, 0.9-style line */
    GRACE_PERR_REQLINE,         /* malformed request line (spacing...) */
    GRACE_PERR_URI_TOO_LONG,    /* 414 */
    GRACE_PERR_BARE_CR,         /* CR not followed by LF */
    GRACE_PERR_BARE_LF,         /* LF without CR as line end */
    GRACE_PERR_FIELD_NAME,      /* field name not a token / empty */
    GRACE_PERR_FIELD_WS,        /* whitespace between name and colon */
    GRACE_PERR_FIELD_VALUE,     /* CTL (NUL, DEL...) inside a value */
    GRACE_PERR_OBS_FOLD,        /* line starting with SP/HTAB */
    GRACE_PERR_HEADERS_TOO_BIG, /* 431: header bytes */
    GRACE_PERR_TOO_MANY_FIELDS, /* 431: field count */
    GRACE_PERR_HOST,            /* HTTP/1.1 without exactly one Host */
    GRACE_PERR_HOST_INVALID,    /* Host not uri-host [":" port] (userinfo, list...) */
    GRACE_PERR_HOST_EMPTY,      /* empty Host, target without an authority of its own */
    GRACE_PERR_CL_INVALID,      /* Content-Length not plain digits / overflow */
    GRACE_PERR_CL_MULTIPLE,     /* differing Content-Length values */
    GRACE_PERR_CL_AND_TE,       /* both Content-Length and Transfer-Encoding */
    GRACE_PERR_TE_NOT_CHUNKED,  /* final coding is not chunked */
    GRACE_PERR_TE_TWICE,        /* chunked applied twice */
    GRACE_PERR_TE_UNKNOWN,      /* 501: a coding we do not implement */
    GRACE_PERR_TE_HTTP10,       /* Transfer-Encoding in an HTTP/1.0 request */
    GRACE_PERR_EXPECT,          /* 417: expectation other than 100-continue */
    GRACE_PERR_CHUNK_SIZE,      /* sign, 0x, non-hex, overflow, empty */
    GRACE_PERR_CHUNK_EXT,       /* malformed chunk extension */
    GRACE_PERR_CHUNK_LINE,      /* chunk-size line too long */
    GRACE_PERR_CHUNK_CRLF,      /* missing CRLF after chunk data */
    GRACE_PERR_TRAILER,         /* malformed trailer field */
    GRACE_PERR_TRAILER_TOO_BIG, /* 431: trailer bytes */
    GRACE_PERR__COUNT
};

enum grace_framing {
    GRACE_FRAMING_NONE = 0, /* no body */
    GRACE_FRAMING_LENGTH,   /* Content-Length: content_length bytes */
    GRACE_FRAMING_CHUNKED
};

enum grace_target_form {
    GRACE_FORM_ORIGIN = 0, /* /path?query */
    GRACE_FORM_ABSOLUTE,   /* http://host/path */
    GRACE_FORM_AUTHORITY,  /* host:port, CONNECT only */
    GRACE_FORM_ASTERISK    /* *, OPTIONS only */
};

/* Well-known methods, so HEAD/CONNECT/OPTIONS need no string compare. */
enum grace_pmethod {
    GRACE_PM_OTHER = 0,
    GRACE_PM_GET,
    GRACE_PM_HEAD,
    GRACE_PM_POST,
    GRACE_PM_PUT,
    GRACE_PM_DELETE,
    GRACE_PM_OPTIONS,
    GRACE_PM_CONNECT,
    GRACE_PM_PATCH,
    GRACE_PM_TRACE
};

/* A span inside the header block: offset from its first byte, and length. */
struct grace_span {
    uint32_t off;
    uint32_t len;
};

struct grace_hfield {
    struct grace_span name;
    struct grace_span value; /* leading/trailing whitespace trimmed */
};

/* What the parser learned from the request line and headers. */
struct grace_preq {
    struct grace_span method;
    struct grace_span target;
    enum grace_pmethod method_id;
    enum grace_target_form form;
    int version_minor;         /* 0 or 1 */
    enum grace_framing framing;
    uint64_t content_length;   /* valid for GRACE_FRAMING_LENGTH */
    unsigned keep_alive : 1;   /* after version + Connection tokens */
    unsigned expect_continue : 1;
    unsigned upgrade : 1;      /* "Connection: upgrade" token seen */
    int host_index;            /* index into fields, -1 if none */
    size_t nfields;
    size_t header_bytes;       /* size of the whole header block */
};

struct grace_parser_limits {
    size_t max_request_line; /* bytes excluding CRLF (default 8192) -> 414 */
    size_t max_header_bytes; /* field lines incl. CRLF (default 32768) -> 431 */
    size_t max_fields;       /* number of field lines (default 100) -> 431 */
    size_t max_trailer_bytes;/* trailer lines incl. CRLF (default 8192) -> 431 */
};

#define GRACE_PARSER_DEFAULT_REQUEST_LINE 8192
#define GRACE_PARSER_DEFAULT_HEADER_BYTES 32768
#define GRACE_PARSER_DEFAULT_FIELDS 100
#define GRACE_PARSER_DEFAULT_TRAILER_BYTES 8192
#define GRACE_PARSER_CHUNK_LINE_MAX 4096 /* size + extensions, excl. CRLF */

struct grace_parser {
    /* settings */
    struct grace_parser_limits lim;
    struct grace_hfield *fields; /* caller's array, lim.max_fields entries */

    /* results, valid from GRACE_PEV_HEADERS until the next message starts */
    struct grace_preq req;
    enum grace_perr err;
    size_t err_offset; /* offset in the buffer of the failing call */
    struct grace_hfield trailer; /* GRACE_PEV_TRAILER: offsets into *body */

    /* resumable state */
    int state;
    size_t line_start;  /* header phase: start of the current line */
    size_t hsec_start;  /* header phase: start of the field section */
    size_t scan;        /* header phase: no LF in [line_start, scan) */
    size_t window;      /* header phase, after AGAIN: at this many bytes
                           without a new LF the current line breaks a limit */
    uint64_t remaining; /* body bytes left in message or chunk */
    size_t trailer_bytes;
    unsigned seen_cl : 1, seen_te : 1, te_chunked_last : 1, te_unknown : 1,
        te_chunked_count : 2, conn_close : 1, conn_keep_alive : 1, host_empty : 1;
    int host_count;
};

/* Set defaults for any zero field of *lim. */
void grace_parser_limits_default(struct grace_parser_limits *lim);

/* Prepare p. fields must hold lim->max_fields entries and outlive p.
 * lim may be NULL for defaults; zero fields take their default. */
void grace_parser_init(struct grace_parser *p, const struct grace_parser_limits *lim,
                       struct grace_hfield *fields);

/* The largest header block these limits accept, with its CRLFs. */
static inline size_t grace_parser_head_max(const struct grace_parser_limits *lim)
{
    return lim->max_request_line + 2 + lim->max_header_bytes + 2;
}

/* Start over at a request line, forgetting any error. */
void grace_parser_reset(struct grace_parser *p);

/*
 * Parse data[0..len). Returns one enum grace_pev; *consumed is how many
 * bytes the caller may now discard. For GRACE_PEV_BODY, *body and *body_len is
 * the piece (inside data); for GRACE_PEV_TRAILER the field's line (inside
 * data), p->trailer's spans relative to *body. Trailer lines are counted
 * against max_trailer_bytes, never kept: the caller copies what it wants. After GRACE_PEV_DONE the parser expects the next
 * request. After GRACE_PEV_ERROR it keeps returning GRACE_PEV_ERROR.
 */
enum grace_pev grace_parser_execute(struct grace_parser *p, const char *data, size_t len,
                                    size_t *consumed, const char **body, size_t *body_len);

/* True while the parser has not seen any byte of the next message. */
int grace_parser_idle(const struct grace_parser *p);

/* True once the body of the current message is complete (or there is none). */
int grace_parser_body_done(const struct grace_parser *p);
/* A Content-Length body: bytes still due (0 for any other state). */
uint64_t grace_parser_body_left(const struct grace_parser *p);
/* n (at most body_left) body bytes were taken without the parser. */
void grace_parser_body_skip(struct grace_parser *p, uint64_t n);

/* Is s[0..n) a non-empty token (RFC 9110 5.6.2), as a field name must be? */
int grace__token_valid(const char *s, size_t n);

/* Value of a hex digit, or -1 (shared with the path helper). */
int grace__hexval(char c);

/* HTTP status code to answer an error with (400, 414, 431, 501, 505, 417). */
int grace_perr_status(enum grace_perr e);

/* Short human-readable reason for an error, e.g. "bare LF in request". */
const char *grace_perr_str(enum grace_perr e);

#endif
