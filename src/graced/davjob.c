/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * davjob.c - a request that waits for one job on the pool (pool.c): the
 * WebDAV writes (MKCOL, PROPPATCH, COPY, MOVE, DELETE of a folder) make a
 * folder, fsync, rename or walk a tree, which can wait for the disk, so
 * they run off the event loop and answer when the job is done.
 *
 * The client may leave meanwhile: its request is then completed at once
 * (so the library lets it go), the job still runs to its end (a rename
 * half done is worse than one done), and only the answer is dropped.
 */
#include "graced.h"

#include <stdlib.h>

struct davjob {
    struct graced_job job; /* first: the pool's */
    struct graced *g;
    struct grace_request *req;
    void (*work)(void *arg);
    void (*done)(struct grace_request *req, struct graced *g, void *arg);
    void (*release)(void *arg);
    void *arg;
    int replied;
};

static void on_finish(struct grace_request *req, int err, void *arg)
{
    struct davjob *j = arg;
    if (err && !j->replied) {
        j->replied = 1;
        grace_reply(req, 500, NULL, 0); /* completes our side: -ENOTCONN */
    }
    j->req = NULL;
}

static void job_work(struct graced_job *job)
{
    struct davjob *j = (struct davjob *)job;
    j->work(j->arg);
}

static void job_done(struct graced_job *job)
{
    struct davjob *j = (struct davjob *)job;
    if (j->req && !j->replied) {
        struct grace_request *req = j->req;
        j->replied = 1;
        grace_request_on_finish(req, NULL, NULL);
        j->done(req, j->g, j->arg);
    }
    if (j->release)
        j->release(j->arg);
    free(j);
}

int graced_dav_run(struct graced *g, struct grace_request *req, void (*work)(void *arg),
                   void (*done)(struct grace_request *req, struct graced *g, void *arg),
                   void (*release)(void *arg), void *arg)
{
    struct davjob *j = calloc(1, sizeof(*j));
    if (!j) {
        graced_reply(req, 500, "out of memory\n");
        if (release)
            release(arg);
        return -1;
    }
    j->job.work = job_work;
    j->job.done = job_done;
    j->g = g;
    j->req = req;
    j->work = work;
    j->done = done;
    j->release = release;
    j->arg = arg;
    grace_request_on_finish(req, on_finish, j);
    /* the job changes the tree: a stop's deadline must not answer 503 for
     * a change that is made (the pool's jobs run to their end anyway) */
    grace_request_hold_stop(req);
    graced_pool_run(g->pool, &j->job);
    return 0;
}
