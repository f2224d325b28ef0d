#!/bin/sh
# @NAME@ @VERSION@ for QNAP @ARCH@. Install with App Center ("Install manually") or `sh <this file>` on the NAS.
# This header checks the CPU, finds the data volume, extracts control.tar.gz and data.tar.gz (they follow this
# script in the file, at the offsets below) and runs the package's own installer. Exit 10 means installed.
PATH=/bin:/sbin:/usr/bin:/usr/sbin
echo "Install QNAP package on TS-NAS..."
grep "/mnt/HDA_ROOT" /proc/mounts >/dev/null 2>&1 || { echo "@NAME@: not a QTS system (no /mnt/HDA_ROOT)" >&2; exit 1; }
incompatible() {
  echo "@NAME@: this package is for @ARCH@ (uname -m: @CPU_RE@), but this NAS is $(uname -m) ${platform}" >&2
  [ -x /sbin/log_tool ] && /sbin/log_tool -t 2 -a "[App Center] @NAME@: installation package is incompatible with this NAS"
  echo -1 > /tmp/update_process
  exit 1
}
platform=$(/sbin/getcfg "" Platform -f /etc/platform.conf 2>/dev/null)
reject='@REJECT@'
if [ -n "$reject" ] && [ -n "$platform" ] && expr match "$platform" "$reject" >/dev/null; then incompatible; fi
expr match "$(uname -m)" '@CPU_RE@' >/dev/null || incompatible
if [ -n "$QINSTALL_PATH" ]; then
  QPKG_INSTALL_PATH=$QINSTALL_PATH
else
  public=$(/sbin/getcfg Public path -f /etc/config/smb.conf)
  if [ -z "$public" ]; then
    echo "@NAME@: no Public share, so no data volume to install on" >&2
    echo -1 > /tmp/update_process
    exit 1
  fi
  QPKG_INSTALL_PATH=$(dirname "$public")/.qpkg
fi
extract=$QPKG_INSTALL_PATH/.tmp-@NAME@
rm -rf "$extract"
mkdir -p "$extract" || exit 1
script_len=@SCRIPT_LEN@
ctrl_len=@CTRL_LEN@
data_len=@DATA_LEN@
dd if="$0" bs=$script_len skip=1 2>/dev/null | tar -xO | tar -xz -C "$extract" || exit 1
offset=$(expr $script_len + $ctrl_len)
dd if="$0" bs=$offset skip=1 2>/dev/null | head -c $data_len > "$extract/data.tar.gz" || exit 1
( cd "$extract" && sh qinstall.sh )
rc=$?
rm -rf "$extract"
[ $rc -eq 0 ] && exit 10
exit 1
