/*
 * tls — the one wrapper around OpenSSL. Today it only reports the library version;
 * TLS termination lands here (only tls.c includes OpenSSL).
 */
#ifndef RL_TLS_H
#define RL_TLS_H

/* "OpenSSL 3.0.x ..." of the library linked at run time. */
const char *tls_library_version(void);

#endif
