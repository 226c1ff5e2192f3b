/* The writer thread: drains the job queue, applies every queued request in one LMDB write
 * transaction (each request atomic), commits — durable before it returns in sync mode, through
 * the write-ahead log or LMDB's own fsync (store/wal.h) — and hands results back to the workers.
 * Between groups it runs retention sweeper ticks and, in async mode, the periodic fsync. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "freshet/err.h"
#include "server_int.h"

int fr_writer_submit(fr_server_t *s, fr_job_t *job)
{
    fr_writer_t *wr = &s->writer;
    job->next = NULL;
    pthread_mutex_lock(&wr->lock);
    if (wr->stop) {
        pthread_mutex_unlock(&wr->lock);
        return FR_E_SHUTDOWN;
    }
    if (wr->depth >= (size_t)s->cfg.max_queue) {
        pthread_mutex_unlock(&wr->lock);
        return FR_E_BUSY;
    }
    if (wr->tail)
        wr->tail->next = job;
    else
        wr->head = job;
    wr->tail = job;
    wr->depth++;
    atomic_store(&s->stats.queue_depth, wr->depth);
    pthread_cond_signal(&wr->cond);
    pthread_mutex_unlock(&wr->lock);
    return FR_OK;
}

const char *fr_writer_refusal(int rc)
{
    switch (rc) {
    case FR_E_SHUTDOWN:
        return "the server is stopping: nothing of this request was written; retry on another "
               "node or once it has restarted";
    case FR_E_BUSY:
        return "write queue is full (max_queue); retry with backoff";
    default:
        return fr_err_str(rc);
    }
}

/* A group's log record holds its rows about as compactly as the requests did; a quarter of the
 * record limit (FR_WAL_REC_MAX, 1 GiB) leaves room for any encoding overhead. */
#define GROUP_BODY_BYTES (256u << 20)

static void set_why(fr_job_t *job, const char *why)
{
    if (!why) {
        job->why = NULL;
        return;
    }
    snprintf(job->why_buf, sizeof job->why_buf, "%s", why);
    job->why = job->why_buf;
}

typedef struct {
    fr_job_t *group;
    size_t rows;
} group_pass_t;

/* One pass of fr_store_write_group over the jobs: sets every job's outcome. */
static void apply_jobs(fr_wtxn_t *txn, void *arg)
{
    group_pass_t *g = arg;
    g->rows = 0;
    for (fr_job_t *j = g->group; j; j = j->next) {
        if (j->op == freshet_Op_OP_PUT) {
            fr_write_batch_t b = {j->source[0] ? j->source : NULL, j->partition, j->rows,
                                  j->row_count, j->position_mode, j->position};
            j->rc = fr_store_write_apply(txn, &b, &j->result);
            g->rows += j->row_count;
            set_why(j, j->rc == FR_E_STORAGE_FULL
                           ? "LMDB map is full: raise map_size_mb or delete data; reads still work"
                           : j->result.why);
        } else {
            const char *why = NULL;
            j->rc = fr_store_write_registry(txn, (const char *)j->body, j->body_len, j->dry_run != 0,
                                            &j->diff, &why);
            set_why(j, why);
        }
    }
}

/* Applies a group; returns the jobs (all completed, rc set). */
static void run_group(fr_server_t *s, fr_job_t *group)
{
    int64_t t0 = fr_mono_us();
    group_pass_t pass = {group, 0};
    int rc = fr_store_write_group(s->store, apply_jobs, &pass);
    size_t rows = pass.rows;
    if (rc != FR_OK) {
        fr_log(FR_LOG_ERROR, "event=commit_failed code=%s", fr_err_name(rc));
        fr_store_info_t si;
        if (fr_store_info(s->store, &si) == FR_OK && si.wal_closed && !s->writer.wal_closed_logged) {
            fr_log(FR_LOG_ERROR, "event=wal_closed why=\"a failed commit could not be taken back "
                                 "out of the write-ahead log; every write fails until freshetd is "
                                 "restarted\"");
            s->writer.wal_closed_logged = true;
        }
        for (fr_job_t *j = group; j; j = j->next) {
            j->rc = rc;
            set_why(j, rc == FR_E_TOO_LARGE ? "the request is larger than one write-ahead log "
                                              "record may be (1 GiB): split it"
                                            : NULL);
        }
    }
    int64_t t1 = fr_mono_us(), dt = t1 - t0;
    fr_hist_observe(&s->stats.commit_latency, (uint64_t)dt);
    fr_hist_observe(&s->stats.group_rows, rows);
    atomic_fetch_add(&s->stats.commits, 1);
    atomic_fetch_add(&s->stats.commit_us_total, (unsigned long long)dt);
    if (rows > atomic_load(&s->stats.group_rows_max))
        atomic_store(&s->stats.group_rows_max, rows);
    for (fr_job_t *j = group; j; j = j->next)
        if (j->rc == FR_OK && j->op == freshet_Op_OP_PUT) {
            if (j->row_count) /* not a stream batch of rejected messages only */
                fr_hist_observe(&s->stats.ingest_visible, (uint64_t)(t1 - j->received_us));
            for (size_t i = 0; i < j->row_count; i++)
                if (j->rows[i].view->id < FR_STATS_VIEWS)
                    atomic_fetch_add_explicit(&s->stats.views[j->rows[i].view->id].rows_received, 1,
                                              memory_order_relaxed);
            atomic_fetch_add(&s->stats.rows_written, j->result.written);
            atomic_fetch_add(&s->stats.rows_duplicate, j->result.duplicates);
            atomic_fetch_add(&s->stats.rows_unchanged, j->result.unchanged);
            atomic_fetch_add(&s->stats.rows_late, j->result.late);
        }
    while (group) {
        fr_job_t *next = group->next;
        if (group->done_cb)
            group->done_cb(group);
        else
            fr_worker_complete(group->http ? s->http_worker : group->conn->worker, group);
        group = next;
    }
}

#define CKPT_LOG_EVERY_US 10000000 /* one checkpoint_failed line per 10 s while they go on */

/* Logs failed checkpoints (the store only counts them): the first at once, then at most one line
 * per CKPT_LOG_EVERY_US with how many failed since; and the first success after them. Writer
 * thread, after each group and each idle wake-up. */
static void check_checkpoints(fr_server_t *s)
{
    fr_writer_t *wr = &s->writer;
    uint64_t done;
    char reason[192];
    uint64_t failed = fr_store_checkpoint_state(s->store, &done, reason, sizeof reason);
    int64_t now = fr_mono_us();
    if (failed > wr->ckpt_failed_logged &&
        (!wr->ckpt_failing || now - wr->ckpt_log_us >= CKPT_LOG_EVERY_US)) {
        fr_log(FR_LOG_ERROR,
               "event=checkpoint_failed reason=\"%s\" failures=%llu new_failures=%llu "
               "checkpoints=%llu action=\"the write-ahead log grows until a checkpoint succeeds\"",
               reason, (unsigned long long)failed,
               (unsigned long long)(failed - wr->ckpt_failed_logged), (unsigned long long)done);
        wr->ckpt_failed_logged = failed;
        wr->ckpt_log_us = now;
        wr->ckpt_failing = true;
        wr->ckpt_done_at_fail = done;
    } else if (wr->ckpt_failing && done > wr->ckpt_done_at_fail) {
        fr_log(FR_LOG_INFO, "event=checkpoint_recovered failures=%llu checkpoints=%llu",
               (unsigned long long)failed, (unsigned long long)done);
        wr->ckpt_failing = false;
    }
}

static void sweep_tick(fr_server_t *s)
{
    int cleared = 0;
    if (fr_store_reader_check(s->store, &cleared) == FR_OK && cleared)
        fr_log(FR_LOG_WARN, "event=stale_readers_cleared count=%d", cleared);
    fr_wtxn_t *txn;
    if (fr_store_write_begin(s->store, &txn) != FR_OK)
        return;
    uint64_t deleted = 0;
    int rc = fr_store_sweep(txn, &s->writer.sweep, (size_t)s->cfg.sweep_keys, &deleted);
    if (rc == FR_OK && deleted)
        rc = fr_store_write_commit(txn);
    else
        fr_store_write_abort(txn);
    atomic_store(&s->stats.sweep_passes, s->writer.sweep.passes);
    if (rc == FR_OK && deleted) {
        atomic_fetch_add(&s->stats.sweep_deleted, deleted);
        fr_log(FR_LOG_DEBUG, "event=sweep deleted=%llu", (unsigned long long)deleted);
    }
}

static void *writer_main(void *arg)
{
    fr_server_t *s = arg;
    fr_writer_t *wr = &s->writer;
    int async = strcmp(s->cfg.durability, "sync") != 0; /* async and nosync sync periodically */
    int64_t next_sweep = fr_mono_us() + s->cfg.sweep_interval_ms * 1000;
    int64_t next_sync = fr_mono_us() + s->cfg.sync_interval_ms * 1000;
    int dirty = 0;
    pthread_mutex_lock(&wr->lock);
    for (;;) {
        while (!wr->head && !wr->stop) {
            int64_t now = fr_mono_us();
            int64_t until = next_sweep;
            if (async && dirty && next_sync < until)
                until = next_sync;
            if (now >= until)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wake_ns = (int64_t)ts.tv_nsec + (until - now) * 1000;
            ts.tv_sec += (time_t)(wake_ns / 1000000000);
            ts.tv_nsec = (long)(wake_ns % 1000000000);
            pthread_cond_timedwait(&wr->cond, &wr->lock, &ts);
        }
        /* take up to max_group_rows rows' worth of jobs, and at most GROUP_BODY_BYTES of request
         * bodies: the group is one write-ahead log record, which has a size limit */
        fr_job_t *group = wr->head, *last = NULL;
        size_t rows = 0, bytes = 0;
        for (fr_job_t *j = wr->head; j; j = j->next) {
            if (last && (rows + j->row_count > (size_t)s->cfg.max_group_rows ||
                         bytes + j->body_len > GROUP_BODY_BYTES))
                break;
            rows += j->row_count;
            bytes += j->body_len;
            last = j;
            wr->depth--;
        }
        if (last) {
            wr->head = last->next;
            if (!wr->head)
                wr->tail = NULL;
            last->next = NULL;
        } else {
            group = NULL;
        }
        int stop = wr->stop && !wr->head;
        atomic_store(&s->stats.queue_depth, wr->depth);
        pthread_mutex_unlock(&wr->lock);
        if (group) {
            run_group(s, group);
            dirty = 1;
        }
        check_checkpoints(s);
        int64_t now = fr_mono_us();
        if (async && dirty && (now >= next_sync || stop)) {
            if (fr_store_sync(s->store) != FR_OK)
                fr_log(FR_LOG_ERROR, "event=sync_failed");
            dirty = 0;
            next_sync = now + s->cfg.sync_interval_ms * 1000;
        }
        if (now >= next_sweep && !stop) {
            sweep_tick(s);
            next_sweep = fr_mono_us() + s->cfg.sweep_interval_ms * 1000;
        }
        pthread_mutex_lock(&wr->lock);
        if (stop && !wr->head)
            break;
    }
    pthread_mutex_unlock(&wr->lock);
    return NULL;
}

int fr_writer_start(fr_server_t *s)
{
    fr_writer_t *wr = &s->writer;
    pthread_mutex_init(&wr->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&wr->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&wr->thread, NULL, writer_main, s) != 0)
        return FR_E_INTERNAL;
    return FR_OK;
}

void fr_writer_stop(fr_server_t *s)
{
    fr_writer_t *wr = &s->writer;
    pthread_mutex_lock(&wr->lock);
    wr->stop = 1;
    pthread_cond_signal(&wr->cond);
    pthread_mutex_unlock(&wr->lock);
    pthread_join(wr->thread, NULL);
    pthread_cond_destroy(&wr->cond);
    pthread_mutex_destroy(&wr->lock);
}
