#!/bin/sh
# hello-app's installer, run by the package header in the extraction directory. What it shows:
#   1. `depot ensure --owner hello-app TARGET…` before anything is installed: the images of images.list are pulled
#      (or found), verified, admitted by depot's policy and pinned for this app. If that fails, nothing of the app
#      is installed and a fresh install's pins are released.
#   2. On an upgrade, the pins of the old version's images that the new version no longer lists are released, so a
#      prune can free them.
#   3. The uninstall script releases every pin of the app (`depot pin rm hello-app`); the images stay until pruned.
# depot's exit codes: 0 done, 1 failed, 2 usage, 3 refused by policy, 4 no space.
CONF=/etc/config/qpkg.conf
. ./qpkg.cfg
EXTRACT_DIR=$(pwd)
SYS_QPKG_DIR=$(dirname "$EXTRACT_DIR")/$QPKG_NAME
SERVICE=$QPKG_SERVICE_PROGRAM
RC=$QPKG_RC_NUM
K=$(printf '%03d' $((1000 - RC)))

progress() { echo "$1" > /tmp/update_process; }
fail() { echo "$QPKG_NAME: $1" >&2; progress -1; exit 1; }
setcfg() { /sbin/setcfg "$QPKG_NAME" "$1" "$2" -f $CONF; }

progress 10
DEPOT_DIR=$(/sbin/getcfg depot Install_Path -f $CONF)
DEPOT=$DEPOT_DIR/depot
[ -n "$DEPOT_DIR" ] && [ -x "$DEPOT" ] || fail "needs depot: install depot from App Center first"
mkdir -p new && tar -xzf data.tar.gz -C new || fail "cannot unpack the package data"
TARGETS=$(grep -v '^#' new/images.list)
UPGRADE=
[ -f "$SYS_QPKG_DIR/images.list" ] && UPGRADE=1

progress 20
# shellcheck disable=SC2086 # one target per word: references hold no spaces
"$DEPOT" ensure --owner "$QPKG_NAME" $TARGETS
rc=$?
if [ $rc -ne 0 ]; then
  [ -z "$UPGRADE" ] && "$DEPOT" pin rm "$QPKG_NAME" >/dev/null 2>&1
  case $rc in
    3) fail "depot's signature policy refused an image of this app" ;;
    4) fail "not enough space on the volume for this app's images" ;;
    *) fail "depot could not fetch this app's images (exit $rc)" ;;
  esac
fi

progress 70
[ -x "/etc/init.d/$SERVICE" ] && "/etc/init.d/$SERVICE" stop
if [ -n "$UPGRADE" ]; then
  OLD=
  for t in $(grep -v '^#' "$SYS_QPKG_DIR/images.list"); do
    echo "$TARGETS" | grep -qxF "$t" || OLD="$OLD $t"
  done
  # shellcheck disable=SC2086
  [ -n "$OLD" ] && "$DEPOT" pin rm "$QPKG_NAME" $OLD
fi
mkdir -p "$SYS_QPKG_DIR" && cp -p new/* "$SYS_QPKG_DIR/" || fail "cannot install into $SYS_QPKG_DIR"
ln -sf "$SYS_QPKG_DIR/$SERVICE" "/etc/init.d/$SERVICE"
ln -sf "/etc/init.d/$SERVICE" "/etc/rcS.d/QS$RC$QPKG_NAME"
ln -sf "/etc/init.d/$SERVICE" "/etc/rcK.d/QK$K$QPKG_NAME"
setcfg Name "$QPKG_NAME"
setcfg Display_Name "$QPKG_DISPLAY_NAME"
setcfg Version "$QPKG_VER"
setcfg Author "$QPKG_AUTHOR"
setcfg QPKG_File "$QPKG_NAME.qpkg"
setcfg Date "$(date +%Y-%m-%d)"
setcfg Shell "$SYS_QPKG_DIR/$SERVICE"
setcfg Install_Path "$SYS_QPKG_DIR"
setcfg RC_Number "$RC"
setcfg Require "$QPKG_REQUIRE"
setcfg Enable TRUE

cat > "$SYS_QPKG_DIR/.uninstall.sh" <<EOU
#!/bin/sh
# Written by $QPKG_NAME's installer: stops the app, lets depot know its images are no longer needed, removes it.
"/etc/init.d/$SERVICE" stop
DEPOT=\$(/sbin/getcfg depot Install_Path -f $CONF)/depot
[ -x "\$DEPOT" ] && "\$DEPOT" pin rm "$QPKG_NAME"
rm -f "/etc/init.d/$SERVICE" "/etc/rcS.d/QS$RC$QPKG_NAME" "/etc/rcK.d/QK$K$QPKG_NAME"
awk -v s="[$QPKG_NAME]" '\$0 == s { skip = 1; next } /^\[/ { skip = 0 } !skip' $CONF > $CONF.tmp && mv $CONF.tmp $CONF
rm -rf "$SYS_QPKG_DIR"
EOU
chmod 755 "$SYS_QPKG_DIR/.uninstall.sh"
"/etc/init.d/$SERVICE" start || fail "installed, but it did not start"
progress 100
echo "$QPKG_NAME $QPKG_VER installed in $SYS_QPKG_DIR"
exit 0
