/* fault.h — a test-only switch that makes the Nth call at a point fail.
 *
 * Compiled in only with -DNNE_FAULT_INJECTION=ON (deploy/test.sh's builds);
 * a release build (the image, a plain cmake) has no switch at all: every
 * NNE_FAULT(point) is the constant false and the code below does not exist.
 *
 * The environment says which calls fail, read once per process:
 *
 *   NNE_FAULTS="forward=3,backend_build=1+"
 *
 * point=N fails the Nth call at that point (counting from 1) and no other;
 * point=N+ fails the Nth and every later one. Points:
 *
 *   forward        a forward pass of Forward or of a trace
 *   backend_build  compiling a backend (Apply, a Forward/Trace on a set)
 *   send           handing a response message to gRPC (a streamed chunk)
 *   model_load     a load, after the archive is in memory and has run once
 *
 * Any thread may ask (the counters are atomic). The daemon logs the switch
 * at start (nne_fault_describe) so a run that injects is never mistaken
 * for one that does not.
 */
#ifndef NNE_FAULT_H
#define NNE_FAULT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum nne_fault_point {
  NNE_FAULT_FORWARD = 0,
  NNE_FAULT_BACKEND_BUILD,
  NNE_FAULT_SEND,
  NNE_FAULT_MODEL_LOAD,
  NNE_FAULT__COUNT
} nne_fault_point_t;

#ifdef NNE_FAULT_INJECTION
/* True when this call at point p must fail. */
bool nne_fault_hit(nne_fault_point_t p);
/* What NNE_FAULTS asks for, in words, into buf ("" when nothing); -1 when
 * NNE_FAULTS does not parse (buf says why). */
int nne_fault_describe(char *buf, size_t len);
#define NNE_FAULT(p) nne_fault_hit(p)
#define NNE_FAULT_COMPILED 1
#else
#define NNE_FAULT(p) ((void)(p), false)
#define NNE_FAULT_COMPILED 0
#endif

#endif /* NNE_FAULT_H */
