#!/bin/bash
# Kernel pktgen with the parameters of `ztplane-bench pktgen`, for real NICs (see README.md).
#
# In the style of the kernel's samples/pktgen/pktgen_sample*.sh, self-contained (no functions.sh):
# one pktgen kernel thread per TX queue, each sending its share of the count at its share of the
# rate, Ethernet/IPv4/UDP frames whose UDP source port cycles over FLOWS values.
#
#   sudo ./ztplane-pktgen.sh -i eth1 -m 0c:42:a1:00:00:02 -s 64 -f 16 -r 1M -T 10
#
# Bounded: a run stops after COUNT frames or SECONDS, whichever comes first.
set -euo pipefail

usage() {
    cat <<EOF
usage: $0 -i DEV -m DST_MAC [options]
  -i DEV       interface to send on (a real NIC; pktgen bypasses the qdisc)
  -m MAC       destination MAC (the receiving port back to back, or the DUT's port)
  -s SIZE      Ethernet frame size incl. FCS, 64..1518 (RFC 2544; pktgen pkt_size = SIZE-4)  [64]
  -f FLOWS     UDP source ports SRC_PORT .. SRC_PORT+FLOWS-1, one per frame in turn          [1]
  -r RATE      packets/s over all threads (k/M suffixes allowed), or max                    [10k]
  -T SECONDS   stop after this long                                                        [10]
  -n COUNT     stop after this many frames (default RATE x SECONDS; required with -r max)
  -d DST_IP    destination IPv4, in 198.18.0.0/15                                          [198.19.0.1]
  -S SRC_IP    source IPv4, in 198.18.0.0/15                                               [198.18.0.1]
  -p DST_PORT  UDP destination port                                                        [9]
  -P SRC_PORT  first UDP source port                                                       [10000]
  -t THREADS   pktgen threads = TX queues 0..THREADS-1, on CPUs 0..THREADS-1               [1]
  -c CLONE     clone_skb: send each skb CLONE+1 times (faster; flows then change every
               CLONE+1 frames instead of every frame)                                      [0]
  -b BURST     frames per xmit_more burst                                                  [1]
  -D           dry run: print the /proc/net/pktgen writes instead of doing them
EOF
    exit "${1:-1}"
}

DEV="" DST_MAC="" SIZE=64 FLOWS=1 RATE=10k SECONDS_=10 COUNT="" DST_IP=198.19.0.1 SRC_IP=198.18.0.1
DST_PORT=9 SRC_PORT=10000 THREADS=1 CLONE=0 BURST=1 DRY=0
while getopts "i:m:s:f:r:T:n:d:S:p:P:t:c:b:Dh" opt; do
    case $opt in
        i) DEV=$OPTARG ;;
        m) DST_MAC=$OPTARG ;;
        s) SIZE=$OPTARG ;;
        f) FLOWS=$OPTARG ;;
        r) RATE=$OPTARG ;;
        T) SECONDS_=$OPTARG ;;
        n) COUNT=$OPTARG ;;
        d) DST_IP=$OPTARG ;;
        S) SRC_IP=$OPTARG ;;
        p) DST_PORT=$OPTARG ;;
        P) SRC_PORT=$OPTARG ;;
        t) THREADS=$OPTARG ;;
        c) CLONE=$OPTARG ;;
        b) BURST=$OPTARG ;;
        D) DRY=1 ;;
        h) usage 0 ;;
        *) usage ;;
    esac
done

die() { echo "ztplane-pktgen: $*" >&2; exit 1; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
# 198.18.0.0/15: the RFC 2544 benchmark block, never routed on the Internet.
is_bench_ip() { [[ $1 =~ ^198\.(18|19)\.([0-9]{1,3})\.([0-9]{1,3})$ ]] && ((BASH_REMATCH[2] < 256 && BASH_REMATCH[3] < 256)); }

[[ -n $DEV ]] || usage
[[ $DST_MAC =~ ^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$ ]] || die "-m MAC is required (aa:bb:cc:dd:ee:ff)"
for v in SIZE FLOWS SECONDS_ DST_PORT SRC_PORT THREADS CLONE BURST; do
    is_uint "${!v}" || die "${v%_} must be a non-negative integer, not '${!v}'"
done
((SIZE >= 64 && SIZE <= 1518)) || die "size $SIZE outside 64..1518"
((FLOWS >= 1 && SRC_PORT + FLOWS <= 65536)) || die "flows $FLOWS from port $SRC_PORT do not fit in 1..65535"
((THREADS >= 1 && SECONDS_ >= 1 && SECONDS_ <= 3600)) || die "threads >= 1, seconds in 1..3600"
((BURST >= 1)) || die "burst >= 1"
is_bench_ip "$DST_IP" || die "destination $DST_IP is outside 198.18.0.0/15"
is_bench_ip "$SRC_IP" || die "source $SRC_IP is outside 198.18.0.0/15"

# Rate in pps (0: unlimited), with k/M suffixes.
case $RATE in
    max) PPS=0 ;;
    *k | *K) PPS=$(awk -v r="${RATE%?}" 'BEGIN { printf "%d", r * 1000 + 0.5 }') ;;
    *M) PPS=$(awk -v r="${RATE%?}" 'BEGIN { printf "%d", r * 1000000 + 0.5 }') ;;
    *) PPS=$RATE ;;
esac
is_uint "$PPS" || die "rate '$RATE': a number of packets/s (100000, 100k, 1.5M) or max"
[[ $RATE == max ]] || ((PPS > 0)) || die "rate must be positive (or max)"
if [[ -z $COUNT ]]; then
    ((PPS > 0)) || die "-r max needs -n COUNT: every run is bounded in count as well as time"
    COUNT=$((PPS * SECONDS_))
fi
is_uint "$COUNT" && ((COUNT >= THREADS && COUNT <= 1000000000)) || die "count must be in THREADS..1e9"

PKT_SIZE=$((SIZE - 4)) # pktgen's pkt_size excludes the FCS the NIC appends
PGDIR=/proc/net/pktgen

# Writes one pktgen command and checks pktgen's verdict, as functions.sh does.
pg() {
    local file=$1 cmd=$2
    if ((DRY)); then
        echo "echo \"$cmd\" > $PGDIR/$file"
        return
    fi
    echo "$cmd" >"$PGDIR/$file"
    if ! grep -q "^Result: OK" "$PGDIR/$file" 2>/dev/null && [[ $file != pgctrl ]]; then
        die "pktgen refused '$cmd' on $file: $(grep Result: "$PGDIR/$file")"
    fi
}

if ((!DRY)); then
    ((EUID == 0)) || die "run as root"
    [[ -d /sys/class/net/$DEV ]] || die "no interface $DEV"
    if [[ ! -d $PGDIR ]]; then
        modprobe pktgen 2>/dev/null || true
        [[ -d $PGDIR ]] || die "$PGDIR missing: this kernel has no pktgen module (CONFIG_NET_PKTGEN)"
    fi
fi

pg pgctrl reset
for ((t = 0; t < THREADS; t++)); do
    # Spread count and rate; the first threads take the remainders.
    count=$((COUNT / THREADS + (t < COUNT % THREADS ? 1 : 0)))
    pps=$((PPS / THREADS + (t < PPS % THREADS ? 1 : 0)))
    dev="$DEV@$t"
    pg "kpktgend_$t" "rem_device_all"
    pg "kpktgend_$t" "add_device $dev"
    pg "$dev" "flag QUEUE_MAP_CPU"
    pg "$dev" "count $count"
    pg "$dev" "pkt_size $PKT_SIZE"
    pg "$dev" "clone_skb $CLONE"
    pg "$dev" "burst $BURST"
    pg "$dev" "delay 0"
    ((pps == 0)) || pg "$dev" "ratep $pps"
    pg "$dev" "dst_mac $DST_MAC"
    pg "$dev" "dst_min $DST_IP"
    pg "$dev" "dst_max $DST_IP"
    pg "$dev" "src_min $SRC_IP"
    pg "$dev" "src_max $SRC_IP"
    pg "$dev" "udp_dst_min $DST_PORT"
    pg "$dev" "udp_dst_max $DST_PORT"
    # Sequential (not UDPSRC_RND): the port advances by one per new skb and wraps at
    # udp_src_max, which pktgen treats as exclusive; min == max keeps one port.
    pg "$dev" "udp_src_min $SRC_PORT"
    pg "$dev" "udp_src_max $((SRC_PORT + FLOWS - (FLOWS == 1 ? 1 : 0)))"
    pg "$dev" "flag NO_TIMESTAMP"
done

echo "ztplane-pktgen: $DEV, $SIZE B (pkt_size $PKT_SIZE), $FLOWS flows, rate ${RATE} ($PPS pps, 0 = max)," \
    "$COUNT frames at most, ${SECONDS_} s at most, $THREADS thread(s)"
if ((DRY)); then
    echo "echo start > $PGDIR/pgctrl   # then: sleep $SECONDS_; echo stop > $PGDIR/pgctrl"
    exit 0
fi

# `start` blocks until every thread is done: stop it after SECONDS from the side.
cleanup() { echo stop >"$PGDIR/pgctrl" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
start=$(date +%s.%N)
echo start >"$PGDIR/pgctrl" &
runner=$!
(sleep "$SECONDS_" && echo stop >"$PGDIR/pgctrl") &
timer=$!
wait "$runner" || true
kill "$timer" 2>/dev/null || true
end=$(date +%s.%N)

total=0
for ((t = 0; t < THREADS; t++)); do
    result=$(grep -A2 "^Result:" "$PGDIR/$DEV@$t" || true)
    echo "$DEV@$t: $result"
    sent=$(sed -n 's/.*pkts-sofar: \([0-9]*\).*/\1/p' "$PGDIR/$DEV@$t" | head -1)
    total=$((total + ${sent:-0}))
done
awk -v n="$total" -v s="$start" -v e="$end" -v size="$SIZE" 'BEGIN {
    secs = e - s; pps = n / secs
    printf "sent %d frames in %.3f s: %.4f Mpps, %.3f Gbit/s L2 (frame+FCS), %.3f Gbit/s L1 (+20 B preamble/IFG)\n",
        n, secs, pps / 1e6, pps * size * 8 / 1e9, pps * (size + 20) * 8 / 1e9 }'
