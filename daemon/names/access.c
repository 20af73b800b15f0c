/* access.c — reading a model's built names (names.h's accessors). */
#include "names/internal.h"

const char *nne_names_family(const nne_names_t *names) {
  return names->family;
}

const char *nne_names_family_reason(const nne_names_t *names) {
  return names->reason;
}

int nne_names_layer_count(const nne_names_t *names) {
  return names->n_layers;
}

size_t nne_names_warning_count(const nne_names_t *names) {
  return names->n_warnings;
}

const char *nne_names_warning(const nne_names_t *names, size_t i) {
  return i < names->n_warnings ? names->warnings[i] : NULL;
}

size_t nne_names_module_alias_count(const nne_names_t *names, int module) {
  if (module < 0 || (size_t)module >= names->n_mods)
    return 0;
  return names->alias_n[module];
}

const char *nne_names_module_alias(const nne_names_t *names, int module,
                                   size_t k) {
  if (k >= nne_names_module_alias_count(names, module))
    return NULL;
  return names->aliases[names->alias_start[module] + k].name;
}

bool nne_names_module_alias_is_standard(const nne_names_t *names, int module,
                                        size_t k) {
  if (k >= nne_names_module_alias_count(names, module))
    return false;
  return names->aliases[names->alias_start[module] + k].standard;
}

size_t nne_names_site_count(const nne_names_t *names) {
  return names->n_sites;
}

const nne_names_site_entry_t *nne_names_site(const nne_names_t *names,
                                             size_t i) {
  return i < names->n_sites ? &names->sites[i] : NULL;
}

size_t nne_names_check_count(const nne_names_t *names) {
  return names->n_checks;
}

const nne_names_check_t *nne_names_check(const nne_names_t *names, size_t i) {
  return i < names->n_checks ? &names->checks[i] : NULL;
}
