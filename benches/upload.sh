#!/usr/bin/env bash
# Upload benchmark: throughput of the resumable path (`xtream upload`) and
# of the streamed `POST /api/videos`, each against a direct S3 PUT of the
# same file in the same run, and the host's peak RSS during a streamed
# upload. Writes the `upload-bench` section of BENCHMARKS.md.
#
# Run through `./x bench-upload` (which builds the release host, CLI and
# components first). Knobs (environment):
#   XTREAM_BENCH_BYTES   file size, default 1073741824 (1 GiB)
#   XTREAM_BENCH_RUNS    runs of each path, default 3 (the median is reported)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=../versions.env
source "$ROOT/versions.env"
export GARAGE_VERSION
exec cargo test -p xtream-tests --test bench_upload -- --ignored --nocapture "$@"
