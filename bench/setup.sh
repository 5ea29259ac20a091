# setup.sh is sourced by the benchmark scripts: it moves to the repository,
# fetches Kafka, builds bin/sluice and the load command named $1
# (bench/<name>), and sets repo, GO, port (SLUICE_KAFKA_PORT, default 19192)
# and work (.cache/bench).
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
GO=${GO:-go}
port=${SLUICE_KAFKA_PORT:-19192}
work=$repo/.cache/bench
mkdir -p "$work"

bash scripts/kafka/fetch.sh >/dev/null
"$GO" build -o bin/sluice ./cmd/sluice
"$GO" build -o "bin/$1" "./bench/$1"
