#!/bin/sh
# Demo traffic for docker-compose.yml's demo profile, through the proxy at
# $TARGET: $CLIENTS normal API-key clients at human rates over the demo
# API, and after $ATTACK_AFTER seconds one attacker (key attacker-1) that
# posts orders at about 25 requests a second, the shape `apiguard up
# --demo` sends. The pipeline finds the attacker, the responder blocks its
# key, and the proxy answers it 403: watch it in Grafana.
# BusyBox sh and wget only (the alpine image).
set -u
TARGET=${TARGET:-http://proxy:8080}
CLIENTS=${CLIENTS:-30}
ATTACK_AFTER=${ATTACK_AFTER:-60}

get() { wget -q -O /dev/null -T 10 --header "X-API-Key: $1.demo-secret" -U apiguard-demo/1 "$TARGET$2" 2>/dev/null; }
post() { wget -q -O /dev/null -T 10 --header "X-API-Key: $1.demo-secret" -U apiguard-demo/1 --post-data '{}' "$TARGET$2" 2>/dev/null; }

# client KEY: one request every 0.5 to 2.5 s over the four APIs.
client() {
	key=$1
	while :; do
		r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		sleep "$((r % 3)).$((r % 10))"
		case $((r % 10)) in
		0 | 1 | 2 | 3 | 4) get "$key" "/search?q=$(echo shoes lamp tent kettle | cut -d' ' -f$((r % 4 + 1)))" ;;
		5 | 6 | 7) get "$key" "/products/$((r % 5000))" ;;
		8) post "$key" /orders ;;
		9) get "$key" "/users/$((r % 5000))/orders" ;;
		esac
	done
}

attacker() {
	sleep "$ATTACK_AFTER"
	echo "attacker-1 starts posting orders"
	while :; do
		post attacker-1 /orders &
		sleep 0.04
	done
}

echo "demo traffic: $CLIENTS clients to $TARGET, an attacker after ${ATTACK_AFTER}s"
i=1
while [ "$i" -le "$CLIENTS" ]; do
	client "$(printf 'client-%02d' "$i")" &
	i=$((i + 1))
done
attacker &
wait
