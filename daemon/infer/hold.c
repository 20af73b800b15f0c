/* hold.c — see hold.h. */
#include "infer/hold.h"

#include <string.h>

int nne_infer_hold(nne_infer_hold_t *h, nne_daemon_t *d, const char *model,
                   const char *edit_set, nne_err_t *err) {
  return nne_infer_hold_field(h, d, "model", model, edit_set, err);
}

int nne_infer_hold_field(nne_infer_hold_t *h, nne_daemon_t *d,
                         const char *model_field, const char *model,
                         const char *edit_set, nne_err_t *err) {
  nne_model_entry_t *e;
  int rc;

  memset(h, 0, sizeof *h);
  rc = nne_registry_lookup(&d->registry, model_field, model, &e, err);
  if (rc == 0)
    rc = nne_registry_acquire(&d->registry, e, &h->model, err);
  if (rc != 0)
    return rc;
  h->entry = e;
  if (edit_set != NULL && edit_set[0] != '\0' &&
      (rc = nne_infer_hold_set(h, d, edit_set, err)) != 0) {
    nne_infer_release(h, d);
    return rc;
  }
  return 0;
}

int nne_infer_hold_set(nne_infer_hold_t *h, nne_daemon_t *d,
                       const char *edit_set, nne_err_t *err) {
  nne_edit_set_t *set = nne_editor_find(&d->editor, edit_set);
  if (set == NULL)
    return nne_err_set(err, NNE_ENOTFOUND, "edit_set: no edit set '%s'",
                       edit_set);
  if (set->entry != h->entry)
    return nne_err_set(err, NNE_EINVAL,
                       "edit_set: '%s' edits model '%s', not '%s'", edit_set,
                       set->entry->name, h->entry->name);
  nne_edit_set_hold(set);
  h->set = set;
  return 0;
}

void nne_infer_hold_drop_set(nne_infer_hold_t *h, nne_daemon_t *d) {
  if (h->set != NULL) {
    nne_edit_set_release(&d->editor, h->set);
    h->set = NULL;
  }
}

void nne_infer_release(nne_infer_hold_t *h, nne_daemon_t *d) {
  nne_infer_hold_drop_set(h, d);
  if (h->entry != NULL)
    nne_registry_release(&d->registry, h->entry, h->model);
  h->entry = NULL;
  h->model = NULL;
}

void nne_infer_hold_oom(const nne_infer_hold_t *h, nne_err_t *err) {
  if (err->code == NNE_ENOMEM && h->entry != NULL)
    nne_err_prefix(err, "model '%s' on %s", h->entry->name, h->entry->device);
}
