/*
 * e2e_cli — the ringleader command line as an operator meets it: `-t` config checks with
 * "file:line: [section] key: reason" errors, -V, -h, bad options, and a daemon that
 * refuses to start when its port is taken.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define TEST_TIMEOUT_S 30
#define OUT_CAP        16384

static char out[OUT_CAP];

static void teardown(void)
{
	h_stop_all();
	h_tmpdir_remove();
}

/* ringleader -t -c path; the merged output lands in out. */
static int check_config(const char *path)
{
	const char *bin = h_env("RL_BIN");

	cr_assert_not_null(bin);
	return h_runl(out, sizeof(out), H_TIMEOUT_MS, bin, "-t", "-c", path, NULL);
}

/* Writes text as NAME in the scratch directory; the returned path is malloc'ed. */
static char *write_conf(const char *name, const char *text)
{
	char *path = strdup(h_write_file(name, text));

	cr_assert_not_null(path);
	return path;
}

static void expect_in_output(const char *path, int line, const char *what)
{
	char needle[1024];

	snprintf(needle, sizeof(needle), "%s:%d: %s", path, line, what);
	cr_expect(strstr(out, needle) != NULL, "want \"%s\" in:\n%s", needle, out);
}

Test(cli, default_config_checks_ok, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	const char *src = h_env("RL_SRC");
	int rc;

	cr_assert_not_null(src);
	/* as an operator runs it: from the source tree, with the relative path */
	cr_assert_eq(chdir(src), 0, "chdir %s", src);
	rc = check_config("conf/ringleader.ini");
	cr_assert_eq(rc, 0, "conf/ringleader.ini does not pass -t:\n%s", out);
	cr_assert(strstr(out, "test is successful") != NULL, "%s", out);
}

Test(cli, unknown_key_reported_with_file_line_section_key, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
	char *path = write_conf("unknown.ini", "[proxy]\n"
	                                       "listen = 127.0.0.1:18080\n"
	                                       "bogus_key = 1\n"
	                                       "[backend a]\n"
	                                       "address = 127.0.0.1:9001\n");

	cr_assert_eq(check_config(path), 1, "%s", out);
	expect_in_output(path, 3, "[proxy] bogus_key:");
	cr_expect(strstr(out, "test failed") != NULL, "%s", out);
	free(path);
}

Test(cli, every_error_of_a_file_is_reported, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char *path = write_conf("three.ini", "[proxy]\n"
	                                     "listen = 127.0.0.1:18080\n"
	                                     "bogus_key = 1\n"
	                                     "[routing]\n"
	                                     "missing_key = sometimes\n"
	                                     "[upstream]\n"
	                                     "connect_timeout = 5 parsecs\n"
	                                     "[backend a]\n"
	                                     "address = 127.0.0.1:9001\n");

	cr_assert_eq(check_config(path), 1, "%s", out);
	expect_in_output(path, 3, "[proxy] bogus_key:");
	expect_in_output(path, 5, "[routing] missing_key:");
	expect_in_output(path, 7, "[upstream] connect_timeout:");
	free(path);
}

Test(cli, missing_file_is_an_error_naming_it, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/does-not-exist.ini", h_tmpdir());
	cr_assert_eq(check_config(path), 1, "%s", out);
	cr_assert(strstr(out, path) != NULL, "the missing file is not named:\n%s", out);
}

Test(cli, no_backend_is_an_error, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char *path = write_conf("nobackend.ini", "[proxy]\nlisten = 127.0.0.1:18080\n");

	cr_assert_eq(check_config(path), 1, "%s", out);
	cr_assert(strstr(out, path) != NULL, "%s", out);
	cr_assert(strcasestr(out, "backend") != NULL, "the error does not say what is missing:\n%s",
	          out);
	free(path);
}

Test(cli, duplicate_backend_is_an_error, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	char *path = write_conf("dup.ini", "[proxy]\n"
	                                   "listen = 127.0.0.1:18080\n"
	                                   "[backend a]\n"
	                                   "address = 127.0.0.1:9001\n"
	                                   "[backend a]\n"
	                                   "address = 127.0.0.1:9002\n");

	cr_assert_eq(check_config(path), 1, "%s", out);
	expect_in_output(path, 5, "[backend a]");
	free(path);
}

Test(cli, valid_config_from_harness_checks_ok, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	struct h_bot fake[2] = {{.port = 9001, .name = "bot-1"}, {.port = 9002, .name = "bot-2"}};
	char *text = h_conf_text(18080, "", "[routing]\nmissing_key = reject\n", fake, 2);
	char *path = write_conf("valid.ini", text);

	cr_assert_eq(check_config(path), 0, "%s\n%s", text, out);
	cr_assert(strstr(out, "test is successful") != NULL, "%s", out);
	free(text);
	free(path);
}

Test(cli, version_names_the_libraries, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	const char *bin = h_env("RL_BIN");

	cr_assert_not_null(bin);
	cr_assert_eq(h_runl(out, sizeof(out), H_TIMEOUT_MS, bin, "-V", NULL), 0, "%s", out);
	cr_assert(strstr(out, "ringleader") != NULL, "%s", out);
	cr_assert(strstr(out, "libevent") != NULL, "%s", out);
	cr_assert(strstr(out, "OpenSSL") != NULL, "%s", out);
}

Test(cli, help_prints_usage, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	const char *bin = h_env("RL_BIN");

	cr_assert_not_null(bin);
	cr_assert_eq(h_runl(out, sizeof(out), H_TIMEOUT_MS, bin, "-h", NULL), 0, "%s", out);
	cr_assert(strcasestr(out, "usage") != NULL, "%s", out);
	cr_assert(strstr(out, "-c") != NULL && strstr(out, "-t") != NULL, "%s", out);
}

Test(cli, bad_option_exits_2, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	const char *bin = h_env("RL_BIN");

	cr_assert_not_null(bin);
	cr_assert_eq(h_runl(out, sizeof(out), H_TIMEOUT_MS, bin, "-Z", NULL), 2, "%s", out);
	cr_assert(strcasestr(out, "usage") != NULL, "%s", out);
	cr_assert_eq(h_runl(out, sizeof(out), H_TIMEOUT_MS, bin, "-c", NULL), 2, "%s", out);
}

Test(cli, daemon_refuses_a_taken_port, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	socklen_t len = sizeof(sa);
	struct h_bot fake = {.port = 9001, .name = "bot-1"};
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	char addr[64], log[512], *text, *conf;
	const char *bin = h_env("RL_BIN");
	pid_t pid;
	int status;

	cr_assert_not_null(bin);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 8), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	text = h_conf_text(ntohs(sa.sin_port), "", "", &fake, 1);
	conf = write_conf("taken.ini", text);
	snprintf(log, sizeof(log), "%s/taken.log", h_tmpdir());
	{
		char *argv[] = {(char *)bin, (char *)"-c", conf, NULL};

		pid = h_spawn(argv, log);
	}
	cr_assert_gt(pid, 0);
	status = h_wait_exit(pid, H_TIMEOUT_MS);
	if (status == -1)
		h_stop(pid, SIGKILL, H_TIMEOUT_MS);
	close(lfd);
	cr_assert_neq(status, -1, "ringleader kept running on a port it could not bind");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit status 0x%x", status);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
	cr_assert(h_file_contains(log, addr), "the log does not name %s", addr);
	cr_assert(h_file_contains(log, "in use"), "the log does not say why");
	free(text);
	free(conf);
}
