/*
 * faultfs.c - simulated power loss and injected failures; see faultfs.h.
 *
 * Model. A node is a file (an inode): its current name (NULL once removed),
 * whether its content was ever synced, and the content as of its last
 * fsync. The durable view is a list of (name, node) entries: what the
 * directories held at their last fsync. A file's current bytes are never
 * copied until needed: they are on disk, and read at fsync and at the crash.
 */
#include "faultfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

#define MAX_FDS 4096
#define MAX_IGNORE 8

typedef struct node {
	char *path;        /* current name; NULL once unlinked or renamed over */
	uint8_t *dur;      /* content as of the last fsync */
	size_t dur_len;
	int synced;        /* dur is meaningful (else: empty) */
	struct node *next;
} node;

typedef struct dentry {
	char *path;
	node *n;
} dentry;

typedef struct fdent {
	int kind; /* 0 untracked, 1 file, 2 directory */
	node *n;
	char *dir;
} fdent;

static struct {
	int installed;
	char *root;
	char *ignore[MAX_IGNORE];
	size_t n_ignore;
	tst_rng rng;
	node *nodes;
	dentry *d;
	size_t nd, capd;
	fdent fds[MAX_FDS];
	uint64_t calls[FAULTFS_NOPS];
	uint64_t power_at;
	int power_lost;
	/* an injected failure */
	enum faultfs_op fail_op;
	uint64_t fail_k;
	int fail_err, fail_partial, fail_next_pwrite;
	uint64_t failures;
} F;

/* ---- paths ---------------------------------------------------------------- */

/* A copy of `path` with repeated and trailing slashes removed. */
static char *norm(const char *path)
{
	size_t n = strlen(path);
	char *out = tst_malloc(n + 1), *o = out;
	for (const char *p = path; *p; p++) {
		if (*p == '/' && o > out && o[-1] == '/')
			continue;
		*o++ = *p;
	}
	while (o > out + 1 && o[-1] == '/')
		o--;
	*o = 0;
	return out;
}

static int under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(path, prefix, n) == 0 && (path[n] == 0 || path[n] == '/');
}

static int tracked(const char *path)
{
	if (!F.root || !under(path, F.root))
		return 0;
	for (size_t i = 0; i < F.n_ignore; i++)
		if (under(path, F.ignore[i]))
			return 0;
	return 1;
}

/* Is `path` directly in directory `dir`? */
static int in_dir(const char *path, const char *dir)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return 0;
	size_t n = (size_t)(slash - path);
	if (n == 0) /* "/x" is in "/" */
		return strcmp(dir, "/") == 0;
	return strlen(dir) == n && strncmp(path, dir, n) == 0;
}

/* ---- whole files ---------------------------------------------------------- */

/* Reads the regular file at `path` whole; -1 if it is not there. */
static int read_path(const char *path, uint8_t **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -1;
	}
	size_t n = (size_t)st.st_size, got = 0;
	uint8_t *b = tst_malloc(n);
	while (got < n) {
		ssize_t r = pread(fd, b + got, n - got, (off_t)got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*buf = b;
	*len = got;
	return 0;
}

/* The whole content of the file open as `fd` (which may be write-only:
 * it is opened again for reading through /proc). */
static void read_fd(int fd, uint8_t **buf, size_t *len)
{
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if (read_path(proc, buf, len) < 0) {
		fprintf(stderr, "faultfs: cannot read %s: %s\n", proc, strerror(errno));
		abort();
	}
}

static void write_path(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "faultfs: cannot rewrite %s: %s\n", path, strerror(errno));
		abort();
	}
	size_t done = 0;
	while (done < len) {
		ssize_t r = write(fd, buf + done, len - done);
		if (r <= 0) {
			fprintf(stderr, "faultfs: cannot rewrite %s\n", path);
			abort();
		}
		done += (size_t)r;
	}
	close(fd);
}

/* ---- nodes and the durable view -------------------------------------------- */

static node *node_at(const char *path)
{
	for (node *n = F.nodes; n; n = n->next)
		if (n->path && strcmp(n->path, path) == 0)
			return n;
	return NULL;
}

static node *node_new(const char *path)
{
	node *n = tst_malloc(sizeof *n);
	memset(n, 0, sizeof *n);
	n->path = tst_malloc(strlen(path) + 1);
	strcpy(n->path, path);
	n->next = F.nodes;
	F.nodes = n;
	return n;
}

static void dentry_add(const char *path, node *n)
{
	if (F.nd == F.capd) {
		F.capd = F.capd ? F.capd * 2 : 64;
		F.d = tst_realloc(F.d, F.capd * sizeof *F.d);
	}
	F.d[F.nd].path = tst_malloc(strlen(path) + 1);
	strcpy(F.d[F.nd].path, path);
	F.d[F.nd].n = n;
	F.nd++;
}

/* A file the layer meets for the first time, already on disk: durable as
 * it is. `path` is normalized and tracked. NULL if there is no such file. */
static node *node_existing(const char *path)
{
	node *n = node_at(path);
	if (n)
		return n;
	uint8_t *buf;
	size_t len;
	if (read_path(path, &buf, &len) < 0)
		return NULL;
	n = node_new(path);
	n->dur = buf;
	n->dur_len = len;
	n->synced = 1;
	dentry_add(path, n);
	return n;
}

/* The directory `dir` was synced: its durable entries are its current ones. */
static void dir_synced(const char *dir)
{
	size_t k = 0;
	for (size_t i = 0; i < F.nd; i++) {
		if (in_dir(F.d[i].path, dir))
			free(F.d[i].path);
		else
			F.d[k++] = F.d[i];
	}
	F.nd = k;
	for (node *n = F.nodes; n; n = n->next)
		if (n->path && in_dir(n->path, dir))
			dentry_add(n->path, n);
}

static void file_synced(int fd, node *n)
{
	free(n->dur);
	read_fd(fd, &n->dur, &n->dur_len);
	n->synced = 1;
}

static void reset_tracking(void)
{
	for (node *n = F.nodes, *next; n; n = next) {
		next = n->next;
		free(n->path);
		free(n->dur);
		free(n);
	}
	F.nodes = NULL;
	for (size_t i = 0; i < F.nd; i++)
		free(F.d[i].path);
	free(F.d);
	F.d = NULL;
	F.nd = F.capd = 0;
	for (int i = 0; i < MAX_FDS; i++) {
		free(F.fds[i].dir);
		F.fds[i] = (fdent){0, NULL, NULL};
	}
}

/* ---- failures ----------------------------------------------------------- */

/* Counts a call of `op`; 1 when it must fail (errno set). */
static int count_and_fail(enum faultfs_op op)
{
	F.calls[op]++;
	if (F.power_lost) {
		errno = EIO;
		return 1;
	}
	if (op == FAULTFS_FSYNC && F.power_at && F.calls[op] == F.power_at) {
		F.power_lost = 1;
		errno = EIO;
		return 1;
	}
	if (F.fail_k && op == F.fail_op && F.calls[op] == F.fail_k) {
		F.failures++;
		errno = F.fail_err;
		return 1;
	}
	return 0;
}

static int dead(void)
{
	if (F.power_lost) {
		errno = EIO;
		return 1;
	}
	return 0;
}

/* ---- the table -------------------------------------------------------------- */

static int ff_open(const char *path, int flags, mode_t mode)
{
	if (count_and_fail(FAULTFS_OPEN))
		return -1;
	char *p = norm(path);
	int track = tracked(p);
	if (track && !(flags & O_DIRECTORY))
		node_existing(p); /* before O_TRUNC can change it */
	int fd = tdm_io_posix.open(path, flags, mode);
	if (fd >= 0 && track) {
		if (fd >= MAX_FDS) {
			fprintf(stderr, "faultfs: descriptor %d out of range\n", fd);
			abort();
		}
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
			F.fds[fd].kind = 2;
			F.fds[fd].dir = p;
			return fd;
		}
		node *n = node_at(p);
		if (!n)
			n = node_new(p); /* created now: nothing durable yet */
		F.fds[fd].kind = 1;
		F.fds[fd].n = n;
	}
	free(p);
	return fd;
}

static int ff_close(int fd)
{
	if (fd >= 0 && fd < MAX_FDS) {
		free(F.fds[fd].dir);
		F.fds[fd] = (fdent){0, NULL, NULL};
	}
	int r = tdm_io_posix.close(fd);
	if (dead())
		return -1; /* the descriptor is released all the same */
	return r;
}

static ssize_t ff_pread(int fd, void *buf, size_t n, off_t off)
{
	if (dead())
		return -1;
	return tdm_io_posix.pread(fd, buf, n, off);
}

static ssize_t ff_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (F.fail_next_pwrite && !F.power_lost) {
		F.calls[FAULTFS_PWRITE]++;
		F.fail_next_pwrite = 0;
		errno = F.fail_err;
		return -1;
	}
	if (count_and_fail(FAULTFS_PWRITE)) {
		if (!F.power_lost && F.fail_partial && n > 1) {
			int err = errno;
			ssize_t r = tdm_io_posix.pwrite(fd, buf, n / 2, off);
			if (r > 0) {
				F.fail_next_pwrite = 1;
				return r;
			}
			errno = err;
		}
		return -1;
	}
	return tdm_io_posix.pwrite(fd, buf, n, off);
}

static int ff_fsync(int fd)
{
	if (count_and_fail(FAULTFS_FSYNC))
		return -1;
	if (fd >= 0 && fd < MAX_FDS) {
		if (F.fds[fd].kind == 2)
			dir_synced(F.fds[fd].dir);
		else if (F.fds[fd].kind == 1)
			file_synced(fd, F.fds[fd].n);
	}
	return 0; /* durability is simulated: no real sync needed */
}

static int ff_ftruncate(int fd, off_t len)
{
	if (count_and_fail(FAULTFS_FTRUNCATE))
		return -1;
	return tdm_io_posix.ftruncate(fd, len);
}

static int ff_fstat(int fd, struct stat *st)
{
	if (dead())
		return -1;
	return tdm_io_posix.fstat(fd, st);
}

static int ff_stat(const char *path, struct stat *st)
{
	if (dead())
		return -1;
	return tdm_io_posix.stat(path, st);
}

static int ff_rename(const char *from, const char *to)
{
	if (count_and_fail(FAULTFS_RENAME))
		return -1;
	char *f = norm(from), *t = norm(to);
	node *nf = tracked(f) ? node_existing(f) : NULL;
	node *nt = tracked(t) ? node_existing(t) : NULL;
	int r = tdm_io_posix.rename(from, to);
	if (r == 0) {
		if (nt && nt != nf) {
			free(nt->path);
			nt->path = NULL;
		}
		if (nf && tracked(t)) {
			free(nf->path);
			nf->path = t;
			t = NULL;
		} else if (nf) {
			free(nf->path); /* moved out of sight */
			nf->path = NULL;
		}
	}
	free(f);
	free(t);
	return r;
}

static int ff_unlink(const char *path)
{
	if (dead())
		return -1;
	char *p = norm(path);
	node *n = tracked(p) ? node_existing(p) : NULL;
	int r = tdm_io_posix.unlink(path);
	if (r == 0 && n) {
		free(n->path);
		n->path = NULL;
	}
	free(p);
	return r;
}

static int ff_mkdir(const char *path, mode_t mode)
{
	if (dead())
		return -1;
	return tdm_io_posix.mkdir(path, mode);
}

static int ff_flock(int fd, int op)
{
	if (dead())
		return -1;
	return tdm_io_posix.flock(fd, op);
}

const tdm_io_ops faultfs_ops = {
	.open = ff_open,
	.close = ff_close,
	.pread = ff_pread,
	.pwrite = ff_pwrite,
	.fsync = ff_fsync,
	.ftruncate = ff_ftruncate,
	.fstat = ff_fstat,
	.stat = ff_stat,
	.rename = ff_rename,
	.unlink = ff_unlink,
	.mkdir = ff_mkdir,
	.flock = ff_flock,
};

/* ---- control ----------------------------------------------------------------- */

void faultfs_arm(void)
{
	memset(F.calls, 0, sizeof F.calls);
	F.power_at = 0;
	F.power_lost = 0;
	F.fail_k = 0;
	F.fail_next_pwrite = 0;
	F.failures = 0;
}

void faultfs_install(const char *root, uint64_t seed)
{
	faultfs_uninstall();
	F.root = norm(root);
	tst_rng_seed(&F.rng, seed);
	faultfs_arm();
	F.installed = 1;
	tdm_io = &faultfs_ops;
}

void faultfs_ignore(const char *prefix)
{
	if (F.n_ignore == MAX_IGNORE) {
		fprintf(stderr, "faultfs: too many ignored prefixes\n");
		abort();
	}
	F.ignore[F.n_ignore++] = norm(prefix);
}

void faultfs_uninstall(void)
{
	tdm_io = &tdm_io_posix;
	reset_tracking();
	free(F.root);
	F.root = NULL;
	for (size_t i = 0; i < F.n_ignore; i++)
		free(F.ignore[i]);
	F.n_ignore = 0;
	faultfs_arm();
	F.installed = 0;
}

uint64_t faultfs_calls(enum faultfs_op op)
{
	return op < FAULTFS_NOPS ? F.calls[op] : 0;
}

uint64_t faultfs_syncs(void)
{
	return F.calls[FAULTFS_FSYNC];
}

void faultfs_power_loss_at(uint64_t n)
{
	F.power_at = n;
}

int faultfs_power_lost(void)
{
	return F.power_lost;
}

void faultfs_fail_call(enum faultfs_op op, uint64_t k, int err, int partial)
{
	F.fail_op = op;
	F.fail_k = k;
	F.fail_err = err;
	F.fail_partial = partial;
	F.fail_next_pwrite = 0;
}

uint64_t faultfs_failures(void)
{
	return F.failures;
}

const char *faultfs_mode_name(enum faultfs_mode mode)
{
	switch (mode) {
	case FAULTFS_DROP: return "drop";
	case FAULTFS_KEEP: return "keep";
	case FAULTFS_TEAR: return "tear";
	}
	return "?";
}

/* ---- the crash ----------------------------------------------------------------- */

typedef struct target {
	char *path;
	int remove;       /* else write buf */
	uint8_t *buf;
	size_t len;
} target;

typedef struct current {
	node *n;
	uint8_t *buf;     /* NULL: no file at n->path */
	size_t len;
} current;

static current *current_of(current *cur, size_t n_cur, const node *n)
{
	for (size_t i = 0; i < n_cur; i++)
		if (cur[i].n == n)
			return &cur[i];
	return NULL;
}

/* Durable bytes plus a random part of what changed since, the last 0..64
 * bytes of the new part garbled. */
static uint8_t *torn(size_t *out_len, const node *n, const current *c)
{
	const uint8_t *d = n->synced ? n->dur : NULL;
	size_t dl = n->synced ? n->dur_len : 0;
	const uint8_t *now = c && c->buf ? c->buf : d;
	size_t nl = c && c->buf ? c->len : dl;
	size_t common = 0;
	while (common < dl && common < nl && d[common] == now[common])
		common++;
	size_t lo, hi;
	if (common == dl) { /* appended to (or unchanged) */
		lo = dl;
		hi = nl;
	} else { /* rewritten or cut back: any length between */
		lo = dl < nl ? dl : nl;
		hi = dl < nl ? nl : dl;
	}
	size_t len = lo + (size_t)tst_rng_range(&F.rng, hi - lo + 1);
	uint8_t *buf = tst_malloc(len);
	for (size_t i = 0; i < len; i++)
		buf[i] = i < nl ? now[i] : d[i];
	if (len > common) {
		size_t room = len - common, g = (size_t)tst_rng_range(&F.rng, 65);
		if (g > room)
			g = room;
		tst_rng_bytes(&F.rng, buf + len - g, g);
	}
	*out_len = len;
	return buf;
}

static void target_add(target **t, size_t *n, size_t *cap, const char *path,
                       int remove, uint8_t *buf, size_t len)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*t = tst_realloc(*t, *cap * sizeof **t);
	}
	target *x = &(*t)[(*n)++];
	x->path = tst_malloc(strlen(path) + 1);
	strcpy(x->path, path);
	x->remove = remove;
	x->buf = buf;
	x->len = len;
}

static const dentry *durable_at(const char *path)
{
	for (size_t i = 0; i < F.nd; i++)
		if (strcmp(F.d[i].path, path) == 0)
			return &F.d[i];
	return NULL;
}

static uint8_t *copy_durable(size_t *len, const node *n)
{
	*len = n->synced ? n->dur_len : 0;
	uint8_t *b = tst_malloc(*len);
	if (*len)
		memcpy(b, n->dur, *len);
	return b;
}

unsigned faultfs_crash(enum faultfs_mode mode)
{
	for (int i = 0; i < MAX_FDS; i++)
		if (F.fds[i].kind) {
			fprintf(stderr, "faultfs_crash: descriptor %d still open\n", i);
			abort();
		}
	unsigned changed = 0;
	if (mode != FAULTFS_KEEP) {
		/* What is on disk now, before anything is rewritten. */
		size_t n_cur = 0;
		for (node *n = F.nodes; n; n = n->next)
			n_cur += n->path != NULL;
		current *cur = tst_malloc((n_cur ? n_cur : 1) * sizeof *cur);
		size_t k = 0;
		for (node *n = F.nodes; n; n = n->next) {
			if (!n->path)
				continue;
			cur[k].n = n;
			if (read_path(n->path, &cur[k].buf, &cur[k].len) < 0)
				cur[k].buf = NULL;
			k++;
		}

		target *t = NULL;
		size_t nt = 0, capt = 0;
		/* Names with a durable entry. */
		for (size_t i = 0; i < F.nd; i++) {
			const dentry *de = &F.d[i];
			node *now = node_at(de->path);
			uint8_t *buf;
			size_t len;
			if (mode == FAULTFS_DROP) {
				buf = copy_durable(&len, de->n);
				target_add(&t, &nt, &capt, de->path, 0, buf, len);
			} else if (now == de->n) {
				buf = torn(&len, de->n, current_of(cur, n_cur, de->n));
				target_add(&t, &nt, &capt, de->path, 0, buf, len);
			} else if (tst_rng_chance(&F.rng, 50)) {
				/* The change of name did not reach the disk. */
				buf = copy_durable(&len, de->n);
				target_add(&t, &nt, &capt, de->path, 0, buf, len);
			} else if (now) {
				/* It did: the file now there, torn. */
				buf = torn(&len, now, current_of(cur, n_cur, now));
				target_add(&t, &nt, &capt, de->path, 0, buf, len);
			} else {
				target_add(&t, &nt, &capt, de->path, 1, NULL, 0);
			}
		}
		/* Names that are there now and were never made durable. */
		for (size_t i = 0; i < n_cur; i++) {
			node *n = cur[i].n;
			if (durable_at(n->path))
				continue;
			if (mode == FAULTFS_DROP || tst_rng_chance(&F.rng, 50)) {
				target_add(&t, &nt, &capt, n->path, 1, NULL, 0);
			} else {
				size_t len;
				uint8_t *buf = torn(&len, n, &cur[i]);
				target_add(&t, &nt, &capt, n->path, 0, buf, len);
			}
		}
		for (size_t i = 0; i < nt; i++) {
			if (t[i].remove) {
				if (unlink(t[i].path) == 0)
					changed++;
			} else {
				const current *c = NULL;
				node *now = node_at(t[i].path);
				if (now)
					c = current_of(cur, n_cur, now);
				if (!c || !c->buf || c->len != t[i].len ||
				    memcmp(c->buf, t[i].buf, t[i].len) != 0) {
					write_path(t[i].path, t[i].buf, t[i].len);
					changed++;
				}
			}
			free(t[i].path);
			free(t[i].buf);
		}
		free(t);
		for (size_t i = 0; i < n_cur; i++)
			free(cur[i].buf);
		free(cur);
	}
	reset_tracking();
	faultfs_arm();
	return changed;
}
