/* map.h — a hash map from byte strings to integers, and the hash function.
 *
 * The daemon's lookups are "which entry does this spelling name": a module
 * path, a standard name or a site to its index in a table (names/), a save
 * name or a node id to its node (trace/). So the map stores an integer
 * (intptr_t: an index, or a pointer cast to one) per key and borrows the
 * key's bytes: keys live in an arena or a table that outlives the map, and
 * the map never copies, frees or rewrites them.
 *
 *   nne_map_t m = NNE_MAP_INIT;                 (or nne_map_init)
 *   nne_map_put(&m, key, strlen(key), index);   0 added, 1 already there
 *   if (nne_map_get(&m, s, len, &v)) ...        any (pointer, length): a
 *                                               prefix of a longer string
 *                                               looks up without a copy
 *   nne_map_free(&m);                           the table, not the keys
 *
 * A key is a byte string: (pointer, length), compared with memcmp, so it
 * need not be NUL-terminated and may be binary (a uint32_t id's bytes).
 * There is no removal: a caller that retires a key sets a value it treats
 * as "gone" (nne_map_set). Open addressing with linear probing, at most
 * half full; the table doubles as it fills.
 *
 * Threads: lookups only read, so any number of threads may look up at once
 * once the map is built; put and set need the map to themselves.
 * Ownership: the caller owns the nne_map_t; the map owns its table; keys are
 * borrowed for the map's life.
 */
#ifndef NNE_BASE_MAP_H
#define NNE_BASE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a of n bytes: the one string hash of the daemon (the map's;
 * anything else that hashes names uses it too). */
uint64_t nne_hash_bytes(const void *p, size_t n);

typedef struct nne_map_slot {
  const void *key; /* NULL: empty */
  size_t len;
  uint64_t hash;
  intptr_t val;
} nne_map_slot_t;

typedef struct nne_map {
  nne_map_slot_t *slots;
  size_t cap; /* 0, or a power of two */
  size_t n;   /* keys stored */
} nne_map_t;

/* A zeroed nne_map_t is an empty map. */
#define NNE_MAP_INIT {NULL, 0, 0}

void nne_map_init(nne_map_t *m);

/* Frees the table (never the keys); `m` is then an empty map. */
void nne_map_free(nne_map_t *m);

/* Adds key → val. 0: added; 1: the key was there (its value unchanged);
 * NNE_ENOMEM: the table could not grow (the map is unchanged). key must not
 * be NULL and must stay valid, unchanged, for the map's life. */
int nne_map_put(nne_map_t *m, const void *key, size_t len, intptr_t val);

/* True, with the value in *val (val may be NULL), when the key is there. */
bool nne_map_get(const nne_map_t *m, const void *key, size_t len,
                 intptr_t *val);

/* Replaces the value of a key that is there; false (nothing changed) when it
 * is not. */
bool nne_map_set(nne_map_t *m, const void *key, size_t len, intptr_t val);

/* Number of keys. */
size_t nne_map_count(const nne_map_t *m);

#endif /* NNE_BASE_MAP_H */
