/*
 * main.c - the `tidemark` command: dispatches to one cmd_*.c per command.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define TIDEMARK_VERSION "0.1.0"

static const char usage_text[] =
	"usage: tidemark COMMAND [ARGS]\n"
	"\n"
	"  init DIR [--shard-duration D] [--grace D] [--index-interval BYTES]\n"
	"       [--keep D]\n"
	"      create a store (defaults: 1h shards, 60s grace, 4096 bytes,\n"
	"      keep everything; with --keep the writer drops older shards)\n"
	"  append DIR [--durability none|interval|batch]\n"
	"      append NDJSON events from stdin; summary on stderr\n"
	"  read DIR [--from T] [--to T] [--where k=v,...]... [--storage-order]\n"
	"      print the events of [from, to) as NDJSON, in order\n"
	"  labels DIR [--from T] [--to T]\n"
	"      print the label pairs of [from, to) with event counts as JSON\n"
	"  stat DIR      print the store's statistics as JSON\n"
	"  verify DIR    check every record and the index\n"
	"  diff A B [--from T] [--to T] [--remote-command CMD] [--timeout D]\n"
	"      compare two replicas; exit 1 when they differ\n"
	"  repair SRC DST [...]   copy into DST the events only SRC has\n"
	"  sync A B [...]         repair both ways\n"
	"      A replica is a directory or ssh:HOST:PATH (runs `ssh HOST\n"
	"      tidemark serve --stdio PATH`; --remote-command CMD runs\n"
	"      `sh -c CMD sh HOST PATH` instead)\n"
	"  compact DIR   seal closed shards: sorted, compressed, recon emptied\n"
	"  retain DIR --before T\n"
	"      drop whole shards that end at or before T (outside grace)\n"
	"  serve DIR [--http ADDR:PORT] [--syslog ADDR:PORT] [--token-file F]\n"
	"      take events over HTTP (NDJSON, Loki push) and syslog over TCP\n"
	"  serve --stdio DIR\n"
	"      answer the replica protocol on stdin/stdout (for diff, repair, sync)\n"
	"\n"
	"Times T: integer ns, RFC 3339 (2026-11-22T10:00:00.5Z), now, now-15m.\n"
	"Durations D: 500ms, 60s, 15m, 1h, 1d, 1h30m; a bare integer is ns.\n"
	"A --where group matches when all its pairs do; repeated --where\n"
	"options match when any group does.\n"
	"Input lines: {\"ts\":N|\"RFC 3339\",\"id\":N,\"labels\":{...},"
	"\"payload\":\"...\"|\"payload_b64\":\"...\"}\n"
	"Exit: 0 ok, 1 replicas differ (diff), 2 usage, 65 bad input,\n"
	"74 I/O or corruption, 75 locked.\n";

typedef struct command {
	const char *name;
	int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
	{"init", cmd_init},     {"append", cmd_append}, {"read", cmd_read},
	{"stat", cmd_stat},     {"verify", cmd_verify}, {"diff", cmd_diff},
	{"repair", cmd_repair}, {"sync", cmd_sync},     {"serve", cmd_serve},
	{"compact", cmd_compact}, {"retain", cmd_retain},
	{"labels", cmd_labels},
};

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : NULL;
	if (!name) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
	    strcmp(name, "help") == 0) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	if (strcmp(name, "--version") == 0) {
		puts("tidemark " TIDEMARK_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(name, commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	cli_error("unknown command '%s'", name);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}
