/*
 * test_conf — the ini contract: every shipped config loads, defaults match DESIGN.md,
 * each kind of mistake gives its exact "file:line: [section] key: reason" message, all
 * mistakes of a file are reported, and the value parsers accept and refuse what they
 * document. Links only conf.c (and inih).
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define FIXTURES RL_SRCDIR "/tests/fixtures/conf"
#define BACKEND  "[backend a]\naddress = 127.0.0.1:9001\n" /* two lines */

static struct rl_conf *load(const char *text, struct conf_errors *e)
{
	return conf_load_string(text, "t.ini", e);
}

static void print_errors(const struct conf_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		cr_log_info("  %s", e->msg[i]);
}

/* Load text and return it; fails the test if it does not load cleanly. */
static struct rl_conf *load_ok(const char *text)
{
	struct conf_errors e = {0};
	struct rl_conf *c = load(text, &e);

	print_errors(&e);
	cr_assert_not_null(c, "config should load:\n%s", text);
	cr_assert_eq(e.n, 0);
	conf_errors_free(&e);
	return c;
}

/* Load text; it must fail with exactly the messages in want (NULL-terminated). */
static void expect_errors(const char *text, const char *const *want)
{
	struct conf_errors e = {0};
	struct rl_conf *c = load(text, &e);
	size_t n = 0;

	while (want[n] != NULL)
		n++;
	print_errors(&e);
	cr_expect_null(c, "config should be refused:\n%s", text);
	cr_assert_eq(e.n, n, "%zu messages for:\n%s", e.n, text);
	for (size_t i = 0; i < n; i++)
		cr_expect_str_eq(e.msg[i], want[i]);
	conf_free(c);
	conf_errors_free(&e);
}

static void expect_error(const char *text, const char *want)
{
	const char *const list[] = {want, NULL};

	expect_errors(text, list);
}

/* ---- shipped files and defaults ---- */

/* The contract of DESIGN.md "Config (ini)": every default. */
static void assert_contract_defaults(const struct rl_conf *c)
{
	cr_expect_eq(c->listen.n, 1);
	cr_expect_str_eq(c->listen.addr[0].text, "127.0.0.1:8080");
	cr_expect_eq(c->workers, 0, "workers = auto is stored as 0");
	cr_expect_eq(c->max_connections, 10000);
	cr_expect_eq(c->header_timeout_ms, 10000);
	cr_expect_eq(c->client_idle_timeout_ms, 60000);
	cr_expect_eq(c->max_header_size, 16384);
	cr_expect_eq(c->max_body_size, 1048576);
	cr_expect_eq(c->log_level, RL_LOG_INFO);
	cr_expect_str_eq(c->access_log, "-");

	cr_expect_eq(c->tls_listen.n, 0);
	cr_expect_null(c->tls_cert);
	cr_expect_null(c->tls_key);
	cr_expect_null(c->tls_sni);
	cr_expect_eq(c->tls_min_version, RL_TLS_1_2);

	cr_assert_eq(c->nkeysrc, 1);
	cr_expect_eq(c->keysrc[0].type, RL_KEYSRC_HEADER);
	cr_expect_str_eq(c->keysrc[0].arg, "X-Conversation-ID");
	cr_expect_null(c->preset);
	cr_expect_eq(c->missing_key, RL_MISSING_LEAST_LOADED);
	cr_expect_eq(c->max_key_body, 65536);
	cr_expect_str_eq(c->key_header, "X-Conversation-Key");
	cr_expect_eq(c->hash, RL_HASH_MAGLEV);
	cr_expect_eq(c->hash_seed, 0);
	cr_expect_eq(c->balance_factor, 0.0);
	cr_expect_eq(c->affinity_ttl_ms, 30 * 60 * 1000);
	cr_expect_eq(c->affinity_max, 1000000);
	cr_expect_eq(c->drain_timeout_ms, 15 * 60 * 1000);

	cr_expect_eq(c->connect_timeout_ms, 2000);
	cr_expect_eq(c->response_timeout_ms, 30000);
	cr_expect_eq(c->tunnel_idle_timeout_ms, 10 * 60 * 1000);
	cr_expect_eq(c->max_idle_per_backend, 64);
	cr_expect_eq(c->retries, 1);

	cr_expect_str_eq(c->health_path, "/healthz");
	cr_expect_eq(c->health_interval_ms, 2000);
	cr_expect_eq(c->health_timeout_ms, 1000);
	cr_expect_eq(c->health_rise, 2);
	cr_expect_eq(c->health_fall, 3);
	cr_expect_eq(c->health_expect_lo, 200);
	cr_expect_eq(c->health_expect_hi, 399);
	cr_expect_eq(c->passive_failures, 3);

	cr_expect_eq(c->admin_listen.n, 1);
	cr_expect_str_eq(c->admin_listen.addr[0].text, "127.0.0.1:9901");
	cr_expect_str_eq(c->admin_token, "");
}

static void assert_backend_defaults(const struct rl_backend_conf *b)
{
	cr_expect_eq(b->weight, 1);
	cr_expect_eq(b->state, RL_BACKEND_UP);
	cr_expect_eq(b->tls, false);
	cr_expect_null(b->ca);
}

Test(conf_files, every_shipped_config_loads)
{
	DIR *d = opendir(RL_SRCDIR "/conf");
	struct dirent *ent;
	int loaded = 0;

	cr_assert_not_null(d);
	while ((ent = readdir(d)) != NULL) {
		size_t len = strlen(ent->d_name);
		char path[4096];
		struct conf_errors e = {0};
		if (len < 4 || strcmp(ent->d_name + len - 4, ".ini") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/conf/%s", RL_SRCDIR, ent->d_name);
		struct rl_conf *c = conf_load(path, &e);
		print_errors(&e);
		cr_expect_not_null(c, "%s should load", path);
		cr_expect_eq(e.n, 0);
		conf_free(c);
		conf_errors_free(&e);
		loaded++;
	}
	closedir(d);
	cr_expect_geq(loaded, 1, "conf/ holds at least ringleader.ini");
}

Test(conf_files, defaults_match_the_contract)
{
	struct rl_conf *c = load_ok(BACKEND);

	assert_contract_defaults(c);
	cr_assert_eq(c->nbackends, 1);
	cr_expect_str_eq(c->backends[0].name, "a");
	cr_expect_str_eq(c->path, "t.ini");
	assert_backend_defaults(&c->backends[0]);
	conf_free(c);
}

Test(conf_files, ringleader_ini_documents_the_defaults)
{
	struct conf_errors e = {0};
	struct rl_conf *c = conf_load(RL_SRCDIR "/conf/ringleader.ini", &e);
	const char *names[] = {"bot-1", "bot-2", "bot-3"};
	const char *addrs[] = {"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"};

	print_errors(&e);
	cr_assert_not_null(c);
	/* the demo turns TLS on with the bundled pair; every other key keeps its default */
	cr_expect_eq(c->tls_listen.n, 1);
	cr_expect_str_eq(c->tls_listen.addr[0].text, "127.0.0.1:8443");
	cr_expect_str_eq(c->tls_cert, "conf/demo/cert.pem");
	cr_expect_str_eq(c->tls_key, "conf/demo/key.pem");
	c->tls_listen.n = 0;
	free(c->tls_cert);
	free(c->tls_key);
	c->tls_cert = c->tls_key = NULL;
	assert_contract_defaults(c);
	cr_assert_eq(c->nbackends, 3);
	for (size_t i = 0; i < 3; i++) {
		cr_expect_str_eq(c->backends[i].name, names[i]);
		cr_expect_str_eq(c->backends[i].address.text, addrs[i]);
		assert_backend_defaults(&c->backends[i]);
	}
	conf_free(c);
	conf_errors_free(&e);
}

/*
 * Find "key = value" in section of an ini file (the first [backend NAME] for "backend");
 * the value without its " ;" comment goes to value. Independent of conf.c on purpose.
 */
static bool ini_lookup(const char *path, const char *section, const char *key, char *value,
                       size_t size)
{
	FILE *f = fopen(path, "r");
	char line[512], sect[128] = "";
	bool found = false;

	cr_assert_not_null(f, "%s", path);
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char *s = line + strspn(line, " \t"), *eq, *end;
		if (sscanf(s, "[%127[^] ]", sect) == 1 || *s == ';')
			continue;
		eq = strchr(s, '=');
		if (eq == NULL || strcmp(sect, section) != 0 || (size_t)(eq - s) < strlen(key) ||
		    strncmp(s, key, strlen(key)) != 0 ||
		    strspn(s + strlen(key), " ") != (size_t)(eq - s) - strlen(key))
			continue;
		end = strstr(eq, " ;");
		if (end == NULL)
			end = eq + strlen(eq);
		while (end > eq + 1 && (end[-1] == ' ' || end[-1] == '\n'))
			end--;
		eq += 1 + strspn(eq + 1, " ");
		snprintf(value, size, "%.*s", end > eq ? (int)(end - eq) : 0, eq);
		found = true;
	}
	fclose(f);
	return found;
}

/* Keys the demo sets away from their default (TLS on with the bundled demo pair). */
static bool demo_override(const char *section, const char *key)
{
	return strcmp(section, "tls") == 0 &&
	       (strcmp(key, "listen") == 0 || strcmp(key, "cert") == 0 || strcmp(key, "key") == 0);
}

Test(conf_files, ringleader_ini_documents_every_key_of_the_table)
{
	const char *path = RL_SRCDIR "/conf/ringleader.ini";
	struct conf_key_info k;
	size_t n = 0;

	for (size_t i = 0; conf_key_info(i, &k) == 0; i++, n++) {
		char value[256];
		cr_expect(ini_lookup(path, k.section, k.key, value, sizeof(value)),
		          "[%s] %s is not documented in %s", k.section, k.key, path);
		if (k.def != NULL && !demo_override(k.section, k.key))
			cr_expect_str_eq(value, k.def, "[%s] %s", k.section, k.key);
	}
	cr_expect_eq(n, 44, "the contract has 44 keys; a new one must be documented here too");
}

Test(conf_files, design_sample_loads_with_inline_comments)
{
	struct conf_errors e = {0};
	struct rl_conf *c = conf_load(FIXTURES "/design-sample.ini", &e);

	print_errors(&e);
	cr_assert_not_null(c);
	cr_expect_eq(c->tls_listen.n, 1);
	cr_expect_str_eq(c->tls_listen.addr[0].text, "127.0.0.1:8443");
	cr_expect_str_eq(c->tls_cert, "conf/demo/cert.pem");
	cr_expect_str_eq(c->tls_sni, "conf/sni/");
	cr_expect_null(c->preset, "'preset =   ; comment' is empty");
	cr_expect_str_eq(c->key_header, "X-Conversation-Key");
	cr_expect_str_eq(c->admin_token, "");
	cr_expect_eq(c->nbackends, 1);
	conf_free(c);
}

Test(conf_files, bom_and_crlf)
{
	struct conf_errors e = {0};
	struct rl_conf *c = conf_load(FIXTURES "/crlf-bom.ini", &e);

	print_errors(&e);
	cr_assert_not_null(c);
	cr_expect_eq(c->listen.n, 2);
	cr_expect_str_eq(c->listen.addr[1].text, "[::1]:18080");
	cr_expect_eq(c->workers, 2);
	cr_expect_str_eq(c->backends[0].name, "win-1");
	cr_expect_eq(c->backends[0].weight, 3);
	conf_free(c);
}

Test(conf_files, cannot_open)
{
	struct conf_errors e = {0};

	cr_expect_null(conf_load("/nonexistent/ringleader.ini", &e));
	cr_assert_eq(e.n, 1);
	cr_expect_str_eq(e.msg[0],
	                 "/nonexistent/ringleader.ini: cannot open (No such file or directory)");
	conf_errors_free(&e);
}

Test(conf_files, cannot_read_a_directory)
{
	struct conf_errors e = {0};

	cr_expect_null(conf_load(FIXTURES, &e));
	cr_assert_eq(e.n, 1);
	cr_expect_str_eq(e.msg[0], FIXTURES ": cannot read (Is a directory)");
	conf_errors_free(&e);
}

Test(conf_files, long_key_line_is_rejected_with_its_line)
{
	struct conf_errors e = {0};

	cr_expect_null(conf_load(FIXTURES "/long-line.ini", &e));
	print_errors(&e);
	cr_assert_eq(e.n, 2, "the long line, then the next mistake (line counting goes on)");
	cr_expect_str_eq(e.msg[0],
	                 FIXTURES "/long-line.ini:3: line too long (more than 197 bytes)");
	cr_expect_str_eq(e.msg[1], FIXTURES
	                 "/long-line.ini:6: [proxy] workers: out of range: 0 (allowed 1..256)");
	conf_errors_free(&e);
}

Test(conf_files, nul_byte)
{
	struct conf_errors e = {0};

	cr_expect_null(conf_load(FIXTURES "/nul-byte.ini", &e));
	cr_assert_eq(e.n, 1);
	cr_expect_str_eq(e.msg[0], FIXTURES "/nul-byte.ini:2: NUL byte in line");
	conf_errors_free(&e);
}

Test(conf_files, every_error_of_a_file_is_reported)
{
	const char *const want[] = {
	        "3: [proxy] listen: invalid address 'localhost:8080' (hostnames are not "
	        "resolved, use a numeric IP address)",
	        "4: [proxy] workers: out of range: 0 (allowed 1..256)",
	        "5: [proxy] header_timeout: invalid value '10x' (expected a whole number with ms, "
	        "s, m or h; bare = seconds)",
	        "6: [proxy] log_level: invalid value 'loud' (expected error | warn | info | debug)",
	        "8: [routing] key: 'path:^/chat/[0-9]+': regex needs a capture group for the key, "
	        "e.g. ^/chat/([^/]+)",
	        "9: [routing] hash: invalid value 'ketama' (expected maglev | rendezvous | ring)",
	        "10: [surprise]: unknown section",
	        "14: [backend a] weight: out of range: 1000 (allowed 1..256)",
	        "15: [backend a]: duplicate backend name (first at line 12)",
	        "17: [backend b]: missing address",
	};
	const char *prefix = FIXTURES "/many-errors.ini:";
	struct conf_errors e = {0};

	cr_expect_null(conf_load(FIXTURES "/many-errors.ini", &e));
	print_errors(&e);
	cr_assert_eq(e.n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < e.n; i++) {
		cr_expect_eq(strncmp(e.msg[i], prefix, strlen(prefix)), 0, "%s", e.msg[i]);
		cr_expect_str_eq(e.msg[i] + strlen(prefix), want[i]);
	}
	conf_errors_free(&e);
}

/* ---- one message per kind of mistake ---- */

struct error_case {
	const char *text;
	const char *msg;
};

static const struct error_case error_cases[] = {
        {"[bogus]\nx = 1\n" BACKEND, "t.ini:1: [bogus]: unknown section"},
        {"[proxy]\nbogus = 1\n" BACKEND, "t.ini:2: [proxy] bogus: unknown key"},
        {"[proxy]\nworkers = lots\n" BACKEND,
         "t.ini:2: [proxy] workers: invalid value 'lots' (expected auto or a whole number)"},
        {"[proxy]\nworkers = 257\n" BACKEND,
         "t.ini:2: [proxy] workers: out of range: 257 (allowed 1..256)"},
        {BACKEND "weight = 0\n", "t.ini:3: [backend a] weight: out of range: 0 (allowed 1..256)"},
        {"[proxy]\nheader_timeout = 2h\n" BACKEND,
         "t.ini:2: [proxy] header_timeout: out of range: 2h (allowed 1ms..1h)"},
        {"[proxy]\nheader_timeout = 0\n" BACKEND,
         "t.ini:2: [proxy] header_timeout: out of range: 0 (allowed 1ms..1h)"},
        {"[proxy]\nmax_header_size = 512\n" BACKEND,
         "t.ini:2: [proxy] max_header_size: out of range: 512 (allowed 1k..1m)"},
        {"[proxy]\nmax_body_size = 1g\n" BACKEND,
         "t.ini:2: [proxy] max_body_size: invalid value '1g' (expected bytes, or a whole number "
         "with k or m)"},
        {"[upstream]\nretries = 99999999999999999999\n" BACKEND,
         "t.ini:2: [upstream] retries: out of range: 99999999999999999999 (allowed 0..10)"},
        {"[proxy]\nworkers = 2\nworkers = 3\n" BACKEND,
         "t.ini:3: [proxy] workers: duplicate key (first at line 2)"},
        {BACKEND "weight = 2\nweight = 3\n",
         "t.ini:4: [backend a] weight: duplicate key (first at line 3)"},
        {"[proxy]\n[proxy]\n" BACKEND, "t.ini:2: [proxy]: duplicate section (first at line 1)"},
        {BACKEND "[backend a]\naddress = 127.0.0.1:9002\n",
         "t.ini:3: [backend a]: duplicate backend name (first at line 1)"},
        {BACKEND "[backend b]\naddress = 127.0.0.1:9001\n",
         "t.ini:4: [backend b] address: duplicate backend address 127.0.0.1:9001 (also backend "
         "a)"},
        {BACKEND "[backend b]\nweight = 2\n", "t.ini:3: [backend b]: missing address"},
        {"[backend a/b]\n" BACKEND,
         "t.ini:1: [backend a/b]: invalid backend name (1..63 of A-Z a-z 0-9 . _ -)"},
        {"[backend]\n" BACKEND, "t.ini:1: [backend]: missing backend name ([backend NAME])"},
        {"[proxy]\n", "t.ini: no backend configured (add a [backend NAME] section)"},
        {"", "t.ini: no backend configured (add a [backend NAME] section)"},
        {"[proxy]\nlisten =\n" BACKEND,
         "t.ini:2: [proxy] listen: no listener ([proxy] listen and [tls] listen are both empty)"},
        {"[tls]\nlisten = 127.0.0.1:8443\n" BACKEND,
         "t.ini:2: [tls] listen: a TLS listener needs cert and key"},
        {"[tls]\nlisten = 127.0.0.1:8080\ncert = c.pem\nkey = k.pem\n" BACKEND,
         "t.ini:2: [tls] listen: 127.0.0.1:8080 is also in [proxy] listen"},
        {"[health]\ntimeout = 5s\n" BACKEND,
         "t.ini:2: [health] timeout: timeout 5s is longer than interval 2s"},
        {"[health]\ninterval = 500ms\n" BACKEND,
         "t.ini:2: [health] interval: timeout 1s is longer than interval 500ms"},
        {"[admin]\nlisten = *:9901\n" BACKEND,
         "t.ini:2: [admin] listen: refusing non-loopback admin listener without token "
         "(0.0.0.0:9901)"},
        {"workers = 2\n" BACKEND, "t.ini:1: workers: key before any [section]"},
        {"[proxy\n" BACKEND, "t.ini:1: malformed section header (expected [name])"},
        {"[proxy] junk\n" BACKEND, "t.ini:1: malformed section header (expected [name])"},
        {"[proxy]\nworkers\n" BACKEND, "t.ini:2: expected key = value"},
        {"[proxy]\n= 2\n" BACKEND, "t.ini:2: missing key name before '='"},
        {BACKEND "  weight = 2\n   junk\n", "t.ini:4: expected key = value"},
        {"[backend a]\naddress = localhost:9001\n",
         "t.ini:2: [backend a] address: invalid address 'localhost:9001' (hostnames are not "
         "resolved, use a numeric IP address)"},
        {"[backend a]\naddress = *:9001\n",
         "t.ini:2: [backend a] address: invalid address '*:9001' (a backend needs a concrete "
         "address, not a wildcard)"},
        {"[proxy]\nlisten = 127.0.0.1:1,,127.0.0.1:2\n" BACKEND,
         "t.ini:2: [proxy] listen: invalid address '' (empty item in the list)"},
        {"[proxy]\nlisten = 127.0.0.1:1,\n" BACKEND,
         "t.ini:2: [proxy] listen: invalid address '' (empty item in the list)"},
        {"[proxy]\nlisten = 127.0.0.1:1, 127.0.0.1:1\n" BACKEND,
         "t.ini:2: [proxy] listen: 127.0.0.1:1 is listed twice"},
        {"[tls]\nmin_version = TLSv1.1\n" BACKEND,
         "t.ini:2: [tls] min_version: TLSv1.1 is refused (TLSv1.0/1.1 are insecure)"},
        {"[tls]\nmin_version = SSLv3\n" BACKEND,
         "t.ini:2: [tls] min_version: invalid value 'SSLv3' (expected TLSv1.2 | TLSv1.3)"},
        {"[routing]\nbalance_factor = 0.5\n" BACKEND,
         "t.ini:2: [routing] balance_factor: out of range: 0.5 (allowed 0 for off, or 1..100)"},
        {"[routing]\nbalance_factor = -1\n" BACKEND,
         "t.ini:2: [routing] balance_factor: invalid value '-1' (expected 0 or a decimal such as "
         "1.25)"},
        {"[routing]\nkey = path:^/chat/[0-9]+\n" BACKEND,
         "t.ini:2: [routing] key: 'path:^/chat/[0-9]+': regex needs a capture group for the key, "
         "e.g. ^/chat/([^/]+)"},
        {"[routing]\nkey = body:id\n" BACKEND,
         "t.ini:2: [routing] key: 'body:id': unknown key source (expected header:, query:, "
         "cookie:, path:, json:, form:, formjson: or sym:)"},
        {"[routing]\npreset = icq\n" BACKEND,
         "t.ini:2: [routing] preset: invalid value 'icq' (expected telegram | slack | discord | "
         "botframework | twilio | whatsapp-cloud | messenger | line | viber | sunshine | intercom "
         "| rasa | botpress | openai | generic)"},
        {"[routing]\nkey_header = X Key\n" BACKEND,
         "t.ini:2: [routing] key_header: invalid value 'X Key' (expected a header name, or \"\" "
         "for off)"},
        {"[routing]\nmissing_key = drop\n" BACKEND,
         "t.ini:2: [routing] missing_key: invalid value 'drop' (expected least_loaded | reject | "
         "random | client_ip)"},
        {"[routing]\nhash_seed = 18446744073709551616\n" BACKEND,
         "t.ini:2: [routing] hash_seed: out of range: 18446744073709551616 (allowed "
         "0..18446744073709551615)"},
        {"[health]\nexpect = 399-200\n" BACKEND,
         "t.ini:2: [health] expect: invalid value '399-200' (expected a status or LO-HI within "
         "100..599)"},
        {"[health]\nexpect = 600\n" BACKEND,
         "t.ini:2: [health] expect: invalid value '600' (expected a status or LO-HI within "
         "100..599)"},
        {"[health]\npath = healthz\n" BACKEND,
         "t.ini:2: [health] path: invalid value 'healthz' (expected a path starting with /)"},
        {"[proxy]\naccess_log =\n" BACKEND,
         "t.ini:2: [proxy] access_log: invalid value '' (must not be empty)"},
        {"[admin]\ntoken = \"a b\"\n" BACKEND,
         "t.ini:2: [admin] token: invalid value 'a b' (only visible ASCII, no spaces)"},
        {BACKEND "tls = maybe\n",
         "t.ini:3: [backend a] tls: invalid value 'maybe' (expected on or off)"},
        {BACKEND "state = down\n",
         "t.ini:3: [backend a] state: invalid value 'down' (expected up | draining)"},
};

Test(conf_errors, each_kind_has_its_exact_message)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++)
		expect_error(error_cases[i].text, error_cases[i].msg);
}

Test(conf_errors, an_indented_line_is_not_a_continuation)
{
	/* inih would append "json:a.b" to key's value; here it is a key line of its own. */
	const char *const want[] = {
	        "t.ini:2: [routing] key: 'header:A,': expected a header name after header:",
	        "t.ini:3: [routing] json: unknown key",
	        NULL,
	};

	expect_errors("[routing]\nkey = header:A,\n    json:a.b\n" BACKEND, want);
}

Test(conf_errors, keys_after_a_bad_header_are_not_misattributed)
{
	/* Without the header, "weight" would land in [backend a] as a duplicate. */
	const char *const want[] = {"t.ini:4: malformed section header (expected [name])", NULL};

	expect_errors(BACKEND "weight = 2\n[backend b\nweight = 3\n", want);
}

Test(conf_errors, errors_append_and_null_errs_is_allowed)
{
	struct conf_errors e = {0};

	cr_expect_null(load("[proxy]\n", NULL));
	cr_expect_null(load("[proxy]\n", &e));
	cr_expect_null(load("[nope]\n", &e));
	cr_assert_eq(e.n, 3);
	cr_expect_str_eq(e.msg[1], "t.ini:1: [nope]: unknown section");
	conf_errors_free(&e);
	cr_expect_eq(e.n, 0);
	conf_errors_free(&e);
	conf_errors_free(NULL);
}

/* ---- lines ---- */

/* A config whose line 2 is "token = " padded to exactly len bytes. */
static char *token_line_config(size_t len)
{
	size_t head = strlen("token = ");
	char *text = malloc(len + 64);

	cr_assert_not_null(text);
	strcpy(text, "[admin]\ntoken = ");
	memset(text + strlen(text), 't', len - head);
	strcpy(text + strlen("[admin]\n") + len, "\n" BACKEND);
	return text;
}

Test(conf_lines, key_line_limit_is_inihs_buffer)
{
	char *ok = token_line_config(197);
	char *bad = token_line_config(198);
	struct rl_conf *c = load_ok(ok);

	cr_expect_eq(strlen(c->admin_token), 197 - strlen("token = "));
	expect_error(bad, "t.ini:2: line too long (more than 197 bytes)");
	conf_free(c);
	free(ok);
	free(bad);
}

Test(conf_lines, comments_may_be_long_up_to_conf_line_max)
{
	char *text = malloc(2 * CONF_LINE_MAX);
	struct rl_conf *c;

	cr_assert_not_null(text);
	memset(text, 'c', CONF_LINE_MAX);
	text[0] = ';';
	strcpy(text + CONF_LINE_MAX, "\n" BACKEND);
	c = load_ok(text);
	conf_free(c);

	memset(text, 'c', CONF_LINE_MAX + 1);
	text[0] = ';';
	strcpy(text + CONF_LINE_MAX + 1, "\n" BACKEND);
	expect_error(text, "t.ini:1: line too long (more than 4096 bytes)");
	free(text);
}

Test(conf_lines, a_long_section_name_is_not_truncated)
{
	/* inih keeps 50 bytes of a section name; the reader keeps all of it. */
	const char *name63 = "b123456789012345678901234567890123456789012345678901234567890ab";
	char text[256];
	struct rl_conf *c;

	cr_assert_eq(strlen(name63), 63);
	snprintf(text, sizeof(text), "[backend %s]\naddress = 127.0.0.1:9001\n", name63);
	c = load_ok(text);
	cr_expect_str_eq(c->backends[0].name, name63);
	cr_expect_not_null(conf_backend(c, name63));
	conf_free(c);

	snprintf(text, sizeof(text), "[backend %sx]\naddress = 127.0.0.1:9001\n", name63);
	expect_error(text, "t.ini:1: [backend b123456789012345678901234567890123456789012345678901"
	                   "234567890abx]: invalid backend name (1..63 of A-Z a-z 0-9 . _ -)");
}

Test(conf_lines, inline_comments_and_quotes)
{
	struct rl_conf *c =
	        load_ok("[proxy]\n"
	                "access_log = /var/log/rl.log # '#' only starts a line comment\n"
	                "[routing]\n"
	                "key_header = \"\"      ; quotes: empty = off\n"
	                "preset =   ; empty, the comment is stripped\n"
	                "[admin]\n"
	                "token = abc;def       ; no space before ';': part of the value\n"
	                "  ; an indented comment\n"
	                "# a hash comment\n"
	                "[backend a]   ; comment after a header\n"
	                "address = 127.0.0.1:9001\n"
	                "weight = 2 ; two\n"
	                "   state: draining\n"
	                "ca = \"/etc/ssl/my ca.pem\"\n");

	cr_expect_str_eq(c->access_log, "/var/log/rl.log # '#' only starts a line comment");
	cr_expect_str_eq(c->key_header, "");
	cr_expect_null(c->preset);
	cr_expect_str_eq(c->admin_token, "abc;def");
	cr_expect_eq(c->backends[0].weight, 2);
	cr_expect_eq(c->backends[0].state, RL_BACKEND_DRAINING, "indented key, ':' separator");
	cr_expect_str_eq(c->backends[0].ca, "/etc/ssl/my ca.pem");
	conf_free(c);
}

/* ---- values ---- */

Test(conf_values, every_key_can_be_set)
{
	struct rl_conf *c = load_ok("[proxy]\n"
	                            "listen = *:80, [::1]:8080\n"
	                            "workers = 8\n"
	                            "max_connections = 500\n"
	                            "header_timeout = 500ms\n"
	                            "client_idle_timeout = 2m\n"
	                            "max_header_size = 32K\n"
	                            "max_body_size = 10M\n"
	                            "log_level = debug\n"
	                            "access_log = off\n"
	                            "[tls]\n"
	                            "listen = 127.0.0.1:8443\n"
	                            "cert = c.pem\n"
	                            "key = k.pem\n"
	                            "sni = sni/\n"
	                            "min_version = TLSv1.3\n"
	                            "[routing]\n"
	                            "key = query:chat_id, json:message.chat.id\n"
	                            "preset = whatsapp-cloud\n"
	                            "missing_key = reject\n"
	                            "max_key_body = 1m\n"
	                            "key_header = X-Key\n"
	                            "hash = ring\n"
	                            "hash_seed = 18446744073709551615\n"
	                            "balance_factor = 1.25\n"
	                            "affinity_ttl = 1h\n"
	                            "affinity_max = 5\n"
	                            "drain_timeout = 30\n"
	                            "[upstream]\n"
	                            "connect_timeout = 1ms\n"
	                            "response_timeout = 1m\n"
	                            "tunnel_idle_timeout = 1h\n"
	                            "max_idle_per_backend = 0\n"
	                            "retries = 0\n"
	                            "[health]\n"
	                            "path =\n"
	                            "interval = 10s\n"
	                            "timeout = 10s\n"
	                            "rise = 1\n"
	                            "fall = 100\n"
	                            "expect = 204\n"
	                            "passive_failures = 0\n"
	                            "[admin]\n"
	                            "listen = 0.0.0.0:9901, [::1]:9901\n"
	                            "token = s3cret\n"
	                            "[backend b-1.x_y]\n"
	                            "address = [2001:db8::7]:443\n"
	                            "weight = 256\n"
	                            "state = draining\n"
	                            "tls = on\n"
	                            "ca = ca.pem\n");

	cr_expect_str_eq(c->listen.addr[0].text, "0.0.0.0:80");
	cr_expect_str_eq(c->listen.addr[1].text, "[::1]:8080");
	cr_expect_eq(c->workers, 8);
	cr_expect_eq(c->max_connections, 500);
	cr_expect_eq(c->header_timeout_ms, 500);
	cr_expect_eq(c->client_idle_timeout_ms, 120000);
	cr_expect_eq(c->max_header_size, 32768);
	cr_expect_eq(c->max_body_size, 10485760);
	cr_expect_eq(c->log_level, RL_LOG_DEBUG);
	cr_expect_str_eq(c->access_log, "off");
	cr_expect_str_eq(c->tls_key, "k.pem");
	cr_expect_str_eq(c->tls_sni, "sni/");
	cr_expect_eq(c->tls_min_version, RL_TLS_1_3);
	cr_expect_eq(c->nkeysrc, 2);
	cr_expect_eq(c->keysrc[1].type, RL_KEYSRC_JSON);
	cr_expect_str_eq(c->preset, "whatsapp-cloud");
	cr_expect_eq(c->missing_key, RL_MISSING_REJECT);
	cr_expect_eq(c->max_key_body, 1048576);
	cr_expect_str_eq(c->key_header, "X-Key");
	cr_expect_eq(c->hash, RL_HASH_RING);
	cr_expect_eq(c->hash_seed, UINT64_MAX);
	cr_expect_eq(c->balance_factor, 1.25);
	cr_expect_eq(c->affinity_ttl_ms, 3600000);
	cr_expect_eq(c->affinity_max, 5);
	cr_expect_eq(c->drain_timeout_ms, 30000, "a bare number is seconds");
	cr_expect_eq(c->connect_timeout_ms, 1);
	cr_expect_eq(c->response_timeout_ms, 60000);
	cr_expect_eq(c->tunnel_idle_timeout_ms, 3600000);
	cr_expect_eq(c->max_idle_per_backend, 0);
	cr_expect_eq(c->retries, 0);
	cr_expect_str_eq(c->health_path, "");
	cr_expect_eq(c->health_timeout_ms, c->health_interval_ms, "timeout == interval is fine");
	cr_expect_eq(c->health_rise, 1);
	cr_expect_eq(c->health_fall, 100);
	cr_expect_eq(c->health_expect_lo, 204);
	cr_expect_eq(c->health_expect_hi, 204);
	cr_expect_eq(c->passive_failures, 0);
	cr_expect_eq(c->admin_listen.n, 2);
	cr_expect_str_eq(c->admin_token, "s3cret");
	cr_assert_eq(c->nbackends, 1);
	cr_expect_str_eq(c->backends[0].name, "b-1.x_y");
	cr_expect_str_eq(c->backends[0].address.text, "[2001:db8::7]:443");
	cr_expect_eq(c->backends[0].weight, 256);
	cr_expect_eq(c->backends[0].state, RL_BACKEND_DRAINING);
	cr_expect_eq(c->backends[0].tls, true);
	cr_expect_str_eq(c->backends[0].ca, "ca.pem");
	conf_free(c);
}

Test(conf_values, tls_only_and_admin_off)
{
	struct rl_conf *c = load_ok("[proxy]\nlisten =\n[tls]\nlisten = [::]:8443\ncert = c\n"
	                            "key = k\n[admin]\nlisten =\n" BACKEND);

	cr_expect_eq(c->listen.n, 0);
	cr_expect_eq(c->tls_listen.n, 1);
	cr_expect_eq(c->admin_listen.n, 0);
	conf_free(c);
}

Test(conf_values, loopback_admin_needs_no_token)
{
	struct rl_conf *c =
	        load_ok("[admin]\nlisten = 127.0.0.2:1, [::1]:2, [::ffff:127.0.0.1]:3\n" BACKEND);

	cr_expect_eq(c->admin_listen.n, 3);
	conf_free(c);
}

Test(conf_values, backends_keep_file_order_and_lookup)
{
	struct rl_conf *c = load_ok("[backend z]\naddress = 127.0.0.1:1\n"
	                            "[backend a]\naddress = 127.0.0.1:2\nweight = 5\n");

	cr_assert_eq(c->nbackends, 2);
	cr_expect_str_eq(c->backends[0].name, "z");
	cr_expect_eq(c->backends[1].line, 3);
	cr_expect_eq(conf_backend(c, "a")->weight, 5);
	cr_expect_null(conf_backend(c, "b"));
	conf_free(c);
}

Test(conf_values, many_backends)
{
	size_t n = 300, used = 0;
	char *text = malloc(n * 64);
	struct rl_conf *c;

	cr_assert_not_null(text);
	for (size_t i = 0; i < n; i++)
		used += (size_t)sprintf(text + used, "[backend b%zu]\naddress = 10.0.%zu.%zu:80\n",
		                        i, i / 256, i % 256);
	c = load_ok(text);
	cr_expect_eq(c->nbackends, n);
	cr_expect_str_eq(c->backends[n - 1].address.text, "10.0.1.43:80");
	conf_free(c);
	free(text);
}

Test(conf_values, restart_needed_only_for_restart_keys)
{
	struct rl_conf *a = load_ok("[proxy]\nworkers = 2\n" BACKEND);
	struct rl_conf *b = load_ok("[proxy]\nworkers = 4\nlog_level = debug\n" BACKEND);
	struct rl_conf *d = load_ok("[proxy]\nworkers = 2\nlog_level = debug\n"
	                            "[routing]\nkey = query:x\n" BACKEND);
	char what[64] = "";

	cr_expect_eq(conf_restart_needed(a, b, what, sizeof(what)), 1);
	cr_expect_str_eq(what, "[proxy] workers");
	cr_expect_eq(conf_restart_needed(a, d, NULL, 0), 0, "log_level and key reload");
	conf_free(a);
	conf_free(b);
	conf_free(d);
}

/* ---- parsers ---- */

struct num_case {
	const char *text;
	uint64_t want;
};

Test(conf_parse, durations)
{
	static const struct num_case good[] = {
	        {"0", 0},      {"1ms", 1},     {"10s", 10000},
	        {"10", 10000}, {"5m", 300000}, {"2h", 7200000},
	        {"0ms", 0},    {"007s", 7000}, {"18446744073709551615ms", UINT64_MAX},
	};
	static const char *const bad[] = {
	        "",
	        "10x",
	        "-1s",
	        "1.5s",
	        " 1s",
	        "1s ",
	        "s",
	        "10S",
	        "1h30m",
	        "+1s",
	        "0x10",
	        "1 s",
	        "ms",
	        "1msx",
	        "99999999999999999999",
	        "18446744073709551615s",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 12345;
		cr_expect_eq(conf_parse_duration_ms(good[i].text, &v), 0, "'%s'", good[i].text);
		cr_expect_eq(v, good[i].want, "'%s'", good[i].text);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 12345;
		cr_expect_eq(conf_parse_duration_ms(bad[i], &v), -1, "'%s' must be refused",
		             bad[i]);
		cr_expect_eq(v, 12345, "output untouched for '%s'", bad[i]);
	}
}

Test(conf_parse, sizes)
{
	static const struct num_case good[] = {
	        {"0", 0},
	        {"512", 512},
	        {"16k", 16384},
	        {"16K", 16384},
	        {"1m", 1048576},
	        {"1M", 1048576},
	        {"18446744073709551615", UINT64_MAX},
	};
	static const char *const bad[] = {
	        "", "1g", "-1", "1kb", "1.5k", "k", " 1k", "1 k", "18446744073709551615k", "0x1k",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cr_expect_eq(conf_parse_size(good[i].text, &v), 0, "'%s'", good[i].text);
		cr_expect_eq(v, good[i].want, "'%s'", good[i].text);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(conf_parse_size(bad[i], &v), -1, "'%s' must be refused", bad[i]);
}

struct addr_case {
	const char *text;
	const char *norm;
	int family;
	unsigned port;
};

Test(conf_parse, addresses)
{
	static const struct addr_case good[] = {
	        {"127.0.0.1:80", "127.0.0.1:80", AF_INET, 80},
	        {"[::1]:80", "[::1]:80", AF_INET6, 80},
	        {"*:8080", "0.0.0.0:8080", AF_INET, 8080},
	        {"0.0.0.0:1", "0.0.0.0:1", AF_INET, 1},
	        {"[2001:DB8:0::1]:65535", "[2001:db8::1]:65535", AF_INET6, 65535},
	        {"[::]:443", "[::]:443", AF_INET6, 443},
	        {"10.1.2.3:080", "10.1.2.3:80", AF_INET, 80},
	};
	static const char *const bad[] = {
	        "",
	        "127.0.0.1",
	        "127.0.0.1:",
	        "1.2.3.4:0",
	        "1.2.3.4:65536",
	        "[::1]80",
	        "[::1]",
	        "::1:80",
	        "localhost:80",
	        "1.2.3:80",
	        "256.1.1.1:80",
	        "[127.0.0.1]:80",
	        "1.2.3.4:+80",
	        "1.2.3.4:8x",
	        " 1.2.3.4:80",
	        "1.2.3.4:80 ",
	        "[fe80::1%eth0]:80",
	        ":80",
	        "*:0",
	        "[*]:80",
	        "1.2.3.4:99999999999999999999",
	        "[::1]:-1",
	        "01.2.3.4:80",
	};
	struct rl_addr a;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cr_assert_eq(conf_parse_addr(good[i].text, &a), 0, "'%s'", good[i].text);
		cr_expect_str_eq(a.text, good[i].norm);
		cr_expect_eq(a.ss.ss_family, good[i].family);
		if (good[i].family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)&a.ss;
			cr_expect_eq(ntohs(sin->sin_port), good[i].port);
			cr_expect_eq(a.len, sizeof(*sin));
		} else {
			const struct sockaddr_in6 *sin6 = (const void *)&a.ss;
			cr_expect_eq(ntohs(sin6->sin6_port), good[i].port);
			cr_expect_eq(a.len, sizeof(*sin6));
		}
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(conf_parse_addr(bad[i], &a), -1, "'%s' must be refused", bad[i]);
}

/* ---- key sources ---- */

struct keysrc_case {
	const char *text;
	enum rl_keysrc_type type;
	const char *arg, *arg2;
	unsigned segment;
};

Test(conf_keysrc, every_type_parses)
{
	static const struct keysrc_case good[] = {
	        {"header:X-Conversation-ID", RL_KEYSRC_HEADER, "X-Conversation-ID", NULL, 0},
	        {"query:chat_id", RL_KEYSRC_QUERY, "chat_id", NULL, 0},
	        {"cookie:sid", RL_KEYSRC_COOKIE, "sid", NULL, 0},
	        {"path:2", RL_KEYSRC_PATH_SEG, "2", NULL, 2},
	        {"path:64", RL_KEYSRC_PATH_SEG, "64", NULL, 64},
	        {"path:^/bot[0-9]+/chat/([^/]+)", RL_KEYSRC_PATH_REGEX, "^/bot[0-9]+/chat/([^/]+)",
	         NULL, 0},
	        {"path:^/a{1,3},b/([0-9]+)$", RL_KEYSRC_PATH_REGEX, "^/a{1,3},b/([0-9]+)$", NULL,
	         0},
	        {"json:message.chat.id", RL_KEYSRC_JSON, "message.chat.id", NULL, 0},
	        {"json:entry.0.messaging.0.sender.id", RL_KEYSRC_JSON,
	         "entry.0.messaging.0.sender.id", NULL, 0},
	        {"form:From", RL_KEYSRC_FORM, "From", NULL, 0},
	        {"formjson:payload:user.id", RL_KEYSRC_FORMJSON, "payload", "user.id", 0},
	        {"sym:header:X-A|header:X-B", RL_KEYSRC_SYM, "header:X-A", "header:X-B", 0},
	        {"sym:path:^/(a|b)/x|query:id", RL_KEYSRC_SYM, "path:^/(a|b)/x", "query:id", 0},
	        {"sym:json:from.id | json:to.id", RL_KEYSRC_SYM, "json:from.id", "json:to.id", 0},
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct rl_keysrc s;
		char why[256] = "";
		cr_assert_eq(conf_parse_keysrc(good[i].text, &s, why, sizeof(why)), 0, "'%s': %s",
		             good[i].text, why);
		cr_expect_eq(s.type, good[i].type, "'%s'", good[i].text);
		cr_expect_str_eq(s.arg, good[i].arg);
		if (good[i].arg2 != NULL)
			cr_expect_str_eq(s.arg2, good[i].arg2);
		else
			cr_expect_null(s.arg2, "'%s'", good[i].text);
		cr_expect_eq(s.segment, good[i].segment);
		cr_expect_eq(s.re != NULL, good[i].type == RL_KEYSRC_PATH_REGEX, "'%s'",
		             good[i].text);
		conf_keysrc_free(&s);
		cr_expect_null(s.arg);
	}
}

struct keysrc_bad {
	const char *text;
	const char *why; /* substring of the reason */
};

Test(conf_keysrc, mistakes_are_explained)
{
	static const struct keysrc_bad bad[] = {
	        {"", "unknown key source"},
	        {"body:x", "unknown key source"},
	        {"Header:X", "unknown key source"},
	        {"header:", "expected a header name"},
	        {"header:X Y", "expected a header name"},
	        {"query:", "expected a name"},
	        {"cookie:a b", "expected a name"},
	        {"form:", "expected a name"},
	        {"path:", "expected path:N or path:REGEX"},
	        {"path:0", "path segment must be 1..64"},
	        {"path:65", "path segment must be 1..64"},
	        {"path:99999999999999999999", "path segment must be 1..64"},
	        {"path:^/chat/[0-9]+", "regex needs a capture group"},
	        {"path:(", "invalid regex"},
	        {"path:((a{100}){100}){100}", "regex too large"},
	        {"path:(a{1000})", "regex too large"},
	        /* found by fuzz_conf: 200,000 "copies" took glibc's regcomp over 2 GB */
	        {"path:((){100}){100}ekbc", "regex too large"},
	        {"path:(a)++++++++++++++++++++", "regex too large"},
	        {"path:(a{,300})", "regex too large"},
	        {"json:", "expected a JSON path"},
	        {"json:a..b", "expected a JSON path"},
	        {"json:.a", "expected a JSON path"},
	        {"json:a.", "expected a JSON path"},
	        {"json:a b", "expected a JSON path"},
	        {"formjson:payload", "expected formjson:FIELD:json.path"},
	        {"formjson::a.b", "expected formjson:FIELD:json.path"},
	        {"formjson:p:", "expected formjson:FIELD:json.path"},
	        {"sym:header:A", "expected sym:LOC|LOC"},
	        {"sym:header:A|", "expected sym:LOC|LOC"},
	        {"sym:header:A|sym:header:B|header:C", "second location cannot be a sym"},
	        {"sym:header:A|header:", "sym: second location: expected a header name"},
	        {"sym:path:x|header:B", "sym: first location: regex needs a capture group"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rl_keysrc s;
		char why[256] = "";
		cr_expect_eq(conf_parse_keysrc(bad[i].text, &s, why, sizeof(why)), -1,
		             "'%s' must be refused", bad[i].text);
		cr_expect_not_null(strstr(why, bad[i].why), "'%s': got '%s', want '%s'",
		                   bad[i].text, why, bad[i].why);
		cr_expect_null(s.arg, "nothing is left allocated");
		cr_expect_null(s.re);
	}
	cr_expect_eq(conf_parse_keysrc("nope:", &(struct rl_keysrc){0}, NULL, 0), -1);
}

Test(conf_keysrc, list_splits_only_before_a_source_prefix)
{
	struct rl_conf *c = load_ok("[routing]\n"
	                            "key = path:^/a,b/([0-9]+), header:X-A ,sym:header:A|query:b,"
	                            "  formjson:p:a.b,cookie:c\n" BACKEND);

	cr_assert_eq(c->nkeysrc, 5);
	cr_expect_eq(c->keysrc[0].type, RL_KEYSRC_PATH_REGEX);
	cr_expect_str_eq(c->keysrc[0].arg, "^/a,b/([0-9]+)");
	cr_expect_str_eq(c->keysrc[1].arg, "X-A");
	cr_expect_eq(c->keysrc[2].type, RL_KEYSRC_SYM);
	cr_expect_str_eq(c->keysrc[2].arg2, "query:b");
	cr_expect_eq(c->keysrc[3].type, RL_KEYSRC_FORMJSON);
	cr_expect_eq(c->keysrc[4].type, RL_KEYSRC_COOKIE);
	conf_free(c);
}

Test(conf_keysrc, empty_list_and_limits)
{
	struct rl_conf *c = load_ok("[routing]\nkey =\n" BACKEND);
	char text[1024];
	size_t used;

	cr_expect_eq(c->nkeysrc, 0, "no key sources: every request is 'missing key'");
	conf_free(c);

	used = (size_t)snprintf(text, sizeof(text), "[routing]\nkey = ");
	for (int i = 0; i < CONF_MAX_KEYSRC; i++)
		used += (size_t)snprintf(text + used, sizeof(text) - used, "%sheader:H%d",
		                         i ? "," : "", i);
	snprintf(text + used, sizeof(text) - used, "\n" BACKEND);
	c = load_ok(text);
	cr_expect_eq(c->nkeysrc, CONF_MAX_KEYSRC);
	conf_free(c);

	snprintf(text, sizeof(text), "[routing]\nkey = %s\n" BACKEND,
	         "query:a,query:b,query:c,query:d,query:e,query:f,query:g,query:h,query:i,"
	         "query:j,query:k,query:l,query:m,query:n,query:o,query:p,query:q");
	expect_error(text, "t.ini:2: [routing] key: too many key sources (at most 16)");
}

Test(conf_keysrc, a_bad_list_keeps_nothing_and_leaks_nothing)
{
	/* The first sources parse (one compiles a regex) before the third fails. */
	expect_error("[routing]\nkey = path:^/(x), header:A, json:..\n" BACKEND,
	             "t.ini:2: [routing] key: 'json:..': expected a JSON path such as "
	             "message.chat.id");
}

/* ---- string tables ---- */

struct table_case {
	const char *section, *key;
	int count, first_loadable;
	const char *(*name)(int v);
	size_t off; /* enum field in struct rl_conf, or in the backend for "backend" */
};

static const char *log_level_name(int v)
{
	return conf_log_level_name((enum rl_log_level)v);
}
static const char *missing_key_name(int v)
{
	return conf_missing_key_name((enum rl_missing_key)v);
}
static const char *hash_name(int v)
{
	return conf_hash_name((enum rl_hash)v);
}
static const char *backend_state_name(int v)
{
	return conf_backend_state_name((enum rl_backend_state)v);
}
static const char *tls_version_name(int v)
{
	return conf_tls_version_name((enum rl_tls_version)v);
}

Test(conf_tables, names_round_trip_through_the_parser)
{
	static const struct table_case tables[] = {
	        {"proxy", "log_level", RL_LOG_DEBUG + 1, 0, log_level_name,
	         offsetof(struct rl_conf, log_level)},
	        {"routing", "missing_key", RL_MISSING_CLIENT_IP + 1, 0, missing_key_name,
	         offsetof(struct rl_conf, missing_key)},
	        {"routing", "hash", RL_HASH_RING + 1, 0, hash_name, offsetof(struct rl_conf, hash)},
	        {"tls", "min_version", RL_TLS_1_3 + 1, RL_TLS_1_2, tls_version_name,
	         offsetof(struct rl_conf, tls_min_version)},
	        {"backend", "state", RL_BACKEND_DRAINING + 1, 0, backend_state_name,
	         offsetof(struct rl_backend_conf, state)},
	};

	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		const struct table_case *tc = &tables[t];
		cr_expect_str_eq(tc->name(tc->count), "unknown");
		cr_expect_str_eq(tc->name(-1), "unknown");
		for (int v = 0; v < tc->count; v++) {
			const char *name = tc->name(v);
			char text[256];
			cr_assert_not_null(name);
			cr_expect_str_neq(name, "unknown");
			for (int w = 0; w < v; w++)
				cr_expect_str_neq(name, tc->name(w), "names are distinct");
			if (v < tc->first_loadable)
				continue;
			if (strcmp(tc->section, "backend") == 0)
				snprintf(text, sizeof(text), BACKEND "%s = %s\n", tc->key, name);
			else
				snprintf(text, sizeof(text), "[%s]\n%s = %s\n" BACKEND, tc->section,
				         tc->key, name);
			struct rl_conf *c = load_ok(text);
			const char *base = strcmp(tc->section, "backend") == 0
			                           ? (const char *)&c->backends[0]
			                           : (const char *)c;
			int got;
			memcpy(&got, base + tc->off, sizeof(got));
			cr_expect_eq(got, v, "%s = %s", tc->key, name);
			conf_free(c);
		}
	}
}
