#!/bin/sh
# Generates the TEST-ONLY PKI in certs/test/ (see certs/README.md). Never use these keys for anything
# but tests: the private keys are public, checked into the repository.
#
#   ca.pem / ca.key                 "dnsveil test CA", valid ~100 years
#   server.pem / server.key         dns.test, IP 127.0.0.1, IP ::1; signed by the test CA, ~100 years
#   server-chain.pem                server.pem followed by ca.pem (for servers that want a chain file)
#   expired.pem / expired.key       same names, signed by the test CA, valid 2000-01-01..2001-01-01
#   other-ca.pem / other-ca.key     a second CA nobody trusts
#   other.pem / other.key           same names, signed by other-ca (an "unknown CA" certificate)
#
# Usage: certs/gen-test-pki.sh [OUTDIR]   (default: the test/ directory next to this script)
# Needs only openssl (1.1.1 or 3.x). Keys are ECDSA P-256.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/test"}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

days=36500 # ~100 years: checked-in certificates must not expire under the tests
names="DNS:dns.test,IP:127.0.0.1,IP:::1"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

cat >"$tmp/ca.ext" <<EXT
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EXT

cat >"$tmp/leaf.ext" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $names
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT

# make_ca NAME SUBJECT
make_ca() {
    key "$out/$1.key"
    openssl req -new -key "$out/$1.key" -subj "/O=dnsveil tests/CN=$2" -out "$tmp/$1.csr"
    openssl x509 -req -in "$tmp/$1.csr" -signkey "$out/$1.key" -days "$days" -sha256 \
        -set_serial "0x$(openssl rand -hex 8)" -extfile "$tmp/ca.ext" -out "$out/$1.pem" 2>/dev/null
}

# make_leaf NAME CA
make_leaf() {
    key "$out/$1.key"
    openssl req -new -key "$out/$1.key" -subj "/O=dnsveil tests/CN=dns.test" -out "$tmp/$1.csr"
    openssl x509 -req -in "$tmp/$1.csr" -CA "$out/$2.pem" -CAkey "$out/$2.key" -days "$days" \
        -sha256 -set_serial "0x$(openssl rand -hex 8)" -extfile "$tmp/leaf.ext" \
        -out "$out/$1.pem" 2>/dev/null
}

make_ca ca "dnsveil test CA"
make_leaf server ca
cat "$out/server.pem" "$out/ca.pem" >"$out/server-chain.pem"

make_ca other-ca "dnsveil unknown test CA"
make_leaf other other-ca

# The expired certificate needs explicit dates, which only `openssl ca` sets on OpenSSL 3.0.
key "$out/expired.key"
openssl req -new -key "$out/expired.key" -subj "/O=dnsveil tests/CN=dns.test" -out "$tmp/expired.csr"
mkdir -p "$tmp/db"
: >"$tmp/db/index.txt"
cat >"$tmp/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
database = $tmp/db/index.txt
new_certs_dir = $tmp/db
serial = $tmp/db/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
organizationName = optional
commonName = supplied
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $names
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
openssl rand -hex 8 >"$tmp/db/serial"
openssl ca -batch -config "$tmp/ca.cnf" -extensions leaf -cert "$out/ca.pem" -keyfile "$out/ca.key" \
    -startdate 20000101000000Z -enddate 20010101000000Z -notext \
    -in "$tmp/expired.csr" -out "$out/expired.pem" 2>/dev/null

chmod 644 "$out"/*.pem "$out"/*.key
echo "test PKI written to $out"
