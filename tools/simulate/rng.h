/* A small deterministic pseudo-random generator for the simulator (splitmix64): the same
 * seed and stream give the same sequence on every machine, so a region and its plan are
 * reproducible from --seed. Each school draws from its own stream, so adding a school
 * does not change what the others do. Not for secrets. Not thread-safe: one owner. */
#ifndef SIMULATE_RNG_H
#define SIMULATE_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
	uint64_t state;
};

/* A generator for (seed, stream); stream names what draws from it (a school's index, a
 * county's, a purpose). */
void rng_init(struct rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, 1). */
double rng_uniform(struct rng *r);
/* Uniform integer in [lo, hi] (lo <= hi). */
long rng_range(struct rng *r, long lo, long hi);
/* 1 with probability p. */
int rng_chance(struct rng *r, double p);
/* An exponential variate of the given rate (> 0): the wait to the next event of a
 * Poisson process. */
double rng_exponential(struct rng *r, double rate);
/* An index in [0, n) drawn with the given non-negative weights (not all zero). */
size_t rng_weighted(struct rng *r, const double *weights, size_t n);

#endif
