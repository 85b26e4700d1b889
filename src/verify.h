/* verify.h - the whole-store check (verify.c). */
#ifndef TDM_VERIFY_H
#define TDM_VERIFY_H

#include "store.h"

int verify_store(uint64_t *problems, tdm_store *s, tdm_problem_cb cb, void *ctx);

#endif
