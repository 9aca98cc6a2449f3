/* Member tags (tags.h). */
#include "tags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wr_tag_value(const char *tags, const char *key, char *out, size_t cap) {
  size_t klen = strlen(key);
  for (const char *p = tags; p && *p;) {
    if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
      const char *v = p + klen + 1;
      size_t n = strcspn(v, ",");
      if (cap) snprintf(out, cap, "%.*s", (int)n, v);
      return (int)n;
    }
    p = strchr(p, ',');
    if (p) p++;
  }
  if (cap) out[0] = 0;
  return -1;
}

uint64_t wr_tag_u64(const char *tags, const char *key) {
  char v[24];
  int n = wr_tag_value(tags, key, v, sizeof v);
  if (n <= 0 || (size_t)n >= sizeof v || strspn(v, "0123456789") != (size_t)n)
    return 0;
  errno = 0;
  unsigned long long x = strtoull(v, NULL, 10);
  return errno ? 0 : x;
}
