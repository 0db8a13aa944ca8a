#!/bin/sh
# Entrypoint of the Debian-built Redis image, behaving as the official redis image's: arguments that are
# options (or a .conf file) go to redis-server. The official image builds Redis with protected mode off
# (so the other containers reach it without a password, on the container network only); Debian's
# build has it on, so it is turned off here, first, where a later --protected-mode of the caller wins.
set -e
case "$1" in
  -*|*.conf) set -- redis-server "$@" ;;
esac
if [ "$1" = redis-server ]; then
  shift
  case "$1" in
    *.conf) conf=$1; shift; set -- redis-server "$conf" --protected-mode no "$@" ;;
    *) set -- redis-server --protected-mode no "$@" ;;
  esac
fi
exec "$@"
