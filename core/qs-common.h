/*
 * qs-common.h - (internal) what every module of libqstats and its programs
 * share that is not part of the public API: abort-on-failure allocation.
 * A daemon that cannot allocate a few bytes has nothing better to do; an
 * embedding VMM keeps its own policy, so these are not exported.
 */
#ifndef QS_COMMON_H
#define QS_COMMON_H

#include "qs-core.h"

void *qs_malloc(size_t n);
void *qs_calloc(size_t n, size_t m);
void *qs_realloc(void *p, size_t n);
char *qs_strdup(const char *s);
char *qs_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
