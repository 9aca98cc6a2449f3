/*
 * Logging: one line per event on stderr, "ts level component msg k=v ...".
 *
 *   WR_LOG_INFO("tunnel", "bound", "name=%s node=%s", name, id);
 *
 * The level threshold is process-wide (WARREN_LOG=debug|info|warn|error or
 * wr_log_set_level).  Cores do not log; adapters and the daemon do.
 */
#ifndef WARREN_LOG_H
#define WARREN_LOG_H

enum { WR_LOG_DEBUG = 0, WR_LOG_INFO = 1, WR_LOG_WARN = 2, WR_LOG_ERROR = 3 };

void wr_log_set_level(int level);
int wr_log_level(void);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int wr_log_parse_level(const char *s);
void wr_log(int level, const char *component, const char *event,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define WR_LOG_DEBUGF(c, e, ...)                                              \
  do {                                                                        \
    if (wr_log_level() <= WR_LOG_DEBUG) wr_log(WR_LOG_DEBUG, c, e, __VA_ARGS__); \
  } while (0)
#define WR_LOG_INFOF(c, e, ...) wr_log(WR_LOG_INFO, c, e, __VA_ARGS__)
#define WR_LOG_WARNF(c, e, ...) wr_log(WR_LOG_WARN, c, e, __VA_ARGS__)
#define WR_LOG_ERRORF(c, e, ...) wr_log(WR_LOG_ERROR, c, e, __VA_ARGS__)

#endif
