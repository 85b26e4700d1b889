/*
 * mhd_load.h - libmicrohttpd, loaded at run time (dlopen) by the HTTP side
 * of `tidemark serve` only. Linked into the executable, it and the TLS
 * stack it depends on (gnutls, nettle, gmp, p11-kit, ...) cost every
 * tidemark process about 2 ms at start, `read`, `append` and the replica
 * server `serve --stdio` included (docs/DESIGN.md, "Loading the HTTP
 * library at run time").
 */
#ifndef TIDEMARK_MHD_LOAD_H
#define TIDEMARK_MHD_LOAD_H

#include <stddef.h>
#include <microhttpd.h>

/* The functions serve_http.c calls, typed from their declarations in
 * <microhttpd.h>, so a call through the table is checked as a direct
 * call would be. */
#define MHD_LOAD_FN(name) __typeof__(MHD_##name) *name
typedef struct mhd_api {
	MHD_LOAD_FN(start_daemon);
	MHD_LOAD_FN(quiesce_daemon);
	MHD_LOAD_FN(stop_daemon);
	MHD_LOAD_FN(create_response_from_buffer);
	MHD_LOAD_FN(create_response_from_callback);
	MHD_LOAD_FN(add_response_header);
	MHD_LOAD_FN(queue_response);
	MHD_LOAD_FN(destroy_response);
	MHD_LOAD_FN(lookup_connection_value);
	MHD_LOAD_FN(get_connection_values);
} mhd_api;
#undef MHD_LOAD_FN

/* The library's run-time name (Debian's libmicrohttpd12), then the
 * development link's name as a fallback. */
#define MHD_LOAD_SONAME "libmicrohttpd.so.12"
#define MHD_LOAD_DEVNAME "libmicrohttpd.so"

/* Loads libmicrohttpd and resolves every function of mhd_api. The first
 * call that succeeds loads it for the process's lifetime; later calls
 * return the same table. Not thread-safe: call it before starting the
 * threads that use the table.
 *
 * Returns the table (borrowed; valid until the process exits), or NULL
 * with err (errlen bytes, NUL-terminated) saying which names were tried
 * and dlerror()'s message for each. */
const mhd_api *mhd_load(char *err, size_t errlen);

#endif
