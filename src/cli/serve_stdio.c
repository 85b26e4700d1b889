/*
 * serve_stdio.c - `tidemark serve --stdio DIR`: answer the replica protocol
 * (docs/PROTOCOL.md) on stdin and stdout, as `ssh HOST tidemark serve
 * --stdio PATH` does for a remote diff, repair or sync. Nothing but frames
 * is written to stdout; a failure to open the store is sent as an ERROR
 * frame so that the other side can say what went wrong.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "repl_server.h"

static const char usage[] = "tidemark serve --stdio DIR";

static int write_frame(void *ctx, const wbuf *frame)
{
	(void)ctx;
	return frame_write(1, frame);
}

static int serve_dir(const char *dir)
{
	repl_server srv;
	int e = repl_server_open(&srv, dir);
	srv.emit = write_frame;
	if (e) {
		/* Answer the peer's first request, so that it is reading when the
		 * error comes and does not just see a closed pipe. */
		wbuf req = {0}, out = {0};
		const char *why;
		frame_read(0, &req, &why, 10000);
		wbuf_free(&req);
		const char *msg = tdm_error_message();
		wbuf_frame(&out, REPL_ERROR);
		wbuf_varint(&out, (uint64_t)-e);
		wbuf_varint(&out, strlen(msg));
		wbuf_bytes(&out, msg, strlen(msg));
		wbuf_end_frame(&out);
		frame_write(1, &out);
		wbuf_free(&out);
		repl_server_close(&srv);
		return cli_exit_code(e);
	}
	wbuf req = {0};
	int r = 0;
	const char *why = NULL;
	while (r == 0) {
		int got = frame_read(0, &req, &why, -1);
		if (got) {
			r = got == 1 ? 0 : -1; /* the peer hung up without goodbye */
			break;
		}
		r = repl_server_handle(&srv, req.data, req.len);
	}
	wbuf_free(&req);
	e = repl_server_close(&srv);
	if (r < 0 && why)
		cli_error("serve: %s", why);
	if (e)
		return cli_lib_error(e);
	return r < 0 ? EXIT_IOERR : EXIT_OK;
}

int cmd_serve_stdio(int argc, char **argv)
{
	cli_argv a = {argc, argv, 1, 0};
	const char *dir = NULL;
	while (a.i < a.argc) {
		if (cli_flag(&a, "--stdio"))
			continue;
		else if (!dir && cli_operand(&a, &dir))
			continue;
		else
			return cli_bad_argument(&a, usage, 0);
	}
	if (!dir)
		return cli_usage_error(usage, "no store directory given");
	return serve_dir(dir);
}
