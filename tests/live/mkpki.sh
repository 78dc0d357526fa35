#!/usr/bin/env bash
# Throw-away P-256 PKI for tests/live.rs: ca.pem, server.pem/-key.pem (SAN = the
# server's test address), client.pem/-key.pem. Usage: mkpki.sh DIR SERVER_IP
set -euo pipefail
dir=$1 ip=$2
cd "$dir"
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec ca-key.pem
openssl req -new -x509 -key ca-key.pem -subj "/CN=mtlsniff live test CA" -days 2 -sha256 \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -out ca.pem 2>/dev/null
leaf() { # name subject ext
  ec "$1-key.pem"
  openssl req -new -key "$1-key.pem" -subj "$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
    -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
leaf server "/CN=live-server" "subjectAltName=IP:$ip,DNS:live-server
extendedKeyUsage=serverAuth"
leaf client "/CN=live-client" "extendedKeyUsage=clientAuth"
openssl verify -CAfile ca.pem server.pem client.pem >/dev/null
