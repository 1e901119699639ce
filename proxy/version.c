/*
 * version — program and library versions.
 */
#include "config.h"

#include "version.h"

#include <event2/event.h>

#include "hash.h"
#include "tls.h"

void version_print(FILE *out)
{
	char xxh[16];

	hash_library_version(xxh, sizeof(xxh));
	fprintf(out, "%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
	fprintf(out, "  libevent %s\n", event_get_version());
	fprintf(out, "  %s\n", tls_library_version());
	fprintf(out, "  xxHash %s\n", xxh);
	fprintf(out, "  inih r%s\n", RL_INIH_VERSION);
}
