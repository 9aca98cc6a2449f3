/*
 * Poison for the sans-IO cores (DESIGN.md, STYLE.md "Layout").
 *
 * Every core static library (wr_common, wr_*_core) is compiled with this
 * directory ahead of the system include path, so `#include <uv.h>` finds
 * this file instead of libuv's, whether the core includes it directly or
 * through one of our headers (link.h, ingress.h).  The build then fails
 * here, naming the file that reached it in the "In file included from"
 * chain.  Adapters (*_uv.c) are built in separate targets without it.
 */
#error "a sans-IO core reaches <uv.h>: move the I/O into the *_uv.c adapter"
