/*
 * test_shard.c - shard files (src/shard.c): names, headers, opening, and
 * the buffered record scanner with its damage handling.
 */
#include "support.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "io.h"
#include "shard.h"

static char *dir;

static void setup(void)
{
	dir = tst_tmpdir();
}

static void teardown(void)
{
	tst_rmtree(dir);
	free(dir);
	dir = NULL;
}

static const shard_id ID = {472222, 3600000000000ll, 60000000000ll, 0};

/* ---- Names ------------------------------------------------------------- */

START_TEST(test_relname_roundtrip)
{
	char name[128];
	shard_relname(name, sizeof name, 472222, SHARD_MAIN);
	ck_assert_str_eq(name, "shards/00000000000000472222.main");
	shard_relname(name, sizeof name, 0, SHARD_RECON);
	ck_assert_str_eq(name, "shards/00000000000000000000.recon");

	const int64_t shards[] = {0, 1, 9, 10, 472222, 1000000000000ll, INT64_MAX - 1,
	                          INT64_MAX};
	for (size_t i = 0; i < sizeof shards / sizeof shards[0]; i++)
		for (int k = SHARD_MAIN; k <= SHARD_RECON; k++) {
			shard_relname(name, sizeof name, shards[i], (shard_kind)k);
			ck_assert_int_eq(strncmp(name, "shards/", 7), 0);
			int64_t s = -5;
			shard_kind kind = 0;
			ck_assert_msg(shard_parse_name(&s, &kind, name + 7) == 0,
			              "cannot parse %s", name);
			ck_assert_int_eq(s, shards[i]);
			ck_assert_int_eq(kind, k);
		}
}
END_TEST

START_TEST(test_parse_rejects_bad_names)
{
	static const char *const bad[] = {
		"",
		".main",
		"472222.main",                     /* not 20 digits */
		"0000000000000047222.main",        /* 19 digits */
		"000000000000004722220.main",      /* 21 digits */
		"00000000000000472222",            /* no kind */
		"00000000000000472222.",
		"00000000000000472222.mai",
		"00000000000000472222.mainx",
		"00000000000000472222.main~",
		"00000000000000472222.Main",
		"00000000000000472222.recon.tmp",
		"00000000000000472222.lock",
		"0000000000000047222a.main",
		"-0000000000000472222.main",
		"+0000000000000472222.main",
		" 0000000000000472222.main",
		"99999999999999999999.main",       /* past INT64_MAX */
		"09223372036854775808.main",       /* INT64_MAX + 1 */
		"shards/00000000000000472222.main",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t s = 0;
		shard_kind kind = 0;
		ck_assert_msg(shard_parse_name(&s, &kind, bad[i]) == -1,
		              "accepted '%s'", bad[i]);
	}
	int64_t s;
	shard_kind kind;
	ck_assert_int_eq(shard_parse_name(&s, &kind, "09223372036854775807.recon"), 0);
	ck_assert_int_eq(s, INT64_MAX);
	ck_assert_int_eq(kind, SHARD_RECON);
}
END_TEST

/* ---- Headers ----------------------------------------------------------- */

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes the header checksum after a deliberate change, so that the
 * check gets past the checksum to the field under test. */
static void reseal(uint8_t *hdr)
{
	put_le64(hdr + 56, tdm_hash64(hdr, 56, 0));
}

static void expect_header_error(const uint8_t *hdr, shard_kind kind,
                                const shard_id *id, const char *word)
{
	const char *why = shard_header_check(hdr, kind, id);
	ck_assert_msg(why != NULL, "header accepted; expected a '%s' error", word);
	ck_assert_msg(strstr(why, word) != NULL, "'%s' does not mention '%s'", why, word);
}

START_TEST(test_header_check)
{
	uint8_t hdr[SHARD_HEADER], h[SHARD_HEADER];
	shard_header_encode(hdr, SHARD_MAIN, &ID);
	ck_assert_ptr_null(shard_header_check(hdr, SHARD_MAIN, &ID));
	ck_assert_int_eq(memcmp(hdr, "TDMSHARD", 8), 0);
	uint8_t rhdr[SHARD_HEADER];
	shard_header_encode(rhdr, SHARD_RECON, &ID);
	ck_assert_ptr_null(shard_header_check(rhdr, SHARD_RECON, &ID));

	/* magic */
	memcpy(h, hdr, sizeof h);
	h[0] = 'X';
	reseal(h);
	expect_header_error(h, SHARD_MAIN, &ID, "magic");
	/* checksum: any other byte changed without resealing */
	for (size_t i = 8; i < SHARD_HEADER; i++) {
		memcpy(h, hdr, sizeof h);
		h[i] ^= 0x10;
		expect_header_error(h, SHARD_MAIN, &ID, "checksum");
	}
	/* version */
	memcpy(h, hdr, sizeof h);
	h[8] = 2;
	reseal(h);
	expect_header_error(h, SHARD_MAIN, &ID, "version");
	/* kind: a recon header read as main and back */
	expect_header_error(rhdr, SHARD_MAIN, &ID, "kind");
	expect_header_error(hdr, SHARD_RECON, &ID, "kind");
	/* shard, duration, grace */
	shard_id other = ID;
	other.shard++;
	expect_header_error(hdr, SHARD_MAIN, &other, "shard");
	other = ID;
	other.duration_ns = 60000000000ll;
	expect_header_error(hdr, SHARD_MAIN, &other, "duration");
	other = ID;
	other.grace_ns = 0;
	expect_header_error(hdr, SHARD_MAIN, &other, "grace");
}
END_TEST

/* ---- Opening ----------------------------------------------------------- */

static void file_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

START_TEST(test_file_open)
{
	char p[4096];
	file_path(p, sizeof p, "s.main");
	int fd = -1;
	uint64_t size = 1;

	ck_assert_int_eq(shard_file_open(&fd, &size, p, "s.main", SHARD_MAIN, &ID,
	                                 SHARD_READ), TDM_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(tdm_error_message(), "s.main"));
	ck_assert_int_eq(shard_file_open(&fd, &size, p, "s.main", SHARD_MAIN, &ID,
	                                 SHARD_WRITE), TDM_ENOTFOUND);

	ck_assert_int_eq(shard_file_open(&fd, &size, p, "s.main", SHARD_MAIN, &ID,
	                                 SHARD_CREATE), 0);
	ck_assert_uint_eq(size, SHARD_HEADER);
	ck_assert_int_eq(io_pwrite(fd, "more", 4, SHARD_HEADER), 0);
	io_close(fd);

	/* Opening again, in any mode, keeps what is there. */
	for (int mode = SHARD_READ; mode <= SHARD_CREATE; mode++) {
		ck_assert_int_eq(shard_file_open(&fd, &size, p, "s.main", SHARD_MAIN, &ID,
		                                 (enum shard_open_mode)mode), 0);
		ck_assert_uint_eq(size, SHARD_HEADER + 4);
		uint8_t hdr[SHARD_HEADER];
		size_t got;
		ck_assert_int_eq(io_pread(fd, hdr, sizeof hdr, 0, &got), 0);
		ck_assert_ptr_null(shard_header_check(hdr, SHARD_MAIN, &ID));
		io_close(fd);
	}

	/* Another kind or shard than the header says: corrupt. */
	ck_assert_int_eq(shard_file_open(&fd, &size, p, "s.main", SHARD_RECON, &ID,
	                                 SHARD_READ), TDM_ECORRUPT);
	shard_id other = ID;
	other.grace_ns++;
	ck_assert_int_eq(shard_file_open(&fd, &size, p, "s.main", SHARD_MAIN, &other,
	                                 SHARD_WRITE), TDM_ECORRUPT);

	/* A damaged header: corrupt, and the message names the file. */
	int raw = open(p, O_RDWR);
	ck_assert_int_ge(raw, 0);
	ck_assert_int_eq(pwrite(raw, "\xff", 1, 20), 1);
	close(raw);
	ck_assert_int_eq(shard_file_open(&fd, &size, p, "s.main", SHARD_MAIN, &ID,
	                                 SHARD_READ), TDM_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(tdm_error_message(), "s.main"));
	ck_assert_int_eq(shard_file_open(&fd, &size, p, "s.main", SHARD_MAIN, &ID,
	                                 SHARD_CREATE), TDM_ECORRUPT);

	/* Shorter than a header (not empty): corrupt, even for CREATE. */
	file_path(p, sizeof p, "short.main");
	raw = open(p, O_RDWR | O_CREAT, 0644);
	ck_assert_int_eq(write(raw, "TDMSHARD", 8), 8);
	close(raw);
	ck_assert_int_eq(shard_file_open(&fd, &size, p, "short.main", SHARD_MAIN, &ID,
	                                 SHARD_READ), TDM_ECORRUPT);
	ck_assert_int_eq(shard_file_open(&fd, &size, p, "short.main", SHARD_MAIN, &ID,
	                                 SHARD_CREATE), TDM_ECORRUPT);

	/* An empty file: CREATE writes the header, READ calls it corrupt. */
	file_path(p, sizeof p, "empty.recon");
	raw = open(p, O_RDWR | O_CREAT, 0644);
	close(raw);
	ck_assert_int_eq(shard_file_open(&fd, &size, p, "empty.recon", SHARD_RECON, &ID,
	                                 SHARD_READ), TDM_ECORRUPT);
	ck_assert_int_eq(shard_file_open(&fd, &size, p, "empty.recon", SHARD_RECON, &ID,
	                                 SHARD_CREATE), 0);
	ck_assert_uint_eq(size, SHARD_HEADER);
	io_close(fd);
	ck_assert_int_eq(shard_file_open(&fd, &size, p, "empty.recon", SHARD_RECON, &ID,
	                                 SHARD_READ), 0);
	io_close(fd);
}
END_TEST

/* ---- Scanner ----------------------------------------------------------- */

/* A shard file of records with the given payload sizes; offsets[i] gets
 * where record i starts, offsets[n] the end. Payload bytes derive from
 * the record number, so a record read back can be checked. */
static int make_file(const char *name, const size_t *sizes, size_t n,
                     uint64_t *offsets, char *path, size_t cap)
{
	file_path(path, cap, name);
	int fd;
	uint64_t size;
	ck_assert_int_eq(shard_file_open(&fd, &size, path, name, SHARD_MAIN, &ID,
	                                 SHARD_CREATE), 0);
	uint64_t off = SHARD_HEADER;
	for (size_t i = 0; i < n; i++) {
		uint8_t *payload = tst_malloc(sizes[i]);
		for (size_t k = 0; k < sizes[i]; k++)
			payload[k] = (uint8_t)(i * 31 + k);
		char v[24];
		snprintf(v, sizeof v, "%zu", i);
		tdm_label l = {"n", v};
		tdm_event ev = {(int64_t)(1000 + i), (uint32_t)i, 0, &l, 1, payload, sizes[i]};
		size_t len = rec_size(&ev);
		uint8_t *rec = tst_malloc(len);
		rec_encode(rec, &ev, i + 1);
		ck_assert_int_eq(io_pwrite(fd, rec, len, off), 0);
		offsets[i] = off;
		off += len;
		free(rec);
		free(payload);
	}
	offsets[n] = off;
	return fd;
}

static void check_record(const rec_view *v, size_t i, size_t payload_len)
{
	ck_assert_int_eq(v->ts, (int64_t)(1000 + i));
	ck_assert_uint_eq(v->id, i);
	ck_assert_uint_eq(v->seq, i + 1);
	ck_assert_uint_eq(v->payload_len, payload_len);
	for (size_t k = 0; k < payload_len; k++)
		if (v->payload[k] != (uint8_t)(i * 31 + k))
			ck_abort_msg("record %zu: payload byte %zu differs", i, k);
}

START_TEST(test_scan_all_across_chunks)
{
	/* Small records around a large one, bigger than the first chunk and
	 * than several doublings of it. */
	size_t sizes[40];
	for (size_t i = 0; i < 40; i++)
		sizes[i] = (i * 37) % 300;
	sizes[0] = 5000;   /* the very first record exceeds the first chunk */
	sizes[17] = 300000;
	sizes[39] = 70000;
	uint64_t offs[41];
	char p[4096];
	int fd = make_file("a.main", sizes, 40, offs, p, sizeof p);

	for (size_t first = 512; first <= 1 << 20; first *= 64) {
		shard_scan sc;
		scan_init(&sc, fd, "a.main", SHARD_HEADER, offs[40], first);
		rec_view v;
		uint64_t off;
		for (size_t i = 0; i < 40; i++) {
			ck_assert_int_eq(scan_next(&sc, &v, &off), 0);
			ck_assert_uint_eq(off, offs[i]);
			check_record(&v, i, sizes[i]);
		}
		ck_assert_int_eq(scan_next(&sc, &v, &off), 1);
		ck_assert_int_eq(scan_next(&sc, &v, &off), 1);
		ck_assert_uint_eq(sc.damaged, 0);
		scan_free(&sc);
	}

	/* A window: start at a record, end at another record's start. */
	shard_scan sc;
	scan_init(&sc, fd, "a.main", offs[10], offs[20], 512);
	rec_view v;
	uint64_t off;
	for (size_t i = 10; i < 20; i++) {
		ck_assert_int_eq(scan_next(&sc, &v, &off), 0);
		ck_assert_uint_eq(off, offs[i]);
		check_record(&v, i, sizes[i]);
	}
	ck_assert_int_eq(scan_next(&sc, &v, &off), 1);
	ck_assert_uint_eq(sc.damaged, 0);
	scan_free(&sc);
	io_close(fd);
}
END_TEST

START_TEST(test_scan_seek)
{
	size_t sizes[30];
	for (size_t i = 0; i < 30; i++)
		sizes[i] = 100 + i * 50;
	sizes[12] = 100000;
	uint64_t offs[31];
	char p[4096];
	int fd = make_file("s.main", sizes, 30, offs, p, sizeof p);
	shard_scan sc;
	scan_init(&sc, fd, "s.main", SHARD_HEADER, offs[30], 512);
	rec_view v;
	uint64_t off;
	tst_rng r;
	tst_rng_seed(&r, 5);
	/* Random seeks forwards and backwards, each followed by a few reads. */
	for (int round = 0; round < 200; round++) {
		size_t i = (size_t)tst_rng_range(&r, 30);
		scan_seek(&sc, offs[i], offs[30]);
		size_t k = (size_t)tst_rng_range(&r, 4);
		for (size_t j = i; j <= i + k && j < 30; j++) {
			ck_assert_int_eq(scan_next(&sc, &v, &off), 0);
			ck_assert_uint_eq(off, offs[j]);
			check_record(&v, j, sizes[j]);
		}
	}
	scan_seek(&sc, offs[30], offs[30]);
	ck_assert_int_eq(scan_next(&sc, &v, &off), 1);
	ck_assert_uint_eq(sc.damaged, 0);
	scan_free(&sc);
	io_close(fd);
}
END_TEST

static void flip_byte(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	uint8_t b;
	ck_assert_int_eq(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x5a;
	ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

START_TEST(test_scan_skips_damage)
{
	size_t sizes[3] = {200, 400, 300};
	uint64_t offs[4];
	char p[4096];
	int fd = make_file("d.main", sizes, 3, offs, p, sizeof p);
	/* A byte in the middle of the middle record. */
	flip_byte(p, offs[1] + (offs[2] - offs[1]) / 2);

	shard_scan sc;
	scan_init(&sc, fd, "d.main", SHARD_HEADER, offs[3], 512);
	rec_view v;
	uint64_t off;
	ck_assert_int_eq(scan_next(&sc, &v, &off), 0);
	ck_assert_uint_eq(off, offs[0]);
	check_record(&v, 0, sizes[0]);
	ck_assert_uint_eq(sc.damaged, 0);
	ck_assert_int_eq(scan_next(&sc, &v, &off), 0);
	ck_assert_uint_eq(off, offs[2]);
	check_record(&v, 2, sizes[2]);
	ck_assert_int_eq(scan_next(&sc, &v, &off), 1);
	ck_assert_uint_eq(sc.damaged, 1);
	char want[64];
	snprintf(want, sizeof want, "offset %" PRIu64, offs[1]);
	ck_assert_msg(strstr(sc.damage_msg, "d.main") && strstr(sc.damage_msg, want),
	              "damage message '%s' should name d.main and %s", sc.damage_msg,
	              want);
	scan_free(&sc);

	/* The strict scan stops at the bad record. */
	scan_init(&sc, fd, "d.main", SHARD_HEADER, offs[3], 512);
	const char *why = NULL;
	ck_assert_int_eq(scan_next_strict(&sc, &v, &off, &why), 0);
	ck_assert_uint_eq(off, offs[0]);
	ck_assert_int_eq(scan_next_strict(&sc, &v, &off, &why), 2);
	ck_assert_uint_eq(off, offs[1]);
	ck_assert_ptr_nonnull(why);
	ck_assert_int_eq(scan_next_strict(&sc, &v, &off, &why), 2);
	ck_assert_uint_eq(off, offs[1]);
	ck_assert_uint_eq(sc.damaged, 0);
	scan_free(&sc);
	io_close(fd);
}
END_TEST

START_TEST(test_scan_damaged_length_field)
{
	/* A damaged length field in the first record: the scanner resyncs to
	 * the records after it. */
	size_t sizes[4] = {50, 60, 70, 80};
	uint64_t offs[5];
	char p[4096];
	int fd = make_file("l.main", sizes, 4, offs, p, sizeof p);
	flip_byte(p, offs[0] + 1);
	shard_scan sc;
	scan_init(&sc, fd, "l.main", SHARD_HEADER, offs[4], 512);
	rec_view v;
	uint64_t off;
	for (size_t i = 1; i < 4; i++) {
		ck_assert_int_eq(scan_next(&sc, &v, &off), 0);
		ck_assert_uint_eq(off, offs[i]);
		check_record(&v, i, sizes[i]);
	}
	ck_assert_int_eq(scan_next(&sc, &v, &off), 1);
	ck_assert_uint_eq(sc.damaged, 1);
	scan_free(&sc);
	io_close(fd);
}
END_TEST

START_TEST(test_scan_truncated_tail)
{
	size_t sizes[3] = {100, 100, 1000};
	uint64_t offs[4];
	char p[4096];
	int fd = make_file("t.main", sizes, 3, offs, p, sizeof p);
	uint64_t cut = offs[2] + 500;
	ck_assert_int_eq(io_truncate(fd, cut), 0);

	/* Inside `end` (the file's size): damage at the last record. */
	shard_scan sc;
	scan_init(&sc, fd, "t.main", SHARD_HEADER, cut, 512);
	rec_view v;
	uint64_t off;
	ck_assert_int_eq(scan_next(&sc, &v, &off), 0);
	ck_assert_int_eq(scan_next(&sc, &v, &off), 0);
	ck_assert_uint_eq(off, offs[1]);
	ck_assert_int_eq(scan_next(&sc, &v, &off), 1);
	ck_assert_uint_eq(sc.damaged, 1);
	char want[64];
	snprintf(want, sizeof want, "offset %" PRIu64, offs[2]);
	ck_assert_msg(strstr(sc.damage_msg, want), "'%s' lacks '%s'", sc.damage_msg, want);
	scan_free(&sc);

	/* Strict: 2 at the torn record (how recovery finds a torn tail). */
	scan_init(&sc, fd, "t.main", SHARD_HEADER, cut, 512);
	const char *why = NULL;
	ck_assert_int_eq(scan_next_strict(&sc, &v, &off, &why), 0);
	ck_assert_int_eq(scan_next_strict(&sc, &v, &off, &why), 0);
	ck_assert_int_eq(scan_next_strict(&sc, &v, &off, &why), 2);
	ck_assert_uint_eq(off, offs[2]);
	scan_free(&sc);

	/* Outside `end`: not looked at. */
	scan_init(&sc, fd, "t.main", SHARD_HEADER, offs[2], 512);
	ck_assert_int_eq(scan_next(&sc, &v, &off), 0);
	ck_assert_int_eq(scan_next(&sc, &v, &off), 0);
	ck_assert_int_eq(scan_next(&sc, &v, &off), 1);
	ck_assert_uint_eq(sc.damaged, 0);
	scan_free(&sc);
	io_close(fd);
}
END_TEST

START_TEST(test_scan_end_past_eof_terminates)
{
	/* `end` says more bytes than the file has (a file cut short after its
	 * length was committed): the scan must finish, reporting the damage or
	 * an error, not wait for bytes that never come. The tcase timeout (and
	 * alarm(), without fork) turns a hang into a failure. */
	size_t sizes[3] = {100, 100, 1000};
	uint64_t offs[4];
	char p[4096];
	int fd = make_file("e.main", sizes, 3, offs, p, sizeof p);
	ck_assert_int_eq(io_truncate(fd, offs[2] + 500), 0);
	alarm(10);
	shard_scan sc;
	scan_init(&sc, fd, "e.main", SHARD_HEADER, offs[3], 512);
	rec_view v;
	uint64_t off;
	ck_assert_int_eq(scan_next(&sc, &v, &off), 0);
	ck_assert_int_eq(scan_next(&sc, &v, &off), 0);
	int r = scan_next(&sc, &v, &off);
	ck_assert_msg(r == 1 || r < 0, "scan_next returned %d", r);
	ck_assert_msg(r < 0 || sc.damaged >= 1, "a missing tail was not reported");
	alarm(0);
	scan_free(&sc);
	io_close(fd);
}
END_TEST

START_TEST(test_scan_read_error)
{
	size_t sizes[2] = {10, 10};
	uint64_t offs[3];
	char p[4096];
	int fd = make_file("x.main", sizes, 2, offs, p, sizeof p);
	io_close(fd); /* reads of a closed descriptor fail: EBADF */
	shard_scan sc;
	scan_init(&sc, fd, "x.main", SHARD_HEADER, offs[2], 512);
	rec_view v;
	uint64_t off;
	ck_assert_int_eq(scan_next(&sc, &v, &off), TDM_EIO);
	ck_assert_ptr_nonnull(strstr(tdm_error_message(), "x.main"));
	scan_free(&sc);
}
END_TEST

static Suite *shard_suite(void)
{
	Suite *s = suite_create("shard");
	TCase *tc = tcase_create("names");
	tcase_add_test(tc, test_relname_roundtrip);
	tcase_add_test(tc, test_parse_rejects_bad_names);
	tcase_add_test(tc, test_header_check);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_file_open);
	tcase_add_test(tc, test_scan_all_across_chunks);
	tcase_add_test(tc, test_scan_seek);
	tcase_add_test(tc, test_scan_skips_damage);
	tcase_add_test(tc, test_scan_damaged_length_field);
	tcase_add_test(tc, test_scan_truncated_tail);
	tcase_add_test(tc, test_scan_read_error);
	suite_add_tcase(s, tc);

	tc = tcase_create("eof");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 3);
	tcase_add_test(tc, test_scan_end_past_eof_terminates);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(shard_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
