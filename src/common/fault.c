/* Countdown-based fault injection (see fault.h). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

static atomic_long countdown[FR_FAULT_SITES];
static atomic_int sticky_site[FR_FAULT_SITES];
static atomic_long injected;

void fr_fault_arm(fr_fault_site_t site, long nth, int sticky)
{
    atomic_store(&countdown[site], nth);
    atomic_store(&sticky_site[site], sticky);
    atomic_store(&injected, 0);
}

void fr_fault_disarm(void)
{
    for (int i = 0; i < FR_FAULT_SITES; i++) {
        atomic_store(&countdown[i], 0);
        atomic_store(&sticky_site[i], 0);
    }
}

int fr_fault_hit(fr_fault_site_t site)
{
    long left = atomic_load_explicit(&countdown[site], memory_order_relaxed);
    if (left == 0)
        return 0;
    if (left == 1) {
        if (!atomic_load(&sticky_site[site]))
            atomic_store(&countdown[site], 0);
        atomic_fetch_add(&injected, 1);
        return 1;
    }
    atomic_fetch_sub(&countdown[site], 1);
    return 0;
}

long fr_fault_injected(void) { return atomic_load(&injected); }

void fr_fault_arm_from_env(void)
{
    const char *a = getenv("FRESHET_FAULT_ALLOC_NTH"), *s = getenv("FRESHET_FAULT_STORE_NTH");
    if (a && *a)
        fr_fault_arm(FR_FAULT_ALLOC, atol(a), 0);
    if (s && *s)
        fr_fault_arm(FR_FAULT_STORE, atol(s), 0);
    const char *u = getenv("FRESHET_FAULT_WAL_UNDO_NTH");
    if (u && *u)
        fr_fault_arm(FR_FAULT_WAL_UNDO, atol(u), 0);
}

void *fr_malloc(size_t n) { return fr_fault_hit(FR_FAULT_ALLOC) ? NULL : malloc(n); }
void *fr_calloc(size_t n, size_t size) { return fr_fault_hit(FR_FAULT_ALLOC) ? NULL : calloc(n, size); }
void *fr_realloc(void *p, size_t n) { return fr_fault_hit(FR_FAULT_ALLOC) ? NULL : realloc(p, n); }

char *fr_strdup(const char *s)
{
    if (fr_fault_hit(FR_FAULT_ALLOC))
        return NULL;
    return strdup(s);
}
