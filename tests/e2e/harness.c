/*
 * harness — processes, files and raw HTTP for the end-to-end suites (see harness.h).
 *
 *   test ──fork/exec──► botsim -P portfile ──► port file appears ──► connect succeeds
 *        ──fork/exec──► ringleader -c conf ──────────────────────► connect succeeds
 *        ──socket────► h_send ──► proxy ──► h_read_response (per-socket read-ahead)
 *
 * Every wait is a bounded poll on a readiness signal (a file, a port, a pid), never a
 * fixed sleep. Every process started here is remembered by PID and killed at the latest
 * when the test process exits (atexit, and PR_SET_PDEATHSIG if the test process dies).
 *
 * Criterion runs each test in its own forked process, so all state here (the scratch
 * directory, the process table, the read-ahead buffers) is per test.
 */
#define _GNU_SOURCE

#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define H_POLL_MS       5           /* step of every readiness poll */
#define H_MAX_PROCS     64          /* processes one test may have running at once */
#define H_MAX_FDS       1024        /* sockets with read-ahead state */
#define H_READ_STEP     (64 * 1024) /* bytes asked of one recv() */
#define H_LINE_MAX      4096        /* longest chunk-size or trailer line accepted */
#define H_MAX_ARGS      32          /* words in a bot's extra_args */
#define H_FILE_MAX      (64u << 20) /* bytes of a log file h_file_contains looks at */
#define H_LOG_TAIL      8192        /* bytes of a log printed when a start fails */
#define H_CLOSE_WAIT_MS 1000        /* how long a "Connection: close" peer gets to close */
#define H_TCP_LISTEN    10          /* TCP_LISTEN, the kernel's socket state number */

/* ---- small utilities ---- */

uint64_t h_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int ms_left(uint64_t deadline)
{
	uint64_t now = h_now_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

static void nap_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

const char *h_env(const char *name)
{
	const char *v = getenv(name);

	if (v == NULL || v[0] == '\0') {
		fprintf(stderr,
		        "harness: %s is not set (run the suite through `make check`, or "
		        "export RL_BIN, RL_BOTSIM and RL_SRC)\n",
		        name);
		return NULL;
	}
	return v;
}

/* ---- scratch directory ---- */

static char tmp_dir[256];
static pid_t tmp_pid;

const char *h_tmpdir(void)
{
	if (tmp_pid != getpid() || tmp_dir[0] == '\0') {
		snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/rl-e2e-%ld-XXXXXX", (long)getpid());
		if (mkdtemp(tmp_dir) == NULL) {
			fprintf(stderr, "harness: mkdtemp %s: %s\n", tmp_dir, strerror(errno));
			tmp_dir[0] = '\0';
			return "/tmp";
		}
		tmp_pid = getpid();
	}
	return tmp_dir;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

void h_tmpdir_remove(void)
{
	const char *keep = getenv("RL_E2E_KEEP");

	if (tmp_pid != getpid() || tmp_dir[0] == '\0')
		return;
	if (keep != NULL && keep[0] != '\0' && strcmp(keep, "0") != 0) {
		fprintf(stderr, "harness: kept %s\n", tmp_dir);
		return;
	}
	nftw(tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	tmp_dir[0] = '\0';
}

const char *h_write_file(const char *name, const char *text)
{
	static char path[512];
	char tmp[600];
	size_t len = strlen(text);
	int fd;

	snprintf(path, sizeof(path), "%s/%s", h_tmpdir(), name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || close(fd) != 0 ||
	    rename(tmp, path) != 0) {
		fprintf(stderr, "harness: cannot write %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			unlink(tmp);
	}
	return path;
}

/* Reads up to H_FILE_MAX bytes of path, NUL-terminated (malloc'ed), or NULL. */
static char *slurp(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			char *nb;

			if (cap >= H_FILE_MAX)
				break;
			cap = cap == 0 ? 65536 : cap * 2;
			nb = realloc(buf, cap + 1);
			if (nb == NULL)
				break;
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	if (buf == NULL)
		buf = calloc(1, 1);
	else
		buf[len] = '\0';
	if (len_out != NULL)
		*len_out = len;
	return buf;
}

char *h_read_file(const char *path)
{
	return slurp(path, NULL);
}

bool h_file_contains(const char *path, const char *needle)
{
	size_t len;
	char *text = slurp(path, &len);
	bool found = text != NULL && memmem(text, len, needle, strlen(needle)) != NULL;

	free(text);
	return found;
}

int h_wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		if (h_file_contains(path, needle))
			return 0;
		if (ms_left(deadline) == 0)
			return -1;
		nap_ms(H_POLL_MS);
	}
}

void h_print_log(const char *path)
{
	size_t len;
	char *text = slurp(path, &len);
	size_t from = len > H_LOG_TAIL ? len - H_LOG_TAIL : 0;

	fprintf(stderr, "---- %s%s ----\n%s\n---- end ----\n", path, from > 0 ? " (tail)" : "",
	        text != NULL ? text + from : "(unreadable)");
	free(text);
}

/* ---- ports ---- */

int h_free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int port = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static int connect_once(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	/* With nobody listening, a loopback connect can pick the destination port as its
	 * own source port and "succeed" by connecting to itself (TCP simultaneous open). */
	struct sockaddr_in self;
	socklen_t len = sizeof(self);
	if (getsockname(fd, (struct sockaddr *)&self, &len) == 0 && self.sin_port == sa.sin_port) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Inodes of the TCP sockets listening on port (IPv4, any local address), asked of the
 * kernel through sock_diag: only listeners are dumped, so this stays cheap when the
 * machine holds tens of thousands of TIME_WAIT entries (/proc/net/tcp would list them
 * all). Returns the count, -1 when sock_diag is unavailable.
 */
static int listen_inodes(int port, unsigned long *inodes, int max)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg = {
	        .nlh = {.nlmsg_len = sizeof(msg),
	                .nlmsg_type = SOCK_DIAG_BY_FAMILY,
	                .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
	        .req = {.sdiag_family = AF_INET,
	                .sdiag_protocol = IPPROTO_TCP,
	                .idiag_states = 1u << H_TCP_LISTEN},
	};
	struct timeval tv = {.tv_sec = 1};
	static char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	int n = 0;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, &msg, sizeof(msg), 0) != (ssize_t)sizeof(msg)) {
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		const struct nlmsghdr *h = (const struct nlmsghdr *)(void *)buf;

		if (len <= 0) {
			n = -1;
			break;
		}
		/* NLMSG_NEXT's own cast trips clang's -Wcast-align; step through void * */
		for (; NLMSG_OK(h, (size_t)len);
		     len -= (ssize_t)NLMSG_ALIGN(h->nlmsg_len),
		     h = (const struct nlmsghdr *)(const void *)((const char *)h +
		                                                 NLMSG_ALIGN(h->nlmsg_len))) {
			const struct inet_diag_msg *d = NLMSG_DATA(h);

			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
				goto done;
			if (ntohs(d->id.idiag_sport) == port && n < max)
				inodes[n++] = d->idiag_inode;
		}
	}
done:
	close(fd);
	return n;
}

/* Does process pid hold a socket listening on port? Its listeners' inodes are matched
 * against pid's descriptors in /proc/PID/fd. */
static bool pid_listens(pid_t pid, int port)
{
	unsigned long inodes[H_MAX_PROCS];
	int ninodes = listen_inodes(port, inodes, H_MAX_PROCS);
	char path[64], link[64];
	bool found = false;
	DIR *d;
	struct dirent *e;

	if (ninodes <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	d = opendir(path);
	if (d == NULL)
		return false;
	while (!found && (e = readdir(d)) != NULL) {
		char fdpath[320];
		ssize_t n;

		snprintf(fdpath, sizeof(fdpath), "%s/%s", path, e->d_name);
		n = readlink(fdpath, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		for (int i = 0; i < ninodes && !found; i++) {
			char want[40];

			snprintf(want, sizeof(want), "socket:[%lu]", inodes[i]);
			found = strcmp(link, want) == 0;
		}
	}
	closedir(d);
	return found;
}

/* Has process pid installed a handler for sig (or blocked it, for a signalfd)? */
static bool pid_handles(pid_t pid, int sig)
{
	char path[64], line[256];
	unsigned long long caught = 0, blocked = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL) {
		sscanf(line, "SigCgt: %llx", &caught);
		sscanf(line, "SigBlk: %llx", &blocked);
	}
	fclose(f);
	return ((caught | blocked) >> (sig - 1)) & 1u;
}

bool h_proxy_ready(pid_t pid, int port)
{
	int fd;

	if (!pid_listens(pid, port) || !pid_handles(pid, SIGTERM) || !pid_handles(pid, SIGHUP))
		return false;
	fd = connect_once(port);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int h_wait_port(int port, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int fd = connect_once(port);

		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (ms_left(deadline) == 0)
			return -1;
		nap_ms(H_POLL_MS);
	}
}

/* ---- processes ---- */

static pid_t procs[H_MAX_PROCS];
static pid_t procs_owner;

static void procs_forget(pid_t pid)
{
	for (int i = 0; i < H_MAX_PROCS; i++)
		if (procs[i] == pid)
			procs[i] = 0;
}

static void procs_remember(pid_t pid)
{
	if (procs_owner != getpid()) {
		memset(procs, 0, sizeof(procs));
		procs_owner = getpid();
		atexit(h_stop_all);
	}
	for (int i = 0; i < H_MAX_PROCS; i++) {
		if (procs[i] == 0) {
			procs[i] = pid;
			return;
		}
	}
	fprintf(stderr, "harness: more than %d processes; pid %ld is not tracked\n", H_MAX_PROCS,
	        (long)pid);
}

void h_stop_all(void)
{
	if (procs_owner != getpid())
		return;
	for (int i = 0; i < H_MAX_PROCS; i++)
		if (procs[i] > 0)
			h_stop(procs[i], SIGKILL, H_TIMEOUT_MS);
}

/* In the child: die with the test process, and keep none of its descriptors. */
static void child_prepare(pid_t parent, int out_fd)
{
	int devnull = open("/dev/null", O_RDONLY);

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	if (devnull >= 0)
		dup2(devnull, STDIN_FILENO);
	if (out_fd >= 0) {
		dup2(out_fd, STDOUT_FILENO);
		dup2(out_fd, STDERR_FILENO);
	}
	close_range(3, ~0u, 0);
	signal(SIGPIPE, SIG_DFL);
}

pid_t h_spawn(char *const argv[], const char *log_path)
{
	return h_spawn_limited(argv, log_path, 0);
}

int h_wait_exit(pid_t pid, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	int status;

	if (pid <= 0)
		return -1;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid) {
			procs_forget(pid);
			return status;
		}
		if (r < 0 && errno != EINTR) {
			procs_forget(pid);
			return -1;
		}
		if (ms_left(deadline) == 0)
			return -1;
		nap_ms(1);
	}
}

int h_stop(pid_t pid, int sig, int timeout_ms)
{
	int status;

	if (pid <= 0)
		return -1;
	if (kill(pid, sig) != 0 && errno == ESRCH) {
		/* gone already (a zombie still answers kill): reap it */
		status = h_wait_exit(pid, timeout_ms);
		return status;
	}
	status = h_wait_exit(pid, timeout_ms);
	if (status != -1)
		return status;
	if (kill(pid, SIGKILL) == 0 || errno != ESRCH) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	procs_forget(pid);
	return -1;
}

/* ---- botsim ---- */

/* Splits extra (may be NULL) on blanks into argv[*argc...], in the copy buf. */
static void split_args(char *buf, char **argv, int *argc, int max)
{
	char *save = NULL;

	for (char *w = strtok_r(buf, " \t", &save); w != NULL && *argc < max;
	     w = strtok_r(NULL, " \t", &save))
		argv[(*argc)++] = w;
}

static int read_port_file(const char *path)
{
	char *text = slurp(path, NULL);
	char *end;
	long port;

	if (text == NULL)
		return -1;
	errno = 0;
	port = strtol(text, &end, 10);
	if (errno != 0 || end == text || port <= 0 || port > 65535)
		port = -1;
	free(text);
	return (int)port;
}

int h_bot_start_on(struct h_bot *b, const char *name, int port, const char *extra_args)
{
	const char *bin = h_env("RL_BOTSIM");
	char portfile[512], listen[64], extra[512];
	char *argv[H_MAX_ARGS + 12];
	int argc = 0;
	uint64_t deadline;

	b->pid = 0;
	if (bin == NULL)
		return -1;
	if (name != b->name)
		snprintf(b->name, sizeof(b->name), "%s", name);
	snprintf(b->log, sizeof(b->log), "%s/%s.log", h_tmpdir(), b->name);
	snprintf(portfile, sizeof(portfile), "%s/%s.port", h_tmpdir(), b->name);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(extra, sizeof(extra), "%s", extra_args != NULL ? extra_args : "");
	unlink(portfile);
	argv[argc++] = (char *)bin;
	argv[argc++] = (char *)"-n";
	argv[argc++] = b->name;
	argv[argc++] = (char *)"-l";
	argv[argc++] = listen;
	argv[argc++] = (char *)"-P";
	argv[argc++] = portfile;
	split_args(extra, argv, &argc, H_MAX_ARGS);
	argv[argc] = NULL;

	b->pid = h_spawn(argv, b->log);
	if (b->pid <= 0) {
		b->pid = 0;
		return -1;
	}
	deadline = h_now_ms() + H_TIMEOUT_MS;
	for (;;) {
		int p = read_port_file(portfile);

		if (p > 0) {
			b->port = p;
			break;
		}
		if (h_wait_exit(b->pid, 0) != -1 || ms_left(deadline) == 0) {
			fprintf(stderr, "harness: botsim %s did not start\n", b->name);
			h_print_log(b->log);
			h_stop(b->pid, SIGKILL, H_TIMEOUT_MS);
			b->pid = 0;
			return -1;
		}
		nap_ms(H_POLL_MS);
	}
	if (h_wait_port(b->port, ms_left(deadline)) != 0) {
		fprintf(stderr, "harness: botsim %s: port %d does not accept\n", b->name, b->port);
		h_print_log(b->log);
		h_stop(b->pid, SIGKILL, H_TIMEOUT_MS);
		b->pid = 0;
		return -1;
	}
	return 0;
}

int h_bot_start(struct h_bot *b, const char *name, const char *extra_args)
{
	return h_bot_start_on(b, name, 0, extra_args);
}

int h_bot_restart(struct h_bot *b, const char *extra_args)
{
	if (b->pid > 0)
		h_stop(b->pid, SIGTERM, H_TIMEOUT_MS);
	b->pid = 0;
	return h_bot_start_on(b, b->name, b->port, extra_args);
}

int h_bots_start(struct h_bot *bots, int n)
{
	for (int i = 0; i < n; i++) {
		char name[32];

		snprintf(name, sizeof(name), "bot-%d", i + 1);
		if (h_bot_start(&bots[i], name, NULL) != 0) {
			h_bots_stop(bots, i);
			return -1;
		}
	}
	return 0;
}

void h_bots_stop(struct h_bot *bots, int n)
{
	for (int i = 0; i < n; i++)
		if (bots[i].pid > 0)
			kill(bots[i].pid, SIGTERM);
	for (int i = 0; i < n; i++) {
		if (bots[i].pid > 0)
			h_stop(bots[i].pid, SIGTERM, H_TIMEOUT_MS);
		bots[i].pid = 0;
	}
}

/* ---- config text ---- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap + (size_t)n + 1) * 2;
		char *np = realloc(b->p, cap);
		if (np == NULL)
			return;
		b->p = np;
		b->cap = cap;
	}
}

/* Does text have a line whose first word is `key` (followed by blanks or '=')? */
static bool has_key_line(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *l = text; l != NULL && *l != '\0';) {
		while (*l == ' ' || *l == '\t')
			l++;
		if (strncasecmp(l, key, klen) == 0 &&
		    (l[klen] == ' ' || l[klen] == '\t' || l[klen] == '='))
			return true;
		l = strchr(l, '\n');
		if (l != NULL)
			l++;
	}
	return false;
}

char *h_conf_text(int port, const char *proxy_extra, const char *sections, const struct h_bot *bots,
                  int n)
{
	struct sbuf b = {0};

	proxy_extra = proxy_extra != NULL ? proxy_extra : "";
	sections = sections != NULL ? sections : "";
	sb_add(&b, "[proxy]\nlisten = 127.0.0.1:%d\n", port);
	/* RL_E2E_WORKERS runs the same suites on the multi-threaded data path */
	if (!has_key_line(proxy_extra, "workers"))
		sb_add(&b, "workers = %s\n",
		       getenv("RL_E2E_WORKERS") != NULL ? getenv("RL_E2E_WORKERS") : "1");
	if (!has_key_line(proxy_extra, "access_log"))
		sb_add(&b, "access_log = -\n");
	if (proxy_extra[0] != '\0')
		sb_add(&b, "%s%s", proxy_extra,
		       proxy_extra[strlen(proxy_extra) - 1] == '\n' ? "" : "\n");
	if (strstr(sections, "[health]") == NULL)
		sb_add(&b, "[health]\npath =\npassive_failures = 0\n");
	if (strstr(sections, "[admin]") == NULL)
		sb_add(&b, "[admin]\nlisten =\n");
	if (sections[0] != '\0')
		sb_add(&b, "%s%s", sections, sections[strlen(sections) - 1] == '\n' ? "" : "\n");
	for (int i = 0; i < n; i++)
		sb_add(&b, "[backend %s]\naddress = 127.0.0.1:%d\n", bots[i].name, bots[i].port);
	return b.p;
}

/* ---- ringleader ---- */

int h_proxy_start(struct h_proxy *p, int port, const char *conf_text)
{
	return h_proxy_start_limited(p, port, conf_text, 0);
}

int h_proxy_stop(struct h_proxy *p)
{
	int status, rc;

	if (p->pid <= 0)
		return 0;
	status = h_stop(p->pid, SIGTERM, H_TIMEOUT_MS);
	p->pid = 0;
	rc = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (rc != 0) {
		fprintf(stderr, "harness: ringleader stopped with %d (status 0x%x)\n", rc,
		        (unsigned)status);
		h_print_log(p->log);
	}
	return rc;
}

/* ---- running commands ---- */

int h_run(char *const argv[], char *out, size_t cap, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	pid_t parent = getpid();
	size_t len = 0;
	int pfd[2], status;
	pid_t pid;

	if (cap > 0)
		out[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		child_prepare(parent, pfd[1]);
		execvp(argv[0], argv);
		fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return -1;
	}
	procs_remember(pid);
	for (;;) {
		struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
		char tmp[4096];
		int left = ms_left(deadline);
		ssize_t n;

		if (left == 0)
			break;
		if (poll(&pf, 1, left) <= 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		n = read(pfd[0], tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (cap > 0 && len < cap - 1) {
			size_t take = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;

			memcpy(out + len, tmp, take);
			len += take;
			out[len] = '\0';
		}
	}
	close(pfd[0]);
	status = h_wait_exit(pid, ms_left(deadline));
	if (status == -1) {
		fprintf(stderr, "harness: %s did not finish in %d ms\n", argv[0], timeout_ms);
		h_stop(pid, SIGKILL, H_TIMEOUT_MS);
		return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- sockets and per-socket read-ahead ---- */

/*
 * Bytes received but not yet consumed by a reader, per socket. A slot is identified by
 * fd and the socket's inode, so a descriptor number reused for a new socket starts empty.
 */
struct slot {
	dev_t dev;
	ino_t ino;
	char *buf; /* owned */
	size_t off, len, cap;
	bool eof; /* the peer closed (or reset) */
};

static struct slot slots[H_MAX_FDS];

static struct slot *slot_of(int fd)
{
	struct stat st;
	struct slot *s;

	if (fd < 0 || fd >= H_MAX_FDS || fstat(fd, &st) != 0)
		return NULL;
	s = &slots[fd];
	if (s->dev != st.st_dev || s->ino != st.st_ino) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
		s->off = s->len = 0;
		s->eof = false;
	}
	return s;
}

static size_t slot_avail(const struct slot *s)
{
	return s->len - s->off;
}

static const char *slot_data(const struct slot *s)
{
	return s->buf + s->off;
}

/* Where pat starts in the unread bytes, or NULL. */
static const char *slot_find(const struct slot *s, const char *pat, size_t plen)
{
	return slot_avail(s) >= plen ? memmem(slot_data(s), slot_avail(s), pat, plen) : NULL;
}

static void slot_consume(struct slot *s, size_t n)
{
	s->off += n;
	if (s->off == s->len)
		s->off = s->len = 0;
}

/* Receives more bytes into s. >0 bytes added, 0 at EOF, -1 on timeout or error. */
static ssize_t slot_fill(int fd, struct slot *s, uint64_t deadline)
{
	if (s->eof)
		return 0;
	if (s->off > 0 && s->off == s->len)
		s->off = s->len = 0;
	if (s->off > 0 && s->cap - s->len < H_READ_STEP) {
		memmove(s->buf, s->buf + s->off, s->len - s->off);
		s->len -= s->off;
		s->off = 0;
	}
	if (s->cap - s->len < H_READ_STEP) {
		size_t cap = s->cap < H_READ_STEP ? 2 * H_READ_STEP : s->cap * 2;
		char *nb = realloc(s->buf, cap);

		if (nb == NULL)
			return -1;
		s->buf = nb;
		s->cap = cap;
	}
	for (;;) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int left = ms_left(deadline);
		int pr = poll(&pf, 1, left);
		ssize_t n;

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			errno = pr == 0 ? ETIMEDOUT : errno;
			return -1;
		}
		n = recv(fd, s->buf + s->len, s->cap - s->len, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n < 0 && errno == ECONNRESET)
			n = 0;
		if (n < 0)
			return -1;
		if (n == 0) {
			s->eof = true;
			return 0;
		}
		s->len += (size_t)n;
		return n;
	}
}

int h_connect(int port)
{
	struct timeval tv = {.tv_sec = H_TIMEOUT_MS / 1000,
	                     .tv_usec = (H_TIMEOUT_MS % 1000) * 1000};
	int one = 1;
	int fd = connect_once(port);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	slot_of(fd);
	return fd;
}

void h_close(int fd)
{
	struct slot *s = slot_of(fd);

	if (s != NULL) {
		s->off = s->len = 0;
		s->eof = false;
		s->ino = 0;
	}
	if (fd >= 0)
		close(fd);
}

int h_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int h_send_str(int fd, const char *s)
{
	return h_send(fd, s, strlen(s));
}

ssize_t h_recv(int fd, void *buf, size_t cap, int timeout_ms)
{
	struct slot *s = slot_of(fd);
	size_t n;

	if (s == NULL || cap == 0)
		return -1;
	if (slot_avail(s) == 0) {
		ssize_t r = slot_fill(fd, s, h_now_ms() + (uint64_t)timeout_ms);

		if (r <= 0)
			return r;
	}
	n = slot_avail(s) < cap ? slot_avail(s) : cap;
	memcpy(buf, slot_data(s), n);
	slot_consume(s, n);
	return (ssize_t)n;
}

ssize_t h_read_until_close(int fd, char *buf, size_t cap, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	struct slot *s = slot_of(fd);
	size_t len = 0;

	if (s == NULL)
		return -1;
	while (len < cap) {
		size_t n = slot_avail(s) < cap - len ? slot_avail(s) : cap - len;

		if (n > 0) {
			memcpy(buf + len, slot_data(s), n);
			slot_consume(s, n);
			len += n;
		}
		if (len == cap)
			break;
		ssize_t r = slot_fill(fd, s, deadline);
		if (r == 0)
			break;
		if (r < 0) {
			if (errno == ETIMEDOUT)
				break;
			return len > 0 ? (ssize_t)len : -1;
		}
	}
	if (len < cap)
		buf[len] = '\0';
	return (ssize_t)len;
}

int h_wait_closed(int fd, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	struct slot *s = slot_of(fd);

	if (s == NULL)
		return -1;
	for (;;) {
		ssize_t r;

		if (slot_avail(s) > 0)
			return -1; /* data, not a close */
		r = slot_fill(fd, s, deadline);
		if (r == 0)
			return 0;
		if (r < 0)
			return -1;
	}
}

/* ---- responses ---- */

struct dbuf {
	char *p;
	size_t len, cap;
};

static int db_add(struct dbuf *d, const char *src, size_t n)
{
	if (d->cap - d->len < n + 1) {
		size_t cap = d->cap == 0 ? 4096 : d->cap;
		char *np;

		while (cap - d->len < n + 1)
			cap *= 2;
		np = realloc(d->p, cap);
		if (np == NULL)
			return -1;
		d->p = np;
		d->cap = cap;
	}
	memcpy(d->p + d->len, src, n);
	d->len += n;
	d->p[d->len] = '\0';
	return 0;
}

/* Value of header `name` in a head (first line skipped); 0-terminated into out. */
static const char *head_value(const char *head, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name);
	const char *l = strstr(head, "\r\n");

	while (l != NULL) {
		const char *end;
		size_t vlen;

		l += 2;
		end = strstr(l, "\r\n");
		if (end == NULL || end == l)
			return NULL;
		if (strncasecmp(l, name, nlen) == 0 && l[nlen] == ':') {
			const char *v = l + nlen + 1;

			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			vlen = (size_t)(end - v);
			while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
				vlen--;
			if (cap > 0) {
				size_t n = vlen < cap - 1 ? vlen : cap - 1;

				memcpy(out, v, n);
				out[n] = '\0';
			}
			return out;
		}
		l = end;
	}
	return NULL;
}

const char *h_header(const struct h_response *r, const char *name, char *out, size_t cap)
{
	return head_value(r->head, name, out, cap);
}

/* Does a comma-separated header value list `token` (case-insensitive)? */
static bool has_token(const char *value, const char *token)
{
	size_t tlen = strlen(token);

	for (const char *p = value; *p != '\0';) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *start = p;
		while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t' && *p != ';')
			p++;
		if ((size_t)(p - start) == tlen && strncasecmp(start, token, tlen) == 0)
			return true;
		while (*p != '\0' && *p != ',')
			p++;
	}
	return false;
}

/* Reads one CRLF-terminated line (without CRLF) into line. 0 / -1. */
static int read_line(int fd, struct slot *s, uint64_t deadline, char *line, size_t cap)
{
	for (;;) {
		const char *nl = slot_find(s, "\r\n", 2);

		if (nl != NULL) {
			size_t n = (size_t)(nl - slot_data(s));

			if (n >= cap)
				return -1;
			memcpy(line, slot_data(s), n);
			line[n] = '\0';
			slot_consume(s, n + 2);
			return 0;
		}
		if (slot_avail(s) >= cap || slot_fill(fd, s, deadline) <= 0)
			return -1;
	}
}

/* Moves exactly n bytes from the socket into body. 0 / -1. */
static int read_exact(int fd, struct slot *s, uint64_t deadline, struct dbuf *body, uint64_t n)
{
	while (n > 0) {
		size_t take;

		if (slot_avail(s) == 0 && slot_fill(fd, s, deadline) <= 0)
			return -1;
		take = slot_avail(s) < n ? slot_avail(s) : (size_t)n;
		if (db_add(body, slot_data(s), take) != 0)
			return -1;
		slot_consume(s, take);
		n -= take;
	}
	return 0;
}

static int read_chunked(int fd, struct slot *s, uint64_t deadline, struct dbuf *body)
{
	char line[H_LINE_MAX];

	for (;;) {
		unsigned long long size;
		char *end;

		if (read_line(fd, s, deadline, line, sizeof(line)) != 0)
			return -1;
		errno = 0;
		size = strtoull(line, &end, 16);
		if (end == line || errno != 0 || (*end != '\0' && *end != ';' && *end != ' '))
			return -1;
		if (size == 0)
			break;
		if (read_exact(fd, s, deadline, body, size) != 0 ||
		    read_line(fd, s, deadline, line, sizeof(line)) != 0 || line[0] != '\0')
			return -1;
	}
	do { /* trailer section */
		if (read_line(fd, s, deadline, line, sizeof(line)) != 0)
			return -1;
	} while (line[0] != '\0');
	return 0;
}

/* Reads one head into r->head. 0 / -1. */
static int read_head(int fd, struct slot *s, uint64_t deadline, struct h_response *r)
{
	for (;;) {
		const char *end = slot_find(s, "\r\n\r\n", 4);

		if (end != NULL) {
			size_t n = (size_t)(end - slot_data(s)) + 4;

			if (n >= sizeof(r->head))
				return -1;
			memcpy(r->head, slot_data(s), n);
			r->head[n] = '\0';
			slot_consume(s, n);
			return 0;
		}
		if (slot_avail(s) >= sizeof(r->head))
			return -1;
		if (slot_fill(fd, s, deadline) <= 0) {
			if (slot_avail(s) > 0 && slot_avail(s) < sizeof(r->head)) {
				/* keep what arrived, for the caller's diagnosis */
				memcpy(r->head, slot_data(s), slot_avail(s));
				r->head[slot_avail(s)] = '\0';
			}
			return -1;
		}
	}
}

static int parse_status(const char *head)
{
	int status = 0;

	if (strncmp(head, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)head[7]) || head[8] != ' ')
		return 0;
	for (int i = 9; i < 12; i++) {
		if (!isdigit((unsigned char)head[i]))
			return 0;
		status = status * 10 + (head[i] - '0');
	}
	return head[12] == ' ' || head[12] == '\r' ? status : 0;
}

int h_read_response(int fd, struct h_response *r, bool head_request, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	struct slot *s = slot_of(fd);
	struct dbuf body = {0};
	char v[256];
	int rc = -1;

	memset(r, 0, sizeof(*r));
	if (s == NULL)
		goto out;
	for (;;) {
		if (read_head(fd, s, deadline, r) != 0)
			goto out;
		r->status = parse_status(r->head);
		if (r->status == 0)
			goto out;
		if (r->status >= 200 || r->status == 101)
			break;
		r->interim++;
	}
	if (head_request || r->status == 101 || r->status == 204 || r->status == 304) {
		rc = 0;
	} else if (h_header(r, "Transfer-Encoding", v, sizeof(v)) != NULL &&
	           has_token(v, "chunked")) {
		r->chunked = true;
		rc = read_chunked(fd, s, deadline, &body);
	} else if (h_header(r, "Content-Length", v, sizeof(v)) != NULL) {
		char *end;
		unsigned long long n;

		errno = 0;
		n = strtoull(v, &end, 10);
		rc = errno != 0 || end == v || *end != '\0' ? -1
		                                            : read_exact(fd, s, deadline, &body, n);
	} else {
		ssize_t n;

		while ((n = slot_fill(fd, s, deadline)) > 0 || slot_avail(s) > 0) {
			if (db_add(&body, slot_data(s), slot_avail(s)) != 0)
				break;
			slot_consume(s, slot_avail(s));
		}
		r->closed = n == 0;
		rc = n == 0 ? 0 : -1;
	}
	if (rc == 0 && !r->closed && slot_avail(s) == 0) {
		/* Did (or will) the peer close after this response? */
		bool says_close = (h_header(r, "Connection", v, sizeof(v)) != NULL &&
		                   has_token(v, "close")) ||
		                  (strncmp(r->head, "HTTP/1.0", 8) == 0 &&
		                   !(h_header(r, "Connection", v, sizeof(v)) != NULL &&
		                     has_token(v, "keep-alive")));
		int wait = says_close ? H_CLOSE_WAIT_MS : 0;

		if (s->eof || (slot_fill(fd, s, h_now_ms() + (uint64_t)wait) == 0))
			r->closed = s->eof;
	}
out:
	if (body.p == NULL)
		body.p = calloc(1, 1);
	r->body = body.p;
	r->body_len = body.len;
	return rc;
}

void h_response_free(struct h_response *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
}

int h_exchange(int port, const char *raw, struct h_response *r)
{
	int fd = h_connect(port);
	int rc;

	if (fd < 0) {
		memset(r, 0, sizeof(*r));
		r->body = calloc(1, 1);
		return -1;
	}
	rc = h_send_str(fd, raw);
	if (h_read_response(fd, r, strncmp(raw, "HEAD ", 5) == 0, H_TIMEOUT_MS) != 0)
		rc = -1;
	h_close(fd);
	return rc;
}

const char *h_json_field(const char *body, const char *key, char *out, size_t cap)
{
	char pat[128];
	const char *p;
	size_t n = 0;

	if (body == NULL || cap == 0)
		return NULL;
	snprintf(pat, sizeof(pat), "\"%s\"", key);
	for (p = strstr(body, pat); p != NULL; p = strstr(p + 1, pat)) {
		const char *q = p + strlen(pat);

		while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
			q++;
		if (*q != ':')
			continue;
		q++;
		while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
			q++;
		if (*q == '"') {
			for (q++; *q != '\0' && *q != '"' && n < cap - 1; q++) {
				if (*q == '\\' && q[1] != '\0')
					q++;
				out[n++] = *q;
			}
		} else {
			while (*q != '\0' && *q != ',' && *q != '}' && *q != ' ' && *q != '\n' &&
			       *q != '\r' && n < cap - 1)
				out[n++] = *q++;
		}
		out[n] = '\0';
		return out;
	}
	return NULL;
}

int h_runl(char *out, size_t cap, int timeout_ms, const char *arg0, ...)
{
	char *argv[H_MAX_ARGS + 1];
	int argc = 0;
	va_list ap;

	argv[argc++] = (char *)arg0;
	va_start(ap, arg0);
	for (const char *a; argc < H_MAX_ARGS && (a = va_arg(ap, const char *)) != NULL;)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	return h_run(argv, out, cap, timeout_ms);
}

/*
 * The test processes themselves are not under test: an assertion that fails skips the
 * frees after it, and LeakSanitizer would then bury the failure under leak reports. The
 * spawned ringleader keeps full leak detection (this hook is per binary, not inherited).
 */
__attribute__((used)) const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}

/* ---- additions: resource limits ---- */

pid_t h_spawn_limited(char *const argv[], const char *log_path, long nofile)
{
	pid_t parent = getpid();
	int fd = -1;
	pid_t pid;

	if (log_path != NULL) {
		fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd < 0) {
			fprintf(stderr, "harness: open %s: %s\n", log_path, strerror(errno));
			return -1;
		}
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct rlimit rl = {.rlim_cur = (rlim_t)nofile, .rlim_max = (rlim_t)nofile};

		child_prepare(parent, fd);
		if (nofile > 0 && setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			fprintf(stderr, "harness: setrlimit(RLIMIT_NOFILE, %ld): %s\n", nofile,
			        strerror(errno));
			_exit(126);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (fd >= 0)
		close(fd);
	if (pid < 0) {
		fprintf(stderr, "harness: fork: %s\n", strerror(errno));
		return -1;
	}
	procs_remember(pid);
	return pid;
}

int h_proxy_start_limited(struct h_proxy *p, int port, const char *conf_text, long nofile)
{
	const char *bin = h_env("RL_BIN");
	char name[64];
	uint64_t deadline;

	p->pid = 0;
	p->port = port;
	if (bin == NULL)
		return -1;
	snprintf(name, sizeof(name), "proxy-%d.ini", port);
	snprintf(p->conf, sizeof(p->conf), "%s", h_write_file(name, conf_text));
	snprintf(p->log, sizeof(p->log), "%s/proxy-%d.log", h_tmpdir(), port);

	char *argv[] = {(char *)bin, (char *)"-c", p->conf, NULL};
	p->pid = h_spawn_limited(argv, p->log, nofile);
	if (p->pid <= 0) {
		p->pid = 0;
		return -1;
	}
	deadline = h_now_ms() + H_TIMEOUT_MS;
	for (;;) {
		int status = h_wait_exit(p->pid, 0);

		if (status != -1) {
			fprintf(stderr, "harness: ringleader exited during startup (status 0x%x)\n",
			        (unsigned)status);
			h_print_log(p->log);
			p->pid = 0;
			return -1;
		}
		if (h_proxy_ready(p->pid, port))
			return 0;
		if (ms_left(deadline) == 0) {
			fprintf(stderr,
			        "harness: ringleader does not listen on port %d (or does not "
			        "handle SIGTERM/SIGHUP)\n",
			        port);
			h_print_log(p->log);
			h_stop(p->pid, SIGKILL, H_TIMEOUT_MS);
			p->pid = 0;
			return -1;
		}
		nap_ms(H_POLL_MS);
	}
}

long h_proc_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long utime, stime;
	const char *rp;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* the command name may hold blanks and parentheses: fields start after the last ')' */
	rp = strrchr(buf, ')');
	if (rp == NULL || sscanf(rp + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	                         &utime, &stime) != 2)
		return -1;
	return (long)(utime + stime);
}

int h_proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	d = opendir(path);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

long h_proc_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}
