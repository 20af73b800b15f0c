/* vec.c — see vec.h. */
#include "base/vec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

int nne_vec_grow_max(void *arrp, size_t *cap, size_t need, size_t elem,
                     size_t max) {
  void *arr, *p;
  size_t ncap;

  if (need <= *cap)
    return 0;
  if (need > max)
    return NNE_ERESOURCE;
  if (elem == 0 || need > SIZE_MAX / elem)
    return NNE_ENOMEM;
  ncap = *cap ? *cap : NNE_VEC_MIN_CAP;
  while (ncap < need)
    ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
  if (ncap > max)
    ncap = max;
  if (ncap > SIZE_MAX / elem)
    ncap = need; /* fits: checked above */
  /* The array pointer is read and written as bytes: arrp may point at any
   * object pointer type (T **), which a void ** must not alias. */
  memcpy(&arr, arrp, sizeof arr);
  p = realloc(arr, ncap * elem);
  if (p == NULL)
    return NNE_ENOMEM;
  memcpy(arrp, &p, sizeof p);
  *cap = ncap;
  return 0;
}

int nne_vec_grow(void *arrp, size_t *cap, size_t need, size_t elem) {
  return nne_vec_grow_max(arrp, cap, need, elem, SIZE_MAX);
}
