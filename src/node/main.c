/*
 * The `warren` program: subcommands http (the client, with an embedded node
 * when no --node is given: cmd_http.c), node (an edge node: cmd_node.c),
 * keygen and pubkey.  app.c is the running program both share (signals,
 * shutdown order, the ingress); node_admin.c and node_swim.c are the
 * node's admin handlers and membership wiring.
 *
 * The command line is a contract users' scripts rely on (DESIGN.md
 * "Command-line contract"): extend it, never break it.  Every usage error
 * is one line on stderr and exit status 2; runtime failures exit 1.
 */
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "app.h"

static const char usage_main[] =
    "usage: warren COMMAND [ARGS...]\n"
    "\n"
    "  http PORT      serve localhost:PORT at a public URL through a node\n"
    "  node           run an edge node\n"
    "  keygen         print a new cluster secret (keep it private)\n"
    "  pubkey FILE    print the fleet public key clients pin (--fleet-key)\n"
    "\n"
    "  --help, -h     this text (warren COMMAND --help for a command)\n"
    "  --version      print the version\n"
    "\n"
    "Environment: WARREN_LOG=debug|info|warn|error (stderr log level).\n";

__attribute__((format(printf, 1, 2))) int usage_error(const char *fmt,
                                                             ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "warren: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (see --help)\n");
  va_end(ap);
  return 2;
}

/* Every program and command answers --version (DESIGN.md). */
int print_version(void) {
  printf("warren %s\n", WARREN_VERSION);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- keys ---- */

int read_secret(const char *path, uint8_t secret[32]) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "warren: cannot read key file %s: %s\n", path,
            strerror(errno));
    return 1;
  }
  char buf[KEY_FILE_MAX];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  if (wr_keys_parse_secret(buf, n, secret) != 0) {
    fprintf(stderr,
            "warren: %s is not a cluster secret (64 hex characters, as "
            "written by `warren keygen`)\n",
            path);
    sodium_memzero(buf, sizeof buf);
    return 1;
  }
  sodium_memzero(buf, sizeof buf);
  return 0;
}

static int cmd_keygen(int argc, char **argv) {
  if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
    printf("usage: warren keygen > FILE\n\nPrints a new random cluster "
           "secret.  The gossip key and the fleet\nNoise key derive from it; "
           "give the file to every node (mode 0600).\n");
    return 0;
  }
  if (argc > 2 && !strcmp(argv[2], "--version")) return print_version();
  if (argc > 2) return usage_error("keygen takes no arguments: '%s'", argv[2]);
  /* `warren keygen > FILE`: the shell created FILE with the umask's mode,
   * usually readable by everyone, and the secret must not be (ssh-keygen
   * writes its keys 0600).  Only a regular file is changed, before the
   * secret is in it; a pipe or a terminal is left alone. */
  struct stat st;
  if (fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
      (st.st_mode & 077) && fchmod(STDOUT_FILENO, st.st_mode & 0700) != 0)
    fprintf(stderr, "warren: warning: cannot make the key file private "
                    "(chmod 600 it yourself): %s\n", strerror(errno));
  uint8_t secret[32];
  char hex[65];
  randombytes_buf(secret, sizeof secret);
  wr_keys_format_secret(secret, hex);
  printf("%s\n", hex);
  sodium_memzero(secret, sizeof secret);
  sodium_memzero(hex, sizeof hex);
  return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_pubkey(int argc, char **argv) {
  if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
    printf("usage: warren pubkey FILE\n\nPrints the fleet public key "
           "derived from the cluster secret in FILE;\nclients pin it with "
           "--fleet-key.\n");
    return 0;
  }
  if (argc > 2 && !strcmp(argv[2], "--version")) return print_version();
  if (argc != 3) {
    fprintf(stderr, "warren: pubkey needs exactly one FILE (see --help)\n");
    return 2;
  }
  uint8_t secret[32], pub[32], priv[32];
  if (read_secret(argv[2], secret) != 0) return 1;
  wr_keys_fleet_keypair(secret, pub, priv);
  char out[44];
  wr_keys_format_pub(pub, out);
  printf("%s\n", out);
  sodium_memzero(secret, sizeof secret);
  sodium_memzero(priv, sizeof priv);
  return 0;
}

int main(int argc, char **argv) {
  if (sodium_init() < 0) {
    fprintf(stderr, "warren: libsodium failed to initialise\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    fputs(usage_main, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    fputs(usage_main, stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) return print_version();
  if (!strcmp(cmd, "http")) return cmd_http(argc, argv);
  if (!strcmp(cmd, "node")) return cmd_node(argc, argv);
  if (!strcmp(cmd, "keygen")) return cmd_keygen(argc, argv);
  if (!strcmp(cmd, "pubkey")) return cmd_pubkey(argc, argv);
  return usage_error("unknown command '%s'", cmd);
}
