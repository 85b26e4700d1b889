/* error.c - the last error message of each thread, and tdm_strerror. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static _Thread_local char last_message[1024];

TDM_EXPORT const char *tdm_error_message(void)
{
	return last_message[0] ? last_message : "no error";
}

TDM_EXPORT const char *tdm_strerror(int code)
{
	switch (code) {
	case TDM_OK: return "success";
	case TDM_ERROR: return "error";
	case TDM_EINVAL: return "invalid argument or event";
	case TDM_EIO: return "I/O error";
	case TDM_ECORRUPT: return "corrupt store file";
	case TDM_ELOCKED: return "store locked by another writer";
	case TDM_EMISMATCH: return "store options differ";
	case TDM_ENOTFOUND: return "no store found";
	case TDM_EEXIST: return "directory is in use by something else";
	case TDM_EFAILED: return "store failed earlier; reopen it";
	case TDM_ENOMEM: return "out of memory";
	case TDM_EREADONLY: return "store is open read-only";
	case TDM_ITEROVER: return "end of iteration";
	default: return "unknown error";
	}
}

int tdm_fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_message, sizeof last_message, fmt, ap);
	va_end(ap);
	return code;
}

int tdm_fail_errno(int code, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(last_message, sizeof last_message, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof last_message)
		snprintf(last_message + n, sizeof last_message - (size_t)n, ": %s",
		         strerror(errnum));
	return code;
}

int tdm_fail_context(int code, const char *fmt, ...)
{
	char old[sizeof last_message];
	memcpy(old, last_message, sizeof old);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(last_message, sizeof last_message, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n + 2 >= sizeof last_message)
		return code;
	/* Append ": old", cut to fit. */
	size_t at = (size_t)n, room = sizeof last_message - at - 3;
	size_t len = strnlen(old, room);
	memcpy(last_message + at, ": ", 2);
	memcpy(last_message + at + 2, old, len);
	last_message[at + 2 + len] = 0;
	return code;
}
