/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * evhttp_hello.c - libevent's own evhttp as a benchmark peer: "/" answers
 * "hello world", and a body over --max-body bytes is refused with 413 by
 * evhttp itself (its early-reply path). Benchmarks only: links
 * libevent_extra, which libgracehttp never does.
 *   evhttp_hello [--port P] [--max-body N]
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hello(struct evhttp_request *req, void *arg)
{
    struct evbuffer *b = evhttp_request_get_output_buffer(req);
    evbuffer_add(b, "hello world\n", 12);
    evhttp_send_reply(req, 200, "OK", NULL);
}

int main(int argc, char **argv)
{
    int port = 8080;
    long long max_body = 1 << 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-body"))
            max_body = atoll(argv[i + 1]);
    }
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    if (!http)
        return 1;
    evhttp_set_max_body_size(http, (ev_ssize_t)max_body);
    evhttp_set_gencb(http, hello, NULL);
    if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) < 0) {
        fprintf(stderr, "evhttp_hello: cannot bind port %d\n", port);
        return 2;
    }
    printf("evhttp_hello: listening on 127.0.0.1:%d\n", port);
    fflush(stdout);
    event_base_dispatch(base);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
