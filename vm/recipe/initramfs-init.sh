#!/bin/busybox sh
# /init of the guest's initramfs: load the virtio, ext4, 9p and network
# modules the Debian kernel ships as modules, then switch to /dev/vda.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "qfc-initramfs: loading modules"
while read -r m; do insmod "/modules/$m" 2>/dev/null || echo "qfc-initramfs: insmod $m failed"; done < /modules.list
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -b /dev/vda ] || { echo "qfc-initramfs: no /dev/vda after 10 s"; exec sh; }
mkdir -p /newroot
mount -t ext4 -o rw /dev/vda /newroot || { echo "qfc-initramfs: cannot mount /dev/vda"; exec sh; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/qfc-init
