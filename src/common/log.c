#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "warren/log.h"

static int log_level = -1;

static const char *level_names[] = {"debug", "info", "warn", "error"};

int wr_log_parse_level(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0) return i;
  return -1;
}

void wr_log_set_level(int level) { log_level = level; }

int wr_log_level(void) {
  if (log_level < 0) {
    const char *env = getenv("WARREN_LOG");
    int l = env ? wr_log_parse_level(env) : -1;
    log_level = l >= 0 ? l : WR_LOG_INFO;
  }
  return log_level;
}

void wr_log(int level, const char *component, const char *event,
            const char *fmt, ...) {
  if (level < wr_log_level()) return;
  /* One buffer and one fwrite per line, so lines from the embedded node
   * and the client in one process never interleave mid-line. */
  char line[1024];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line,
                   "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s %s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                   level_names[level & 3], component, event);
  if (n < 0) return;
  if ((size_t)n < sizeof line - 1 && fmt && *fmt) {
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - 1 - (size_t)n, fmt, ap);
    va_end(ap);
    if (m > 0) n += m;
  }
  if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
  line[n++] = '\n';
  fwrite(line, 1, (size_t)n, stderr);
}
