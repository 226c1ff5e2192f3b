/* A worker event loop on its own thread, fed by other threads: the acceptor hands it sockets, and
 * anything else (freshetd's writer with finished jobs) wakes it through the same event. Shared by
 * freshetd's workers (src/server/conn.c) and freshet-infer's (src/infer/server.c), which differ
 * only in what they do with a socket and on a wake-up.
 *
 * Threads: fr_loop_hand_fd, fr_loop_wake and fr_loop_stop may be called from any thread;
 * fr_loop_take only from the loop's own callback. `lock` is the owner's too: state it shares
 * with other threads (freshetd's finished-job list) is guarded by it, so one wake-up takes both. */
#ifndef FR_NET_LOOP_H
#define FR_NET_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>

#include <event2/event.h>

/* A connection as its loop tracks it. The owner embeds it as the first member of its own
 * connection struct (and casts back from it); only the owner's loop thread touches it. */
typedef struct fr_loop_conn {
    struct fr_loop_conn *prev, *next;
    struct bufferevent *bev; /* NULL once the owner has closed the socket */
    int close_after_flush;   /* draining: reading stopped, freed once its replies are flushed */
    int direct;              /* plain socket: fr_loop_conn_send writes replies itself */
} fr_loop_conn_t;

typedef struct {
    struct event_base *base;
    struct event *wake; /* runs the owner's callback on the loop */
    pthread_t thread;
    int running; /* the thread was started */
    pthread_mutex_t lock;
    int *new_fds; /* handed over, not yet taken */
    size_t new_fd_count, new_fd_cap;
    atomic_int stopping; /* set by fr_loop_stop; also read outside the lock */
    fr_loop_conn_t *conns; /* the open connections (loop thread only) */
    size_t conn_count;
    /* Set before fr_loop_start: after every wake-up the loop keeps polling for this many
     * microseconds before it sleeps in epoll again (0: never polls). */
    int64_t busy_poll_us;
} fr_loop_t;

/* Once per process, before any loop: libevent's pthread locking (bases are woken from other
 * threads) and SIGPIPE ignored (a peer that closes makes a write fail with EPIPE instead of
 * killing the daemon). Safe to call from every daemon's constructor. */
void fr_loop_process_init(void);

/* Creates the event base and the wake event (on_wake(-1, EV_READ, arg) runs on the loop for every
 * hand-over, wake and stop). FR_OK or FR_E_NOMEM; fr_loop_fini cleans up either way. */
int fr_loop_init(fr_loop_t *l, event_callback_fn on_wake, void *arg);
/* Runs the loop on a new thread until it exits. FR_OK or FR_E_INTERNAL. */
int fr_loop_start(fr_loop_t *l);
/* Queues an accepted socket for the loop and wakes it; without memory the socket is closed. */
void fr_loop_hand_fd(fr_loop_t *l, int fd);
void fr_loop_wake(fr_loop_t *l);
/* On the loop: the sockets handed over since the last call (*n of them; free() the array) and
 * whether fr_loop_stop was called. */
int *fr_loop_take(fr_loop_t *l, size_t *n, int *stopping);
/* Asks the loop to drain: sets stopping and wakes it (the owner closes its connections once their
 * replies are flushed, then exits the loop); after grace_s seconds the loop exits regardless, so a
 * peer that never reads cannot hold shutdown hostage. */
void fr_loop_stop(fr_loop_t *l, int grace_s);
/* Tracks / stops tracking a connection (on the loop). Removing the last connection of a stopping
 * loop ends the loop. The owner frees its connection after removing it. */
void fr_loop_conn_add(fr_loop_t *l, fr_loop_conn_t *c);
void fr_loop_conn_remove(fr_loop_t *l, fr_loop_conn_t *c);
/* Starts reading c->bev (set, with its callbacks). plain: a socket without TLS, whose replies
 * fr_loop_conn_send writes with send() itself. */
void fr_loop_conn_enable(fr_loop_conn_t *c, bool plain);
/* Queues a reply. On a plain socket with nothing queued before it, it goes out with one send()
 * straight from `data`; only what the socket does not take is copied into the bufferevent, whose
 * EV_WRITE is enabled just while it holds bytes. (Letting libevent write every reply cost an
 * epoll_ctl to add EV_WRITE, an extra loop pass, two writev — bufferevents write 16 KB at a
 * time — an epoll_ctl to remove it, and a copy of the reply.) */
void fr_loop_conn_send(fr_loop_conn_t *c, const void *data, size_t len);
/* For the owner's write callback: on a plain socket whose bufferevent has sent everything, stops
 * watching for writability until fr_loop_conn_send queues bytes again. */
void fr_loop_conn_drained(fr_loop_conn_t *c);
/* Stops reading from c and marks it close_after_flush (its replies still go out); true when
 * nothing is left to send, so the owner closes it now (otherwise its write callback does). */
int fr_loop_conn_finish(fr_loop_conn_t *c);
/* The drain of a stopping loop (on the loop): every connection with a socket stops reading and is
 * marked close_after_flush; those with no reply left to send, and for which idle(c) holds (NULL:
 * always), are closed now through close_conn. Ends the loop when none is left. */
void fr_loop_drain(fr_loop_t *l, int (*idle)(const fr_loop_conn_t *c),
                   void (*close_conn)(fr_loop_conn_t *c));
/* Waits for the thread (if started). Then the owner frees what is left on the base. */
void fr_loop_join(fr_loop_t *l);
/* Frees the wake event, the base, the queue (closing sockets never taken) and the lock. */
void fr_loop_fini(fr_loop_t *l);

#endif
