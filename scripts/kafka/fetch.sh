#!/usr/bin/env bash
# fetch.sh downloads the Apache Kafka broker jars (scripts/kafka/pom.xml)
# from Maven Central into .cache/kafka/libs, for broker.sh and the Go tests
# (internal/kafkatest). It does nothing when the jars of this pom.xml are
# already there. Prints the libs directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache="$repo/.cache/kafka"
libs="$cache/libs"
pom="$here/pom.xml"

need() {
	echo "make test needs Java 17+ and Maven to fetch and run the Apache Kafka broker;" \
		"install e.g. openjdk-17-jre-headless and maven ($1)" >&2
	exit 1
}
command -v java >/dev/null 2>&1 || need "java not found"
command -v mvn >/dev/null 2>&1 || need "mvn not found"
# "17.0.15", "21", "1.8.0_392": the major version is the first number, or the
# second after "1.".
jver=$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)
jmajor=${jver%%.*}
[[ $jmajor == 1 ]] && jmajor=$(echo "$jver" | cut -d. -f2)
[[ $jmajor =~ ^[0-9]+$ && $jmajor -ge 17 ]] || need "java is version ${jver:-unknown}"

stamp="$cache/libs.stamp"
want=$(sha256sum "$pom" | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" && -d $libs ]]; then
	echo "$libs"
	exit 0
fi

echo "fetching the Kafka broker jars into $libs ..." >&2
rm -rf "$libs" "$stamp"
mkdir -p "$cache"
tmp="$libs.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
	-DincludeScope=runtime -DoutputDirectory="$tmp" >&2
mv "$tmp" "$libs"
echo "$want" >"$stamp"
echo "$libs"
