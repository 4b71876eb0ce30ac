/* splitmix64 (Steele, Lea, Flood 2014): see rng.h. */
#include <math.h>

#include "rng.h"
#include "common/banned.h"

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void rng_init(struct rng *r, uint64_t seed, uint64_t stream)
{
	r->state = mix(seed ^ 0x9e3779b97f4a7c15ULL) ^ mix(stream + 0x632be59bd9b4e019ULL);
}

uint64_t rng_next(struct rng *r)
{
	r->state += 0x9e3779b97f4a7c15ULL;
	return mix(r->state);
}

double rng_uniform(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

long rng_range(struct rng *r, long lo, long hi)
{
	uint64_t span = (uint64_t)(hi - lo) + 1;

	return lo + (long)(rng_next(r) % span);
}

int rng_chance(struct rng *r, double p)
{
	return rng_uniform(r) < p;
}

double rng_exponential(struct rng *r, double rate)
{
	return -log(1.0 - rng_uniform(r)) / rate;
}

size_t rng_weighted(struct rng *r, const double *weights, size_t n)
{
	double total = 0, x;

	for (size_t i = 0; i < n; i++)
		total += weights[i];
	x = rng_uniform(r) * total;
	for (size_t i = 0; i < n; i++) {
		if (x < weights[i])
			return i;
		x -= weights[i];
	}
	return n - 1;
}
