#!/bin/sh
# Makes the certificates of a plant's MQTT link with openssl: a CA, the
# broker's server certificate, the gateway's client certificate and one
# client certificate per agent, whose common name (CN) is the agent id. The
# broker (deploy/mosquitto/mosquitto.conf) takes the CN as the MQTT user
# name, and the ACL lets each agent publish only under its own id.
#
#   deploy/pki/make-plant-pki.sh [options] AGENT_ID...
#
# Options:
#   -o DIR            output directory (default ./pki)
#   --broker-dns NAME a DNS name of the broker, repeatable (localhost is always in)
#   --broker-ip IP    an IP address of the broker, repeatable (127.0.0.1 is always in)
#   --gateway NAME    the gateway's CN (default weft-gateway), repeatable
#   --days N          validity of new certificates (default 825)
#
# Run it again with more agent ids to add agents: an existing CA, key or
# certificate is kept, never overwritten. Private keys are written 0600.
# This is a small plant CA for tests and small sites; a site with its own
# PKI signs the same names with it instead. docs/security.md explains.
set -eu

out=./pki days=825 dns="localhost" ips="127.0.0.1" gateways="" agents=""
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out="$2"; shift ;;
	--broker-dns) dns="$dns $2"; shift ;;
	--broker-ip) ips="$ips $2"; shift ;;
	--gateway) gateways="$gateways $2"; shift ;;
	--days) days="$2"; shift ;;
	-h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "make-plant-pki.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	*) agents="$agents $1" ;;
	esac
	shift
done
[ -n "$gateways" ] || gateways=weft-gateway

# Names become MQTT user names and topic levels: the agent id alphabet only.
for n in $agents $gateways; do
	case "$n" in
	*[!A-Za-z0-9_.-]* | "" | .* )
		echo "make-plant-pki.sh: $n: an id is letters, digits, _ . - (as agent.id in the config)" >&2
		exit 2 ;;
	esac
done

for a in $agents; do
	for g in $gateways broker; do
		if [ "$a" = "$g" ]; then
			echo "make-plant-pki.sh: agent id $a is also the gateway's or broker's name: it would get their rights" >&2
			exit 2
		fi
	done
done

umask 077
mkdir -p "$out/agents"
say() { printf '%s\n' "make-plant-pki.sh: $*"; }

# newkey FILE: an ECDSA P-256 key, unless FILE exists.
newkey() {
	[ -f "$1" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
	chmod 600 "$1"
}

if [ -f "$out/ca.crt" ]; then
	say "kept $out/ca.crt"
else
	newkey "$out/ca.key"
	openssl req -x509 -new -key "$out/ca.key" -sha256 -days 3650 -subj "/O=Weft/CN=Weft plant CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$out/ca.crt"
	say "made $out/ca.crt (keep $out/ca.key offline)"
fi

# sign NAME KEY CRT EXT: a certificate for CN=NAME, signed by the CA.
sign() {
	if [ -f "$3" ]; then
		say "kept $3"
		return 0
	fi
	newkey "$2"
	ext=$(mktemp)
	printf '%s\n' "$4" > "$ext"
	openssl req -new -key "$2" -subj "/O=Weft/CN=$1" -out "$3.csr"
	openssl x509 -req -in "$3.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
		-days "$days" -sha256 -extfile "$ext" -out "$3" 2>/dev/null
	rm -f "$3.csr" "$ext"
	chmod 644 "$3"
	say "made $3 (CN=$1)"
}

san=""
for d in $dns; do san="$san${san:+,}DNS:$d"; done
for i in $ips; do san="$san${san:+,}IP:$i"; done
sign broker "$out/broker.key" "$out/broker.crt" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san"

client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
for g in $gateways; do sign "$g" "$out/$g.key" "$out/$g.crt" "$client"; done
for a in $agents; do sign "$a" "$out/agents/$a.key" "$out/agents/$a.crt" "$client"; done
chmod 644 "$out/ca.crt"
