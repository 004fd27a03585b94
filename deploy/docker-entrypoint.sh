#!/bin/sh
# The image's entrypoint: `gridcore <command>`, where `serve` and `worker` first
# run `gridcore migrate`, which waits for the database (30 attempts, 2 s apart,
# saying what it waits for) as the documents' entrypoint does. Several
# containers migrating at once take turns (an advisory lock). Set
# GRIDCORE_MIGRATE_AT_START=0 where a separate job migrates.
set -eu
case "${1:-}" in
  serve | worker)
    if [ "${GRIDCORE_MIGRATE_AT_START:-1}" != "0" ]; then
      gridcore migrate
    fi
    ;;
esac
exec gridcore "$@"
