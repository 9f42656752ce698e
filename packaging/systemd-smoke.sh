#!/usr/bin/env bash
# Installs the Debian package under a real systemd (PID 1 of a container) and checks the service
# end to end, as a user of the package would meet it.
#
#   bash packaging/systemd-smoke.sh target/debian/dnsveil_*.deb     (as root)
#
# Needs: systemd-nspawn (Debian's systemd-container), overlayfs, dig, and the packages this machine
# has (the container boots this machine's own /, through an overlay whose writes go to a tmpfs
# that outlives the container's reboots and vanishes at the end). The container has its own
# network namespace (loopback, and veth pairs made inside it: nothing reaches a public resolver,
# and nothing here collides with ports 53 of the host), and boots to basic.target so that no other
# daemon of this machine starts in it (multi-user.target for the reboots, with only dnsveil
# enabled there). Only Debian's mirror is asked, for systemd-resolved and NetworkManager.
#
# What is checked, in this order: `systemctl start` reaches active (Type=notify READY=1) and the
# STATUS= line shows in `systemctl status`; queries are answered on 127.0.0.1:53 and [::1]:53 with
# the unit's hardening; `systemctl reload` is synchronous (the new configuration answers as soon as
# it returns) and fails when the new configuration is refused (the old one keeps serving); a
# setting a reload cannot apply is named in a warning that `journalctl -p warning` shows without
# the info lines; the network watcher sees an address added under ProcSubset=pid; the control
# socket (mode, `dnsveil stats`); systemd-resolved in front of dnsveil with the packaged drop-in,
# then dnsveil alone with resolved's stub listener off; NetworkManager (its package and what it
# needs, fetched like resolved's) with the packaged drop-ins as the README says: dns=none keeps its
# hands off a resolv.conf naming dnsveil (where, without the drop-in, it overwrites it), and
# dns=systemd-resolved hands its link's server and domain to resolved while every other name goes
# to dnsveil only (the network's server, a listener behind the link, is never asked for them),
# each undone again; the cache file written at stop (STOPPING=1); the watchdog (WATCHDOG=1 with
# WatchdogSec=2s; a hung dnsveil killed and restarted); socket activation (dnsveil.socket); a bad
# configuration fails with 78, is not restarted (RestartPreventExitStatus=78) and is shown by
# `journalctl -p err`; `systemd-analyze security`; enabled units after a reboot of the container (the socket alone, the socket and the
# service, the service alone: each answers after boot with nothing started by hand); the package's
# scripts (an upgrade restarts dnsveil, removal stops it).
set -euo pipefail

die() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

[ $# -eq 1 ] || die "usage: $0 PACKAGE.deb"
deb="$(realpath "$1")"
[ -f "$deb" ] || die "$deb: no such package"
[ "$(id -u)" -eq 0 ] || die "needs root (mounts, systemd-nspawn)"
for tool in systemd-nspawn nsenter dig; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install systemd-container bind9-dnsutils util-linux)"
done

work="$(mktemp -d /tmp/dnsveil-smoke.XXXXXX)"
nspawn_pid=""
cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        # SIGTERM: nspawn asks the container's systemd to power off.
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    for m in root t lower; do
        mountpoint -q "$work/$m" && umount -l "$work/$m"
    done
    rm -rf "$work"
}
trap cleanup EXIT

step "fetch systemd-resolved (the version of this machine's systemd) for the container"
# "Making the system use it" is tried with the real systemd-resolved: its package, from Debian's
# mirror, installed only in the container.
systemd_version="$(dpkg-query -W -f '${Version}' systemd)"
(cd "$work" && apt-get download -q "systemd-resolved=$systemd_version" >/dev/null 2>&1) \
    || die "apt-get download systemd-resolved=$systemd_version failed (apt-get update first?)"
resolved_deb="$(ls "$work"/systemd-resolved_*.deb)"

step "fetch NetworkManager (with what it needs that this machine lacks) for the container"
# The NetworkManager set-ups of the README are tried with the real NetworkManager too: the packages
# apt would install (without recommends), downloaded from Debian's mirror, installed only in the
# container. Nothing to fetch where this machine has NetworkManager already.
mkdir -p "$work/nm/partial"
apt-get install -q -y --download-only --no-install-recommends -o Dir::Cache::archives="$work/nm" \
    network-manager >/dev/null 2>&1 || die "apt-get --download-only network-manager failed (apt-get update first?)"

step "boot systemd in a container (an overlay of / in $work)"
mkdir -p "$work/lower" "$work/t" "$work/root"
# The overlay's upper layer is a tmpfs of its own: overlayfs refuses an upper directory inside its
# lower one. It stays mounted until the end, so the container keeps its state across a reboot.
mount --bind / "$work/lower"
mount -t tmpfs -o size=512m tmpfs "$work/t"
mkdir -p "$work/t/upper" "$work/t/work"
mount -t overlay overlay \
    -o "lowerdir=$work/lower,upperdir=$work/t/upper,workdir=$work/t/work" "$work/root"
# (Not /tmp: nspawn mounts a tmpfs there.)
cp "$deb" "$work/root/var/tmp/dnsveil.deb"
cp "$resolved_deb" "$work/root/var/tmp/systemd-resolved.deb"
mkdir -p "$work/root/var/tmp/nm"
find "$work/nm" -maxdepth 1 -name '*.deb' -exec cp {} "$work/root/var/tmp/nm/" \;
uuid="$(tr -d - </proc/sys/kernel/random/uuid)"

# Runs a command inside the container (all its namespaces; its root).
ct() { nsenter --target "$leader" --all -- "$@"; }
# Polls `$@` inside the container for up to $1 tenths of a second.
ct_until() {
    local tries="$1"
    shift
    for _ in $(seq 1 "$tries"); do
        ct "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
# Sets leader to the container's init: nspawn's child named systemd (any child while there is none
# yet), waiting up to 10 s for one to appear.
find_leader() {
    leader=""
    for _ in $(seq 1 100); do
        leader="$(pgrep -P "$nspawn_pid" -x systemd | head -n 1 || true)"
        [ -n "$leader" ] || leader="$(pgrep -P "$nspawn_pid" | head -n 1 || true)"
        [ -n "$leader" ] && return
        sleep 0.1
    done
}
# Boots the container into the unit $1 and waits until its manager answers and the boot is over
# (starting -> running, or degraded); sets nspawn_pid and leader.
boot() {
    # --keep-unit and --register=no: no systemd (nor machined) runs on this machine.
    systemd-nspawn --quiet --directory="$work/root" --private-network --register=no --keep-unit \
        --uuid="$uuid" --machine=dnsveil-smoke \
        --boot "systemd.unit=$1" >>"$work/console.log" 2>&1 &
    nspawn_pid=$!
    find_leader
    [ -n "$leader" ] || die "the container did not start: $(cat "$work/console.log")"
    local state=""
    for _ in $(seq 1 600); do
        state="$(ct systemctl is-system-running 2>/dev/null || true)"
        # nspawn may briefly have another child than the container's init: look again.
        [ -n "$state" ] || find_leader
        case "$state" in running | degraded) break ;; esac
        sleep 0.1
    done
    case "$state" in
        running | degraded) echo "systemd $(ct systemctl --version | head -n 1 | cut -d' ' -f2) is PID 1 of the container ($1): $state" ;;
        *) die "the container's systemd did not finish booting ($state): $(tail -n 20 "$work/console.log")" ;;
    esac
    # Debug level for PID 1: its journal then shows each notification it gets (READY=1, ...).
    ct systemd-analyze log-level debug
}
boot basic.target

unit_state() { ct systemctl show -P "$2" "$1"; }
notified() { ct journalctl --no-pager -o cat _PID=1 | grep -c "Got notification message from PID [0-9]*.*$1" || true; }
ask() { ct dig +time=2 +tries=1 +short "@$1" smoke.test A; }

step "install the package"
# A policy-rc.d (CI keeps daemons from starting while it installs packages) would stop the
# package's scripts from restarting dnsveil: none in the container.
ct rm -f /usr/sbin/policy-rc.d
ct env DEBIAN_FRONTEND=noninteractive dpkg -i /var/tmp/dnsveil.deb >/dev/null || die "dpkg -i failed"
ct systemctl daemon-reload
ct systemd-analyze verify dnsveil.service dnsveil.socket || die "systemd-analyze verify"
# Documentation=man:dnsveil(8) man:dnsveil-run(8): the pages are there.
for page in dnsveil dnsveil-run; do
    ct man -w 8 "$page" >/dev/null || die "man $page: no page (the units' Documentation= points at it)"
done
conf=/etc/dnsveil/dnsveil.toml
# The packaged configuration, with one local name to ask (there is no network in the container:
# the public upstreams are unreachable, which the service must survive).
set_record() { ct sed -i "s/^records = .*/records = [\"smoke.test A $1\"]/" "$conf"; }
set_record 192.0.2.1
ct grep -q '^records = \["smoke.test A 192.0.2.1"\]' "$conf" || die "could not add a record to $conf"

step "systemctl start: READY=1, STATUS=, queries over both addresses"
ready_before="$(notified 'READY=1')"
ct systemctl start dnsveil.service || die "systemctl start failed: $(ct journalctl --no-pager -u dnsveil -n 30)"
[ "$(unit_state dnsveil ActiveState)" = active ] || die "not active"
[ "$(notified 'READY=1')" -gt "$ready_before" ] || die "no READY=1 in PID 1's journal"
status="$(unit_state dnsveil StatusText)"
echo "StatusText: $status"
grep -q 'serving on' <<<"$status" || die "no STATUS= line"
status="$(ct systemctl status --no-pager dnsveil || true)"
grep -q 'Status: "' <<<"$status" || die "systemctl status shows no Status: $status"
[ "$(ask 127.0.0.1)" = 192.0.2.1 ] || die "no answer on 127.0.0.1:53"
[ "$(ask ::1)" = 192.0.2.1 ] || die "no answer on [::1]:53"
# (Not PID 1's own debug line "PR_SET_MM_ARG_START failed: Operation not permitted": the forked
# child renaming itself lacks CAP_SYS_RESOURCE in the container; it lands in the unit's journal
# when the child is already in the unit's cgroup.)
if ct journalctl --no-pager -u dnsveil -o cat | grep -v 'PR_SET_MM_' | grep -E 'not readable|Operation not permitted|Permission denied'; then
    die "the hardening got in the way (above)"
fi

step "systemctl reload is synchronous and applies the new configuration"
for i in 2 3 4 5 6; do
    set_record "192.0.2.$i"
    ct systemctl reload dnsveil || die "reload $i failed: $(ct journalctl --no-pager -u dnsveil -n 20)"
    got="$(ask 127.0.0.1)"
    [ "$got" = "192.0.2.$i" ] || die "right after systemctl reload: $got, expected 192.0.2.$i"
done
echo "5 reloads, each in force when systemctl returned"
[ "$(notified 'RELOADING=1')" -ge 5 ] || die "no RELOADING=1 in PID 1's journal"

step "a refused configuration fails systemctl reload; the running one stays"
ct cp "$conf" /tmp/good.toml
ct sh -c "echo 'no_such_key = 1' >>$conf"
if ct systemctl reload dnsveil; then die "systemctl reload succeeded with a bad configuration"; fi
[ "$(unit_state dnsveil ActiveState)" = active ] || die "a refused reload stopped the service"
[ "$(ask 127.0.0.1)" = 192.0.2.6 ] || die "the running configuration did not stay"
errors="$(ct journalctl --no-pager -u dnsveil -p err -o cat)"
grep -q 'reload refused' <<<"$errors" || die "no error in the journal: $errors"
ct cp /tmp/good.toml "$conf"

step "journalctl -p warning: a setting that needs a restart is named; info lines are not shown"
ct sed -i 's/^max_tcp_connections_per_client = .*/max_tcp_connections_per_client = 63/' "$conf"
ct systemctl reload dnsveil || die "reload failed"
warnings="$(ct journalctl --no-pager -u dnsveil -p warning -o cat)"
grep -q 'server.max_tcp_connections_per_client.*needs a restart' <<<"$warnings" \
    || die "no warning naming server.max_tcp_connections_per_client: $warnings"
grep -q 'configuration reloaded' <<<"$warnings" && die "-p warning shows info lines"
grep -q 'configuration reloaded' <<<"$(ct journalctl --no-pager -u dnsveil -p info -o cat)" \
    || die "no info line 'configuration reloaded'"
ct cp /tmp/good.toml "$conf"
ct systemctl reload dnsveil

step "the network watcher sees an address added (ProcSubset=pid, ProtectKernelTunables)"
before="$(ct journalctl --no-pager -u dnsveil -o cat | grep -c 'network changed' || true)"
ct ip address add 192.0.2.53/32 dev lo
ct_until 50 sh -c "[ \$(journalctl --no-pager -u dnsveil -o cat | grep -c 'network changed') -gt $before ]" \
    || die "no 'network changed' in the journal within 5 s of adding an address"
echo "network change noticed"

step "control socket: mode and commands"
ct stat -c '%a %U:%G %n' /run/dnsveil /run/dnsveil/control.sock
[ "$(ct stat -c %a /run/dnsveil/control.sock)" = 660 ] || die "control socket mode"
grep -q 'queries' <<<"$(ct dnsveil stats)" || die "dnsveil stats"
ct dnsveil flush smoke.test >/dev/null || die "dnsveil flush"

step "systemd-resolved in front of dnsveil (the packaged drop-in), then dnsveil alone (stub listener off)"
# resolved asks global DNS servers only when some link is routable: a veth pair with an address
# and a default route (nothing behind it; the container has no way out).
ct ip link add dnsveil0 type veth peer name dnsveil1
ct ip address add 198.51.100.2/24 dev dnsveil0
ct ip link set dnsveil0 up
ct ip link set dnsveil1 up
ct ip route add default via 198.51.100.1
ct env DEBIAN_FRONTEND=noninteractive dpkg -i /var/tmp/systemd-resolved.deb >/dev/null 2>&1 || die "installing systemd-resolved failed"
examples=/usr/share/doc/dnsveil/examples
ct install -D -m 644 "$examples/resolved.conf.d/dnsveil.conf" /etc/systemd/resolved.conf.d/dnsveil.conf
ct systemctl restart systemd-resolved
resolved_status="$(ct resolvectl status)"
if ! grep -q 'DNS Servers:\? 127\.0\.0\.1$' <<<"$resolved_status" || ! grep -q 'DNS Domain:\? ~\.$' <<<"$resolved_status"; then
    die "resolvectl status does not show the drop-in: $resolved_status"
fi
answer="$(ct resolvectl query --legend=no smoke.test)" || die "resolvectl query failed: $answer"
grep -q '192.0.2.6' <<<"$answer" || die "resolved did not get dnsveil's answer: $answer"
[ "$(ct getent hosts smoke.test | cut -d' ' -f1)" = 192.0.2.6 ] || die "getent through resolved's stub"
echo "resolved in front: resolvectl query and getent get dnsveil's answer"
ct rm /etc/systemd/resolved.conf.d/dnsveil.conf
ct install -D -m 644 "$examples/resolved.conf.d/dnsveil-stub-off.conf" /etc/systemd/resolved.conf.d/dnsveil-stub-off.conf
ct systemctl restart systemd-resolved
ct cp --remove-destination "$examples/resolv.conf" /etc/resolv.conf
if ct dig +time=1 +tries=1 @127.0.0.53 smoke.test >/dev/null; then die "resolved's stub listener is still on"; fi
[ "$(ct getent hosts smoke.test | cut -d' ' -f1)" = 192.0.2.6 ] || die "getent with resolv.conf pointing at dnsveil"
echo "dnsveil alone: the stub listener is off and getent asks dnsveil"
ct rm /etc/systemd/resolved.conf.d/dnsveil-stub-off.conf
ct ln -sf /run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
ct systemctl restart systemd-resolved

step "NetworkManager: dns=none leaves /etc/resolv.conf on dnsveil; dns=systemd-resolved feeds resolved, which asks dnsveil"
# The real NetworkManager, started by its package's scripts; a link it configures itself (a veth
# pair, lan0 and its peer lan1), whose network announces a DNS server (203.0.113.1) and a search
# domain (lan.example).
# Test scaffolding, not a user's step, in place before NetworkManager first starts: it writes
# /etc/resolv.conf itself when it manages it (rc-manager=file, as on a machine without resolvconf:
# this one has resolved's), so that the control below can see it do so; and it keeps its hands off
# the veth peers (it would take them down, and resolved would find no routable link). "00-" sorts
# before the packaged drop-ins, which override it.
ct mkdir -p /run/NetworkManager/conf.d
ct sh -c 'printf "[main]\nrc-manager=file\n" >/run/NetworkManager/conf.d/00-smoke-file.conf'
ct sh -c 'printf "[keyfile]\nunmanaged-devices=interface-name:lan1;interface-name:dnsveil*\n" >/run/NetworkManager/conf.d/00-smoke-peer.conf'
if compgen -G "$work/nm/*.deb" >/dev/null; then
    ct sh -c 'DEBIAN_FRONTEND=noninteractive dpkg -i /var/tmp/nm/*.deb' >/dev/null 2>&1 || die "installing NetworkManager failed"
fi
ct systemctl start NetworkManager.service || die "NetworkManager did not start: $(ct journalctl --no-pager -u NetworkManager -n 20 -o cat)"
nm_mode() {
    ct busctl get-property org.freedesktop.NetworkManager /org/freedesktop/NetworkManager/DnsManager \
        org.freedesktop.NetworkManager.DnsManager Mode | cut -d'"' -f2
}
# Activates lan0 (NetworkManager creates the veth pair); its peer, unmanaged, is brought up here so
# that lan0 has a carrier.
nm_up() {
    ct nmcli --wait 20 connection up lan0 >/dev/null \
        || die "nmcli connection up lan0: $(ct journalctl --no-pager -u NetworkManager -n 20 -o cat)"
    ct ip link set lan1 up
}
ct nmcli connection add type veth ifname lan0 con-name lan0 veth.peer lan1 connection.autoconnect no \
    ipv4.method manual ipv4.addresses 203.0.113.2/24 ipv4.gateway 203.0.113.1 ipv4.dns 203.0.113.1 \
    ipv4.dns-search lan.example ipv6.method disabled >/dev/null || die "nmcli connection add failed"
nm_conf=/etc/NetworkManager/conf.d
# The control: without our drop-in NetworkManager overwrites the resolv.conf that names dnsveil.
ct cp --remove-destination "$examples/resolv.conf" /etc/resolv.conf
ct systemctl reload NetworkManager
[ "$(nm_mode)" = default ] || die "NetworkManager's dns mode without a drop-in: $(nm_mode)"
nm_up
ct grep -q '^nameserver 203\.0\.113\.1$' /etc/resolv.conf \
    || die "control: NetworkManager (dns=default) did not write /etc/resolv.conf: $(ct cat /etc/resolv.conf)"
echo "control: without the drop-in NetworkManager writes the network's server into /etc/resolv.conf"
# The README's steps for dns=none.
ct install -D -m 644 "$examples/NetworkManager/conf.d/dnsveil.conf" "$nm_conf/dnsveil.conf"
ct systemctl reload NetworkManager
ct cp --remove-destination "$examples/resolv.conf" /etc/resolv.conf
printed="$(ct NetworkManager --print-config)"
if ! grep -qx 'dns=none' <<<"$printed" || ! grep -qx 'rc-manager=unmanaged' <<<"$printed"; then
    die "NetworkManager --print-config does not show the drop-in: $printed"
fi
[ "$(nm_mode)" = none ] || die "the running NetworkManager's dns mode after reload: $(nm_mode), expected none"
nm_up
ct cmp "$examples/resolv.conf" /etc/resolv.conf || die "NetworkManager (dns=none) changed /etc/resolv.conf: $(ct cat /etc/resolv.conf)"
[ "$(ct getent hosts smoke.test | cut -d' ' -f1)" = 192.0.2.6 ] || die "getent with NetworkManager at dns=none"
grep -q '^connected' <<<"$(ct nmcli -t -f STATE general status)" || die "nmcli general status: $(ct nmcli general status)"
echo "dns=none: /etc/resolv.conf left naming dnsveil across a connection up; getent gets dnsveil's answer"
# Undo, as the README says: the drop-in gone, NetworkManager manages /etc/resolv.conf again.
ct rm "$nm_conf/dnsveil.conf"
ct systemctl reload NetworkManager
[ "$(nm_mode)" = default ] || die "after undoing dns=none: mode $(nm_mode)"
nm_up
ct grep -q '^nameserver 203\.0\.113\.1$' /etc/resolv.conf || die "after undoing dns=none NetworkManager does not write /etc/resolv.conf"
echo "undo: NetworkManager writes /etc/resolv.conf again"
ct rm /run/NetworkManager/conf.d/00-smoke-file.conf
# Through resolved: its drop-in (dnsveil for every name no link claims) and NetworkManager's.
ct install -D -m 644 "$examples/resolved.conf.d/dnsveil.conf" /etc/systemd/resolved.conf.d/dnsveil.conf
ct systemctl restart systemd-resolved
ct ln -sf /run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
ct install -D -m 644 "$examples/NetworkManager/conf.d/dnsveil-via-resolved.conf" "$nm_conf/dnsveil-via-resolved.conf"
ct systemctl reload NetworkManager
printed="$(ct NetworkManager --print-config)"
grep -qx 'dns=systemd-resolved' <<<"$printed" || die "NetworkManager --print-config does not show dns=systemd-resolved: $printed"
[ "$(nm_mode)" = systemd-resolved ] || die "the running NetworkManager's dns mode: $(nm_mode), expected systemd-resolved"
nm_up
# (resolved follows the link's carrier and routes from netlink, a moment after.)
ct_until 50 sh -c 'resolvectl status lan0 | grep -q "Current Scopes: DNS"' \
    || die "resolved does not use lan0 for DNS: $(ct resolvectl status lan0)"
link="$(ct resolvectl status lan0)"
if ! grep -q '203\.0\.113\.1' <<<"$link" || ! grep -q 'lan\.example' <<<"$link"; then
    die "NetworkManager did not hand lan0's DNS server and domain to resolved: $link"
fi
# The link must not claim every name (~.): resolved would then ask the network's server too.
if ct resolvectl domain lan0 | grep -q '~\.'; then die "NetworkManager gave lan0 the routing domain ~.: $(ct resolvectl domain)"; fi
# The network's DNS server, for real: on the far side of lan1, moved into a network namespace of
# its own, a listener on 203.0.113.1:53 that logs each name it is asked and answers NXDOMAIN.
ct tee /var/tmp/lan-dns.py >/dev/null <<'PY'
import signal, socket, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    q, peer = s.recvfrom(4096)
    i, labels = 12, []
    while i < len(q) and q[i] != 0 and len(labels) < 128:
        labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
        i += 1 + q[i]
    with open(sys.argv[1], "a") as log:
        log.write(".".join(labels) + "\n")
    s.sendto(q[:2] + b"\x81\x83" + q[4:6] + bytes(6) + q[12:i + 5], peer)
PY
ct rm -f /run/lan-dns.log /run/lan-dns.pid
# shellcheck disable=SC2016 # expanded by the sh inside the container
ct sh -c 'echo $$ >/run/lan-dns.pid; exec unshare --net python3 /var/tmp/lan-dns.py /run/lan-dns.log' &
lan_dns_job=$!
ct_until 50 test -s /run/lan-dns.pid || die "the network's DNS server did not start"
lan_dns="$(ct cat /run/lan-dns.pid)"
ct_until 50 sh -c "readlink /proc/$lan_dns/ns/net | grep -vq \"\$(readlink /proc/self/ns/net)\"" \
    || die "the network's DNS server has no network namespace of its own"
ct ip link set lan1 netns "$lan_dns"
ct nsenter --target "$lan_dns" --net sh -c 'ip address add 203.0.113.1/24 dev lan1 && ip link set lan1 up && ip link set lo up'
answer="$(ct resolvectl query --legend=no smoke.test)" || die "resolvectl query failed: $answer"
grep -q '192.0.2.6' <<<"$answer" || die "resolved (fed by NetworkManager) did not get dnsveil's answer: $answer"
[ "$(ct getent hosts smoke.test | cut -d' ' -f1)" = 192.0.2.6 ] || die "getent through NetworkManager and resolved"
# A name under the link's domain goes to the network's server (the listener sees it; it answers
# in order, so a leaked smoke.test would be logged before it).
# (Asked again until it is: the first try can go out while lan1 is still coming up.)
ct_until 30 sh -c 'resolvectl flush-caches; resolvectl query printer.lan.example; grep -qx printer.lan.example /run/lan-dns.log' \
    || die "resolved did not ask the network's server for printer.lan.example: $(ct cat /run/lan-dns.log 2>&1)"
if ct grep -q 'smoke' /run/lan-dns.log; then die "the network's server was asked for smoke.test: $(ct cat /run/lan-dns.log)"; fi
ct kill "$lan_dns"
wait "$lan_dns_job" 2>/dev/null || true
echo "dns=systemd-resolved: lan0's server and domain are in resolved, printer.lan.example goes to the network's server, smoke.test only to dnsveil"
# Undo both drop-ins.
ct rm "$nm_conf/dnsveil-via-resolved.conf" /etc/systemd/resolved.conf.d/dnsveil.conf
ct systemctl reload NetworkManager
ct systemctl restart systemd-resolved
if ct resolvectl dns | grep -q '127\.0\.0\.1'; then die "after the undo resolved still sends to dnsveil: $(ct resolvectl dns)"; fi
ct nmcli connection delete lan0 >/dev/null
ct rm /run/NetworkManager/conf.d/00-smoke-peer.conf
ct systemctl stop NetworkManager.service
echo "undo: resolved no longer names dnsveil"

step "systemctl stop: STOPPING=1, a clean exit, the cache file written"
stopping_before="$(notified 'STOPPING=1')"
ct systemctl stop dnsveil.service
[ "$(notified 'STOPPING=1')" -gt "$stopping_before" ] || die "no STOPPING=1 in PID 1's journal"
[ "$(unit_state dnsveil Result)" = success ] || die "stop result: $(unit_state dnsveil Result)"
ct test -s /var/lib/private/dnsveil/cache.bin || die "no cache file in the state directory"
echo "cache file: $(ct stat -c '%s bytes' /var/lib/private/dnsveil/cache.bin)"

step "the watchdog (WatchdogSec=2s in a drop-in)"
ct mkdir -p /run/systemd/system/dnsveil.service.d
# TimeoutAbortSec=1s: a hung dnsveil is killed 1 s after the watchdog's SIGABRT (not 90 s).
ct sh -c 'printf "[Service]\nWatchdogSec=2s\nTimeoutAbortSec=1s\n" >/run/systemd/system/dnsveil.service.d/watchdog.conf'
ct systemctl daemon-reload
dog_before="$(notified 'WATCHDOG=1')"
ct systemctl start dnsveil.service
sleep 5
dogs=$(($(notified 'WATCHDOG=1') - dog_before))
[ "$dogs" -ge 3 ] || die "$dogs WATCHDOG=1 in 5 s with WatchdogSec=2s"
[ "$(unit_state dnsveil ActiveState)" = active ] || die "not active with WatchdogSec=2s"
echo "$dogs WATCHDOG=1 in 5 s"
# A hung dnsveil (SIGSTOP: no more WATCHDOG=1): systemd kills it and Restart=on-failure starts
# it again.
hung="$(unit_state dnsveil MainPID)"
ct kill -STOP "$hung"
# shellcheck disable=SC2016 # expanded by the sh inside the container
ct_until 150 sh -c '[ "$(systemctl show -P NRestarts dnsveil)" -ge 1 ] && [ "$(systemctl show -P ActiveState dnsveil)" = active ]' \
    || die "a hung dnsveil was not restarted by the watchdog within 15 s"
grep -q 'Watchdog timeout' <<<"$(ct journalctl --no-pager -u dnsveil -o cat)" || die "no watchdog timeout in the journal"
[ "$(ask 127.0.0.1)" = 192.0.2.6 ] || die "no answer after the watchdog restart"
echo "a hung dnsveil: watchdog timeout, killed, restarted (MainPID $hung -> $(unit_state dnsveil MainPID))"
ct systemctl stop dnsveil.service
ct rm -r /run/systemd/system/dnsveil.service.d
ct systemctl daemon-reload

step "socket activation: dnsveil.socket starts the service on the first query"
ct systemctl start dnsveil.socket
[ "$(unit_state dnsveil.service ActiveState)" = inactive ] || die "the service started with the socket"
[ "$(ask 127.0.0.1)" = 192.0.2.6 ] || die "no answer through the activated sockets"
[ "$(unit_state dnsveil.service ActiveState)" = active ] || die "the service is not active after a query"
ct journalctl --no-pager -u dnsveil.service -o cat | grep -i 'service manager' | tail -n 4
[ "$(ask ::1)" = 192.0.2.6 ] || die "no answer on [::1]:53 through the activated sockets"
ct systemctl enable dnsveil.socket dnsveil.service 2>/dev/null
[ "$(ct systemctl is-enabled dnsveil.socket dnsveil.service | sort -u)" = enabled ] || die "systemctl enable"
ct systemctl disable dnsveil.socket dnsveil.service 2>/dev/null
ct systemctl stop dnsveil.service dnsveil.socket

step "a bad configuration: exit 78, not restarted"
ct sh -c "echo 'no_such_key = 1' >>$conf"
if ct systemctl start dnsveil.service; then die "started with a bad configuration"; fi
[ "$(unit_state dnsveil ExecMainStatus)" = 78 ] || die "exit status $(unit_state dnsveil ExecMainStatus), expected 78"
sleep 3 # RestartSec=2s: a restart would have happened by now
[ "$(unit_state dnsveil NRestarts)" = 0 ] || die "restarted $(unit_state dnsveil NRestarts) times"
[ "$(unit_state dnsveil ActiveState)" = failed ] || die "state $(unit_state dnsveil ActiveState)"
errors="$(ct journalctl --no-pager -u dnsveil -p err -o cat)"
grep 'config error:.*no_such_key' <<<"$errors" || die "journalctl -p err does not show the start-up configuration error: $errors"
ct cp /tmp/good.toml "$conf"
ct systemctl reset-failed dnsveil.service

step "systemd-analyze security"
ct systemd-analyze security --no-pager dnsveil.service | tail -n 1

step "enabled units come up at boot: the socket alone, the socket with the service (as the README says), the service alone"
# A reboot of the container (systemctl reboot: nspawn exits with 133, and is started again on the
# same overlay, whose upper layer stays mounted), into multi-user.target, where an enabled
# dnsveil.service is wanted. Only dnsveil is enabled there: the daemons this machine has enabled
# (unbound, nsd, ... on port 53) are not, in the container.
ct find /etc/systemd/system/multi-user.target.wants -mindepth 1 ! -name dnsveil.service -delete
reboot_container() {
    ct systemctl reboot || die "systemctl reboot failed"
    for _ in $(seq 1 300); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$nspawn_pid" 2>/dev/null && die "the container did not reboot within 30 s: $(tail -n 20 "$work/console.log")"
    local rc=0
    wait "$nspawn_pid" || rc=$?
    [ "$rc" -eq 133 ] || die "systemd-nspawn exited with $rc, expected 133 (a reboot): $(tail -n 20 "$work/console.log")"
    nspawn_pid=""
    boot multi-user.target
}
# Did dnsveil of this boot get its sockets from the service manager?
activated() { ct journalctl --no-pager -b -u dnsveil.service -o cat | grep -c 'from the service manager' || true; }

ct systemctl enable dnsveil.socket 2>/dev/null
reboot_container
[ "$(unit_state dnsveil.socket ActiveState)" = active ] || die "dnsveil.socket is not listening after boot"
[ "$(unit_state dnsveil.service ActiveState)" = inactive ] || die "dnsveil.service started at boot with only the socket enabled"
[ "$(ask 127.0.0.1)" = 192.0.2.6 ] || die "no answer after boot through dnsveil.socket: $(ct journalctl --no-pager -b -u dnsveil -n 20)"
[ "$(ask ::1)" = 192.0.2.6 ] || die "no answer on [::1]:53 after boot through dnsveil.socket"
[ "$(unit_state dnsveil.service ActiveState)" = active ] || die "dnsveil.service is not active after a query"
[ "$(activated)" -ge 4 ] || die "dnsveil did not get its 4 sockets from the service manager"
echo "socket enabled: listening after boot, dnsveil started by the first query"

ct systemctl enable dnsveil.service 2>/dev/null
reboot_container
[ "$(unit_state dnsveil.service ActiveState)" = active ] || die "dnsveil.service is not active after boot: $(ct journalctl --no-pager -b -u dnsveil -n 20)"
[ "$(activated)" -ge 4 ] || die "with the socket enabled too, dnsveil did not get its sockets from the service manager"
[ "$(ask 127.0.0.1)" = 192.0.2.6 ] || die "no answer after boot (socket and service enabled)"
echo "socket and service enabled: active at boot, on the socket unit's sockets"

ct systemctl disable dnsveil.socket 2>/dev/null
reboot_container
[ "$(unit_state dnsveil.service ActiveState)" = active ] || die "dnsveil.service is not active after boot: $(ct journalctl --no-pager -b -u dnsveil -n 20)"
[ "$(unit_state dnsveil.socket ActiveState)" = inactive ] || die "dnsveil.socket is $(unit_state dnsveil.socket ActiveState), though disabled"
[ "$(activated)" -eq 0 ] || die "dnsveil got sockets from the service manager with the socket unit disabled"
[ "$(ask 127.0.0.1)" = 192.0.2.6 ] || die "no answer after boot (service enabled)"
[ "$(ask ::1)" = 192.0.2.6 ] || die "no answer on [::1]:53 after boot (service enabled)"
echo "service enabled: active at boot, on sockets of its own"
ct systemctl disable dnsveil.service 2>/dev/null
ct systemctl stop dnsveil.service

step "the package's maintainer scripts: an upgrade restarts dnsveil, removal stops it"
ct systemctl start dnsveil.service
pid_before="$(unit_state dnsveil MainPID)"
ct env DEBIAN_FRONTEND=noninteractive dpkg -i /var/tmp/dnsveil.deb >/dev/null || die "reinstall failed"
pid_after="$(unit_state dnsveil MainPID)"
[ "$(unit_state dnsveil ActiveState)" = active ] || die "not active after an upgrade"
[ "$pid_after" != "$pid_before" ] || die "an upgrade did not restart dnsveil (MainPID $pid_before)"
[ "$(ask 127.0.0.1)" = 192.0.2.6 ] || die "no answer after an upgrade"
echo "upgrade: restarted (MainPID $pid_before -> $pid_after)"
ct env DEBIAN_FRONTEND=noninteractive dpkg -r dnsveil >/dev/null || die "dpkg -r failed"
[ "$(unit_state dnsveil ActiveState)" = inactive ] || die "dpkg -r left dnsveil $(unit_state dnsveil ActiveState)"
ct env DEBIAN_FRONTEND=noninteractive dpkg --purge dnsveil >/dev/null || die "dpkg --purge failed"
echo "remove: stopped; purge: ok"

echo
echo "systemd smoke test: ok"
