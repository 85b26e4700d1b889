/*
 * syslog_parse.h - syslog messages off a TCP stream (RFC 6587 framing) and
 * their fields (RFC 5424, and the older BSD format of RFC 3164).
 * Pure functions: no I/O, no clock (the caller passes the receive time),
 * so they can be unit-tested and fuzzed directly.
 */
#ifndef TIDEMARK_SYSLOG_PARSE_H
#define TIDEMARK_SYSLOG_PARSE_H

#include <stddef.h>
#include <stdint.h>

enum {
	SYSLOG_FRAME_OK = 1,    /* a whole message: *msg, *msg_len, *used */
	SYSLOG_FRAME_MORE = 0,  /* need more bytes */
	SYSLOG_FRAME_BAD = -1   /* the stream is broken: close it */
};

/* The next frame of `buf` (len bytes): octet-counted ("LEN SP MSG", when
 * the frame starts with a digit) or newline-terminated (a trailing "\r" is
 * dropped). A frame longer than max_len bytes is SYSLOG_FRAME_BAD with the
 * reason in err (errlen bytes). *used is what to drop from the buffer;
 * *msg points into buf. At end of stream, call with at_eof set: a last
 * line without its newline is then a frame. */
int syslog_frame(const char **msg, size_t *msg_len, size_t *used,
                 const char *buf, size_t len, size_t max_len, int at_eof,
                 char *err, size_t errlen);

/* One parsed message. Strings point into the parsed bytes and are not
 * NUL-terminated; a field the message lacks has length 0. host and app are
 * printable ASCII (RFC 5424's PRINTUSASCII). */
typedef struct syslog_msg {
	int facility, severity; /* 0..23, 0..7 */
	int rfc5424;            /* 1: RFC 5424, 0: RFC 3164 */
	int64_t ts;             /* ns since the epoch; receive time if none */
	int has_ts;             /* the message carried a timestamp */
	const char *host;
	size_t host_len;
	const char *app;
	size_t app_len;
	const char *text; /* MSG, without a UTF-8 BOM or a final LF/CRLF */
	size_t text_len;
} syslog_msg;

/* Parses one message. RFC 3164 timestamps carry no year and no zone: they
 * are read as UTC, in the year that puts them nearest before now_ns + 1
 * day. Returns 0, or -1 with what is wrong (and where) in err. */
int syslog_parse(syslog_msg *out, const char *buf, size_t len,
                 int64_t now_ns, char *err, size_t errlen);

/* "kern", "user", ... "local7"; "emerg" ... "debug" (rsyslog's names). */
const char *syslog_facility_name(int facility);
const char *syslog_severity_name(int severity);

#endif
