/* fuzz_syslog.c - the syslog receiver's framing and parser over a TCP
 * stream, as serve_syslog.c drives them: every frame it cuts lies inside
 * the input, every parsed field inside its frame, host and app printable
 * ASCII, facility and severity in range. */
#include <stdlib.h>
#include <string.h>

#include "../src/cli/syslog_parse.h"
#include "fuzz.h"

#define NOW (INT64_C(1795341600) * 1000000000)

static void inside(const char *p, size_t n, const char *lo, size_t len)
{
	if (n && (p < lo || p + n > lo + len))
		abort();
}

static void printable(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 33 || p[i] > 126)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t off = 0, max = size > 64 ? size / 2 : 64;
	char err[256];
	while (off < size) {
		const char *msg;
		size_t mlen, used;
		int r = syslog_frame(&msg, &mlen, &used, buf + off, size - off,
		                     max, 1, err, sizeof err);
		if (r != SYSLOG_FRAME_OK)
			break;
		if (used == 0 || used > size - off || mlen > max)
			abort();
		inside(msg, mlen, buf + off, used);
		syslog_msg m;
		if (syslog_parse(&m, msg, mlen, NOW, err, sizeof err) == 0) {
			if (m.facility < 0 || m.facility > 23 || m.severity < 0 ||
			    m.severity > 7 || m.ts < 0)
				abort();
			inside(m.host, m.host_len, msg, mlen);
			inside(m.app, m.app_len, msg, mlen);
			inside(m.text, m.text_len, msg, mlen);
			printable(m.host, m.host_len);
			printable(m.app, m.app_len);
		} else if (strlen(err) == 0) {
			abort();
		}
		off += used;
	}
	return 0;
}
