/*
 * linereader.c - a buffered, length-capped line reader over read(2).
 */
#include "linereader.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20) /* bytes asked of each read(2) */

void line_reader_init(line_reader *r, int fd, size_t max_line)
{
	memset(r, 0, sizeof *r);
	r->fd = fd;
	r->max_line = max_line;
}

void line_reader_free(line_reader *r)
{
	free(r->buf);
	r->buf = NULL;
}

/* Makes room for CHUNK more bytes after `end`: first by moving the unread
 * bytes to the front, then by growing the buffer. */
static int make_room(line_reader *r)
{
	size_t unread = r->end - r->start, cap = r->cap ? r->cap : 2 * CHUNK;
	char *p;
	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, unread);
		r->start = 0;
		r->end = unread;
	}
	if (r->cap - r->end >= CHUNK)
		return 0;
	while (cap - unread < CHUNK)
		cap *= 2;
	if (!(p = realloc(r->buf, cap)))
		return -1;
	r->buf = p;
	r->cap = cap;
	return 0;
}

/* 1 when a read of fd would not wait. */
static int input_ready(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) != 0;
}

/* Reads more input; returns bytes read, 0 at end of input, -1 on error. */
static long fill(line_reader *r)
{
	ssize_t n;
	if (make_room(r))
		return LINE_NOMEM;
	do
		n = read(r->fd, r->buf + r->end, CHUNK);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		r->end += (size_t)n;
	return n < 0 ? LINE_IOERR : (long)n;
}

static int take(line_reader *r, size_t len, size_t skip, char **line,
                size_t *out_len)
{
	*line = r->buf + r->start;
	*out_len = len;
	r->start += len + skip;
	r->scanned = 0;
	return LINE_OK;
}

int line_read(line_reader *r, char **line, size_t *len)
{
	for (;;) {
		size_t unread = r->end - r->start;
		char *nl = unread > r->scanned
			? memchr(r->buf + r->start + r->scanned, '\n',
			         unread - r->scanned)
			: NULL;
		long got;
		if (nl) {
			size_t n = (size_t)(nl - (r->buf + r->start));
			return n > r->max_line ? LINE_TOO_LONG
			                       : take(r, n, 1, line, len);
		}
		r->scanned = unread;
		if (unread > r->max_line)
			return LINE_TOO_LONG;
		if (r->eof)
			return unread ? take(r, unread, 0, line, len)
			              : LINE_EOF;
		if (r->idle && !input_ready(r->fd))
			r->idle(r->idle_ctx);
		got = fill(r);
		if (got < 0)
			return (int)got;
		r->eof = got == 0;
	}
}
