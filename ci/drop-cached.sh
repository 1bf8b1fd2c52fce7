#!/usr/bin/env bash
# Drops each FILE from the page cache (after syncing it), so that the next
# load reads it from disk under Ember's huge-page advice, into 2 MiB folios
# on Linux, as `ember pull` leaves the model it fetches (see "Weights in
# huge pages" in docs/performance.md). Best effort: a failure is ignored.
#   ci/drop-cached.sh FILE...
for f in "$@"; do
  python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$f" || true
done
