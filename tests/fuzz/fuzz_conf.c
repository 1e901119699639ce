/*
 * fuzz_conf — conf_load_string on arbitrary text (cut at the first NUL). Besides memory
 * errors and leaks it checks the loader's contract and aborts when one breaks:
 *   - either a config and no message, or NULL and at least one message;
 *   - every message starts with the name and ':' ("fuzz.ini:LINE: ..." or "fuzz.ini: ...");
 *   - a loaded config keeps the validated invariants (a backend with an address, weights
 *     and lists in range, a regex exactly for path:REGEX, health timeout <= interval).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define FUZZ_NAME "fuzz.ini"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void check_messages(const struct conf_errors *e)
{
	size_t n = strlen(FUZZ_NAME);

	for (size_t i = 0; i < e->n; i++)
		check(strncmp(e->msg[i], FUZZ_NAME, n) == 0 && e->msg[i][n] == ':');
}

static void check_conf(const struct rl_conf *c)
{
	check(c->nbackends >= 1 && c->nbackends <= CONF_MAX_BACKENDS);
	for (size_t i = 0; i < c->nbackends; i++) {
		const struct rl_backend_conf *b = &c->backends[i];
		check(b->address.text[0] != '\0' && b->weight >= 1 && b->weight <= 256);
		check(conf_backend(c, b->name) == b);
	}
	check(c->listen.n + c->tls_listen.n >= 1);
	check(c->listen.n <= CONF_MAX_LISTEN && c->admin_listen.n <= CONF_MAX_LISTEN);
	check(c->nkeysrc <= CONF_MAX_KEYSRC);
	for (size_t i = 0; i < c->nkeysrc; i++)
		check((c->keysrc[i].re != NULL) == (c->keysrc[i].type == RL_KEYSRC_PATH_REGEX));
	check(c->health_expect_lo <= c->health_expect_hi);
	check(c->health_timeout_ms <= c->health_interval_ms);
	check(c->balance_factor == 0 || c->balance_factor >= 1.0);
	check(c->tls_min_version >= RL_TLS_1_2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors e = {0};
	char *text = malloc(size + 1);
	struct rl_conf *c;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	c = conf_load_string(text, FUZZ_NAME, &e);
	check((c != NULL) == (e.n == 0));
	check_messages(&e);
	if (c != NULL)
		check_conf(c);
	conf_free(c);
	conf_errors_free(&e);
	free(text);
	return 0;
}
