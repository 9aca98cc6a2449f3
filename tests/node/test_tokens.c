/* The tokens file parser (src/node/tokens.c): accounts, tokens, reserved
 * names, and a clear one-line error naming the line for each bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "tokens.h"
#include "warren/err.h"

#define T1 "3f9c2a51d0e84b7c"
#define T2 "77ab0c11e2f94d3a"
#define T3 "5c1d9e0a7b3f2d4e"

static void test_accounts_and_names(void **state) {
  (void)state;
  const char *text = "# comment\n"
                     "[acme]\n"
                     "token = " T1 "\n"
                     "token = " T2 "\n"
                     "names = app, api\n"
                     "\n"
                     "[bob]\n"
                     "token = " T3 "\n";
  wr_tokens *t;
  char err[200] = "";
  assert_int_equal(wr_tokens_parse(text, &t, err, sizeof err), 0);
  assert_int_equal(wr_tokens_count(t), 3);
  assert_int_equal(wr_tokens_accounts(t), 2);
  assert_string_equal(wr_tokens_account(t, T1), "acme");
  assert_string_equal(wr_tokens_account(t, T2), "acme");
  assert_string_equal(wr_tokens_account(t, T3), "bob");
  assert_null(wr_tokens_account(t, "0000000000000000"));
  assert_null(wr_tokens_account(t, ""));
  assert_null(wr_tokens_account(t, T1 "x"));
  assert_string_equal(wr_tokens_reserved(t, "app"), "acme");
  assert_string_equal(wr_tokens_reserved(t, "api"), "acme");
  assert_null(wr_tokens_reserved(t, "web"));
  wr_tokens_del(t);
}

static void test_empty_file(void **state) {
  (void)state;
  wr_tokens *t;
  char err[200];
  assert_int_equal(wr_tokens_parse("", &t, err, sizeof err), 0);
  assert_int_equal(wr_tokens_count(t), 0);
  assert_null(wr_tokens_account(t, T1));
  wr_tokens_del(t);
}

/* Each bad file fails with WR_ERR_INVAL and a message containing |want|. */
static void test_errors(void **state) {
  (void)state;
  static const struct {
    const char *text, *want;
  } cases[] = {
      {"token = " T1 "\n", "line 1: 'token' outside an [account]"},
      {"[a]\ntoken = short\n", "line 2: token shorter than 16"},
      {"[a]\ntoken = " T1 "\nfoo = 1\n", "line 3: unknown key 'foo'"},
      {"[key:abc]\ntoken = " T1 "\n", "may not start with \"key:\""},
      {"[a]\ntoken = " T1 "\n[b]\ntoken = " T1 "\n", "given twice"},
      {"[a]\ntoken = " T1 "\nnames = App\n", "'App' is not a name"},
      {"[a]\ntoken = " T1 "\nnames = -x\n", "'-x' is not a name"},
      {"[a]\ntoken = " T1 "\nnames = x\n[b]\ntoken = " T2 "\nnames = x\n",
       "name 'x' is reserved by [a] and [b]"},
      {"[a]\nnames = x\n", "account [a] has no token"},
      {"[a]\ntoken = " T1 "\nthis is not ini\n", "line 3: not KEY = VALUE"},
      {"[a]\ntoken = 0123456789abcdef 0123\n", "without spaces"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    wr_tokens *t = (wr_tokens *)1;
    char err[200] = "";
    int rv = wr_tokens_parse(cases[i].text, &t, err, sizeof err);
    if (rv != WR_ERR_INVAL || !strstr(err, cases[i].want) ||
        strchr(err, '\n'))
      fail_msg("case %zu: rv=%d err='%s' want '%s'", i, rv, err,
               cases[i].want);
    assert_null(t);
  }
}

/* A name reserved twice by the same account is one reservation; a
 * section given twice adds to the first. */
static void test_repeats(void **state) {
  (void)state;
  wr_tokens *t;
  char err[200] = "";
  assert_int_equal(wr_tokens_parse("[a]\ntoken = " T1 "\nnames = x, x\n"
                                   "[b]\ntoken = " T2 "\n[a]\ntoken = " T3
                                   "\nnames = y\n",
                                   &t, err, sizeof err),
                   0);
  assert_int_equal(wr_tokens_accounts(t), 2);
  assert_string_equal(wr_tokens_account(t, T3), "a");
  assert_string_equal(wr_tokens_reserved(t, "x"), "a");
  assert_string_equal(wr_tokens_reserved(t, "y"), "a");
  wr_tokens_del(t);
}

/* Many tokens: every one maps back to its own account. */
static void test_many(void **state) {
  (void)state;
  enum { N = 2000 };
  static char text[N * 64];
  size_t off = 0;
  for (int i = 0; i < N; i++)
    off += (size_t)snprintf(text + off, sizeof text - off,
                            "[acct%d]\ntoken = tok-%016d\n", i, i);
  wr_tokens *t;
  char err[200] = "";
  assert_int_equal(wr_tokens_parse(text, &t, err, sizeof err), 0);
  assert_int_equal(wr_tokens_count(t), N);
  for (int i = 0; i < N; i += 97) {
    char tok[40], acct[40];
    snprintf(tok, sizeof tok, "tok-%016d", i);
    snprintf(acct, sizeof acct, "acct%d", i);
    assert_string_equal(wr_tokens_account(t, tok), acct);
  }
  wr_tokens_del(t);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accounts_and_names),
      cmocka_unit_test(test_empty_file),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_repeats),
      cmocka_unit_test(test_many),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
