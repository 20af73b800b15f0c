/* store.c — see store.h. */
#include "edit/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/map.h"
#include "base/vec.h"

#define MAGIC "nnedit-edit-set 1 "

int nne_edit_set_id_valid(const char *id) {
  size_t i;
  if (strncmp(id, "es-", 3) != 0 || strlen(id) != 19)
    return 0;
  for (i = 3; i < 19; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      return 0;
  return 1;
}

static int mkdir_one(const char *path, nne_err_t *err) {
  if (mkdir(path, 0700) != 0 && errno != EEXIST)
    return nne_err_set(err, NNE_EIO, "--state-dir: cannot create %s: %s",
                       path, strerror(errno));
  return 0;
}

/* Makes the directory's change (a new name, a removed one) durable. */
static void sync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

int nne_edit_store_open(nne_edit_store_t *st, const char *dir,
                        nne_err_t *err) {
  char path[PATH_MAX];
  int rc;

  st->dir = NULL;
  if (snprintf(path, sizeof path, "%s/sets", dir) >= (int)sizeof path)
    return nne_err_set(err, NNE_EINVAL, "--state-dir: path too long");
  if ((rc = mkdir_one(dir, err)) != 0 || (rc = mkdir_one(path, err)) != 0)
    return rc;
  if (access(path, R_OK | W_OK | X_OK) != 0)
    return nne_err_set(err, NNE_EIO, "--state-dir: %s: %s", path,
                       strerror(errno));
  st->dir = strdup(path);
  if (st->dir == NULL)
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  return 0;
}

void nne_edit_store_close(nne_edit_store_t *st) {
  free(st->dir);
  st->dir = NULL;
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int nne_edit_store_put(const nne_edit_store_t *st, const char *model,
                       const nne_edit_record_t *rec, nne_err_t *err) {
  char mdir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX], head[160];
  int fd, n, rc;

  if (snprintf(mdir, sizeof mdir, "%s/%s", st->dir, model) >=
          (int)sizeof mdir ||
      snprintf(final, sizeof final, "%s/%s.es", mdir, rec->id) >=
          (int)sizeof final ||
      snprintf(tmp, sizeof tmp, "%s/.%s.tmp", mdir, rec->id) >=
          (int)sizeof tmp)
    return nne_err_set(err, NNE_EINVAL, "--state-dir: path too long");
  if ((rc = mkdir_one(mdir, err)) != 0)
    return rc;
  n = snprintf(head, sizeof head, MAGIC "%s %" PRId64 " %zu %016" PRIx64 "\n",
               rec->id, rec->created_unix_ms, rec->request_len,
               nne_hash_bytes(rec->request, rec->request_len));
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return nne_err_set(err, NNE_EIO, "--state-dir: cannot write %s: %s",
                       tmp, strerror(errno));
  if (write_all(fd, head, (size_t)n) != 0 ||
      write_all(fd, rec->request, rec->request_len) != 0 || fsync(fd) != 0) {
    rc = nne_err_set(err, NNE_EIO, "--state-dir: cannot write %s: %s",
                     tmp, strerror(errno ? errno : EIO));
    close(fd);
    unlink(tmp);
    return rc;
  }
  close(fd);
  if (rename(tmp, final) != 0) {
    rc = nne_err_set(err, NNE_EIO, "--state-dir: cannot rename %s: %s",
                     tmp, strerror(errno));
    unlink(tmp);
    return rc;
  }
  sync_dir(mdir);
  return 0;
}

int nne_edit_store_remove(const nne_edit_store_t *st, const char *model,
                          const char *id, nne_err_t *err) {
  char mdir[PATH_MAX], path[PATH_MAX];
  if (snprintf(mdir, sizeof mdir, "%s/%s", st->dir, model) >=
          (int)sizeof mdir ||
      snprintf(path, sizeof path, "%s/%s.es", mdir, id) >= (int)sizeof path)
    return nne_err_set(err, NNE_EINVAL, "--state-dir: path too long");
  if (unlink(path) != 0 && errno != ENOENT)
    return nne_err_set(err, NNE_EIO, "--state-dir: cannot remove %s: %s",
                       path, strerror(errno));
  sync_dir(mdir);
  return 0;
}

/* Reads and checks one record file; on failure `why` says what is wrong. */
static int read_record(const char *path, const char *want_id,
                       nne_edit_record_t *rec, char *why, size_t why_len) {
  char head[160], id[24];
  unsigned long long hash;
  int64_t created;
  size_t len, got;
  FILE *f = fopen(path, "rb");
  int ok = 0;

  memset(rec, 0, sizeof *rec);
  if (f == NULL) {
    snprintf(why, why_len, "%s", strerror(errno));
    return -1;
  }
  if (fgets(head, sizeof head, f) == NULL || strncmp(head, MAGIC, 18) != 0 ||
      strchr(head, '\n') == NULL) {
    snprintf(why, why_len, "not an nnedit edit-set record (header)");
  } else if (sscanf(head + 18, "%23s %" SCNd64 " %zu %llx", id, &created, &len,
                    &hash) != 4 ||
             strcmp(id, want_id) != 0) {
    snprintf(why, why_len, "header does not parse or names another id");
  } else if (len == 0 || len > NNE_EDIT_RECORD_MAX ||
             (rec->request = malloc(len)) == NULL) {
    snprintf(why, why_len, "request size %zu out of range", len);
  } else if ((got = fread(rec->request, 1, len, f)) != len ||
             fgetc(f) != EOF) {
    snprintf(why, why_len, "%s (header says %zu bytes)",
             got != len ? "truncated" : "trailing bytes", len);
  } else if (nne_hash_bytes(rec->request, len) != (uint64_t)hash) {
    snprintf(why, why_len, "checksum mismatch");
  } else {
    snprintf(rec->id, sizeof rec->id, "%s", id);
    rec->created_unix_ms = created;
    rec->request_len = len;
    ok = 1;
  }
  fclose(f);
  if (!ok) {
    free(rec->request);
    rec->request = NULL;
    return -1;
  }
  return 0;
}

static int by_created(const void *a, const void *b) {
  const nne_edit_record_t *x = a, *y = b;
  if (x->created_unix_ms != y->created_unix_ms)
    return x->created_unix_ms < y->created_unix_ms ? -1 : 1;
  return strcmp(x->id, y->id);
}

int nne_edit_store_load(const nne_edit_store_t *st, const char *model,
                        nne_edit_record_t **out, size_t *n, nne_err_t *err) {
  /* Room for the names a directory holds, so nothing is cut. */
  char mdir[PATH_MAX], path[PATH_MAX + 300], bad[PATH_MAX + 310], id[24];
  char why[128];
  nne_edit_record_t *v = NULL;
  size_t cap = 0, count = 0;
  struct dirent *de;
  DIR *dir;

  *out = NULL;
  *n = 0;
  if (snprintf(mdir, sizeof mdir, "%s/%s", st->dir, model) >= (int)sizeof mdir)
    return nne_err_set(err, NNE_EINVAL, "--state-dir: path too long");
  dir = opendir(mdir);
  if (dir == NULL) {
    if (errno == ENOENT)
      return 0; /* no set was ever kept for this model */
    return nne_err_set(err, NNE_EIO, "--state-dir: cannot read %s: %s",
                       mdir, strerror(errno));
  }
  while ((de = readdir(dir)) != NULL) {
    size_t l = strlen(de->d_name);
    if (l != 22 || strcmp(de->d_name + 19, ".es") != 0)
      continue; /* temporaries, .bad files, anything else */
    memcpy(id, de->d_name, 19);
    id[19] = '\0';
    if (!nne_edit_set_id_valid(id))
      continue;
    snprintf(path, sizeof path, "%s/%s", mdir, de->d_name);
    if (NNE_VEC_GROW(&v, &cap, count + 1) != 0) {
      closedir(dir);
      nne_edit_records_free(v, count);
      return nne_err_set(err, NNE_ENOMEM, "out of memory");
    }
    if (read_record(path, id, &v[count], why, sizeof why) != 0) {
      snprintf(bad, sizeof bad, "%s.bad", path);
      nne_log_warn("--state-dir: %s: %s; skipped, kept as %s", path, why,
                   rename(path, bad) == 0 ? bad : path);
      continue;
    }
    count++;
  }
  closedir(dir);
  if (count > 1)
    qsort(v, count, sizeof *v, by_created);
  *out = v;
  *n = count;
  return 0;
}

void nne_edit_records_free(nne_edit_record_t *recs, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    free(recs[i].request);
  free(recs);
}
