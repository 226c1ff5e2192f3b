/* Fault injection for tests: make the Nth allocation or the Nth storage operation fail.
 *
 * The store and the registry allocate through fr_malloc/fr_calloc/fr_realloc/fr_strdup and wrap
 * their LMDB writes in FR_FAULT_MDB, so a test can arm a countdown, run an operation, and check
 * that the failure became a clean error with nothing half-applied and nothing leaked (ASan).
 * This is the one piece of process-global mutable state in Freshet, on purpose: faults must reach
 * code that has no handle to pass them through. Disarmed, the cost is one relaxed atomic load.
 * freshetd arms it from the environment (FRESHET_FAULT_ALLOC_NTH, FRESHET_FAULT_STORE_NTH) for
 * end-to-end fault tests. */
#ifndef FR_COMMON_FAULT_H
#define FR_COMMON_FAULT_H

#include <stddef.h>

/* FR_FAULT_WAL_UNDO: the write-ahead log's taking back of a record whose commit failed
 * (store/wal.c); only tests arm it, since the real failure (ftruncate or fdatasync of the log
 * failing right after a failed commit) cannot be provoked on demand. */
typedef enum {
    FR_FAULT_ALLOC = 0,
    FR_FAULT_STORE = 1,
    FR_FAULT_WAL_UNDO = 2,
    FR_FAULT_SITES
} fr_fault_site_t;

/* The nth call (1-based) at site fails, and every later call too when sticky; 0 disarms. */
void fr_fault_arm(fr_fault_site_t site, long nth, int sticky);
void fr_fault_disarm(void);
/* Counts one call at site; returns 1 when it must fail. */
int fr_fault_hit(fr_fault_site_t site);
/* Failures injected since the last arm. */
long fr_fault_injected(void);
/* Arms from FRESHET_FAULT_ALLOC_NTH / FRESHET_FAULT_STORE_NTH / FRESHET_FAULT_WAL_UNDO_NTH if set. */
void fr_fault_arm_from_env(void);

void *fr_malloc(size_t n);
void *fr_calloc(size_t n, size_t size);
void *fr_realloc(void *p, size_t n);
char *fr_strdup(const char *s);

#endif
