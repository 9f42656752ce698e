#!/bin/sh
# Runs the OpenWrt init script (dnsveil/files/dnsveil.init) under a stand-in for procd and
# /etc/rc.common, and checks what it asks procd to do. The real OpenWrt SDK cannot be installed
# here; this tests the script's own logic (config check, command line, respawn, reload), not procd.
#
# Usage: sh packaging/openwrt/test-init.sh DNSVEIL_BINARY
# Exit status 0 when every case passes; the failing case is printed otherwise.
# shellcheck source-path=SCRIPTDIR
set -u

BIN="${1:?usage: test-init.sh DNSVEIL_BINARY}"
HERE="$(cd "$(dirname "$0")" && pwd)"
INIT="$HERE/dnsveil/files/dnsveil.init"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
LOG="$WORK/procd.log"
failures=0

# The stand-in: each procd call is recorded, one line per call.
procd_open_instance() { echo "open_instance $*" >>"$LOG"; }
procd_set_param() { echo "set_param $*" >>"$LOG"; }
procd_close_instance() { echo "close_instance" >>"$LOG"; }
procd_send_signal() { echo "send_signal $*" >>"$LOG"; }
procd_add_reload_trigger() { echo "reload_trigger $*" >>"$LOG"; }
logger() { echo "logger $*" >>"$LOG"; }
# /etc/rc.common's start for a procd service runs start_service.
start() { start_service; }

fail() {
	echo "FAIL: $1"
	sed 's/^/    /' "$LOG"
	failures=$((failures + 1))
}

expect_line() { # CASE LINE
	grep -qxF -- "$2" "$LOG" || fail "$1: no line \"$2\""
}

refute_match() { # CASE PATTERN
	if grep -q -- "$2" "$LOG"; then fail "$1: unexpected \"$2\""; fi
}

run_case() { # NAME CONFIG-TEXT ACTION; CONFIG-TEXT "-" means no config file
	: >"$LOG"
	conf="$WORK/$1.toml"
	if [ "$2" != "-" ]; then printf '%s\n' "$2" >"$conf"; fi
	(
		DNSVEIL_BIN="$BIN"
		DNSVEIL_CONFIG="$conf"
		export DNSVEIL_BIN DNSVEIL_CONFIG
		# shellcheck source=dnsveil/files/dnsveil.init
		. "$INIT"
		"$3"
	)
	echo "status $?" >>"$LOG"
}

GOOD='[server]
listen = ["127.0.0.1:5353"]
[hosts]
file = ""
[upstream]
servers = ["udp://127.0.0.1:5300"]'
BAD='[server]
listen = ["0.0.0.0:53"]
allow = ["0.0.0.0/0"]
[hosts]
file = ""
[upstream]
servers = ["udp://127.0.0.1:5300"]'

run_case good "$GOOD" start_service
expect_line good "open_instance dnsveil"
expect_line good "set_param command $BIN run --config $WORK/good.toml"
expect_line good "set_param respawn 3600 5 5"
expect_line good "set_param file $WORK/good.toml"
expect_line good "set_param limits nofile=4096 4096"
expect_line good "close_instance"
expect_line good "status 0"

run_case bad "$BAD" start_service
refute_match bad "open_instance"
grep -q "logger -t dnsveil -p daemon.err config rejected.*open resolver" "$LOG" ||
	fail "bad: the rejection and its reason are logged"
expect_line bad "status 1"

run_case missing - start_service
refute_match missing "open_instance"
grep -q "no such file; not starting" "$LOG" || fail "missing: logged"
expect_line missing "status 1"

run_case reload "$GOOD" reload_service
expect_line reload "open_instance dnsveil"
expect_line reload "send_signal dnsveil dnsveil HUP"
expect_line reload "status 0"

run_case reload_bad "$BAD" reload_service
refute_match reload_bad "send_signal"
refute_match reload_bad "open_instance"
expect_line reload_bad "status 1"

run_case triggers "$GOOD" service_triggers
expect_line triggers "reload_trigger dnsveil"

if [ "$failures" -ne 0 ]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "init script: all cases passed"
