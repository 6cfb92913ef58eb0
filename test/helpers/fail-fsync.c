/*
 * A disk that fails on demand, for test/durability.test.ts: loaded with LD_PRELOAD into a server, it
 * makes fdatasync(2) and fsync(2) fail with EIO while the file named by SDFS_FAIL_FSYNC_WHILE exists,
 * for files whose path starts with one of the prefixes in SDFS_FAIL_FSYNC_UNDER (separated by ':') if
 * that is set (a storage server's temporary block files and block log), else for files whose name
 * ends in "-wal" (a name server's SQLite write-ahead log).
 * Every other call is the real one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failing(int fd) {
  const char *trigger = getenv("SDFS_FAIL_FSYNC_WHILE");
  if (trigger == NULL || access(trigger, F_OK) != 0) return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n < 4) return 0;
  path[n] = '\0';
  const char *under = getenv("SDFS_FAIL_FSYNC_UNDER");
  if (under != NULL) {
    for (const char *p = under; *p != '\0';) {
      const char *end = strchr(p, ':');
      size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
      if (len > 0 && strncmp(path, p, len) == 0) return 1;
      p += len;
      if (*p == ':') p++;
    }
    return 0;
  }
  return strcmp(path + n - 4, "-wal") == 0;
}

/* The real call, looked up once, unless the WAL is to fail. */
static int sync_or_fail(int (**real)(int), const char *name, int fd) {
  if (*real == NULL) *real = (int (*)(int))dlsym(RTLD_NEXT, name);
  if (failing(fd)) {
    errno = EIO;
    return -1;
  }
  return (*real)(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  return sync_or_fail(&real, "fdatasync", fd);
}

int fsync(int fd) {
  static int (*real)(int);
  return sync_or_fail(&real, "fsync", fd);
}
