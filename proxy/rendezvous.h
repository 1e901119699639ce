/*
 * rendezvous — weighted highest-random-weight placement (Thaler & Ravishankar; the
 * logarithmic method of Schindelhauer & Schomaker), research/hashing.md §3.4.
 *
 * Backend i scores key hash h with −w_i / ln u, u ∈ (0, 1) drawn from (h, name hash of i);
 * the highest score wins, so backend i takes exactly w_i/Σw of the keys in expectation and
 * any change (add, remove, weight) moves only the keys that must move. Nothing to build
 * beyond one name hash per backend; a lookup is O(n) (about 1 µs at n = 1000): a fit for
 * small pools, or when instances cannot share pins and the configuration changes often.
 *
 * Eligibility overlay: ineligible backends simply do not take part, so an ejected backend's
 * keys go to their second-highest score — spread by weight, nothing else moves.
 */
#ifndef RL_RENDEZVOUS_H
#define RL_RENDEZVOUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RENDEZVOUS_MAX_BACKENDS 65535
#define RENDEZVOUS_MAX_WEIGHT   256 /* weights are 1..RENDEZVOUS_MAX_WEIGHT */

struct rendezvous;

/*
 * n backends (1..RENDEZVOUS_MAX_BACKENDS): names[i] its identity, weights[i] in
 * 1..RENDEZVOUS_MAX_WEIGHT, seed = hash_seed. NULL on bad arguments (a NULL name, two equal
 * names, a weight out of range) or no memory. Copies what it keeps (not the names).
 */
struct rendezvous *rendezvous_build(const char *const *names, const unsigned *weights, size_t n,
                                    uint64_t seed);
void rendezvous_free(struct rendezvous *r);

/*
 * Highest-scoring backend (caller index) for key hash h among the eligible ones (eligible:
 * NULL = all, else rendezvous_backends(r) flags). -1 when none is eligible or r is NULL.
 * The result does not depend on the order backends were given in.
 */
int rendezvous_lookup(const struct rendezvous *r, uint64_t h, const bool *eligible);

size_t rendezvous_backends(const struct rendezvous *r);
unsigned rendezvous_weight(const struct rendezvous *r, size_t i);
size_t rendezvous_bytes(const struct rendezvous *r);

#endif
