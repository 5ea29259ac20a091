#!/usr/bin/env bash
# install.sh makes sure the `prometheus` and `victoria-metrics` binaries the
# backend tests start (internal/backendtest) are on PATH, and `chromium`,
# the headless browser the status page's test loads the page in
# (app/status). When one is missing and we are root on a system with
# apt-get (Debian bookworm ships prometheus 2.42, victoria-metrics 1.79 and
# chromium), it installs the Debian packages without starting their system
# services. Otherwise it says how to get them; the tests that need them
# then skip. Idempotent and quiet; never fails.
set -uo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "scripts/backends/install.sh: ${missing[*]} not found and cannot install (needs root and apt-get);" \
		"the tests that need them (the Prometheus remote-write backends, the status page in a browser) will skip. Install ${missing[*]} and put them on PATH." >&2
	exit 0
fi

# Keep the packages' services from being started (tests start their own
# servers on free ports): a policy-rc.d that denies, removed afterwards if
# we put it there.
policy=/usr/sbin/policy-rc.d
ours=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && ours=1
fi
log=$(mktemp)
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
	echo "scripts/backends/install.sh: apt-get install ${missing[*]} failed; the tests that need them will skip:" >&2
	tail -n 5 "$log" >&2
fi
rm -f "$log"
[ -n "$ours" ] && rm -f "$policy"
exit 0
