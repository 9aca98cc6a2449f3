/*
 * A member's tags ("k=v,k=v", as gossiped in its membership metadata):
 * the node reads its peers' admin address ("admin=") and routes epoch
 * ("re=") from them.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* The value of |key| in |tags| copied into |out| (truncated to |cap|):
 * its full length, or -1 when absent (|out| is then ""). */
int wr_tag_value(const char *tags, const char *key, char *out, size_t cap);
/* The value of |key| as a decimal number; 0 when absent or not one. */
uint64_t wr_tag_u64(const char *tags, const char *key);
