#!/bin/sh
# The image's entry point: `edge` or `worker` runs that component (configured by its
# environment, see docs/configuration.md); anything else is run as a command.
set -e
case "$1" in
  edge | worker) exec node "/app/packages/cli/dist/src/$1.js" ;;
  *) exec "$@" ;;
esac
