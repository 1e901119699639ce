/*
 * tls — OpenSSL behind one file: server contexts (policy, certificates, SNI), session
 * ticket keys, handshake accounting.
 *
 *   build ──► ctx_load(cert, key) ──► default SSL_CTX ◄── ex_data: struct sni_table
 *         └─► sni_load(folder) ──► ctx_load(NAME.pem, NAME.key) for every pair
 *
 *   handshake: ClientHello ──sni_cb──► SSL_set_SSL_CTX(pair for the name; else default)
 *                          ──alpn_cb──► http/1.1 when offered, else no ALPN
 *                          ──ticket_cb──► process-wide ticket keys (rotated lazily)
 *              info_cb ──► counters; the failure reason is kept on the SSL until
 *              tls_conn_close counts it.
 *
 * Every context gets the same policy (ctx_new), because after SNI switches the context
 * OpenSSL reads some callbacks from the new one. The SNI table belongs to the default
 * context (freed with it), so a handshake in flight never sees a freed table.
 */
#define _GNU_SOURCE

#include "tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "pool.h"

/* Mozilla "intermediate" for TLS 1.2: ECDHE key exchange with AEAD ciphers only. */
#define TLS_CIPHERS_12                                                                             \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_CIPHERS_13      "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS          "X25519:P-256:P-384"
#define TLS_SID_CTX         "ringleader"
#define TLS_ALPN_H1         "http/1.1"
#define TLS_SNI_MAX         4096  /* certificate pairs in the sni folder */
#define TLS_NAME_MAX        256   /* a host name (253) with room for the NUL */
#define TLS_WHY_MAX         256   /* bytes of an OpenSSL reason in a message */
#define TLS_TIME_MAX        32    /* "2026-01-31 12:00:00 UTC" */
#define TLS_RECORD_MAX      16384 /* plaintext bytes of one record (RFC 8446 5.1) */
#define TLS_TICKET_NAME_LEN 16    /* key_name bytes, fixed by OpenSSL */
#define TLS_TICKET_KEY_LEN  32    /* AES-256 key and HMAC-SHA256 key, bytes */
#define TLS_TICKET_IV_LEN   16    /* AES-CBC IV bytes */

/* Per-connection state kept in the SSL's ex_data (a small integer, no allocation). */
#define TLS_CONN_DONE         0x1u /* handshake completed (and counted) */
#define TLS_UP_FAILED         0x2u /* to a backend: the handshake failed (logged) */
#define TLS_UP_QUIET          0x4u /* to a backend: health check, failures at debug level */
#define TLS_CONN_REASON_SHIFT 8    /* failure reason + 1 is stored above this bit */

/* One certificate chosen by server name. */
struct sni_entry {
	char name[TLS_NAME_MAX]; /* lower case; "*.example.com" for a wildcard */
	SSL_CTX *ctx;            /* ref */
};

/* The SNI folder, owned by the default context's ex_data. */
struct sni_table {
	size_t n;
	struct sni_entry e[]; /* n used */
};

struct ticket_key {
	unsigned char name[TLS_TICKET_NAME_LEN];
	unsigned char aes[TLS_TICKET_KEY_LEN];
	unsigned char hmac[TLS_TICKET_KEY_LEN];
	uint64_t born_s; /* monotonic seconds */
	bool valid;
};

/* Process-wide ticket keys: `cur` encrypts, `prev` still decrypts (and asks to renew).
 * The lock is taken only while a ticket is issued or opened. */
static struct {
	pthread_mutex_t lock;
	struct ticket_key cur, prev;
} tickets = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct {
	atomic_ullong handshakes;
	atomic_ullong resumed;
	atomic_ullong failed[TLS_FAIL_COUNT];
	atomic_ullong rotations;
} counters;

/* clang-format off */
static const char *const fail_names[] = {
#define TLS_FAIL_NAME(e, name, help) [e] = name,
	TLS_FAIL_REASONS(TLS_FAIL_NAME)
#undef TLS_FAIL_NAME
};
/* clang-format on */

/* clang-format off */
static const char *const fail_helps[] = {
#define TLS_FAIL_HELP(e, name, help) [e] = help,
	TLS_FAIL_REASONS(TLS_FAIL_HELP)
#undef TLS_FAIL_HELP
};
/* clang-format on */

/* What a snapshot owns (p->tls): the server context and the backends' client contexts. */
struct tls_snap {
	SSL_CTX *server; /* NULL without [tls] listen */
	size_t n;        /* backends of the snapshot */
	SSL_CTX *up[];   /* by backend index; NULL unless tls = on */
};

/* One backend's client context state, owned by that SSL_CTX's ex_data. */
struct upstream_tls {
	char name[CONF_NAME_MAX];
	pthread_mutex_t lock; /* guards session (workers share the context) */
	SSL_SESSION *session; /* a private copy of the last resumable session, or NULL */
};

static int ssl_index = -1; /* SSL ex_data: connection state bits */
static int sni_index = -1; /* SSL_CTX ex_data: struct sni_table */
static int up_index = -1;  /* SSL_CTX ex_data: struct upstream_tls (client contexts) */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* ---- counters ---- */

void tls_stats(struct tls_stats *out)
{
	out->handshakes = atomic_load(&counters.handshakes);
	out->resumed = atomic_load(&counters.resumed);
	for (int i = 0; i < TLS_FAIL_COUNT; i++)
		out->failed[i] = atomic_load(&counters.failed[i]);
	out->ticket_key_rotations = atomic_load(&counters.rotations);
}

const char *tls_fail_name(enum tls_fail f)
{
	return f >= 0 && f < TLS_FAIL_COUNT ? fail_names[f] : "unknown";
}

const char *tls_fail_help(enum tls_fail f)
{
	return f >= 0 && f < TLS_FAIL_COUNT ? fail_helps[f] : "unknown";
}

const char *tls_library_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}

/* ---- messages ---- */

static void add_error(struct conf_errors *errs, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void add_error(struct conf_errors *errs, const char *fmt, ...)
{
	va_list ap;
	char *msg, **grown;
	int n;

	if (errs == NULL)
		return;
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	grown = realloc(errs->msg, (errs->n + 1) * sizeof(*grown));
	if (grown == NULL) {
		free(msg);
		return;
	}
	errs->msg = grown;
	errs->msg[errs->n++] = msg;
}

/* The first queued OpenSSL reason as text; the queue is cleared. */
static const char *ssl_why(char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, len, "%s", r != NULL ? r : "unknown OpenSSL error");
	ERR_clear_error();
	return buf;
}

static const char *time_text(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "(unreadable date)");
	return buf;
}

/* ---- one-time setup ---- */

static void sni_table_free(struct sni_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		SSL_CTX_free(t->e[i].ctx);
	free(t);
}

/* ex_data destructor: the default context is being freed. */
static void sni_table_release(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                              void *argp)
{
	sni_table_free(ptr);
}

/* ex_data destructor: a backend's client context is being freed. */
static void upstream_tls_release(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                                 void *argp)
{
	struct upstream_tls *u = ptr;

	if (u == NULL)
		return;
	SSL_SESSION_free(u->session);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

static void init_indexes(void)
{
	ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_table_release);
	up_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, upstream_tls_release);
}

static int tls_init(void)
{
	pthread_once(&init_once, init_indexes);
	return ssl_index >= 0 && sni_index >= 0 && up_index >= 0 ? 0 : -1;
}

/* ---- per-connection state and handshake accounting ---- */

static uintptr_t conn_state(const SSL *ssl)
{
	return (uintptr_t)SSL_get_ex_data(ssl, ssl_index);
}

static void conn_state_set(SSL *ssl, uintptr_t v)
{
	SSL_set_ex_data(ssl, ssl_index, (void *)v);
}

/* The reason behind an OpenSSL error code. */
static enum tls_fail classify(unsigned long err)
{
	int reason = ERR_GET_REASON(err);

	if (ERR_GET_LIB(err) != ERR_LIB_SSL)
		return TLS_FAIL_OTHER;
	switch (reason) {
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_VERSION_TOO_LOW:
		return TLS_FAIL_VERSION;
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SHARED_GROUPS:
	case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
	case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
		return TLS_FAIL_CIPHER;
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
		return TLS_FAIL_NOT_TLS;
	default:
		/* a fatal alert from the peer is raised as SSL_AD_REASON_OFFSET + alert */
		return reason >= SSL_AD_REASON_OFFSET ? TLS_FAIL_CLIENT_ALERT : TLS_FAIL_OTHER;
	}
}

static void handshake_done(SSL *ssl, uintptr_t st)
{
	conn_state_set(ssl, st | TLS_CONN_DONE);
	atomic_fetch_add(&counters.handshakes, 1);
	if (SSL_session_reused(ssl))
		atomic_fetch_add(&counters.resumed, 1);
}

/*
 * OpenSSL reports progress here. HANDSHAKE_DONE may come again for TLS 1.3
 * post-handshake messages, hence the DONE bit. A handshake step that returns with an
 * error queued keeps the first reason on the SSL (errors are drained by libevent later).
 */
static void info_cb(const SSL *cssl, int where, int ret)
{
	SSL *ssl = (SSL *)cssl; /* the connection's own SSL: OpenSSL passes it const */
	uintptr_t st = conn_state(ssl);
	unsigned long err;

	if (st & TLS_CONN_DONE)
		return;
	if (where & SSL_CB_HANDSHAKE_DONE) {
		handshake_done(ssl, st);
		return;
	}
	if (!(where & SSL_CB_EXIT) || ret > 0 || (st >> TLS_CONN_REASON_SHIFT) != 0)
		return;
	err = ERR_peek_error();
	if (err != 0)
		conn_state_set(ssl, st | ((uintptr_t)classify(err) + 1) << TLS_CONN_REASON_SHIFT);
}

/* The reason libevent kept for bev: the earliest OpenSSL-library error it queued. */
static enum tls_fail bev_reason(struct bufferevent *bev)
{
	enum tls_fail why = TLS_FAIL_INCOMPLETE;
	unsigned long e;

	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (ERR_GET_LIB(e) == ERR_LIB_SSL)
			why = classify(e);
	return why;
}

bool tls_handshake_done(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	return ssl != NULL && (conn_state(ssl) & TLS_CONN_DONE);
}

void tls_write_now(struct bufferevent *bev, struct evbuffer *src)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	size_t len;

	/* a record OpenSSL still holds half-sent must be finished by libevent's retry first */
	if (ssl == NULL || !SSL_is_init_finished(ssl) || SSL_want_write(ssl))
		return;
	while ((len = evbuffer_get_length(src)) > 0) {
		int n = (int)(len < TLS_RECORD_MAX ? len : TLS_RECORD_MAX);
		const unsigned char *rec = evbuffer_pullup(src, n);
		int r = rec != NULL ? SSL_write(ssl, rec, n) : 0; /* NULL: out of memory */

		if (r <= 0) {
			ERR_clear_error(); /* libevent meets the same condition on its retry */
			return;
		}
		evbuffer_drain(src, (size_t)r);
	}
}

void tls_close_notify(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl == NULL || !SSL_is_init_finished(ssl) ||
	    (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
		return;
	SSL_shutdown(ssl);
	ERR_clear_error(); /* a full socket buffer is not worth keeping an error for */
}

void tls_conn_close(struct bufferevent *bev, const char *client)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	uintptr_t st, stored;
	enum tls_fail why;

	if (ssl == NULL)
		return;
	st = conn_state(ssl);
	if (st & TLS_CONN_DONE) {
		tls_close_notify(bev);
		return;
	}
	stored = st >> TLS_CONN_REASON_SHIFT;
	why = stored != 0 ? (enum tls_fail)(stored - 1) : bev_reason(bev);
	atomic_fetch_add(&counters.failed[why], 1);
	log_debug("tls %s: handshake failed (%s)", client, fail_names[why]);
}

/* ---- handshake callbacks ---- */

/* Exact name first, then a wildcard covering exactly one more label. */
static SSL_CTX *sni_lookup(const struct sni_table *t, const char *host)
{
	const char *dot = strchr(host, '.');

	for (size_t i = 0; i < t->n; i++)
		if (t->e[i].name[0] != '*' && strcasecmp(t->e[i].name, host) == 0)
			return t->e[i].ctx;
	for (size_t i = 0; dot != NULL && dot != host && i < t->n; i++)
		if (t->e[i].name[0] == '*' && strcasecmp(t->e[i].name + 1, dot) == 0)
			return t->e[i].ctx;
	return NULL;
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
	const struct sni_table *t = arg;
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_CTX *ctx = host != NULL ? sni_lookup(t, host) : NULL;

	if (ctx != NULL && SSL_set_SSL_CTX(ssl, ctx) == NULL) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK; /* unknown or no name: the default certificate */
}

/* http/1.1 when the client offers it; otherwise no ALPN at all (never a fatal alert). */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
	const size_t want = sizeof(TLS_ALPN_H1) - 1;

	for (unsigned int i = 0; i < inlen;) {
		unsigned int len = in[i];
		if (i + 1 + len > inlen)
			break;
		if (len == want && memcmp(in + i + 1, TLS_ALPN_H1, want) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)len;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + len;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return 0; /* never prompt on a terminal: an encrypted key is an error */
}

static uint64_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* Lock held. A key encrypts for TLS_TICKET_ROTATE_S, then decrypts as long again. */
static int tickets_rotate_if_due(uint64_t now)
{
	uint64_t age = now - tickets.cur.born_s;
	struct ticket_key k = {.born_s = now, .valid = true};

	if (tickets.cur.valid && age < TLS_TICKET_ROTATE_S)
		return 0;
	if (RAND_bytes(k.name, sizeof(k.name)) != 1 || RAND_bytes(k.aes, sizeof(k.aes)) != 1 ||
	    RAND_bytes(k.hmac, sizeof(k.hmac)) != 1) {
		OPENSSL_cleanse(&k, sizeof(k));
		return -1;
	}
	OPENSSL_cleanse(&tickets.prev, sizeof(tickets.prev));
	if (tickets.cur.valid && age < 2 * (uint64_t)TLS_TICKET_ROTATE_S)
		tickets.prev = tickets.cur;
	tickets.cur = k;
	OPENSSL_cleanse(&k, sizeof(k));
	atomic_fetch_add(&counters.rotations, 1);
	return 0;
}

/* Copy the key named name (NULL: the current one) to out. 1 current, 2 previous,
 * 0 unknown name, -1 no key could be made. */
static int tickets_get(const unsigned char *name, struct ticket_key *out)
{
	int rc = -1;

	pthread_mutex_lock(&tickets.lock);
	if (tickets_rotate_if_due(mono_s()) == 0) {
		rc = 0;
		if (name == NULL || memcmp(name, tickets.cur.name, TLS_TICKET_NAME_LEN) == 0) {
			*out = tickets.cur;
			rc = 1;
		} else if (tickets.prev.valid &&
		           memcmp(name, tickets.prev.name, TLS_TICKET_NAME_LEN) == 0) {
			*out = tickets.prev;
			rc = 2;
		}
	}
	pthread_mutex_unlock(&tickets.lock);
	return rc;
}

static int ticket_mac_init(EVP_MAC_CTX *hctx, unsigned char *key)
{
	static char digest[] = "SHA256";
	OSSL_PARAM params[] = {
	        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, TLS_TICKET_KEY_LEN),
	        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
	        OSSL_PARAM_construct_end()};

	return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/* OpenSSL's ticket hook: AES-256-CBC + HMAC-SHA256 under the process-wide keys.
 * Returns 1 (encrypted), 2 (decrypted: resume and issue a fresh ticket), 0 (unknown key:
 * full handshake), -1. */
static int ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *ectx,
                     EVP_MAC_CTX *hctx, int enc)
{
	struct ticket_key k;
	int found = tickets_get(enc ? NULL : name, &k);
	int ok;

	if (found <= 0)
		return enc ? -1 : found;
	if (enc) {
		memcpy(name, k.name, TLS_TICKET_NAME_LEN);
		ok = RAND_bytes(iv, TLS_TICKET_IV_LEN) == 1 &&
		     EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1;
	} else {
		ok = EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1;
	}
	ok = ok && ticket_mac_init(hctx, k.hmac) == 0;
	OPENSSL_cleanse(&k, sizeof(k));
	if (!ok)
		return -1;
	/* Always ask for a fresh ticket: OpenSSL's TLS 1.3 server sends none after a resumed
	 * handshake unless told to renew, and a client holding only a used ticket would pay
	 * a full handshake next time (half the resumptions were lost that way). */
	return enc ? 1 : 2;
}

/* ---- contexts ---- */

/* A context with the whole policy and no certificate. NULL on failure (queue cleared). */
static SSL_CTX *ctx_new(const struct rl_conf *conf)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int min = conf->tls_min_version == RL_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                                 SSL_OP_CIPHER_SERVER_PREFERENCE |
	                                 SSL_OP_PRIORITIZE_CHACHA | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* the chain is what the certificate file holds: no chain building per handshake */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_NO_AUTO_CHAIN);
	/* tickets only: stateless, shared by every worker, kept across reloads. One per
	 * handshake (OpenSSL sends two): every resumption brings a fresh one (ticket_cb), and
	 * each costs a session encoding, a key derivation and a write(2) */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_timeout(ctx, TLS_TICKET_ROTATE_S);
	SSL_CTX_set_max_early_data(ctx, 0);
	SSL_CTX_set_recv_max_early_data(ctx, 0);
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	SSL_CTX_set_info_callback(ctx, info_cb);
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
	if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERS_13) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1 ||
	    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SID_CTX,
	                                   sizeof(TLS_SID_CTX) - 1) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int check_validity(X509 *cert, const char *path, struct conf_errors *errs)
{
	char when[TLS_TIME_MAX];

	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		add_error(errs, "%s: certificate expired on %s", path,
		          time_text(X509_get0_notAfter(cert), when, sizeof(when)));
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
		add_error(errs, "%s: certificate not valid before %s", path,
		          time_text(X509_get0_notBefore(cert), when, sizeof(when)));
		return -1;
	}
	return 0;
}

static int load_cert(SSL_CTX *ctx, const char *path, struct conf_errors *errs)
{
	char why[TLS_WHY_MAX];
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		add_error(errs, "%s: cannot open the certificate (%s)", path, strerror(errno));
		return -1;
	}
	fclose(f);
	if (SSL_CTX_use_certificate_chain_file(ctx, path) != 1) {
		add_error(errs, "%s: not a PEM certificate chain (%s)", path,
		          ssl_why(why, sizeof(why)));
		return -1;
	}
	return check_validity(SSL_CTX_get0_certificate(ctx), path, errs);
}

/* Load the key at path; when the certificate loaded, it must match it. */
static int load_key(SSL_CTX *ctx, const char *cert, bool have_cert, const char *path,
                    struct conf_errors *errs)
{
	char why[TLS_WHY_MAX];
	FILE *f = fopen(path, "r");
	EVP_PKEY *pkey;
	int rc = -1;

	if (f == NULL) {
		add_error(errs, "%s: cannot open the private key (%s)", path, strerror(errno));
		return -1;
	}
	pkey = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (pkey == NULL)
		add_error(errs, "%s: not a PEM private key without passphrase (%s)", path,
		          ssl_why(why, sizeof(why)));
	else if (!have_cert)
		rc = -1; /* the certificate's problem is reported already */
	else if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), pkey) != 1)
		add_error(errs, "%s: private key does not match the certificate %s", path, cert);
	else if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1)
		add_error(errs, "%s: private key not usable (%s)", path, ssl_why(why, sizeof(why)));
	else
		rc = 0;
	ERR_clear_error();
	EVP_PKEY_free(pkey);
	return rc;
}

/* A context for one certificate/key pair. NULL with every problem in errs. */
static SSL_CTX *ctx_load(const struct rl_conf *conf, const char *cert, const char *key,
                         struct conf_errors *errs)
{
	char why[TLS_WHY_MAX];
	SSL_CTX *ctx = ctx_new(conf);
	int cert_rc;

	if (ctx == NULL) {
		add_error(errs, "%s: cannot set up TLS (%s)", cert, ssl_why(why, sizeof(why)));
		return NULL;
	}
	cert_rc = load_cert(ctx, cert, errs);
	if (load_key(ctx, cert, cert_rc == 0, key, errs) < 0 || cert_rc < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* ---- the SNI folder ---- */

static bool host_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.';
}

/* File base name → SNI name: lower case; "*.x" or "_.x" is the wildcard "*.x". */
static int sni_name(const char *base, size_t len, char *out, size_t cap)
{
	size_t i = 0, o = 0;

	if (len >= 2 && (base[0] == '*' || base[0] == '_') && base[1] == '.') {
		out[o++] = '*';
		i = 1; /* keep the dot */
	}
	if (len - i + o >= cap || len == i || base[len - 1] == '.' || (o == 0 && base[0] == '.'))
		return -1;
	for (; i < len; i++) {
		if (!host_char(base[i]) || (base[i] == '.' && i + 1 < len && base[i + 1] == '.'))
			return -1;
		out[o++] = (char)tolower((unsigned char)base[i]);
	}
	out[o] = '\0';
	return o > 2 || out[0] != '*' ? 0 : -1;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len > n && strcmp(s + len - n, suffix) == 0;
}

static int join(char *out, size_t cap, const char *dir, const char *base, size_t blen,
                const char *ext)
{
	size_t dlen = strlen(dir);
	int n = snprintf(out, cap, "%s%s%.*s%s", dir, dlen > 0 && dir[dlen - 1] == '/' ? "" : "/",
	                 (int)blen, base, ext);

	return n > 0 && (size_t)n < cap ? 0 : -1;
}

static bool sni_has(const struct sni_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->e[i].name, name) == 0)
			return true;
	return false;
}

/* One folder entry: NAME.pem loads with NAME.key; a NAME.key needs its NAME.pem; other
 * files are ignored. 0 or -1 (reported). */
static int sni_entry_load(const struct rl_conf *conf, const char *fname, struct sni_table *t,
                          struct conf_errors *errs)
{
	const char *dir = conf->tls_sni;
	size_t len = strlen(fname), blen = len - 4;
	char pem[PATH_MAX], key[PATH_MAX], name[TLS_NAME_MAX];
	bool is_pem = ends_with(fname, len, ".pem");
	struct sni_entry *e = &t->e[t->n];

	if (fname[0] == '.' || (!is_pem && !ends_with(fname, len, ".key")))
		return 0;
	if (join(pem, sizeof(pem), dir, fname, blen, ".pem") < 0 ||
	    join(key, sizeof(key), dir, fname, blen, ".key") < 0) {
		add_error(errs, "%s: file name too long", dir);
		return -1;
	}
	if (!is_pem) {
		if (access(pem, F_OK) == 0)
			return 0; /* loaded with its .pem */
		add_error(errs, "%s: no matching %.*s.pem", key, (int)blen, fname);
		return -1;
	}
	if (sni_name(fname, blen, name, sizeof(name)) < 0 || sni_has(t, name)) {
		add_error(errs,
		          "%s: '%.*s' is not a host name, or a second file for it (NAME.pem: "
		          "a.example.com, *.example.com or _.example.com)",
		          pem, (int)blen, fname);
		return -1;
	}
	if (access(key, F_OK) != 0) {
		add_error(errs, "%s: no matching %.*s.key", pem, (int)blen, fname);
		return -1;
	}
	if ((e->ctx = ctx_load(conf, pem, key, errs)) == NULL)
		return -1;
	memcpy(e->name, name, sizeof(name));
	t->n++;
	return 0;
}

/* Every pair of the sni folder, in name order. 0 with *out (NULL when the folder has
 * none), or -1 with every problem in errs. */
static int sni_load(const struct rl_conf *conf, struct sni_table **out, struct conf_errors *errs)
{
	struct dirent **ents;
	int n = scandir(conf->tls_sni, &ents, NULL, alphasort);
	struct sni_table *t;
	int rc = 0;

	*out = NULL;
	if (n < 0) {
		add_error(errs, "%s: cannot read the sni folder (%s)", conf->tls_sni,
		          strerror(errno));
		return -1;
	}
	t = n <= 2 * TLS_SNI_MAX ? calloc(1, sizeof(*t) + (size_t)n * sizeof(t->e[0])) : NULL;
	if (t == NULL) {
		add_error(errs, "%s: more than %d certificates, or out of memory", conf->tls_sni,
		          TLS_SNI_MAX);
		rc = -1;
	}
	for (int i = 0; i < n; i++) {
		if (rc == 0 && sni_entry_load(conf, ents[i]->d_name, t, errs) < 0)
			rc = -1;
		free(ents[i]);
	}
	free(ents);
	if (rc < 0 || t->n == 0) {
		sni_table_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

/* The default context with the SNI table attached (the context then owns it). NULL with
 * every problem in errs. */
static SSL_CTX *build(const struct rl_conf *conf, struct conf_errors *errs)
{
	struct sni_table *t = NULL;
	SSL_CTX *ctx;
	int sni_rc = 0;

	if (tls_init() < 0 || conf->tls_cert == NULL || conf->tls_key == NULL) {
		add_error(errs, "%s: [tls] cannot be set up (no cert/key, or OpenSSL failed)",
		          conf->path);
		return NULL;
	}
	ctx = ctx_load(conf, conf->tls_cert, conf->tls_key, errs);
	if (conf->tls_sni != NULL)
		sni_rc = sni_load(conf, &t, errs);
	if (ctx == NULL || sni_rc < 0) {
		SSL_CTX_free(ctx);
		sni_table_free(t);
		return NULL;
	}
	if (t != NULL && SSL_CTX_set_ex_data(ctx, sni_index, t) != 1) {
		add_error(errs, "%s: out of memory", conf->tls_sni);
		SSL_CTX_free(ctx);
		sni_table_free(t);
		return NULL;
	}
	if (t != NULL) {
		SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
		SSL_CTX_set_tlsext_servername_arg(ctx, t);
	}
	return ctx;
}

/* ---- TLS to backends ---- */

/* A resumable session arrived (TLS 1.3: after the handshake): keep a private copy for the
 * next connection to this backend. The copy is ours alone, so the connection ending
 * without close_notify (which marks its own session not resumable) does not spoil it. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct upstream_tls *u = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), up_index);
	SSL_SESSION *copy, *old;

	if (u == NULL || !SSL_SESSION_is_resumable(sess) || (copy = SSL_SESSION_dup(sess)) == NULL)
		return 0;
	pthread_mutex_lock(&u->lock);
	old = u->session;
	u->session = copy;
	pthread_mutex_unlock(&u->lock);
	SSL_SESSION_free(old);
	return 0; /* sess itself is not kept */
}

/*
 * Handshake progress of a connection to a backend. The first failure with an OpenSSL
 * reason is logged once (warn; debug for health checks) and remembered for
 * tls_upstream_error. A failure without one (refused, reset) is left to the caller.
 */
static void upstream_info_cb(const SSL *cssl, int where, int ret)
{
	SSL *ssl = (SSL *)cssl; /* the connection's own SSL: OpenSSL passes it const */
	uintptr_t st = conn_state(ssl);
	const struct upstream_tls *u;
	char why[TLS_WHY_MAX];
	unsigned long err;
	long vr;

	if (st & (TLS_CONN_DONE | TLS_UP_FAILED))
		return;
	if (where & SSL_CB_HANDSHAKE_DONE) {
		conn_state_set(ssl, st | TLS_CONN_DONE);
		return;
	}
	if (!(where & SSL_CB_EXIT) || ret > 0 || (err = ERR_peek_error()) == 0 ||
	    ERR_GET_LIB(err) != ERR_LIB_SSL)
		return;
	conn_state_set(ssl, st | TLS_UP_FAILED);
	u = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), up_index);
	vr = SSL_get_verify_result(ssl);
	if (ERR_GET_REASON(err) == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK)
		snprintf(why, sizeof(why), "certificate verify failed: %s",
		         X509_verify_cert_error_string(vr));
	else
		snprintf(why, sizeof(why), "%s",
		         ERR_reason_error_string(err) != NULL ? ERR_reason_error_string(err)
		                                              : "unknown OpenSSL error");
	/* the queue is left alone: libevent drains it into the bufferevent */
	if (st & TLS_UP_QUIET)
		log_debug("backend %s: TLS handshake failed (%s)", u != NULL ? u->name : "?", why);
	else
		log_warn("backend %s: TLS handshake failed (%s)", u != NULL ? u->name : "?", why);
}

/* The numeric host of a backend address ("127.0.0.1", "::1"). */
static int backend_host(const struct rl_addr *a, char *out, size_t cap)
{
	const struct sockaddr *sa = (const struct sockaddr *)&a->ss;
	const void *ip =
	        sa->sa_family == AF_INET6
	                ? (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr
	                : (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;

	return inet_ntop(sa->sa_family, ip, out, (socklen_t)cap) != NULL ? 0 : -1;
}

/* The trust anchors: the ca file, or the system store without one. */
static int load_trust(SSL_CTX *ctx, const char *ca, struct conf_errors *errs)
{
	char why[TLS_WHY_MAX];
	FILE *f;

	if (ca == NULL || ca[0] == '\0')
		return SSL_CTX_set_default_verify_paths(ctx) == 1 ? 0 : -1;
	if ((f = fopen(ca, "r")) == NULL) {
		add_error(errs, "%s: cannot open the CA file (%s)", ca, strerror(errno));
		return -1;
	}
	fclose(f);
	if (SSL_CTX_load_verify_file(ctx, ca) != 1) {
		add_error(errs, "%s: not a PEM file of CA certificates (%s)", ca,
		          ssl_why(why, sizeof(why)));
		return -1;
	}
	return 0;
}

/*
 * The client context for a backend with tls = on: TLS 1.2+, the server policy's ciphers,
 * the peer verified against ca (or the system store), its certificate checked for the
 * backend's IP address, ALPN http/1.1, sessions resumed per backend. Addresses are numeric,
 * so no SNI is sent (RFC 6066 allows no IP literals there). NULL with problems in errs.
 */
static SSL_CTX *client_ctx(const struct rl_conf *conf, const struct rl_backend_conf *bc,
                           struct conf_errors *errs)
{
	static const unsigned char alpn[] = "\x08" TLS_ALPN_H1;
	char why[TLS_WHY_MAX], host[TLS_NAME_MAX];
	SSL_CTX *ctx = tls_init() == 0 ? SSL_CTX_new(TLS_client_method()) : NULL;
	struct upstream_tls *u = NULL;

	if (ctx == NULL)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
	                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(ctx,
	                               SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
	SSL_CTX_set_info_callback(ctx, upstream_info_cb);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERS_13) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1 ||
	    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
		goto fail;
	if (load_trust(ctx, bc->ca, errs) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (backend_host(&bc->address, host, sizeof(host)) < 0 ||
	    X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx), host) != 1)
		goto fail;
	if ((u = calloc(1, sizeof(*u))) == NULL || pthread_mutex_init(&u->lock, NULL) != 0) {
		free(u);
		goto fail;
	}
	snprintf(u->name, sizeof(u->name), "%s", bc->name);
	if (SSL_CTX_set_ex_data(ctx, up_index, u) != 1) {
		pthread_mutex_destroy(&u->lock);
		free(u);
		goto fail;
	}
	return ctx;
fail:
	add_error(errs, "%s: [backend %s] cannot set up TLS (%s)", conf->path, bc->name,
	          ssl_why(why, sizeof(why)));
	SSL_CTX_free(ctx);
	return NULL;
}

int tls_check(const struct rl_conf *conf, struct conf_errors *errs)
{
	SSL_CTX *ctx;
	int rc = 0;

	if (conf->tls_listen.n > 0) {
		ctx = build(conf, errs);
		SSL_CTX_free(ctx);
		if (ctx == NULL)
			rc = -1;
	}
	for (size_t i = 0; i < conf->nbackends; i++) {
		if (!conf->backends[i].tls)
			continue;
		ctx = client_ctx(conf, &conf->backends[i], errs);
		SSL_CTX_free(ctx);
		if (ctx == NULL)
			rc = -1;
	}
	return rc;
}

/* Control thread: the client contexts of the last attached snapshot by backend runtime
 * identity, so a removed backend still draining keeps its context (its removed conf has
 * no ca any more). */
static struct {
	size_t n;
	struct carried_ctx {
		const struct backend_rt *rt;
		SSL_CTX *ctx; /* ref */
	} * e;
} carried;

static void carried_clear(void)
{
	for (size_t i = 0; i < carried.n; i++)
		SSL_CTX_free(carried.e[i].ctx);
	free(carried.e);
	carried.e = NULL;
	carried.n = 0;
}

static SSL_CTX *carried_find(const struct backend_rt *rt)
{
	for (size_t i = 0; i < carried.n; i++)
		if (carried.e[i].rt == rt && SSL_CTX_up_ref(carried.e[i].ctx) == 1)
			return carried.e[i].ctx;
	return NULL;
}

/* Remember the client contexts of p (best effort: without memory, nothing is carried). */
static void carried_set(const struct rl_pool *p, const struct tls_snap *t)
{
	carried_clear();
	carried.e = calloc(t->n > 0 ? t->n : 1, sizeof(carried.e[0]));
	for (size_t i = 0; carried.e != NULL && i < t->n; i++) {
		if (t->up[i] == NULL || SSL_CTX_up_ref(t->up[i]) != 1)
			continue;
		carried.e[carried.n].rt = p->b[i].rt;
		carried.e[carried.n++].ctx = t->up[i];
	}
}

static void snap_free(struct tls_snap *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->server);
	for (size_t i = 0; i < t->n; i++)
		SSL_CTX_free(t->up[i]);
	free(t);
}

static void snap_release(void *t)
{
	snap_free(t);
}

static size_t sni_count(SSL_CTX *ctx)
{
	const struct sni_table *t = SSL_CTX_get_ex_data(ctx, sni_index);

	return t != NULL ? t->n : 0;
}

int tls_attach(struct rl_pool *p)
{
	const struct rl_conf *conf = p->conf;
	struct conf_errors errs = {0};
	struct tls_snap *t;
	size_t nup = 0;
	int rc = 0;

	for (size_t i = 0; i < p->n; i++)
		nup += p->b[i].conf->tls;
	if (conf->tls_listen.n == 0 && nup == 0) {
		carried_clear();
		return 0;
	}
	t = calloc(1, sizeof(*t) + p->n * sizeof(t->up[0]));
	if (t == NULL) {
		log_error("%s: TLS: out of memory", conf->path);
		return -1;
	}
	t->n = p->n;
	if (conf->tls_listen.n > 0 && (t->server = build(conf, &errs)) == NULL)
		rc = -1;
	for (size_t i = 0; i < p->n; i++) {
		if (!p->b[i].conf->tls)
			continue;
		/* a removed backend still draining keeps its context (and with it its ca) */
		if (p->b[i].removed && (t->up[i] = carried_find(p->b[i].rt)) != NULL)
			continue;
		if ((t->up[i] = client_ctx(conf, p->b[i].conf, &errs)) == NULL)
			rc = -1;
	}
	for (size_t i = 0; i < errs.n; i++)
		log_error("%s", errs.msg[i]);
	conf_errors_free(&errs);
	if (rc < 0) {
		snap_free(t);
		return -1;
	}
	carried_set(p, t);
	p->tls = t;
	p->tls_free = snap_release;
	if (t->server != NULL)
		log_info("tls: certificate %s, %zu by SNI, min_version %s", conf->tls_cert,
		         sni_count(t->server), conf_tls_version_name(conf->tls_min_version));
	if (nup > 0)
		log_info("tls: %zu backends re-encrypted", nup);
	return 0;
}

struct bufferevent *tls_bufferevent_new(const struct rl_pool *p, struct event_base *base, int fd)
{
	const struct tls_snap *t = p->tls;
	SSL *ssl = t != NULL && t->server != NULL ? SSL_new(t->server) : NULL;
	struct bufferevent *bev;

	if (ssl == NULL) {
		ERR_clear_error();
		return NULL;
	}
	/* fd is handed over only once the bufferevent exists, so a failure leaves it ours;
	 * if libevent cannot even allocate, it also cannot free ssl (lost on that OOM) */
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		ERR_clear_error();
		return NULL;
	}
	if (bufferevent_setfd(bev, fd) < 0) {
		SSL_set_bio(ssl, NULL, NULL); /* the socket BIO must not take fd along */
		bufferevent_free(bev);
		ERR_clear_error();
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

bool tls_backend_on(const struct rl_pool *p, size_t backend)
{
	const struct tls_snap *t = p->tls;

	return t != NULL && backend < t->n && t->up[backend] != NULL;
}

/* A client TLS bufferevent for backend; fd as for tls_upstream_bufferevent_new. */
static struct bufferevent *upstream_bev(const struct rl_pool *p, size_t backend,
                                        struct event_base *base, int fd, bool quiet)
{
	const struct tls_snap *t = p->tls;
	SSL *ssl = tls_backend_on(p, backend) ? SSL_new(t->up[backend]) : NULL;
	struct upstream_tls *u;
	SSL_SESSION *sess;
	struct bufferevent *bev;

	if (ssl == NULL) {
		ERR_clear_error();
		return NULL;
	}
	conn_state_set(ssl, quiet ? TLS_UP_QUIET : 0);
	/* a copy per connection: ending one without close_notify marks its session not
	 * resumable, which must not spoil the stored one */
	u = SSL_CTX_get_ex_data(t->up[backend], up_index);
	if (u != NULL) {
		pthread_mutex_lock(&u->lock);
		sess = u->session != NULL ? SSL_SESSION_dup(u->session) : NULL;
		pthread_mutex_unlock(&u->lock);
		if (sess != NULL)
			SSL_set_session(ssl, sess); /* a failure just means a full handshake */
		SSL_SESSION_free(sess);
		ERR_clear_error();
	}
	/* as tls_bufferevent_new: fd is handed over only once the bufferevent exists */
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		ERR_clear_error();
		return NULL;
	}
	if (fd >= 0 && bufferevent_setfd(bev, fd) < 0) {
		SSL_set_bio(ssl, NULL, NULL);
		bufferevent_free(bev);
		ERR_clear_error();
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

struct bufferevent *tls_upstream_bufferevent_new(const struct rl_pool *p, size_t backend,
                                                 struct event_base *base, int fd)
{
	return upstream_bev(p, backend, base, fd, false);
}

struct bufferevent *tls_health_bufferevent_new(const struct rl_pool *p, size_t backend,
                                               struct event_base *base)
{
	return upstream_bev(p, backend, base, -1, true);
}

bool tls_bufferevent_is_tls(struct bufferevent *bev)
{
	return bufferevent_openssl_get_ssl(bev) != NULL;
}

const char *tls_upstream_error(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	return ssl != NULL && (conn_state(ssl) & TLS_UP_FAILED) ? "TLS handshake failed" : NULL;
}
