/*
 * support.c - small helpers shared by the unit tests; see support.h.
 */
#include "support.h"

#include <check.h>
#include <inttypes.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Memory ------------------------------------------------------------ */

void *tst_malloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (p == NULL)
		ck_abort_msg("out of memory (%zu bytes)", size);
	return p;
}

void *tst_realloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	if (p == NULL)
		ck_abort_msg("out of memory (%zu bytes)", size);
	return p;
}

/* ---- Files ------------------------------------------------------------- */

char *tst_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	size_t size = strlen(base) + sizeof("/tidemark-test-XXXXXX");
	char *path = tst_malloc(size);
	snprintf(path, size, "%s/tidemark-test-XXXXXX", base);
	if (mkdtemp(path) == NULL)
		ck_abort_msg("mkdtemp %s failed", path);
	return path;
}

static int remove_one(const char *path, const struct stat *st, int type,
                      struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

void tst_rmtree(const char *dir)
{
	if (dir != NULL)
		nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

off_t tst_file_size(const char *path)
{
	struct stat st;
	ck_assert_msg(stat(path, &st) == 0, "stat %s", path);
	return st.st_size;
}

/* ---- Random numbers ---------------------------------------------------- */

void tst_rng_seed(tst_rng *r, uint64_t seed)
{
	r->state = seed;
}

uint64_t tst_rng_next(tst_rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t tst_rng_range(tst_rng *r, uint64_t n)
{
	/* Rejection sampling: no modulo bias, even for large n. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do
		x = tst_rng_next(r);
	while (x >= limit);
	return x % n;
}

int tst_rng_chance(tst_rng *r, unsigned percent)
{
	return tst_rng_range(r, 100) < percent;
}

void tst_rng_bytes(tst_rng *r, void *buf, size_t n)
{
	unsigned char *p = buf;
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)tst_rng_next(r);
}

/* ---- Events ------------------------------------------------------------ */

static int label_ptr_cmp(const void *a, const void *b)
{
	const tdm_label *x = *(const tdm_label *const *)a;
	const tdm_label *y = *(const tdm_label *const *)b;
	return strcmp(x->key, y->key); /* compares as unsigned char */
}

/* Fills `out` with pointers to the labels of `ev`, sorted by key. */
static void sort_labels(const tdm_label **out, const tdm_event *ev)
{
	for (size_t i = 0; i < ev->n_labels; i++)
		out[i] = &ev->labels[i];
	qsort(out, ev->n_labels, sizeof *out, label_ptr_cmp);
}

tdm_event *tst_event_dup(const tdm_event *ev)
{
	size_t n = ev->n_labels;
	size_t size = sizeof(tdm_event) + n * sizeof(tdm_label) + ev->payload_len;
	for (size_t i = 0; i < n; i++)
		size += strlen(ev->labels[i].key) + strlen(ev->labels[i].value) + 2;

	tdm_event *copy = tst_malloc(size);
	tdm_label *labels = (tdm_label *)(copy + 1);
	char *bytes = (char *)(labels + n);

	*copy = *ev;
	copy->labels = n > 0 ? labels : NULL;
	copy->payload = ev->payload_len > 0 ? bytes : NULL;
	if (ev->payload_len > 0)
		memcpy(bytes, ev->payload, ev->payload_len);
	bytes += ev->payload_len;

	const tdm_label *stack[TDM_MAX_LABELS];
	const tdm_label **sorted = stack;
	if (n > TDM_MAX_LABELS)
		sorted = tst_malloc(n * sizeof *sorted);
	sort_labels(sorted, ev);
	for (size_t i = 0; i < n; i++) {
		size_t klen = strlen(sorted[i]->key) + 1;
		size_t vlen = strlen(sorted[i]->value) + 1;
		labels[i].key = memcpy(bytes, sorted[i]->key, klen);
		bytes += klen;
		labels[i].value = memcpy(bytes, sorted[i]->value, vlen);
		bytes += vlen;
	}
	if (sorted != stack)
		free(sorted);
	return copy;
}

void tst_event_free(tdm_event *ev)
{
	free(ev);
}

/* Walks the canonical encoding key\0value\0key\0value\0... byte by byte. */
typedef struct label_stream {
	const tdm_label *const *pairs;
	size_t n, pair;
	int in_value;
	size_t off;
} label_stream;

/* The next byte, or -1 at the end. */
static int label_stream_next(label_stream *s)
{
	if (s->pair == s->n)
		return -1;
	const tdm_label *l = s->pairs[s->pair];
	const char *str = s->in_value ? l->value : l->key;
	unsigned char c = (unsigned char)str[s->off++];
	if (c == '\0') {
		s->off = 0;
		s->in_value = !s->in_value;
		if (!s->in_value)
			s->pair++;
	}
	return c;
}

static int labels_cmp(const tdm_event *a, const tdm_event *b)
{
	const tdm_label *stack_a[TDM_MAX_LABELS], *stack_b[TDM_MAX_LABELS];
	const tdm_label **pa = stack_a, **pb = stack_b;
	if (a->n_labels > TDM_MAX_LABELS)
		pa = tst_malloc(a->n_labels * sizeof *pa);
	if (b->n_labels > TDM_MAX_LABELS)
		pb = tst_malloc(b->n_labels * sizeof *pb);
	sort_labels(pa, a);
	sort_labels(pb, b);

	label_stream sa = {pa, a->n_labels, 0, 0, 0};
	label_stream sb = {pb, b->n_labels, 0, 0, 0};
	int ca, cb;
	do {
		ca = label_stream_next(&sa);
		cb = label_stream_next(&sb);
	} while (ca == cb && ca != -1);

	if (pa != stack_a)
		free(pa);
	if (pb != stack_b)
		free(pb);
	return (ca > cb) - (ca < cb);
}

int tst_event_cmp(const tdm_event *a, const tdm_event *b)
{
	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	int c = labels_cmp(a, b);
	if (c != 0)
		return c;
	size_t n = a->payload_len < b->payload_len ? a->payload_len : b->payload_len;
	c = n > 0 ? memcmp(a->payload, b->payload, n) : 0;
	if (c != 0)
		return c;
	return (a->payload_len > b->payload_len) - (a->payload_len < b->payload_len);
}

const char *tst_event_str(char *buf, size_t size, const tdm_event *ev)
{
	size_t used = 0;
#define PUT(...)                                                        \
	do {                                                            \
		if (used < size)                                        \
			used += (size_t)snprintf(buf + used, size - used, \
			                         __VA_ARGS__);          \
	} while (0)

	buf[0] = '\0';
	PUT("{ts=%lld id=%lu seq=%llu labels={", (long long)ev->ts,
	    (unsigned long)ev->id, (unsigned long long)ev->seq);
	for (size_t i = 0; i < ev->n_labels; i++)
		PUT("%s%s=%s", i ? "," : "", ev->labels[i].key,
		    ev->labels[i].value);
	PUT("} payload[%zu]=", ev->payload_len);
	const unsigned char *p = ev->payload;
	size_t shown = ev->payload_len < 24 ? ev->payload_len : 24;
	for (size_t i = 0; i < shown; i++)
		PUT("%02x", p[i]);
	PUT("%s}", shown < ev->payload_len ? "..." : "");
#undef PUT
	return buf;
}

/* ---- Stores ------------------------------------------------------------ */

char *tst_store_new(int64_t shard_ns, int64_t grace_ns, uint32_t interval)
{
	char *dir = tst_tmpdir();
	tdm_options o = TDM_OPTIONS_INIT;
	if (shard_ns)
		o.shard_duration_ns = shard_ns;
	if (grace_ns)
		o.grace_ns = grace_ns;
	if (interval)
		o.index_interval = interval;
	int r = tdm_store_create(dir, &o);
	ck_assert_msg(r == 0, "create %s: %d %s", dir, r, tdm_error_message());
	return dir;
}

tdm_store *tst_store_open(const char *dir, unsigned flags, int durability)
{
	tdm_open_options oo = TDM_OPEN_OPTIONS_INIT;
	oo.flags = flags;
	oo.durability = durability;
	tdm_store *s = NULL;
	int r = tdm_store_open(&s, dir, &oo);
	ck_assert_msg(r == 0, "open %s: %d %s", dir, r, tdm_error_message());
	ck_assert_ptr_nonnull(s);
	return s;
}

void tst_tmpdir_drop(char *dir)
{
	tst_rmtree(dir);
	free(dir);
}

static void first_problem(void *ctx, const tdm_problem *p)
{
	char *first = ctx;
	if (!first[0])
		snprintf(first, 512, "%s offset %lld: %s", p->file, (long long)p->offset,
		         p->what);
}

void tst_verify_clean(tdm_store *s)
{
	uint64_t problems = 99;
	char first[512] = "";
	int r = tdm_verify(&problems, s, first_problem, first);
	ck_assert_msg(r == 0, "verify: %d %s", r, tdm_error_message());
	ck_assert_msg(problems == 0, "verify: %" PRIu64 " problems, first: %s", problems,
	              first);
}

/* ---- Event lists ------------------------------------------------------- */

void tst_evlist_add(tst_evlist *l, const tdm_event *ev)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->a = tst_realloc(l->a, l->cap * sizeof *l->a);
	}
	l->a[l->n++] = tst_event_dup(ev);
}

void tst_evlist_free(tst_evlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		tst_event_free(l->a[i]);
	free(l->a);
	memset(l, 0, sizeof *l);
}

void tst_read_into(tst_evlist *out, tdm_store *s, int64_t from, int64_t to,
                   const tdm_read_options *ro)
{
	tdm_iter *it = NULL;
	int r = tdm_iter_open(&it, s, from, to, ro);
	ck_assert_msg(r == 0, "iter_open: %d %s", r, tdm_error_message());
	const tdm_event *ev;
	while ((r = tdm_iter_next(&ev, it)) == 0)
		tst_evlist_add(out, ev);
	ck_assert_msg(r == TDM_ITEROVER, "iter_next: %d %s", r, tdm_error_message());
	const char *msg = NULL;
	ck_assert_msg(tdm_iter_damage(&msg, it) == 0, "damage: %s", msg ? msg : "?");
	tdm_iter_close(it);
}

tst_evlist tst_read_all(tdm_store *s, int64_t from, int64_t to)
{
	tst_evlist l = {0};
	tst_read_into(&l, s, from, to, NULL);
	return l;
}
