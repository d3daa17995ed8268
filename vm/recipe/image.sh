#!/bin/sh
# Steps of the guest image recipe after the root filesystem (see rootfs.sh):
#   image.sh kernel    KERNEL_DEB WORK              unpack the Debian kernel to WORK/kernel
#   image.sh initramfs BUSYBOX_DEB WORK OUT         busybox-static + modules -> OUT/initrd.img
#   image.sh disk      ROOTFS_TAR WORK OUT RECIPE   rootfs + modules + init + ssh keys -> OUT/disk.qcow2
# WORK is scratch space; OUT is the image directory. Needs root (device
# nodes in the rootfs), kmod (depmod, modprobe), e2fsprogs, cpio, qemu-img.
set -eu
step="$1"; shift
modules="virtio_pci virtio_blk ext4 virtio_net 9pnet_virtio 9p"

kver() { ls "$1/kernel/lib/modules" | head -n1; }

case "$step" in
kernel)
  deb="$1"; work="$2"
  rm -rf "$work/kernel"; mkdir -p "$work/kernel"
  dpkg-deb -x "$deb" "$work/kernel"
  k=$(kver "$work")
  depmod -b "$work/kernel" "$k"
  echo "$k"
  ;;
initramfs)
  deb="$1"; work="$2"; out="$3"
  k=$(kver "$work")
  rm -rf "$work/bb" "$work/initramfs"; mkdir -p "$work/bb" "$work/initramfs"
  dpkg-deb -x "$deb" "$work/bb"
  ir="$work/initramfs"
  mkdir -p "$ir/bin" "$ir/dev" "$ir/proc" "$ir/sys" "$ir/newroot" "$ir/modules"
  cp "$work/bb/bin/busybox" "$ir/bin/busybox"
  cp "$RECIPE_DIR/initramfs-init.sh" "$ir/init"; chmod 755 "$ir/init"
  : > "$ir/modules.list"
  for m in $modules; do
    modprobe -d "$work/kernel" -S "$k" --show-depends "$m" | while read -r kind path _; do
      [ "$kind" = insmod ] || continue  # "builtin NAME": nothing to load
      b=$(basename "$path")
      grep -qx "$b" "$ir/modules.list" && continue
      cp "$path" "$ir/modules/$b"
      echo "$b" >> "$ir/modules.list"
    done
  done
  (cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible) | gzip -n -6 > "$out/initrd.img"
  cp "$work/kernel/boot/vmlinuz-$k" "$out/vmlinuz"
  ;;
disk)
  tarball="$1"; work="$2"; out="$3"
  k=$(kver "$work")
  st="$work/rootfs"
  rm -rf "$st"; mkdir -p "$st"
  tar -C "$st" --numeric-owner -xpf "$tarball"
  mkdir -p "$st/usr/lib/modules"
  cp -a "$work/kernel/lib/modules/$k" "$st/usr/lib/modules/$k"
  cp "$work/kernel/boot/config-$k" "$work/kernel/boot/System.map-$k" "$st/boot/" 2>/dev/null || { mkdir -p "$st/boot"; cp "$work/kernel/boot/config-$k" "$st/boot/"; }
  install -m 755 "$RECIPE_DIR/guest-init.sh" "$st/sbin/qfc-init"
  # ssh: the per-image host key (pinned in OUT/known_hosts) and client key.
  rm -f "$st"/etc/ssh/ssh_host_*
  install -m 600 "$out/ssh_host_ed25519_key" "$st/etc/ssh/ssh_host_ed25519_key"
  install -m 644 "$out/ssh_host_ed25519_key.pub" "$st/etc/ssh/ssh_host_ed25519_key.pub"
  mkdir -p "$st/root/.ssh"; chmod 700 "$st/root/.ssh"
  install -m 600 "$out/id_ed25519.pub" "$st/root/.ssh/authorized_keys"
  mkdir -p "$st/etc/ssh/sshd_config.d"
  cat > "$st/etc/ssh/sshd_config.d/qfc-lab.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
MaxSessions 64
MaxStartups 64
CONF
  echo qfc-guest > "$st/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 qfc-guest\n' > "$st/etc/hosts"
  printf '/dev/vda / ext4 rw 0 1\n' > "$st/etc/fstab"
  mkdir -p "$st/mnt/host" "$st/var/lib/qfc"
  rm -f "$work/disk.raw"
  mkfs.ext4 -q -F -L qfcroot -E lazy_itable_init=1,lazy_journal_init=1 -d "$st" "$work/disk.raw" "${DISK_SIZE_MIB:-6144}M"
  qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$out/disk.qcow2"
  rm -rf "$st" "$work/disk.raw"
  ;;
*) echo "unknown step $step" >&2; exit 2 ;;
esac
