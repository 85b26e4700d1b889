/*
 * mhd_load.c - loads libmicrohttpd with dlopen when `tidemark serve`
 * starts its HTTP server, so no other command maps it and the TLS stack it
 * depends on (see mhd_load.h).
 *
 * The library's run-time name is tried first; the development link's name
 * (present with libmicrohttpd-dev, which the build needs anyway) is the
 * fallback, as the linker would have used it.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "mhd_load.h"

static mhd_api api;
static int loaded;

/* Resolves every function of the table from handle h; on failure,
 * dlerror() names the missing one. */
static int resolve(mhd_api *a, void *h)
{
	void *p;
	/* POSIX defines the conversion of dlsym's result to a function
	 * pointer. */
#define RESOLVE(f)                                                     \
	do {                                                           \
		if (!(p = dlsym(h, "MHD_" #f)))                        \
			return -1;                                     \
		a->f = (__typeof__(a->f))p;                            \
	} while (0)
	RESOLVE(start_daemon);
	RESOLVE(quiesce_daemon);
	RESOLVE(stop_daemon);
	RESOLVE(create_response_from_buffer);
	RESOLVE(create_response_from_callback);
	RESOLVE(add_response_header);
	RESOLVE(queue_response);
	RESOLVE(destroy_response);
	RESOLVE(lookup_connection_value);
	RESOLVE(get_connection_values);
#undef RESOLVE
	return 0;
}

/* Appends to err as snprintf does, keeping *off within errlen. */
static void err_add(char *err, size_t errlen, size_t *off, const char *a,
                    const char *b)
{
	int n;
	if (*off >= errlen)
		return;
	n = snprintf(err + *off, errlen - *off, "%s%s", a, b);
	if (n > 0)
		*off += (size_t)n < errlen - *off ? (size_t)n : errlen - *off;
}

const mhd_api *mhd_load(char *err, size_t errlen)
{
	static const char *const names[] = {MHD_LOAD_SONAME, MHD_LOAD_DEVNAME};
	size_t off = 0;
	if (loaded)
		return &api;
	if (errlen)
		err[0] = '\0';
	err_add(err, errlen, &off, "cannot load libmicrohttpd", "");
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		mhd_api a;
		void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		if (h && resolve(&a, h) == 0) {
			api = a;
			loaded = 1;
			return &api;
		}
		/* dlerror's message names the file, or the missing symbol
		 * and its file. It is read before dlclose clears it. */
		const char *why = dlerror();
		err_add(err, errlen, &off, i ? "; " : ": ",
		        why ? why : "a function resolved to NULL");
		if (h)
			dlclose(h);
	}
	return NULL;
}
