/*
 * repl_peer.h - one side of a replica comparison, seen from the command:
 * a local store answered in this process, or a remote one reached through
 * `ssh HOST tidemark serve --stdio PATH` (or any command given with
 * --remote-command). Both speak the same frames, so both are counted
 * alike: bytes_exchanged is what crossed (or would cross) the wire.
 */
#ifndef TIDEMARK_REPL_PEER_H
#define TIDEMARK_REPL_PEER_H

#include <stdint.h>
#include <sys/types.h>

#include "repl_server.h"
#include "repl_wire.h"

typedef struct frame_queue {
	wbuf *frames;
	size_t n, head, cap;
} frame_queue;

typedef struct peer {
	const char *label; /* "A", "B", "SRC", "DST" for messages */
	const char *spec;  /* as given on the command line */
	int remote;
	/* local */
	repl_server srv;
	int srv_open;
	frame_queue queue;
	/* remote */
	pid_t pid;
	int to_fd, from_fd;
	/* the current reply's body */
	wbuf reply;
	uint64_t bytes;
	/* from HELLO */
	int64_t shard_duration;
	int ended;      /* the session ended on an error: no goodbye */
	int timeout_ms; /* longest wait for a remote reply's bytes */
} peer;

/* Opens a side: "ssh:HOST:PATH" is remote, anything else a local store
 * directory. `remote_command`, when not NULL, is run with /bin/sh -c and
 * the host and path as $1 and $2 instead of ssh. A remote side that sends
 * nothing for `timeout_ms` is given up. Says hello. Returns 0 or an exit
 * code (message printed). */
int peer_open(peer *p, const char *label, const char *spec, const char *remote_command,
              int timeout_ms);

/* Sends a request frame (see wbuf_frame). 0 or an exit code. */
int peer_send(peer *p, wbuf *req);

/* Reads the next reply frame, which must be of type `type`; `*r` reads its
 * body. An ERROR reply is printed and mapped to an exit code. */
int peer_recv(peer *p, rbuf *r, uint8_t type);

/* Prints that a reply did not parse and returns EXIT_IOERR. */
int peer_bad_reply(peer *p, rbuf *r);

/* Says goodbye (the side syncs what it appended) and closes. Returns 0 or
 * an exit code. */
int peer_close(peer *p);

/* Runs fn(0, arg) here and fn(1, arg) on a second thread, at once: the
 * sides are separate stores or processes, so one side's disk or pipe wait
 * need not hold up the other (a sync costs about the slower side, not the
 * sum). fn for one side must touch only that side's peer and state. One
 * after the other if no thread can be made. Returns side 0's result if
 * nonzero, else side 1's. Side 1 runs on one thread kept for the process:
 * call it from one thread only (fn must not call peer_both), and start
 * every peer process (peer_open) before the first call, so that no fork
 * happens while that thread exists. */
int peer_both(int (*fn)(int side, void *arg), void *arg);

#endif
