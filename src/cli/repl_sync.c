/*
 * repl_sync.c - find and move the events two replicas do not share.
 *
 * 1. Shard digests from both sides; equal shards are done.
 * 2. Level by level down the digest tree, ask each side for the children
 *    of the nodes that differ (a side whose node is empty is not asked).
 * 3. At a differing leaf, the cheap case first: when one side has exactly
 *    one event more, the difference of the sums is that event's
 *    fingerprint, and the side is asked for it alone. Otherwise both sides
 *    send the leaf's fingerprints and the sets are compared.
 * 4. The events one side alone holds are fetched and appended to the
 *    other, which drops any it already has: running again moves nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "repl_sync.h"

typedef struct node {
	int64_t shard;
	uint32_t node;
	tdm_digest d[2]; /* a, b */
} node;

typedef struct node_list {
	node *v;
	size_t n, cap;
} node_list;

static int list_add(node_list *l, const node *x)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		node *v = realloc(l->v, cap * sizeof *v);
		if (!v) {
			cli_error("out of memory");
			return EXIT_IOERR;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *x;
	return 0;
}

static int digest_eq(const tdm_digest *x, const tdm_digest *y)
{
	return x->count == y->count && x->sum == y->sum;
}

typedef struct sync {
	peer *p[2];
	const sync_opts *o;
	sync_stats *st;
	/* Per side, since the two sides' requests run at once (peer_both):
	 * req[i] and arena[i] for requests to side i; put[i] holds the events
	 * only the other side has, encoded for a PUT to side i. */
	wbuf req[2];
	wbuf put[2];
	size_t put_n[2];
	event_arena arena[2];
	uint64_t leaves_left;
	struct timespec last_progress;
} sync;

static void progress(sync *s, int done)
{
	if (!s->o->progress)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (now.tv_sec - s->last_progress.tv_sec) * 1000 +
	          (now.tv_nsec - s->last_progress.tv_nsec) / 1000000;
	if (!done && ms < 200)
		return;
	s->last_progress = now;
	uint64_t bytes = s->p[0]->bytes + s->p[1]->bytes;
	fprintf(stderr, "\rtidemark: %llu events moved, %.1f KiB exchanged, %llu buckets left   %s",
	        (unsigned long long)(s->st->copied_to_a + s->st->copied_to_b),
	        (double)bytes / 1024, (unsigned long long)s->leaves_left, done ? "\n" : "");
	fflush(stderr);
}

/* ---- shards ------------------------------------------------------------ */

typedef struct shards_job {
	sync *s;
	tdm_shard_digest *sd[2];
	size_t n[2];
} shards_job;

static int get_shards(int side, void *arg)
{
	shards_job *job = arg;
	sync *s = job->s;
	peer *p = s->p[side];
	wbuf *req = &s->req[side];
	rbuf r;
	wbuf_frame(req, REPL_SHARDS);
	wbuf_u64(req, (uint64_t)s->o->from);
	wbuf_u64(req, (uint64_t)s->o->to);
	int rc = peer_send(p, req);
	if (rc || (rc = peer_recv(p, &r, REPL_SHARDS | REPL_REPLY)))
		return rc;
	size_t k = rbuf_count(&r, 17);
	tdm_shard_digest *v = calloc(k ? k : 1, sizeof *v);
	if (!v) {
		cli_error("out of memory");
		return EXIT_IOERR;
	}
	for (size_t i = 0; i < k; i++) {
		v[i].shard = rbuf_i64(&r);
		v[i].digest.count = rbuf_varint(&r);
		v[i].digest.sum = rbuf_u64(&r);
		if (i && v[i].shard <= v[i - 1].shard)
			rbuf_fail(&r, "shards out of order");
	}
	if (!rbuf_done(&r)) {
		free(v);
		return peer_bad_reply(p, &r);
	}
	job->sd[side] = v;
	job->n[side] = k;
	return 0;
}

static int diff_shards(node_list *roots, sync *s)
{
	shards_job job = {s, {NULL, NULL}, {0, 0}};
	int rc = peer_both(get_shards, &job);
	tdm_shard_digest **sd = job.sd;
	size_t *n = job.n;
	for (size_t i = 0, j = 0; !rc && (i < n[0] || j < n[1]);) {
		node x = {0};
		if (j == n[1] || (i < n[0] && sd[0][i].shard < sd[1][j].shard)) {
			x.shard = sd[0][i].shard;
			x.d[0] = sd[0][i++].digest;
		} else if (i == n[0] || sd[1][j].shard < sd[0][i].shard) {
			x.shard = sd[1][j].shard;
			x.d[1] = sd[1][j++].digest;
		} else {
			x.shard = sd[0][i].shard;
			x.d[0] = sd[0][i++].digest;
			x.d[1] = sd[1][j++].digest;
		}
		s->st->shards_compared++;
		if (!digest_eq(&x.d[0], &x.d[1]))
			rc = list_add(roots, &x);
	}
	free(sd[0]);
	free(sd[1]);
	return rc;
}

/* ---- down the tree ------------------------------------------------------ */

typedef struct children_job {
	sync *s;
	node *kids;
	const node_list *nodes;
	unsigned level;
} children_job;

/* Fills kids[i * 16 + c].d[side] with the children of the nodes of
 * `level` that side holds events in. */
static int get_children(int side, void *arg)
{
	children_job *job = arg;
	sync *s = job->s;
	node *kids = job->kids;
	const node_list *nodes = job->nodes;
	unsigned level = job->level;
	peer *p = s->p[side];
	wbuf *req = &s->req[side];
	size_t i = 0;
	while (i < nodes->n) {
		/* One request for up to REPL_BATCH_ITEMS nodes this side has. */
		size_t first = i, asked = 0;
		wbuf_frame(req, REPL_CHILDREN);
		wbuf_u64(req, (uint64_t)s->o->from);
		wbuf_u64(req, (uint64_t)s->o->to);
		size_t count_at = req->len;
		wbuf_u32(req, 0); /* patched: a varint of fixed width */
		for (; i < nodes->n && asked < REPL_BATCH_ITEMS; i++) {
			if (!nodes->v[i].d[side].count)
				continue;
			wbuf_u64(req, (uint64_t)nodes->v[i].shard);
			wbuf_u8(req, (uint8_t)level);
			wbuf_u32(req, nodes->v[i].node);
			asked++;
		}
		if (!asked)
			break;
		if (req->failed) {
			cli_error("out of memory");
			return EXIT_IOERR;
		}
		/* a 4-byte varint: three continuation bytes */
		req->data[count_at] = (uint8_t)(asked | 0x80);
		req->data[count_at + 1] = (uint8_t)((asked >> 7) | 0x80);
		req->data[count_at + 2] = (uint8_t)((asked >> 14) | 0x80);
		req->data[count_at + 3] = (uint8_t)(asked >> 21);
		rbuf r;
		int rc = peer_send(p, req);
		if (rc || (rc = peer_recv(p, &r, REPL_CHILDREN | REPL_REPLY)))
			return rc;
		for (size_t k = first; k < i; k++) {
			if (!nodes->v[k].d[side].count)
				continue;
			/* Children need not add up to their parent: the side may have
			 * changed between requests. They are compared as they are;
			 * the next run settles what that missed. */
			uint16_t mask = rbuf_u16(&r);
			for (int c = 0; c < TDM_DIGEST_FANOUT; c++) {
				tdm_digest *d = &kids[k * TDM_DIGEST_FANOUT + c].d[side];
				if (mask & (1u << c)) {
					d->count = rbuf_varint(&r);
					d->sum = rbuf_u64(&r);
				}
			}
		}
		if (!rbuf_done(&r))
			return peer_bad_reply(p, &r);
	}
	return 0;
}

static int descend(node_list *nodes, sync *s, unsigned level)
{
	node *kids = calloc(nodes->n * TDM_DIGEST_FANOUT + 1, sizeof *kids);
	if (!kids) {
		cli_error("out of memory");
		return EXIT_IOERR;
	}
	children_job job = {s, kids, nodes, level};
	int rc = peer_both(get_children, &job);
	node_list next = {0};
	for (size_t i = 0; !rc && i < nodes->n; i++)
		for (uint32_t c = 0; !rc && c < TDM_DIGEST_FANOUT; c++) {
			node *k = &kids[i * TDM_DIGEST_FANOUT + c];
			k->shard = nodes->v[i].shard;
			k->node = nodes->v[i].node * TDM_DIGEST_FANOUT + c;
			if (!k->d[0].count && !k->d[1].count)
				continue;
			s->st->nodes_compared++;
			if (level + 1 == TDM_DIGEST_LEAF_LEVEL)
				s->st->buckets_compared++;
			if (!digest_eq(&k->d[0], &k->d[1]))
				rc = list_add(&next, k);
		}
	free(kids);
	free(nodes->v);
	*nodes = next;
	return rc;
}

/* ---- leaves -------------------------------------------------------------- */

typedef struct leaf {
	node n;
	int resolved;
	/* fingerprints only one side holds, once the lists were compared */
	uint64_t *only[2];
	size_t n_only[2];
} leaf;

/* Adds the raw bytes of one event (just checked by decoding) to the PUT
 * for the side that lacks it. */
static int queue_event(sync *s, int to_side, const uint8_t *start, const uint8_t *end)
{
	wbuf *w = &s->put[to_side];
	wbuf_bytes(w, start, (size_t)(end - start));
	s->put_n[to_side]++;
	if (w->failed) {
		cli_error("out of memory");
		return EXIT_IOERR;
	}
	return 0;
}

static int flush_put(sync *s, int to_side, int force)
{
	if (!s->put_n[to_side] || (!force && s->put[to_side].len < REPL_BATCH_BYTES))
		return 0;
	peer *p = s->p[to_side];
	wbuf *req = &s->req[to_side];
	wbuf_frame(req, REPL_PUT);
	wbuf_varint(req, s->put_n[to_side]);
	wbuf_bytes(req, s->put[to_side].data, s->put[to_side].len);
	wbuf_reset(&s->put[to_side]);
	s->put_n[to_side] = 0;
	rbuf r;
	int rc = peer_send(p, req);
	if (rc || (rc = peer_recv(p, &r, REPL_PUT | REPL_REPLY)))
		return rc;
	uint64_t appended = rbuf_varint(&r);
	rbuf_varint(&r); /* duplicates: it had them after all */
	rbuf_varint(&r); /* late */
	if (!rbuf_done(&r))
		return peer_bad_reply(p, &r);
	if (to_side)
		s->st->copied_to_b += appended;
	else
		s->st->copied_to_a += appended;
	return 0;
}

typedef struct flush_job {
	sync *s;
	int force;
} flush_job;

static int flush_side(int side, void *arg)
{
	flush_job *j = arg;
	return flush_put(j->s, side, j->force);
}

/* Sends each side the events queued for it (all of them with `force`,
 * else only a full batch), both sides at once. */
static int flush_puts(sync *s, int force)
{
	flush_job j = {s, force};
	int rc = peer_both(flush_side, &j);
	progress(s, 0);
	return rc;
}

/* Fetch items for one side: (leaf, all | fingerprints). */
typedef struct fetch_item {
	leaf *l;
	int all;
	const uint64_t *fps;
	size_t n_fps;
} fetch_item;

/* One side's part of a fetch: its items, how far it got, found[i] (what
 * item i got) and whether it wants the events or only their presence;
 * while a reply is being read, the batch it answers. */
typedef struct fetch_job {
	fetch_item *items;
	size_t n, done;
	uint64_t *found;
	int want_events;
	int in_reply;
	size_t first, batch;
} fetch_job;

typedef struct fetch_both_job {
	sync *s;
	fetch_job side[2];
} fetch_both_job;

/* Asks `side` for the events (or, with !want_events, just the presence) of
 * its items, a batch at a time, until they are done or the events queued
 * for the other side fill a PUT. Only this side's peer is spoken to here,
 * since the other side is busy with its own part at the same time: a full
 * PUT ends the call, even within a reply, which is read on at the next
 * call once the PUTs went out (a remote side waits on its pipe meanwhile). */
static int fetch_side(int side, void *arg)
{
	fetch_both_job *fb = arg;
	sync *s = fb->s;
	fetch_job *j = &fb->side[side];
	fetch_item *items = j->items;
	peer *p = s->p[side];
	wbuf *req = &s->req[side];
	while (s->put[!side].len < REPL_BATCH_BYTES) {
		if (!j->in_reply) {
			size_t i = j->done, n = j->n, fps = 0, batch = 0;
			if (i == n)
				return 0;
			wbuf_frame(req, REPL_FETCH);
			wbuf_u64(req, (uint64_t)s->o->from);
			wbuf_u64(req, (uint64_t)s->o->to);
			wbuf_u8(req, (uint8_t)j->want_events);
			for (size_t k = i; k < n && batch < REPL_BATCH_ITEMS &&
			                   fps < REPL_BATCH_ITEMS; k++, batch++)
				fps += items[k].all ? items[k].l->n.d[side].count : items[k].n_fps;
			wbuf_varint(req, batch);
			for (; i < j->done + batch; i++) {
				wbuf_u64(req, (uint64_t)items[i].l->n.shard);
				wbuf_u32(req, items[i].l->n.node);
				wbuf_u8(req, (uint8_t)items[i].all);
				wbuf_varint(req, items[i].n_fps);
				for (size_t f = 0; f < items[i].n_fps; f++)
					wbuf_u64(req, items[i].fps[f]);
			}
			j->first = j->done;
			j->batch = batch;
			j->done = i;
			j->in_reply = 1;
			int rc = peer_send(p, req);
			if (rc)
				return rc;
		}
		/* One frame of the reply. */
		rbuf r;
		int rc = peer_recv(p, &r, REPL_FETCH | REPL_REPLY);
		if (rc)
			return rc;
		uint8_t last = rbuf_u8(&r);
		uint32_t k = rbuf_u32(&r);
		for (uint32_t e = 0; e < k && !r.err; e++) {
			uint64_t item = rbuf_varint(&r);
			rbuf_u64(&r);
			if (item >= j->batch) {
				rbuf_fail(&r, "fetch reply for an item not asked for");
				break;
			}
			j->found[j->first + item]++;
			if (!j->want_events)
				continue;
			const uint8_t *start = r.p;
			tdm_event ev;
			arena_reset(&s->arena[side]);
			if (rbuf_event(&r, &ev, &s->arena[side]))
				break;
			if ((rc = queue_event(s, !side, start, r.p)))
				return rc;
		}
		if (last > 1)
			rbuf_fail(&r, "bad last flag");
		if (!rbuf_done(&r))
			return peer_bad_reply(p, &r);
		j->in_reply = !last;
	}
	return 0;
}

/* Fetches both sides' items at once; the events go to the other side's
 * PUT, sent whenever one fills, so no more than about a PUT's worth is
 * held for each side. */
static int fetch_both(sync *s, fetch_item *items[2], const size_t n[2], const int want[2],
                      uint64_t *found[2])
{
	fetch_both_job fb = {s, {{items[0], n[0], 0, found[0], want[0], 0, 0, 0},
	                         {items[1], n[1], 0, found[1], want[1], 0, 0, 0}}};
	int rc = 0;
	while (!rc && (fb.side[0].done < n[0] || fb.side[0].in_reply ||
	               fb.side[1].done < n[1] || fb.side[1].in_reply))
		if (!(rc = peer_both(fetch_side, &fb)))
			rc = flush_puts(s, 0);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

typedef struct fps_job {
	sync *s;
	leaf **ls;
	size_t n;
} fps_job;

/* One side's fingerprints of the leaves, sorted, into ls[k]->only[side]. */
static int get_fps(int side, void *arg)
{
	fps_job *job = arg;
	sync *s = job->s;
	leaf **ls = job->ls;
	size_t n = job->n;
	peer *p = s->p[side];
	wbuf *req = &s->req[side];
	size_t i = 0;
	while (i < n) {
		size_t first = i, fps = 0, batch = 0;
		for (size_t k = i; k < n && batch < REPL_BATCH_ITEMS && fps < 65536; k++, batch++)
			fps += ls[k]->n.d[side].count;
		wbuf_frame(req, REPL_LEAF_FPS);
		wbuf_u64(req, (uint64_t)s->o->from);
		wbuf_u64(req, (uint64_t)s->o->to);
		wbuf_varint(req, batch);
		for (; i < first + batch; i++) {
			wbuf_u64(req, (uint64_t)ls[i]->n.shard);
			wbuf_u32(req, ls[i]->n.node);
		}
		rbuf r;
		int rc = peer_send(p, req);
		if (rc || (rc = peer_recv(p, &r, REPL_LEAF_FPS | REPL_REPLY)))
			return rc;
		for (size_t k = first; k < i && !r.err; k++) {
			uint32_t m = rbuf_u32(&r);
			if (m > (size_t)(r.end - r.p) / 8) {
				rbuf_fail(&r, "fingerprint count larger than the message");
				break;
			}
			uint64_t *v = malloc((m ? m : 1) * sizeof *v);
			if (!v) {
				cli_error("out of memory");
				return EXIT_IOERR;
			}
			for (uint32_t j = 0; j < m; j++)
				v[j] = rbuf_u64(&r);
			qsort(v, m, sizeof *v, cmp_u64);
			ls[k]->only[side] = v;
			ls[k]->n_only[side] = m;
		}
		if (!rbuf_done(&r))
			return peer_bad_reply(p, &r);
	}
	return 0;
}

/* Both sides' fingerprints of the unresolved leaves, and what only one
 * side holds. */
static int compare_fps(sync *s, leaf **ls, size_t n)
{
	fps_job job = {s, ls, n};
	int rc = peer_both(get_fps, &job);
	if (rc)
		return rc;
	/* Sorted multisets: keep in each what the other lacks. */
	for (size_t k = 0; k < n; k++) {
		leaf *l = ls[k];
		size_t i = 0, j = 0, na = 0, nb = 0;
		uint64_t *a = l->only[0], *b = l->only[1];
		while (i < l->n_only[0] || j < l->n_only[1]) {
			if (j == l->n_only[1] || (i < l->n_only[0] && a[i] < b[j]))
				a[na++] = a[i++];
			else if (i == l->n_only[0] || b[j] < a[i])
				b[nb++] = b[j++];
			else
				i++, j++;
		}
		l->n_only[0] = na;
		l->n_only[1] = nb;
	}
	return 0;
}

static int resolve_leaves(sync *s, node_list *nodes)
{
	size_t n = nodes->n;
	leaf *ls = calloc(n + 1, sizeof *ls);
	leaf **pending = calloc(n + 1, sizeof *pending);
	fetch_item *items[2] = {calloc(n + 1, sizeof(fetch_item)),
	                        calloc(n + 1, sizeof(fetch_item))};
	uint64_t *found[2] = {calloc(n + 1, sizeof(uint64_t)), calloc(n + 1, sizeof(uint64_t))};
	uint64_t *guess = calloc(n + 1, sizeof *guess);
	int rc = 0;
	if (!ls || !pending || !items[0] || !items[1] || !found[0] || !found[1] || !guess) {
		cli_error("out of memory");
		rc = EXIT_IOERR;
		goto out;
	}
	int want[2] = {s->o->copy_to_b, s->o->copy_to_a}; /* events of side 0 go to b */
	size_t n_items[2] = {0, 0}, n_pending = 0;
	s->leaves_left = n;
	for (size_t i = 0; i < n; i++) {
		leaf *l = &ls[i];
		l->n = nodes->v[i];
		const tdm_digest *a = &l->n.d[0], *b = &l->n.d[1];
		int side = -1, all = 0;
		if (!b->count || !a->count) { /* all of it is only on one side */
			side = b->count == 0 ? 0 : 1;
			all = 1;
			l->resolved = 1;
			if (side == 0)
				s->st->only_in_a += a->count;
			else
				s->st->only_in_b += b->count;
			if (!want[side])
				continue;
		} else if (a->count == b->count + 1) {
			side = 0;
		} else if (b->count == a->count + 1) {
			side = 1;
		} else {
			pending[n_pending++] = l;
			continue;
		}
		if (!all)
			guess[i] = l->n.d[side].sum - l->n.d[!side].sum;
		items[side][n_items[side]++] = (fetch_item){l, all, all ? NULL : &guess[i], !all};
	}
	/* Round 1: whole leaves, and the single event a sum difference names. */
	rc = fetch_both(s, items, n_items, want, found);
	for (int side = 0; side < 2 && !rc; side++) {
		fetch_item *it = items[side];
		for (size_t k = 0; k < n_items[side]; k++) {
			if (it[k].all)
				continue;
			if (found[side][k] == 1) {
				it[k].l->resolved = 1;
				if (side == 0)
					s->st->only_in_a++;
				else
					s->st->only_in_b++;
			} else {
				/* Not that simple: the event fetched (if any) was not the
				 * only difference. Compare the lists. */
				pending[n_pending++] = it[k].l;
			}
		}
	}
	s->leaves_left = n_pending;
	progress(s, 0);
	/* Round 2: the remaining leaves' fingerprint lists. */
	if (!rc && n_pending)
		rc = compare_fps(s, pending, n_pending);
	n_items[0] = n_items[1] = 0;
	for (size_t k = 0; !rc && k < n_pending; k++) {
		leaf *l = pending[k];
		s->st->only_in_a += l->n_only[0];
		s->st->only_in_b += l->n_only[1];
		for (int side = 0; side < 2; side++)
			if (want[side] && l->n_only[side])
				items[side][n_items[side]++] =
					(fetch_item){l, 0, l->only[side], l->n_only[side]};
	}
	/* Round 3: the events only one side holds. */
	if (!rc)
		rc = fetch_both(s, items, n_items, want, found);
	s->leaves_left = 0;
out:
	for (size_t i = 0; ls && i < n; i++) {
		free(ls[i].only[0]);
		free(ls[i].only[1]);
	}
	free(ls);
	free(pending);
	free(items[0]);
	free(items[1]);
	free(found[0]);
	free(found[1]);
	free(guess);
	return rc;
}

int repl_sync(sync_stats *st, peer *a, peer *b, const sync_opts *o)
{
	memset(st, 0, sizeof *st);
	if (a->shard_duration != b->shard_duration) {
		cli_error("%s (%s) has shards of %lld ns and %s (%s) of %lld ns: replicas must "
		          "share a shard duration",
		          a->label, a->spec, (long long)a->shard_duration, b->label, b->spec,
		          (long long)b->shard_duration);
		return EXIT_USAGE;
	}
	sync s = {.p = {a, b}, .o = o, .st = st};
	clock_gettime(CLOCK_MONOTONIC, &s.last_progress);
	node_list nodes = {0};
	int rc = diff_shards(&nodes, &s);
	for (unsigned level = 0; !rc && level < TDM_DIGEST_LEAF_LEVEL && nodes.n; level++)
		rc = descend(&nodes, &s, level);
	st->buckets_differing = nodes.n;
	if (!rc && nodes.n)
		rc = resolve_leaves(&s, &nodes);
	if (!rc)
		rc = flush_puts(&s, 1);
	progress(&s, 1);
	st->bytes_exchanged = a->bytes + b->bytes;
	free(nodes.v);
	for (int side = 0; side < 2; side++) {
		wbuf_free(&s.req[side]);
		wbuf_free(&s.put[side]);
		arena_free(&s.arena[side]);
	}
	return rc;
}
