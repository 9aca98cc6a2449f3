/*
 * Readable random tunnel names: "quiet-otter-4821" (adjective, animal,
 * four digits).  64 × 64 × 10,000 ≈ 41 million names, so two clients of
 * one fleet picking the same one by chance is rare, and a clash is caught
 * by the bind anyway (the node picks again).
 */
#ifndef WARREN_NAMES_H
#define WARREN_NAMES_H

#include "warren/types.h"

#define WR_NAME_RANDOM_MAX 32

/* Writes a NUL-terminated name into |out| (>= WR_NAME_RANDOM_MAX bytes). */
void wr_name_random(char *out, wr_rand_fn rand, void *rand_ud);

#endif
