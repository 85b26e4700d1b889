/*
 * timefmt.h - parsing of times and durations on the command line and in
 * NDJSON input. Pure functions: no I/O, no clock, no locale, so they can
 * be unit-tested directly.
 *
 * Each parser returns NULL on success, or a short static message saying
 * what is wrong (for "tidemark: bad time 'x': <message>").
 */
#ifndef TIDEMARK_TIMEFMT_H
#define TIDEMARK_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Days from 1970-01-01 to the given proleptic Gregorian date. */
int64_t tf_days_from_civil(int64_t year, unsigned month, unsigned day);

/* A duration: a bare integer (nanoseconds) or one or more <integer><unit>
 * parts with units ns, us, ms, s, m, h, d ("500ms", "1h30m"). */
const char *tf_parse_duration(const char *s, int64_t *out_ns);

/* An RFC 3339 timestamp of `len` bytes, e.g. "2026-11-22T10:00:00.5Z":
 * 'T', 't' or ' ' between date and time, up to 9 fraction digits, 'Z',
 * 'z' or a +HH:MM / -HH:MM offset. The result must be >= 0 (not before
 * 1970) and fit in int64 nanoseconds. */
const char *tf_parse_rfc3339(const char *s, size_t len, int64_t *out_ns);

/* A time argument: integer nanoseconds, RFC 3339, or "now" optionally
 * followed by +D or -D with D a duration; `now_ns` is the current time. */
const char *tf_parse_time(const char *s, int64_t now_ns, int64_t *out_ns);

#endif
