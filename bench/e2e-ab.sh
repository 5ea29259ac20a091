#!/usr/bin/env bash
# e2e-ab.sh compares two builds of sluice on stage 3 of make bench-e2e (the
# 3 M-point backlog drained by `sluice worker` and `sluice sink`), run in
# pairs back to back: this machine's speed drifts by a third within an
# hour, so only a pair's two runs are comparable. Each pair runs the two
# builds in alternating order. It prints every run's CPU-seconds per million
# points and peak RSS of the worker and the sink, then the median of the
# pairs' ratios (new/old) of each. The sink is the same code in both builds
# when only the worker changed: a pair whose sink ratio is far from 1 was
# measured while the machine's speed moved.
#
#   bash bench/e2e-ab.sh [-n PAIRS] [-rules DIR] OLD NEW
#
# OLD and NEW are sluice binaries or git revisions of this repository (built
# into .cache/bench-e2e/ab). PAIRS defaults to 3, DIR to bench/e2e/rules
# (every kept point merged; bench/e2e/rules-unmerged for merge: none).
# A pair with a run that fails (a point missing from Prometheus, a process
# that did not finish) is left out of the medians, its log kept in
# .cache/bench-e2e/ab/failed-PAIR-BUILD.log, and the script exits 1.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
pairs=3
rules=bench/e2e/rules
while [[ $# -gt 2 ]]; do
	case $1 in
	-n) pairs=$2; shift 2 ;;
	-rules) rules=$2; shift 2 ;;
	*) echo "bench/e2e-ab.sh: unknown flag $1" >&2; exit 2 ;;
	esac
done
[[ $# -eq 2 && $pairs -ge 1 ]] || { sed -n '2,19p' "$0" >&2; exit 2; }

dir=$repo/.cache/bench-e2e/ab
mkdir -p "$dir"

# binary prints the path of the sluice binary for $1: itself when it is a
# file, else a build of that git revision.
binary() {
	if [[ -f $1 ]]; then
		realpath "$1"
		return
	fi
	local rev
	rev=$(git rev-parse --verify --quiet "$1^{commit}") || { echo "bench/e2e-ab.sh: $1 is neither a file nor a revision" >&2; return 1; }
	local out=$dir/sluice-$rev
	if [[ ! -x $out ]]; then
		local src=$dir/src-$rev
		rm -rf "$src" && mkdir -p "$src"
		git archive "$rev" | tar -x -C "$src"
		(cd "$src" && ${GO:-go} build -o "$out" ./cmd/sluice) >&2
		rm -rf "$src"
	fi
	echo "$out"
}

old=$(binary "$1")
new=$(binary "$2")

# run prints "worker-cpu worker-rss sink-cpu sink-rss" of one stage 3 run;
# a run that fails (a point missing from Prometheus, a process that did
# not finish) keeps its log as $2 and prints its end.
run() {
	local log=$dir/run.log
	if bash bench/e2e.sh -stages 3 -rules "$rules" -sluice "$1" >"$log" 2>&1 && awk -F'|' '
		$3 ~ /sluice worker/ && w == "" { gsub(/[ MB]/, "", $9); w = $7 + 0; wr = $9 }
		$3 ~ /sluice sink/ && s == "" { gsub(/[ MB]/, "", $9); s = $7 + 0; sr = $9 }
		END { if (w == "" || s == "") exit 1; print w, wr, s, sr }' "$log"; then
		return 0
	fi
	cp "$log" "$2"
	tail -20 "$log" >&2
	return 1
}

printf '%-5s %-4s %12s %10s %12s %10s\n' pair build worker-CPU-s worker-RSS sink-CPU-s sink-RSS
ratios=$dir/ratios
: >"$ratios"
anyfailed=
for i in $(seq "$pairs"); do
	order=(old new)
	((i % 2 == 0)) && order=(new old)
	declare -A got=()
	failed=
	for b in "${order[@]}"; do
		bin=$old
		[[ $b == new ]] && bin=$new
		if ! got[$b]=$(run "$bin" "$dir/failed-$i-$b.log"); then
			echo "pair $i: the $b build's run failed (log: $dir/failed-$i-$b.log); the pair is left out" >&2
			failed=1
			anyfailed=1
			break
		fi
		read -r w wr s sr <<<"${got[$b]}"
		printf '%-5s %-4s %12s %8s MB %12s %8s MB\n' "$i" "$b" "$w" "$wr" "$s" "$sr"
	done
	if [[ -n $failed ]]; then
		unset got
		continue
	fi
	read -r ow _ os _ <<<"${got[old]}"
	read -r nw _ ns _ <<<"${got[new]}"
	echo "$nw $ow $ns $os" | awk '{ printf "%.4f %.4f\n", $1 / $2, $3 / $4 }' >>"$ratios"
	unset got
done
if [[ ! -s $ratios ]]; then
	echo "bench/e2e-ab.sh: no pair completed" >&2
	exit 1
fi
sort -n -k1,1 "$ratios" | awk '{ w[NR] = $1 } END { m = (NR % 2) ? w[(NR + 1) / 2] : (w[NR / 2] + w[NR / 2 + 1]) / 2; printf "worker, new/old: median %.3f of %d pairs (", m, NR; for (i = 1; i <= NR; i++) printf "%s%.2f", (i > 1 ? " " : ""), w[i]; print ")" }'
sort -n -k2,2 "$ratios" | awk '{ s[NR] = $2 } END { m = (NR % 2) ? s[(NR + 1) / 2] : (s[NR / 2] + s[NR / 2 + 1]) / 2; printf "sink, new/old:   median %.3f of %d pairs (", m, NR; for (i = 1; i <= NR; i++) printf "%s%.2f", (i > 1 ? " " : ""), s[i]; print ")" }'
[[ -z $anyfailed ]] # a failed run fails the comparison, after the medians of the others
