#!/bin/sh
# depot's installer. The package header extracts control.tar.gz and data.tar.gz into
# <volume>/.qpkg/.tmp-depot and runs this script there. It installs or upgrades the package in
# <volume>/.qpkg/depot, keeps depot.conf and the Enable setting across upgrades, links the init script into
# /etc/init.d and the rc directories, registers the package in /etc/config/qpkg.conf, writes the uninstall
# script, and starts the service when enabled. Progress goes to /tmp/update_process (100 done, -1 failed).
CONF=/etc/config/qpkg.conf
. ./qpkg.cfg
EXTRACT_DIR=$(pwd)
QPKG_INSTALL_PATH=$(dirname "$EXTRACT_DIR")
SYS_QPKG_DIR=$QPKG_INSTALL_PATH/$QPKG_NAME
SERVICE=$QPKG_SERVICE_PROGRAM
RC=${QPKG_RC_NUM:-101}
K=$(printf '%03d' $((1000 - RC)))

progress() { echo "$1" > /tmp/update_process; }
fail() { echo "$QPKG_NAME: $1" >&2; progress -1; exit 1; }
setcfg() { /sbin/setcfg "$QPKG_NAME" "$1" "$2" -f $CONF; }

progress 10
# A new install is enabled; an upgrade keeps what the user chose.
ENABLE=$(/sbin/getcfg "$QPKG_NAME" Enable -u -d TRUE -f $CONF)
[ -x "/etc/init.d/$SERVICE" ] && "/etc/init.d/$SERVICE" stop
mkdir -p "$SYS_QPKG_DIR" || fail "cannot create $SYS_QPKG_DIR"
tar -xzf data.tar.gz -C "$SYS_QPKG_DIR" || fail "cannot unpack the package data"
[ -f "$SYS_QPKG_DIR/depot.conf" ] || cp "$SYS_QPKG_DIR/depot.conf.default" "$SYS_QPKG_DIR/depot.conf" || fail "no default config"
chmod 755 "$SYS_QPKG_DIR/depot" "$SYS_QPKG_DIR/$SERVICE"
progress 50

# App Center shows the icons from here
ICONS=/home/httpd/RSS/images
if [ -d $ICONS ]; then
  cp "$SYS_QPKG_DIR/.qpkg_icon.gif" "$ICONS/$QPKG_NAME.gif"
  cp "$SYS_QPKG_DIR/.qpkg_icon_80.gif" "$ICONS/${QPKG_NAME}_80.gif"
  cp "$SYS_QPKG_DIR/.qpkg_icon_gray.gif" "$ICONS/${QPKG_NAME}_gray.gif"
fi

mkdir -p /etc/init.d /etc/rcS.d /etc/rcK.d
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
setcfg Pid_File "$QPKG_SERVICE_PIDFILE"
setcfg Timeout "$QPKG_TIMEOUT"
setcfg FW_Ver_Min "$QTS_MINI_VERSION"
setcfg "cfg:depot.conf" "$(md5sum "$SYS_QPKG_DIR/depot.conf" | cut -d' ' -f1)"
setcfg Enable "$ENABLE"
# the web UI (App Center's Open): through the QTS proxy path to depot's loopback port
setcfg WebUI "$QPKG_WEBUI"
setcfg Use_Proxy "$QPKG_USE_PROXY"
setcfg Proxy_Path "$QPKG_PROXY_PATH"
setcfg Desktop "$QPKG_DESKTOP_APP"
[ -n "$(/sbin/getcfg "$QPKG_NAME" Web_Port -f $CONF)" ] || setcfg Web_Port "$QPKG_WEB_PORT"

cat > "$SYS_QPKG_DIR/.uninstall.sh" <<EOU
#!/bin/sh
# Written by depot's installer: removes the package and everything it put outside its directory.
# The data root (images) stays on the data volume.
"/etc/init.d/$SERVICE" stop
"/etc/init.d/$SERVICE" remove
rm -f "/etc/init.d/$SERVICE" "/etc/rcS.d/QS$RC$QPKG_NAME" "/etc/rcK.d/QK$K$QPKG_NAME"
rm -f "$ICONS/$QPKG_NAME.gif" "$ICONS/${QPKG_NAME}_80.gif" "$ICONS/${QPKG_NAME}_gray.gif"
awk -v s="[$QPKG_NAME]" '\$0 == s { skip = 1; next } /^\[/ { skip = 0 } !skip' $CONF > $CONF.tmp && mv $CONF.tmp $CONF
rm -rf "$SYS_QPKG_DIR"
EOU
chmod 755 "$SYS_QPKG_DIR/.uninstall.sh"
progress 90

if [ "$ENABLE" = TRUE ]; then
  "/etc/init.d/$SERVICE" start || { setcfg Enable FALSE; fail "installed, but the service did not start"; }
fi
progress 100
echo "$QPKG_NAME $QPKG_VER installed in $SYS_QPKG_DIR"
exit 0
