/* vec.h — growing a malloc'd array by doubling, with overflow checks.
 *
 * The daemon keeps its growable arrays as three plain fields (a pointer, a
 * count, a capacity) in the struct that owns them, so that readers index
 * them like any array. Only the growing is shared, here:
 *
 *   node_t *nodes = NULL;  size_t n = 0, cap = 0;
 *   if (NNE_VEC_GROW(&nodes, &cap, n + 1) != 0) return NNE_ENOMEM;
 *   nodes[n++] = x;
 *   ...
 *   free(nodes);
 *
 * Capacity doubles (from NNE_VEC_MIN_CAP) until it holds `need`; a bound
 * (nne_vec_grow_max) caps it, so an array whose length a client controls
 * never takes more than its limit even when doubling would overshoot.
 * On failure the array and its capacity are untouched, so the caller's
 * cleanup path frees the old one as usual.
 *
 * Ownership: the caller owns the array (free() it); these functions only
 * realloc it.
 */
#ifndef NNE_BASE_VEC_H
#define NNE_BASE_VEC_H

#include <stddef.h>

/* The first capacity of an empty array. */
#define NNE_VEC_MIN_CAP 8

/* Makes *(T **)arrp, an array of *cap elements of elem bytes (NULL when *cap
 * is 0), hold at least `need` elements. 0, or NNE_ENOMEM when the size
 * overflows or realloc fails. arrp is the address of the array pointer
 * (any T **). */
int nne_vec_grow(void *arrp, size_t *cap, size_t need, size_t elem);

/* The same, never past max elements: NNE_ERESOURCE when need > max. */
int nne_vec_grow_max(void *arrp, size_t *cap, size_t need, size_t elem,
                     size_t max);

/* nne_vec_grow with the element size taken from the array's type. */
#define NNE_VEC_GROW(arrp, cap, need)                                          \
  nne_vec_grow((arrp), (cap), (need), sizeof **(arrp))

#endif /* NNE_BASE_VEC_H */
