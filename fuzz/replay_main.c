/*
 * Corpus replayer (dav1d's layout): without -Dfuzzing=true every libFuzzer
 * target links this main instead of libFuzzer, walks the directories (or
 * files) given on the command line and feeds each file to
 * LLVMFuzzerTestOneInput once.  meson test runs it over fuzz/corpus/<target>,
 * so every crash ever found stays a regression test under plain gcc.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  if (!buf) {
    fclose(f);
    return -1;
  }
  size_t n;
  while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        fclose(f);
        return -1;
      }
      buf = nb;
      cap *= 2;
    }
  }
  fclose(f);
  /* Copy into an exact-size allocation so ASan catches reads past the end. */
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) {
    free(buf);
    return -1;
  }
  memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int run_path(const char *path, int *count) {
  struct stat st;
  if (stat(path, &st) != 0) {
    perror(path);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    (*count)++;
    return run_file(path);
  }
  DIR *d = opendir(path);
  if (!d) {
    perror(path);
    return -1;
  }
  struct dirent *e;
  int rv = 0;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    if (run_path(sub, count) != 0) rv = -1;
  }
  closedir(d);
  return rv;
}

int main(int argc, char **argv) {
  int count = 0, rv = 0;
  /* The empty input is always worth a try. */
  LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
  for (int i = 1; i < argc; i++)
    if (run_path(argv[i], &count) != 0) rv = 1;
  printf("replayed %d inputs\n", count);
  return rv;
}
