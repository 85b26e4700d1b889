/* error.h - the thread's last error message and the error-code table. */
#ifndef TDM_ERROR_H
#define TDM_ERROR_H

#include "tidemark.h"

/* Records a formatted message for the thread and returns `code`, so that
 * callers can write `return tdm_fail(TDM_EIO, "...")`. */
int tdm_fail(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Like tdm_fail, with ": strerror(errnum)" appended. */
int tdm_fail_errno(int code, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends context to the current message ("shards/x.main: <old>"). */
int tdm_fail_context(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
