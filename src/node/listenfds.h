/*
 * Listening sockets handed to `warren node` at start, by the protocol of
 * systemd's socket activation (sd_listen_fds(3)): LISTEN_FDS=N says
 * descriptors 3 .. 3+N-1 are open listening sockets, LISTEN_FDNAMES
 * names them (colon-separated; FileDescriptorName= in a .socket unit),
 * LISTEN_PID is the process they are meant for.  warren uses the one
 * named "http" (or the only one, unnamed) as its public port.  A node
 * that upgrades itself in place passes its socket the same way, without
 * LISTEN_PID (it cannot know the new pid before the exec).
 *
 * Pure parsing (no syscalls); the caller checks the descriptor itself.
 */
#ifndef WARREN_NODE_LISTENFDS_H
#define WARREN_NODE_LISTENFDS_H

#include <stddef.h>

#define WR_LISTEN_FDS_START 3
/* More would be a misconfiguration: warren takes one public socket. */
#define WR_LISTEN_FDS_MAX 16

/*
 * |fds|, |pid|, |names|: the three variables (NULL when unset); |mypid|
 * our pid; |want| the name sought ("http").  Returns 1 with *pfd set when
 * a socket was handed to us for |want|; 0 when none was (LISTEN_FDS
 * unset, or LISTEN_PID names another process: the variables were meant
 * for someone else, as sd_listen_fds says); -1 with a one-line reason in
 * |err| when the variables are malformed or name no |want| among several.
 */
int wr_listen_fds_find(const char *fds, const char *pid, const char *names,
                       long mypid, const char *want, int *pfd, char *err,
                       size_t errlen);

#endif
