/*
 * Accounts from a tokens file (`warren node --tokens FILE`, reloaded on
 * SIGHUP).  One INI section per account, parsed with Debian's inih:
 *
 *   # /etc/warren/tokens  (mode 0600: the tokens are secrets)
 *   [acme]                      ; the account's name
 *   token = 3f9c2a51d0e84b7c    ; a client token (several lines: several)
 *   token = 77ab0c11e2f94d3a
 *   names = app, api            ; reserved: only acme may bind these
 *
 *   [bob]
 *   token = 5c1d9e0a7b3f2d4e
 *
 * A client presenting a token of [acme] binds names as account "acme";
 * an unknown token is refused.  A reserved name is refused to every other
 * account, even while acme is not using it.  Without a tokens file a
 * client's account is its own identity key ("key:" accounts), so account
 * names here may not start with "key:".
 *
 * Pure code (no libuv, no file I/O): the node reads the file, this parses
 * the text.  Tokens are kept only as BLAKE2b hashes, so the table does
 * not hold the secrets and a lookup compares hashes, not token bytes.
 */
#ifndef WARREN_NODE_TOKENS_H
#define WARREN_NODE_TOKENS_H

#include <stddef.h>

typedef struct wr_tokens wr_tokens;

/* Bounds: a file of up to 1 MiB, 100,000 tokens and 100,000 names. */
#define WR_TOKENS_FILE_MAX (1u << 20)
#define WR_TOKENS_MAX 100000
/* A token is 16..512 printable characters: shorter ones are guessable. */
#define WR_TOKEN_MIN 16
#define WR_TOKEN_MAX 512

/*
 * Parses |text| (NUL-terminated).  Returns 0 and a new table in |*pt|, or
 * WR_ERR_INVAL with a one-line reason naming the line in |err|
 * ("line 4: token shorter than 16 characters"), or WR_ERR_NOMEM.
 * Errors: a key outside a section, an unknown key, a bad account name
 * (1-64 printable characters, no spaces, not "key:..."), a bad token, a
 * token given twice, a name that is not a DNS label, a name reserved by
 * two accounts, an account without tokens, over the bounds.
 */
int wr_tokens_parse(const char *text, wr_tokens **pt, char *err,
                    size_t errlen);
void wr_tokens_del(wr_tokens *t);

/* The account of |token|, or NULL when no account has it.  The string
 * lives as long as |t|. */
const char *wr_tokens_account(const wr_tokens *t, const char *token);
/* The account that reserved |name|, or NULL. */
const char *wr_tokens_reserved(const wr_tokens *t, const char *name);
size_t wr_tokens_count(const wr_tokens *t);   /* tokens */
size_t wr_tokens_accounts(const wr_tokens *t); /* accounts */

#endif
