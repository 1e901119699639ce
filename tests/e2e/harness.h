/*
 * harness — what the end-to-end suites share: start the real ringleader binary and real
 * botsim backends on free loopback ports, wait until they are ready (by connecting, never
 * by sleeping), talk to them over real sockets or with curl, and stop every process they
 * started (by PID).
 *
 * Paths come from the environment set by `make check`: RL_BIN (ringleader), RL_BOTSIM,
 * RL_SRC (source tree). Every function is bounded in time (H_TIMEOUT_MS unless told).
 */
#ifndef RL_HARNESS_H
#define RL_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define H_TIMEOUT_MS 5000 /* default bound for waits and reads */
#define H_MAX_BOTS   8

/* ---- processes ---- */

struct h_bot {
	pid_t pid;
	int port;
	char name[32];
	char log[256]; /* stderr of the bot */
};

struct h_proxy {
	pid_t pid;
	int port;       /* [proxy] listen port */
	char conf[256]; /* config file written for it */
	char log[256];  /* stderr (error log + access log) */
};

/* A scratch directory for this test process (created on first use, under /tmp). */
const char *h_tmpdir(void);

/* A port that was free a moment ago on 127.0.0.1. */
int h_free_port(void);

/* Connect to 127.0.0.1:port until it accepts or timeout_ms passes. 0 / -1. */
int h_wait_port(int port, int timeout_ms);

/* Start botsim NAME on an ephemeral port (found through its port file). 0 / -1. */
int h_bot_start(struct h_bot *b, const char *name, const char *extra_args);

/* Start n bots named bot-1..bot-n. 0 / -1. */
int h_bots_start(struct h_bot *bots, int n);

/* Config text for bots[0..n) on proxy port `port`: a [proxy] section with listen, the
 * given extra lines for [proxy] (may be ""), then `sections` verbatim (may be ""),
 * then one [backend bot-i] per bot. Health checks and the admin API are off. The
 * result is malloc'ed.
 * Defaults added only where the caller does not say otherwise (duplicates are errors):
 * workers = 1 and access_log = - unless proxy_extra sets them; "[health] path =,
 * passive_failures = 0" unless sections has a [health] section; "[admin] listen ="
 * unless sections has an [admin] section. Backend sections are named bots[i].name. */
char *h_conf_text(int port, const char *proxy_extra, const char *sections, const struct h_bot *bots,
                  int n);

/* Write text to a new file in h_tmpdir(); returns its path (static per call site: copy). */
const char *h_write_file(const char *name, const char *text);

/* Start ringleader on conf_text (written to a file) and wait for its listener.
 * The port must be the one in the text. 0 / -1 (the log is printed on failure). */
int h_proxy_start(struct h_proxy *p, int port, const char *conf_text);

/* Send sig and wait up to timeout_ms for the process; returns its exit status as
 * from waitpid (use WIFEXITED/WEXITSTATUS), or -1 on timeout (then it is SIGKILLed). */
int h_stop(pid_t pid, int sig, int timeout_ms);

/* Stop every bot in the array (SIGTERM) and the proxy; returns the proxy's exit code
 * (0 expected; a sanitizer report makes it non-zero), -1 if it had to be killed. */
int h_proxy_stop(struct h_proxy *p);
void h_bots_stop(struct h_bot *bots, int n);

/* Run argv (NULL-terminated) to completion, capturing stdout+stderr into out (NUL-
 * terminated, truncated to cap). Returns the exit status (WEXITSTATUS) or -1. */
int h_run(char *const argv[], char *out, size_t cap, int timeout_ms);

/* Does file contain needle? */
bool h_file_contains(const char *path, const char *needle);

/* ---- raw HTTP over sockets ---- */

/* Connected TCP socket to 127.0.0.1:port with a receive timeout, or -1. */
int h_connect(int port);

/* Write all of buf. 0 / -1. */
int h_send(int fd, const void *buf, size_t len);
int h_send_str(int fd, const char *s);

struct h_response {
	int status;       /* 0 when no status line was read */
	char head[16384]; /* the head as received, NUL-terminated */
	char *body;       /* malloc'ed, NUL-terminated, de-chunked */
	size_t body_len;
	bool chunked;
	bool closed; /* the server closed the connection after it */
	int interim; /* 1xx responses skipped before this one */
};

/*
 * Read one response from fd (Content-Length, chunked, or until close), bounded by
 * timeout_ms. head_request: the request was HEAD (no body). 0 / -1 (timeout or garbage).
 * Free with h_response_free.
 */
int h_read_response(int fd, struct h_response *r, bool head_request, int timeout_ms);
void h_response_free(struct h_response *r);

/* Value of header `name` in r->head (case-insensitive) copied into out, or NULL. */
const char *h_header(const struct h_response *r, const char *name, char *out, size_t cap);

/* One request on a fresh connection: send raw, read one response. 0 / -1. */
int h_exchange(int port, const char *raw, struct h_response *r);

/* Value of "key":"value" or "key":number in a flat JSON body, copied into out, or NULL. */
const char *h_json_field(const char *body, const char *key, char *out, size_t cap);

/* Bytes readable before the peer closes or timeout; returns count read (-1 on error).
 * Used to check that nothing more (e.g. a smuggled response) arrives. */
ssize_t h_read_until_close(int fd, char *buf, size_t cap, int timeout_ms);

/* ---- additions ---- */

/* Monotonic milliseconds. */
uint64_t h_now_ms(void);

/* getenv(name), or NULL after printing how to set it. */
const char *h_env(const char *name);

/* Remove h_tmpdir() and everything in it (kept when RL_E2E_KEEP is set, for debugging). */
void h_tmpdir_remove(void);

/* Start argv (argv[0] looked up in PATH) with stdout+stderr appended to log_path (NULL:
 * inherited) and stdin from /dev/null. The PID is tracked: h_stop_all() and the exit of
 * the test process kill it. Returns the PID or -1. */
pid_t h_spawn(char *const argv[], const char *log_path);

/* Wait up to timeout_ms for pid to exit, without signalling it; its waitpid status, or
 * -1 while it still runs. */
int h_wait_exit(pid_t pid, int timeout_ms);

/* SIGKILL and reap every process this test process started and has not stopped. */
void h_stop_all(void);

/* Start botsim NAME on 127.0.0.1:port (0 = ephemeral). 0 / -1. */
int h_bot_start_on(struct h_bot *b, const char *name, int port, const char *extra_args);

/* Stop b if it runs and start it again under the same name on the same port. 0 / -1. */
int h_bot_restart(struct h_bot *b, const char *extra_args);

/* Whole file, NUL-terminated and malloc'ed, or NULL. */
char *h_read_file(const char *path);

/* Poll path until it contains needle; 0, or -1 after timeout_ms. */
int h_wait_file_contains(const char *path, const char *needle, int timeout_ms);

/* Print (the tail of) a log file on stderr. */
void h_print_log(const char *path);

/* h_run with the arguments listed (const strings, NULL-terminated list). */
int h_runl(char *out, size_t cap, int timeout_ms, const char *arg0, ...);

/* Readiness of a ringleader: pid itself listens on 127.0.0.1:port (checked through /proc,
 * so another process on a raced port does not count), has its SIGTERM and SIGHUP handlers
 * in place, and the port accepts. h_proxy_start waits for this. */
bool h_proxy_ready(pid_t pid, int port);

/* Close fd and forget its read-ahead. */
void h_close(int fd);

/* Up to cap bytes, read-ahead first; waits up to timeout_ms for the first byte.
 * Returns the count, 0 at EOF, -1 on timeout or error. */
ssize_t h_recv(int fd, void *buf, size_t cap, int timeout_ms);

/* 0 when the peer closes within timeout_ms with no byte before the close, else -1. */
int h_wait_closed(int fd, int timeout_ms);

/* ---- additions: resource limits and process figures ---- */

/* h_spawn with RLIMIT_NOFILE set to nofile (soft and hard) in the child before exec;
 * nofile <= 0 keeps the inherited limit. */
pid_t h_spawn_limited(char *const argv[], const char *log_path, long nofile);

/* h_proxy_start for a ringleader limited to nofile descriptors (<= 0: unlimited). */
int h_proxy_start_limited(struct h_proxy *p, int port, const char *conf_text, long nofile);

/* CPU time (user + system) pid has used, in clock ticks (sysconf(_SC_CLK_TCK)), or -1. */
long h_proc_cpu_ticks(pid_t pid);

/* Descriptors pid has open, or -1. */
int h_proc_fds(pid_t pid);

/* VmRSS of pid in kB, or -1. */
long h_proc_rss_kb(pid_t pid);

#endif
