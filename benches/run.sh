#!/usr/bin/env bash
# `make bench`: builds the release binaries and runs the benchmark suite, which writes
# docs/BENCHMARKS.md. workerhub, websocketd (/usr/bin/websocketd, skipped if missing)
# and the limit reference (bench/src/bin/ws-reference.rs) are measured in the same run.
#
# Extra arguments go to `workerhub-bench suite` (see `workerhub-bench suite --help`):
#   benches/run.sh --quick                 # tiny sizes, checks that everything runs
#   benches/run.sh --only echo,stream      # some scenarios
#   benches/run.sh --servers workerhub     # some servers
#   benches/run.sh --only supervision --servers workerhub --out /tmp/supervision.md
#                                          # approvals and turn start (needs `make clis`
#                                          # for the real Claude Code), in a file of its own
#
# Without arguments, the terminal workers' figures (`workerhub-bench terminal`: keystroke
# echo, `yes | head -c 200M` to 1 and 100 viewers) are appended to the report; with
# arguments, run them yourself: target/release/workerhub-bench terminal --help.
set -euo pipefail
cd "$(dirname "$0")/.."
"${CARGO:-cargo}" build --release --workspace --bins
target/release/workerhub-bench suite --out docs/BENCHMARKS.md "$@"
if [ "$#" -eq 0 ]; then
    target/release/workerhub-bench terminal --append docs/BENCHMARKS.md
fi
