/* fuzz_repl_client.c - the client side of the replica protocol
 * (src/cli/repl_sync.c over src/cli/repl_peer.c) against two fake remote
 * peers whose replies are the input: what a hostile or broken
 * `tidemark serve --stdio` at the other end of ssh could send. Whatever
 * comes back, the comparison must end (the replies are finite) with an
 * exit code, without a crash, a sanitizer report or a runaway allocation.
 *
 * Input: one byte of flags (bit 0: copy A's events to B, bit 1: B's to A,
 * as repair and sync do), a 4-byte little-endian length L, then L bytes
 * that side A sends (cut to what is left), then what side B sends. Each
 * stream is frames as serve writes them, starting with the HELLO reply.
 * The requests the client writes go to /dev/null. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../src/cli/cli.h"
#include "../src/cli/repl_sync.h"
#include "fuzz.h"

/* A remote peer reading its replies from a memory file. */
static int fake_open(peer *p, const char *label, const uint8_t *data, size_t n)
{
	memset(p, 0, sizeof *p);
	p->label = label;
	p->spec = "ssh:fuzz:store";
	p->remote = 1;
	p->timeout_ms = -1;
	p->to_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	p->from_fd = memfd_create("replies", MFD_CLOEXEC);
	if (p->to_fd < 0 || p->from_fd < 0 ||
	    (n && write(p->from_fd, data, n) != (ssize_t)n) || lseek(p->from_fd, 0, SEEK_SET))
		abort();
	/* The hello, as peer_open says it (peer_open itself would spawn ssh). */
	wbuf req = {0};
	wbuf_frame(&req, REPL_HELLO);
	wbuf_bytes(&req, REPL_MAGIC, strlen(REPL_MAGIC));
	wbuf_u8(&req, REPL_VERSION);
	rbuf r;
	int rc = peer_send(p, &req);
	wbuf_free(&req);
	if (rc || (rc = peer_recv(p, &r, REPL_HELLO | REPL_REPLY)))
		return rc;
	uint8_t version = rbuf_u8(&r);
	p->shard_duration = rbuf_i64(&r);
	rbuf_i64(&r); /* grace */
	uint8_t leaf_level = rbuf_u8(&r), fanout = rbuf_u8(&r);
	if (!rbuf_done(&r))
		return peer_bad_reply(p, &r);
	if (version != REPL_VERSION || leaf_level != TDM_DIGEST_LEAF_LEVEL ||
	    fanout != TDM_DIGEST_FANOUT || p->shard_duration <= 0)
		return EXIT_USAGE;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 5)
		return 0;
	uint8_t flags = data[0];
	size_t la = (size_t)data[1] | (size_t)data[2] << 8 | (size_t)data[3] << 16 |
	            (size_t)data[4] << 24;
	data += 5;
	size -= 5;
	if (la > size)
		la = size;
	peer a, b;
	int rc = fake_open(&a, "A", data, la);
	int rb = fake_open(&b, "B", data + la, size - la);
	if (!rc && !rb) {
		sync_opts o = {.from = INT64_MIN, .to = INT64_MAX, .copy_to_b = flags & 1,
		               .copy_to_a = (flags >> 1) & 1};
		sync_stats st;
		rc = repl_sync(&st, &a, &b, &o);
		if (rc < 0 || rc > 255)
			abort();
	}
	peer_close(&a);
	peer_close(&b);
	return 0;
}
