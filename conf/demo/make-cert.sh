#!/bin/sh
# Writes a self-signed demo certificate for localhost / 127.0.0.1 / ::1 next to this
# script (cert.pem, key.pem: ECDSA P-256, valid 10 years) unless both already exist.
# For demos and local tests only: clients must be told to trust it (curl -k, or
# curl --cacert conf/demo/cert.pem). The committed pair is a public demo key: never use it for anything real.
#   conf/demo/make-cert.sh [--force]
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
cert="$dir/cert.pem"
key="$dir/key.pem"

if [ "${1:-}" != "--force" ] && [ -s "$cert" ] && [ -s "$key" ]; then
	exit 0
fi
command -v openssl >/dev/null || { echo "make-cert: openssl is not installed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
	-subj "/CN=localhost/O=ringleader demo" \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
	-addext "basicConstraints=critical,CA:FALSE" \
	-addext "keyUsage=critical,digitalSignature" \
	-addext "extendedKeyUsage=serverAuth" \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>"$tmp/err" || {
	cat "$tmp/err" >&2
	exit 1
}
chmod 600 "$tmp/key.pem"
mv "$tmp/key.pem" "$key"
mv "$tmp/cert.pem" "$cert"
echo "make-cert: wrote $cert and $key (self-signed, localhost, 10 years)"
