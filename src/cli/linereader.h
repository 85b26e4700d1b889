/*
 * linereader.h - reads newline-terminated lines from a file descriptor
 * with a cap on line length, so a huge line is refused without being held
 * in memory whole (getline would grow without bound).
 */
#ifndef TIDEMARK_LINEREADER_H
#define TIDEMARK_LINEREADER_H

#include <stddef.h>

typedef struct line_reader {
	int fd;
	size_t max_line; /* longest line accepted, without its '\n' */
	char *buf;
	size_t cap;
	size_t start, end; /* unread bytes are buf[start, end) */
	size_t scanned;    /* bytes after start known to hold no '\n' */
	int eof;
	/* Called, when set, before a read that would wait for input: the
	 * reader has no whole line and the descriptor has nothing ready. */
	void (*idle)(void *ctx);
	void *idle_ctx;
} line_reader;

enum {
	LINE_OK = 1,        /* *line, *len hold a line */
	LINE_EOF = 0,       /* no more input */
	LINE_IOERR = -1,    /* read failed; errno says why */
	LINE_TOO_LONG = -2, /* the line passes max_line bytes */
	LINE_NOMEM = -3
};

void line_reader_init(line_reader *r, int fd, size_t max_line);

/* The next line, without its '\n' (the last line may lack one). `*line`
 * is borrowed until the next call. Returns one of LINE_*. */
int line_read(line_reader *r, char **line, size_t *len);

void line_reader_free(line_reader *r);

#endif
