#!/bin/sh
# hello-app's init script. The app itself is a stand-in; what it shows is the boot-time check: its images are
# pinned, so `depot ensure` finds them present and answers at once, offline too, and brings back any that are gone.
CONF=/etc/config/qpkg.conf
NAME=hello-app
DIR=$(/sbin/getcfg $NAME Install_Path -f $CONF)
DEPOT=$(/sbin/getcfg depot Install_Path -f $CONF)/depot
case "$1" in
  start)
    [ "$(/sbin/getcfg $NAME Enable -u -d FALSE -f $CONF)" = TRUE ] || { echo "$NAME is disabled"; exit 1; }
    # shellcheck disable=SC2046 # one target per word: references hold no spaces
    "$DEPOT" ensure --owner $NAME $(grep -v '^#' "$DIR/images.list") > "$DIR/ensure.log" 2>&1 || {
      echo "$NAME: its images are not all here (see $DIR/ensure.log)" >&2; exit 1; }
    echo started > "$DIR/state"
    ;;
  stop) echo stopped > "$DIR/state" ;;
  restart) "$0" stop; "$0" start ;;
  *) echo "usage: $0 start|stop|restart" >&2; exit 2 ;;
esac
