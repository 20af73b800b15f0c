/* editor.c — see editor.h. */
#include "edit/editor.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

void nne_editor_init(nne_editor_t *ed) { memset(ed, 0, sizeof *ed); }

const char *nne_edit_op_name(int op) {
  switch (op) {
  case NNE_EDIT_SAVE:
    return "SAVE";
  case NNE_EDIT_REPLACE:
    return "REPLACE";
  case NNE_EDIT_ADD:
    return "ADD";
  case NNE_EDIT_SCALE:
    return "SCALE";
  case NNE_EDIT_ZERO:
    return "ZERO";
  }
  return "?";
}

void nne_edits_free(nne_edit_t *edits, size_t n) {
  size_t i;
  for (i = 0; edits != NULL && i < n; i++) {
    free(edits[i].site_text);
    free(edits[i].name);
    nne_tensor_unref(edits[i].operand);
  }
  free(edits);
}

static void set_free(nne_edit_set_t *set) {
  if (set->backend != NULL) /* still pinned: the daemon is stopping */
    nne_backend_unpin(&set->entry->backends, set->backend, false);
  nne_edits_free(set->edits, set->n_edits);
  nne_compiler_plan_free(&set->plan);
  free(set->track_start);
  free(set->track);
  nne_variant_unref(set->variant);
  nne_model_unref(set->model);
  free(set);
}

void nne_editor_close(nne_editor_t *ed) {
  nne_edit_set_t *s = ed->sets;
  while (s != NULL) {
    nne_edit_set_t *next = s->next;
    set_free(s);
    s = next;
  }
  ed->sets = NULL;
  ed->count = 0;
}

int nne_edit_set_track(nne_edit_set_t *set, nne_err_t *err) {
  size_t nh = set->plan.n_hooks, i, *fill;
  set->track_start = calloc(nh + 1, sizeof *set->track_start);
  set->track = calloc(set->n_edits ? set->n_edits : 1, sizeof *set->track);
  fill = calloc(nh + 1, sizeof *fill);
  if (set->track_start == NULL || set->track == NULL || fill == NULL) {
    free(fill);
    return nne_err_set(err, NNE_ENOMEM, "out of memory");
  }
  for (i = 0; i < set->n_edits; i++)
    set->track_start[set->edits[i].hook + 1]++;
  for (i = 0; i < nh; i++)
    set->track_start[i + 1] += set->track_start[i];
  /* Request order within a hook: the order the client wrote them in. */
  for (i = 0; i < set->n_edits; i++) {
    size_t h = (size_t)set->edits[i].hook;
    set->track[set->track_start[h] + fill[h]++] = i;
  }
  free(fill);
  return 0;
}

int nne_editor_add(nne_editor_t *ed, nne_edit_set_t *set, nne_err_t *err) {
  /* The one place sets are born: none on a model that is not LOADED. Once
   * Unload has accepted a model (it refuses models with sets), an Apply
   * still on an executor must not create one (issue 8). */
  if (set->entry->state != NNE_MODEL_LOADED)
    return nne_err_set(err, NNE_ESTATE,
                       "model '%s' is being unloaded (Models.Unload came "
                       "while this Apply ran); load it again and re-apply",
                       set->entry->name);
  nne_backend_pin(set->backend);
  set->entry->edit_sets++;
  set->next = ed->sets;
  ed->sets = set;
  ed->count++;
  return 0;
}

nne_edit_set_t *nne_editor_find(nne_editor_t *ed, const char *id) {
  nne_edit_set_t *s;
  for (s = ed->sets; s != NULL; s = s->next)
    if (!s->dropped && strcmp(s->id, id) == 0)
      return s;
  return NULL;
}

static void unlink_set(nne_editor_t *ed, nne_edit_set_t *set) {
  nne_edit_set_t **pp;
  for (pp = &ed->sets; *pp != NULL; pp = &(*pp)->next)
    if (*pp == set) {
      *pp = set->next;
      ed->count--;
      return;
    }
}

size_t nne_editor_drop(nne_editor_t *ed, nne_edit_set_t *set) {
  size_t freed = 0;
  if (set->dropped)
    return 0;
  set->dropped = true;
  set->entry->edit_sets--;
  if (set->backend != NULL) {
    /* Nobody else pins it: remove it now (running calls keep their own
     * variant reference); shared with another set: it stays. */
    freed = nne_backend_unpin(&set->entry->backends, set->backend, true);
    set->backend = NULL;
  }
  unlink_set(ed, set);
  if (set->in_flight == 0)
    set_free(set);
  return freed;
}

size_t nne_editor_ids(const nne_editor_t *ed, const nne_model_entry_t *entry,
                      char *buf, size_t cap) {
  const nne_edit_set_t *s;
  size_t n = 0, shown = 0, len = 0;

  if (cap > 0)
    buf[0] = '\0';
  for (s = ed->sets; s != NULL; s = s->next) {
    if (s->dropped || s->entry != entry)
      continue;
    n++;
    /* Room for this id and a "and N more" tail. */
    if (len + strlen(s->id) + 2 + 24 < cap) {
      len += (size_t)snprintf(buf + len, cap - len, "%s%s", shown ? ", " : "",
                              s->id);
      shown++;
    }
  }
  if (n > shown && len < cap)
    snprintf(buf + len, cap - len, " and %zu more", n - shown);
  return n;
}

void nne_edit_set_hold(nne_edit_set_t *set) { set->in_flight++; }

void nne_edit_set_release(nne_editor_t *ed, nne_edit_set_t *set) {
  (void)ed;
  if (--set->in_flight == 0 && set->dropped)
    set_free(set);
}

void nne_edit_set_new_id(char out[24]) {
  unsigned char b[8];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  size_t i;
  if (fd < 0 || read(fd, b, sizeof b) != (ssize_t)sizeof b) {
    /* Ids only need to be unique among live sets; time is a fallback. */
    struct timespec ts;
    uint64_t v;
    clock_gettime(CLOCK_REALTIME, &ts);
    v = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
    memcpy(b, &v, sizeof b);
  }
  if (fd >= 0)
    close(fd);
  memcpy(out, "es-", 3);
  for (i = 0; i < 8; i++)
    snprintf(out + 3 + 2 * i, 3, "%02x", b[i]);
}
