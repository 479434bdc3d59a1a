/* writer.h — a stand-in for the application's write traffic: a thread with its own connection
 * that inserts one row per transaction into a table of its own until stopped. Each of its
 * transactions takes a transaction id, which is what retentiond's pacing watches. */
#pragma once

#include <pthread.h>
#include <stdbool.h>

#include <libpq-fe.h>

typedef struct Writer {
        pthread_t thread;
        PGconn *conn;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop;
        long long commits;
} Writer;

static inline void *writer_main(void *userdata) {
        Writer *w = userdata;
        for (;;) {
                pthread_mutex_lock(&w->lock);
                bool stop = w->stop;
                pthread_mutex_unlock(&w->lock);
                if (stop)
                        break;
                PGresult *r = PQexec(w->conn, "INSERT INTO public.writer_noise (at) VALUES (clock_timestamp())");
                bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
                PQclear(r);
                if (!ok)
                        break;
                pthread_mutex_lock(&w->lock);
                w->commits++;
                pthread_cond_broadcast(&w->cond);
                pthread_mutex_unlock(&w->lock);
        }
        return NULL;
}

/* Starts writing to `conninfo` and returns once the first row is committed. */
static inline Writer *writer_start(const char *conninfo) {
        Writer *w = calloc(1, sizeof(Writer));
        if (!w)
                abort();
        w->conn = PQconnectdb(conninfo);
        if (PQstatus(w->conn) != CONNECTION_OK)
                abort();
        PQclear(PQexec(w->conn, "CREATE TABLE IF NOT EXISTS public.writer_noise (id bigserial PRIMARY KEY, at timestamptz)"));
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
                abort();
        pthread_mutex_lock(&w->lock);
        while (w->commits == 0)
                pthread_cond_wait(&w->cond, &w->lock);
        pthread_mutex_unlock(&w->lock);
        return w;
}

/* Stops the writer; returns how many transactions it committed. */
static inline long long writer_stop(Writer *w) {
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
        long long n = w->commits;
        PQfinish(w->conn);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
        return n;
}
