/*
 * HTTP reason phrases (RFC 9110 section 15) for the statuses warren writes
 * itself: the ingress's error pages and the admin API's responses.
 */
#ifndef WARREN_HTTP_STATUS_H
#define WARREN_HTTP_STATUS_H

/* The reason phrase for |status|, or NULL when warren never sends it
 * (callers pick their own fallback). */
const char *wr_http_reason(int status);

#endif
