/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_pool.c - graced's pool of threads for the disk (pool.c), on a real
 * event_base: work runs on pool threads, never more at once than the pool
 * has threads; done runs on the loop's thread, never inside
 * graced_pool_run(), exactly once per job; graced_pool_free() waits for
 * every job queued (work and done), also those a done queues meanwhile.
 * Each case for 1, 2 and 4 threads.
 */
#include "graced.h"

#include <check.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NJOBS 40

struct tally {
    struct event_base *base;
    struct graced_pool *pool;
    pthread_t loop;
    atomic_int running, max_running, worked, off_loop;
    int done, done_on_loop, in_run, done_in_run, order_ok, requeue;
    int last_seq;
};

struct tjob {
    struct graced_job j; /* first: the job is the struct */
    struct tally *t;
    int seq;
    int sleep_ms;
    int worked_flag, done_flag;
};

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void t_work(struct graced_job *j)
{
    struct tjob *tj = (struct tjob *)j;
    struct tally *t = tj->t;
    int now = atomic_fetch_add(&t->running, 1) + 1, max = atomic_load(&t->max_running);
    while (now > max && !atomic_compare_exchange_weak(&t->max_running, &max, now))
        ;
    if (!pthread_equal(pthread_self(), t->loop))
        atomic_fetch_add(&t->off_loop, 1);
    if (tj->sleep_ms)
        nap(tj->sleep_ms);
    tj->worked_flag = 1;
    atomic_fetch_add(&t->worked, 1);
    atomic_fetch_sub(&t->running, 1);
}

static void t_done(struct graced_job *j)
{
    struct tjob *tj = (struct tjob *)j;
    struct tally *t = tj->t;
    ck_assert_int_eq(tj->worked_flag, 1); /* after its work */
    ck_assert_int_eq(tj->done_flag, 0);   /* once */
    tj->done_flag = 1;
    t->done++;
    t->done_on_loop += pthread_equal(pthread_self(), t->loop);
    t->done_in_run += t->in_run;
    if (t->requeue > 0) { /* a done that queues another job */
        struct tjob *more = calloc(1, sizeof(*more));
        ck_assert_ptr_nonnull(more);
        t->requeue--;
        more->j.work = t_work;
        more->j.done = t_done;
        more->t = t;
        more->seq = -1; /* freed in its done */
        graced_pool_run(t->pool, &more->j);
    }
    if (tj->seq < 0)
        free(tj);
    if (t->base && t->done == NJOBS)
        event_base_loopexit(t->base, NULL);
}

static const int threads_table[] = {1, 2, 4};

/* 40 jobs of 2 ms: all worked off the loop, at most N at once, each done
 * once on the loop, never inside graced_pool_run(). */
START_TEST(test_jobs_off_loop)
{
    int n = threads_table[_i];
    struct tally t = {0};
    struct tjob *jobs = calloc(NJOBS, sizeof(*jobs));
    t.base = event_base_new();
    t.loop = pthread_self();
    t.pool = graced_pool_new(t.base, n);
    ck_assert_ptr_nonnull(t.pool);
    for (int i = 0; i < NJOBS; i++) {
        jobs[i].j.work = t_work;
        jobs[i].j.done = t_done;
        jobs[i].t = &t;
        jobs[i].seq = i;
        jobs[i].sleep_ms = 2;
        t.in_run = 1;
        ck_assert_int_eq(graced_pool_run(t.pool, &jobs[i].j), 0);
        t.in_run = 0;
    }
    ck_assert_int_eq(graced_pool_pending(t.pool), NJOBS - t.done);
    event_base_dispatch(t.base);
    ck_assert_int_eq(t.done, NJOBS);
    ck_assert_int_eq(t.done_on_loop, NJOBS);
    ck_assert_int_eq(t.done_in_run, 0);
    ck_assert_int_eq(atomic_load(&t.off_loop), NJOBS);
    ck_assert_int_le(atomic_load(&t.max_running), n);
    ck_assert_int_ge(atomic_load(&t.max_running), 1);
    ck_assert_int_eq(graced_pool_pending(t.pool), 0);
    graced_pool_free(t.pool);
    event_base_free(t.base);
    free(jobs);
}
END_TEST

/* Freed with jobs still queued and running: it waits for every work, then
 * runs every done, also of jobs that a done queues meanwhile. */
START_TEST(test_free_waits)
{
    int n = threads_table[_i];
    struct tally t = {0};
    struct tjob *jobs = calloc(NJOBS, sizeof(*jobs));
    struct event_base *base = event_base_new();
    t.loop = pthread_self();
    t.pool = graced_pool_new(base, n);
    t.requeue = 5;
    for (int i = 0; i < NJOBS; i++) {
        jobs[i].j.work = t_work;
        jobs[i].j.done = t_done;
        jobs[i].t = &t;
        jobs[i].seq = i;
        jobs[i].sleep_ms = i % 4 == 0 ? 20 : 0;
        graced_pool_run(t.pool, &jobs[i].j);
    }
    graced_pool_free(t.pool); /* no loop ever ran */
    ck_assert_int_eq(atomic_load(&t.worked), NJOBS + 5);
    ck_assert_int_eq(t.done, NJOBS + 5);
    ck_assert_int_eq(t.done_on_loop, NJOBS + 5); /* from the freeing (loop) thread */
    event_base_free(base);
    free(jobs);
}
END_TEST

/* A pool that never got a job starts no thread and frees at once. */
START_TEST(test_idle_free)
{
    struct event_base *base = event_base_new();
    struct graced_pool *p = graced_pool_new(base, threads_table[_i]);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(graced_pool_pending(p), 0);
    graced_pool_free(p);
    graced_pool_free(NULL);
    event_base_free(base);
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_jobs_off_loop, 0, 3);
    tcase_add_loop_test(tc, test_free_waits, 0, 3);
    tcase_add_loop_test(tc, test_idle_free, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pool_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
