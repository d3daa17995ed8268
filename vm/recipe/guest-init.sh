#!/bin/sh
# /sbin/qfc-init, PID 1 of the qfc-lab guest: mounts what the probes need
# (tracefs, debugfs, bpffs, cgroup2), brings up user-mode networking, mounts
# the host's 9p share at /mnt/host, starts sshd and prints the ready marker
# on the serial console. There is no service manager: the lab starts
# everything else over ssh.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
hostname qfc-guest
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
mkdir -p /mnt/host
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none host0 /mnt/host \
  || echo "qfc-init: 9p share host0 not mounted"
mkdir -p /run/sshd
/usr/sbin/sshd -E /var/log/sshd.log || echo "qfc-init: sshd failed to start"
echo "QFC-LAB-READY $(uname -r) $(uname -m)"
# Reap orphans for as long as the guest lives.
trap '' TERM INT
while :; do wait; sleep 1; done
