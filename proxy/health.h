/*
 * health — is each backend fit to take conversations? Active checks from the control
 * thread, passive ejection from the data path; the verdict lives in struct backend_rt
 * (health, and `down`, which the router reads), so it survives reloads by backend name.
 *
 *   control loop: per backend a timer (interval ± 10 %) ──► GET [health] path (evhttp)
 *       status in expect ──► good; else, timeout, refused ──► bad
 *       checking ──rise good──► up ──fall bad──► down ──rise good──► up
 *   data path: health_passive_report(ok | failed) ── passive_failures in a row ──► down
 *
 * With active checks off ([health] path = "") every backend is up, and a passively
 * ejected one is put back after one interval (its next requests are the probe).
 * Only health_passive_report may be called off the control thread.
 */
#ifndef RL_HEALTH_H
#define RL_HEALTH_H

#include <stdbool.h>

#include "pool.h"

#define HEALTH_JITTER_PCT 10          /* checks fire at interval ± this many percent */
#define HEALTH_BODY_MAX   (64 * 1024) /* bytes of a check response body accepted */
#define HEALTH_USER_AGENT "ringleader-health"

struct event_base;
struct health;

/* A checker on base (the control loop). Nothing runs before health_set_pool. */
struct health *health_new(struct event_base *base);
void health_free(struct health *h);

/*
 * Adopt snapshot p (a reference is taken): backends that stay keep their state and
 * their check rhythm, new ones start checking (not placeable) when active checks are on,
 * removed ones stop being checked, changed [health] settings apply from the next check.
 * Call it before p is handed to the data path, so a new backend is never placed before
 * it passed its checks. 0, or -1 on allocation failure (the previous set keeps running).
 */
int health_set_pool(struct health *h, struct rl_pool *p);

/*
 * The data path's verdict on one exchange with backend b: failed = connect failure,
 * 5xx response or no response; ok = any response below 500. threshold = [health]
 * passive_failures (0 = off). After threshold failures in a row an up backend goes down
 * at once (logged, counted). Thread-safe, lock-free.
 */
void health_passive_report(const struct rl_backend *b, bool failed, unsigned threshold);

#endif
