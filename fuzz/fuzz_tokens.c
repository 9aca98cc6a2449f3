/* libFuzzer target: the tokens file (`warren node --tokens FILE`).  Any
 * text must parse or fail with a one-line error; a parsed table must
 * answer lookups of what it was given without crashing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init && sodium_init() >= 0) init = 1;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  wr_tokens *t = NULL;
  char err[300] = "";
  int rv = wr_tokens_parse(text, &t, err, sizeof err);
  if (rv != 0) {
    if (t || !err[0] || strchr(err, '\n')) abort();
  } else {
    /* Every "token = X" line's value is someone's token now. */
    for (char *p = strstr(text, "token = "); p; p = strstr(p + 1, "token = ")) {
      char tok[600];
      size_t n = strcspn(p + 8, "\r\n");
      if (n >= sizeof tok) continue;
      memcpy(tok, p + 8, n);
      tok[n] = 0;
      while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t')) tok[--n] = 0;
      (void)wr_tokens_account(t, tok);
    }
    (void)wr_tokens_reserved(t, "app");
    wr_tokens_del(t);
  }
  free(text);
  return 0;
}
