#!/bin/sh
# depot's init script on QTS: start | stop | restart | status | remove.
# /etc/init.d/depot.sh links here; QTS runs `start` at boot when Enable=TRUE and `stop` at shutdown.
CONF=/etc/config/qpkg.conf
QPKG_NAME=depot
QPKG_ROOT=$(/sbin/getcfg $QPKG_NAME Install_Path -f $CONF)
PIDFILE=/var/run/depot.pid
SOCKET=/var/run/depot.sock
LOG=$QPKG_ROOT/depot.log
export QNAP_QPKG=$QPKG_NAME

# The store lives on the data volume that holds the package (/share/CACHEDEV1_DATA/.depot), never inside the
# package directory: uninstalling or upgrading the package leaves every image in place.
data_root() { echo "$(dirname "$(dirname "$QPKG_ROOT")")/.depot"; }
running() { [ -f $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }
nap() { sleep 0.1 2>/dev/null || sleep 1; }

case "$1" in
  start)
    ENABLED=$(/sbin/getcfg $QPKG_NAME Enable -u -d FALSE -f $CONF)
    if [ "$ENABLED" != "TRUE" ]; then
      echo "$QPKG_NAME is disabled."
      exit 1
    fi
    running && exit 0
    DATA=$(data_root)
    mkdir -p "$DATA" || exit 1
    rm -f $SOCKET
    # the page and the station API, on loopback only: the NAS's web server proxies /depot to it
    PORT=$(/sbin/getcfg $QPKG_NAME Web_Port -d 8999 -f $CONF)
    "$QPKG_ROOT/depot" serve --board "$QPKG_ROOT/board.conf" --config "$QPKG_ROOT/depot.conf" \
      --data-root "$DATA" --socket $SOCKET --log-file "$LOG" --tcp "127.0.0.1:$PORT" \
      </dev/null >/dev/null 2>>"$LOG" &
    echo $! > $PIDFILE
    i=0
    while [ $i -lt 150 ]; do
      [ -S $SOCKET ] && exit 0
      running || break
      nap
      i=$((i + 1))
    done
    echo "$QPKG_NAME did not start; see $LOG"
    rm -f $PIDFILE
    exit 1
    ;;
  stop)
    if running; then
      pid=$(cat $PIDFILE)
      kill "$pid"
      i=0
      while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do nap; i=$((i + 1)); done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f $PIDFILE $SOCKET
    ;;
  restart)
    $0 stop
    $0 start
    ;;
  status)
    if running; then echo "$QPKG_NAME is running (pid $(cat $PIDFILE))"; else echo "$QPKG_NAME is stopped"; exit 1; fi
    ;;
  remove)
    # called by .uninstall.sh after stop; the data root stays
    rm -f $PIDFILE $SOCKET
    ;;
  *)
    echo "usage: $0 {start|stop|restart|status|remove}"
    exit 1
    ;;
esac
exit 0
