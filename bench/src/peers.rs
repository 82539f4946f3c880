//! `cargo xtask bench peers`: how the node (`ztplane-node`, driven in-process on a virtual clock)
//! scales with 1,000, 10,000 and 100,000 peers; the baseline is the first (smallest) count of the
//! same run and every ratio is against it.
//!
//! Per peer count N, a fresh node that controls 4 public networks (so their configs come from its
//! own controller, locally) is given N peers, one network membership each (N member MACs), added
//! evenly over 60 simulated seconds while its timers run, and then:
//!
//! * **memory**: live heap bytes (a counting global allocator) of the node after the peers
//!   arrived, minus the node before, per peer; the data path snapshot's share is measured by
//!   cloning the published snapshot (the clone allocates the same tables; keys and configs are
//!   shared `Arc`s in both) and reported apart. Bench-side buffers are allocated outside both.
//! * **lookups**: ns per `DataPath::route_frame` (tap frame → destination peer, key, path:
//!   MAC → address is arithmetic on a ZeroTier network, then the peer, member and credential
//!   tables) over 65,536 frames to random members, and ns per `DataPath::receive` (source peer →
//!   key, dearmor, network, member, rules, frame in place) over 16,384 FRAME packets from random
//!   members, armored with each sender's key; each receive first restores the packet from a
//!   pristine copy. "crypto" is that copy plus `dearmor` alone with the same keys, so receive
//!   minus crypto is the lookup part. Best of 3 runs of 200 ms each.
//! * **timers**: CPU time of `handle_timeout` (plus draining transmits and events) per simulated
//!   second over 120 simulated seconds, stepping the clock to each `poll_timeout()`; the
//!   transmits it queued per simulated second, and how often it republished the snapshot. Every
//!   peer had frames both ways when it arrived and none since: within the 500 s activity
//!   window, so the node keeps its path alive (full HELLO every 60 s, ECHO after 14 s of send
//!   silence — the most keepalive work an active peer costs); none is silent long enough to
//!   expire in the window (paths 243 s, peers 500 s), so expiry shows as housekeeping scans.
//! * **hot lookups**: the same with traffic to and from 1,000 active peers among the N, the
//!   working set of a busy gateway: what the tables cost once cache capacity is taken out.
//! * **rebuild**: ms to republish the snapshot after one change (a new peer), best of 3.
//!
//! Synthetic: peer identities have random public keys and the address taken from the first
//! key bytes (never validated), per-peer keys are 48 random bytes (what x25519 agreement would
//! produce), and the peers enter the node through the `bench` feature hooks of `ztplane-node`
//! (`bench_insert_peer`: the state a HELLO / OK(HELLO) exchange leaves, with the direct path;
//! `bench_push_credentials`: our credentials pushed, as before a first unicast frame). No replies
//! come back: the HELLOs and ECHOs of the timer window go unanswered.
//!
//! Options: `--peers 1000,10000,100000` (the counts; the first is the baseline), `--sim-s N`
//! simulated seconds of the timer window (default 120).
use crate::plot::{Figure, LineSeries, Lines, Panel, format_tick, number};
use anyhow::{Context, Result, bail, ensure};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant as WallClock};
use ztplane_crypto::{Address, CipherSuite, Identity, PEER_KEY_LEN, PeerKey};
use ztplane_node::datapath::{DataPath, RxVerdict, TxVerdict, seal_frame};
use ztplane_node::{Controller, Event, Instant, Mac, NetworkId, Node, NodeConfig};
use ztplane_protocol::dictionary::Dictionary;
use ztplane_protocol::header::MAX_PACKET_LEN;
use ztplane_protocol::verbs::ErrorCode;
use ztplane_protocol::world::{WORLD_TYPE_PLANET, World};

/// Live heap bytes of the whole process (all benchmarks run under it; one relaxed atomic add
/// per allocation).
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to `System` unchanged; only a counter is updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

const DEFAULT_COUNTS: [usize; 3] = [1_000, 10_000, 100_000];
/// Networks the node controls; peer i is a member of network i % NETWORKS (a network holds at
/// most 65,536 memberships, so 100,000 peers cannot all be members of one).
const NETWORKS: u64 = 4;
/// Peers arrive evenly over this long, while the timers run.
const ARRIVAL_MS: u64 = 60_000;
const ARRIVAL_STEP_MS: u64 = 100;
/// Active peers of the fixed-working-set lookups: how the tables scale once cache capacity is
/// taken out (the cold case draws from all N peers, so it also measures memory misses).
const HOT_PEERS: usize = 1_000;
const ROUTE_POOL: usize = 65_536;
const RECEIVE_POOL: usize = 16_384;
const FRAME_LEN: usize = 64;
const PER_MEASUREMENT: Duration = Duration::from_millis(200);
const REPS: usize = 3;
/// Our local socket and underlay address.
const LOCAL: u32 = 1;

struct Options {
    counts: Vec<usize>,
    sim_s: u64,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options { counts: DEFAULT_COUNTS.to_vec(), sim_s: 120 };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = it.next().with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--peers" => {
                options.counts = value
                    .split(',')
                    .map(|n| n.trim().replace('_', "").parse::<usize>().with_context(|| format!("bad count {n:?}")))
                    .collect::<Result<_>>()?;
                ensure!(options.counts.iter().all(|&n| (1..=120_000).contains(&n)), "counts must be 1..=120000");
            }
            "--sim-s" => options.sim_s = value.parse::<u64>().context("bad value for --sim-s")?.max(1),
            other => bail!("unknown option {other:?} (known: --peers N,N,..., --sim-s N)"),
        }
    }
    Ok(options)
}

/// splitmix64: cheap, seeded, good enough to pick keys and peers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The node's own controller: every member gets the same public, accept-all config.
struct BenchController;

impl Controller for BenchController {
    fn request(
        &mut self,
        _now: Instant,
        network: NetworkId,
        member: &Identity,
        _metadata: &[u8],
    ) -> Option<Result<Vec<u8>, ErrorCode>> {
        let mut d = Dictionary::new();
        d.set("v", b"7".to_vec());
        d.set("nwid", format!("{:016x}", network.0));
        d.set("ts", "1");
        d.set("ctmd", "1b7740");
        d.set("r", "1");
        d.set("id", format!("{:010x}", member.address().as_u64()));
        d.set("f", "2");
        d.set("ml", "20");
        d.set("t", "1");
        d.set("n", "bench");
        d.set("mtu", "af0");
        // One rule: ACCEPT.
        d.set("R", vec![0x01, 0x00]);
        Some(Ok(d.encode()))
    }
}

fn network_ids(me: Address) -> Vec<NetworkId> {
    (1..=NETWORKS).map(|i| NetworkId((me.as_u64() << 24) | i)).collect()
}

/// A planet without roots: the node has no upstream to keep alive or relay through.
fn empty_planet() -> World {
    World::unsigned(WORLD_TYPE_PLANET, 7, Vec::new())
}

/// Peer i's underlay address: one per peer, 10.0.0.0/8 port 9993.
fn underlay(i: usize) -> SocketAddr {
    let i = i as u32 + 2;
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 9993))
}

/// What the host does with the node's output: counted and dropped.
#[derive(Default)]
struct Drained {
    transmits: u64,
    rebuilds: u64,
}

fn drain(node: &mut Node, into: &mut Drained) {
    while let Some(t) = node.poll_transmit() {
        black_box(t.data.len());
        into.transmits += 1;
    }
    while let Some(e) = node.poll_event() {
        if matches!(e, Event::DataPathChanged) {
            into.rebuilds += 1;
        }
    }
}

/// A node with N synthetic peers, built the way peers would arrive over a minute.
struct Setup {
    node: Node,
    me: Address,
    networks: Vec<NetworkId>,
    /// Peer addresses in arrival order; peer i is a member of `networks[i % NETWORKS]`.
    peers: Vec<Address>,
    now: Instant,
    node_bytes: isize,
    snapshot_bytes: isize,
    rng: Rng,
}

fn build(identity: &Identity, count: usize, seed: u64) -> Result<Setup> {
    let mut rng = Rng(seed);
    // Bench-side bookkeeping is allocated before the node is measured.
    let mut peers = Vec::with_capacity(count);
    let me = identity.address();
    let networks = network_ids(me);
    let start = Instant::from_millis(1_000_000);
    let before = live_bytes();
    let config = NodeConfig {
        identity: identity.clone(),
        planet: empty_planet(),
        moons: Vec::new(),
        cached_peers: Vec::new(),
        networks: networks.iter().map(|n| (*n, Vec::new())).collect(),
        seed: [7; 32],
    };
    let mut node = Node::new(config, start).context("node")?;
    node.set_local_addresses(vec![(LOCAL, SocketAddr::from(([10, 0, 0, 1], 9993)))]);
    node.set_controller(Box::new(BenchController));
    node.handle_timeout(start);
    let mut sink = Drained::default();
    drain(&mut node, &mut sink);
    ensure!(networks.iter().all(|n| node.network(*n).is_some_and(|n| n.config.is_some())), "networks not configured");
    let empty_node = live_bytes() - before;

    // Arrivals: count / (ARRIVAL_MS / ARRIVAL_STEP_MS) peers per step, timers as they fall due.
    let steps = (ARRIVAL_MS / ARRIVAL_STEP_MS) as usize;
    let mut now = start;
    let mut added = 0usize;
    let mut public_key = [0u8; 64];
    let mut key = [0u8; PEER_KEY_LEN];
    for step in 1..=steps {
        now = start.add_ms(step as u64 * ARRIVAL_STEP_MS);
        let target = count * step / steps;
        while added < target {
            rng.fill(&mut public_key);
            let address = Address::from_bytes(&public_key[..5].try_into().expect("5 bytes"));
            if address.is_reserved() || address.as_u64() == 0 {
                continue;
            }
            rng.fill(&mut key);
            let identity = Identity::from_parts(address, public_key, None);
            let remote = underlay(added);
            if !node.bench_insert_peer(identity, PeerKey::from_bytes(key), LOCAL, remote, now) {
                continue;
            }
            // Frames both ways as it arrived, after our credentials went out.
            node.bench_push_credentials(now, networks[added % networks.len()], address);
            node.note_frames(now, address, LOCAL, remote, true);
            node.note_sent(now, address, LOCAL, remote);
            peers.push(address);
            added += 1;
            if added.is_multiple_of(1024) {
                drain(&mut node, &mut sink);
            }
        }
        if node.poll_timeout() <= now {
            node.handle_timeout(now);
        }
        drain(&mut node, &mut sink);
    }
    node.bench_publish(now);
    drain(&mut node, &mut sink);
    ensure!(node.peers().count() == count, "{} peers in the node, {count} expected", node.peers().count());
    let total = live_bytes() - before - empty_node;
    let snapshot_bytes = {
        let snapshot = node.data_path();
        let before_clone = live_bytes();
        let copy: DataPath = (*snapshot).clone();
        let bytes = live_bytes() - before_clone;
        drop(copy);
        bytes
    };
    ensure!(node.data_path().peers.len() == count, "snapshot holds {} peers", node.data_path().peers.len());
    Ok(Setup { node, me, networks, peers, now, node_bytes: total - snapshot_bytes, snapshot_bytes, rng })
}

/// Best ns per op over REPS runs of PER_MEASUREMENT; `op` does `batch` ops per call.
fn measure(batch: u64, mut op: impl FnMut()) -> f64 {
    for _ in 0..64 {
        op();
    }
    let mut best = f64::MAX;
    for _ in 0..REPS {
        let start = WallClock::now();
        let mut calls = 0u64;
        while start.elapsed() < PER_MEASUREMENT {
            for _ in 0..8 {
                op();
            }
            calls += 8;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / (calls * batch) as f64);
    }
    best
}

struct Lookups {
    /// One random `DataPath::peers` get alone: the floor any hash-table lookup of a peer pays.
    peer_get_ns: f64,
    route_frame_ns: f64,
    receive_ns: f64,
    crypto_ns: f64,
}

/// Lookups for frames and packets of `active` members (the first `active` of the node's
/// peers; all of them for the cold, whole-table case).
fn lookups(s: &mut Setup, active: usize) -> Result<Lookups> {
    let data_path = s.node.data_path();
    let our_macs: Vec<_> =
        s.networks.iter().map(|n| s.node.network(*n).map(|n| n.mac)).collect::<Option<_>>().context("network")?;
    let members = active.min(s.peers.len());
    let member = |rng: &mut Rng| {
        let i = rng.below(members);
        (i % s.networks.len(), s.peers[i])
    };

    // Tap frames to random members: (network, frame).
    let mut frames: Vec<(NetworkId, [u8; FRAME_LEN])> = Vec::with_capacity(ROUTE_POOL);
    for _ in 0..ROUTE_POOL {
        let (n, dest) = member(&mut s.rng);
        let mut frame = [0u8; FRAME_LEN];
        frame[0..6].copy_from_slice(&s.networks[n].mac_for(&dest).octets());
        frame[6..12].copy_from_slice(&our_macs[n].octets());
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        s.rng.fill(&mut frame[14..]);
        frames.push((s.networks[n], frame));
    }
    let mut random = {
        let mut r = Rng(1);
        move || r.next() as u32
    };
    let now = s.now;
    let mut cursor = ztplane_bond::WorkerCursor::new(0);
    let (n0, f0) = &frames[0];
    let verdict = data_path.route_frame(now, *n0, f0, &mut random, &mut cursor);
    ensure!(matches!(verdict, TxVerdict::Send { .. }), "route_frame did not send: {verdict:?}");
    let mut i = 0usize;
    let route_frame_ns = measure(64, || {
        for _ in 0..64 {
            let (n, frame) = &frames[i % ROUTE_POOL];
            black_box(data_path.route_frame(now, *n, frame, &mut random, &mut cursor));
            i += 1;
        }
    });
    let dests: Vec<Address> = frames
        .iter()
        .map(|(n, f)| n.address_for(Mac::from_octets(f[0..6].try_into().expect("6"))))
        .collect::<Option<_>>()
        .context("mac")?;
    drop(frames);
    let mut d = 0usize;
    let peer_get_ns = measure(64, || {
        for _ in 0..64 {
            black_box(data_path.peers.get(&dests[d % ROUTE_POOL]).map(|r| r.via));
            d += 1;
        }
    });
    drop(dests);

    // FRAME packets from random members, armored with each sender's key.
    let mut packets: Vec<(Vec<u8>, Arc<PeerKey>)> = Vec::with_capacity(RECEIVE_POOL);
    let mut out = vec![0u8; MAX_PACKET_LEN];
    for _ in 0..RECEIVE_POOL {
        let (n, source) = member(&mut s.rng);
        let key = s.node.peer(source).context("peer")?.key.clone();
        let mut frame = [0u8; FRAME_LEN];
        frame[0..6].copy_from_slice(&our_macs[n].octets());
        frame[6..12].copy_from_slice(&s.networks[n].mac_for(&source).octets());
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        s.rng.fill(&mut frame[14..]);
        let id = s.rng.next().to_be_bytes();
        let len = seal_frame(source, s.me, &key, CipherSuite::AesGmacSiv, id, s.networks[n], &frame, &mut out)
            .context("seal_frame")?;
        packets.push((out[..len].to_vec(), key));
    }
    let mut buf = vec![0u8; MAX_PACKET_LEN];
    let arrived = (1, std::net::SocketAddr::from(([198, 18, 0, 2], 9993)));
    let first = &packets[0].0;
    buf[..first.len()].copy_from_slice(first);
    let verdict = data_path.receive(&mut buf[..first.len()], arrived, &mut random);
    ensure!(matches!(verdict, RxVerdict::Deliver { .. }), "receive did not deliver: {verdict:?}");
    let mut j = 0usize;
    let receive_ns = measure(16, || {
        for _ in 0..16 {
            let (packet, _) = &packets[j % RECEIVE_POOL];
            let b = &mut buf[..packet.len()];
            b.copy_from_slice(packet);
            black_box(data_path.receive(b, arrived, &mut random));
            j += 1;
        }
    });
    let mut k = 0usize;
    let crypto_ns = measure(16, || {
        for _ in 0..16 {
            let (packet, key) = &packets[k % RECEIVE_POOL];
            let b = &mut buf[..packet.len()];
            b.copy_from_slice(packet);
            black_box(ztplane_crypto::dearmor(key, b).is_ok());
            k += 1;
        }
    });
    Ok(Lookups { peer_get_ns, route_frame_ns, receive_ns, crypto_ns })
}

struct Timers {
    us_per_sim_s: f64,
    transmits_per_sim_s: f64,
    rebuilds_per_sim_s: f64,
    calls: u64,
}

/// Runs the node's timers for `sim_s` simulated seconds, as the shell would: at each deadline.
fn timers(s: &mut Setup, sim_s: u64) -> Timers {
    let end = s.now.add_ms(sim_s * 1_000);
    let mut out = Drained::default();
    let mut busy = Duration::ZERO;
    let mut calls = 0u64;
    let mut now = s.now;
    let mut next_report = now.add_ms(30_000);
    loop {
        now = s.node.poll_timeout().max(now.add_ms(1));
        if now > end {
            break;
        }
        let start = WallClock::now();
        s.node.handle_timeout(now);
        drain(&mut s.node, &mut out);
        busy += start.elapsed();
        calls += 1;
        if now >= next_report {
            eprintln!("    timers: {} of {sim_s} simulated s", (now.as_millis() - s.now.as_millis()) / 1_000);
            next_report = next_report.add_ms(30_000);
        }
    }
    s.now = end;
    Timers {
        us_per_sim_s: busy.as_secs_f64() * 1e6 / sim_s as f64,
        transmits_per_sim_s: out.transmits as f64 / sim_s as f64,
        rebuilds_per_sim_s: out.rebuilds as f64 / sim_s as f64,
        calls,
    }
}

/// ms to republish the snapshot after one change (a new peer), best of 3.
fn rebuild_ms(s: &mut Setup) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut public_key = [0u8; 64];
        let mut key = [0u8; PEER_KEY_LEN];
        let address = loop {
            s.rng.fill(&mut public_key);
            let a = Address::from_bytes(&public_key[..5].try_into().expect("5 bytes"));
            if !a.is_reserved() && a.as_u64() != 0 && s.node.peer(a).is_none() {
                break a;
            }
        };
        s.rng.fill(&mut key);
        let identity = Identity::from_parts(address, public_key, None);
        s.node.bench_insert_peer(identity, PeerKey::from_bytes(key), LOCAL, underlay(s.peers.len() + 1), s.now);
        let start = WallClock::now();
        s.node.bench_publish(s.now);
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
        drain(&mut s.node, &mut Drained::default());
    }
    best
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    eprintln!("peers: generating our identity (memory-hard, once)");
    let identity = Identity::generate().context("identity")?;
    let base_count = options.counts[0];
    println!(
        "peers: the node with N peers (one member MAC each, on {NETWORKS} networks); ratios (x) vs {base_count} peers"
    );
    println!(
        "  lookups: best of {REPS} × {PER_MEASUREMENT:?}, random members ({ROUTE_POOL} frames, {RECEIVE_POOL} packets of \
         {} bytes); receive = restore copy + DataPath::receive, crypto = restore copy + dearmor",
        FRAME_LEN - 14 + 38
    );
    println!(
        "  timers: {} simulated s; peers had frames both ways on arrival (within 60 s before), none since: \
         keepalives (HELLO/60 s, ECHO after 14 s silent), no replies",
        options.sim_s
    );
    println!(
        "{:>7} {:>7} {:>9} {:>9} {:>8} {:>15} {:>15} {:>15} {:>8} {:>15} {:>13} {:>16} {:>8} {:>9}",
        "peers",
        "MACs",
        "node B/pr",
        "snap B/pr",
        "rebld ms",
        "peer get ns",
        "route_frame ns",
        "receive ns",
        "crypto",
        "rx-crypto ns",
        "timer µs/s",
        "µs/peer/s",
        "tx/s",
        "rebld/s"
    );
    let mut records = Vec::new();
    let mut base: Option<(f64, f64, f64, f64, f64)> = None;
    let mut hot_base: Option<(f64, f64)> = None;
    let mut hot_lines = Vec::new();
    for &count in &options.counts {
        let started = WallClock::now();
        eprintln!("  {count} peers: arriving over {} simulated s ...", ARRIVAL_MS / 1_000);
        let mut setup = build(&identity, count, 0x5eed ^ count as u64)?;
        eprintln!("  {count} peers: lookups ...");
        let l = lookups(&mut setup, count)?;
        let hot = lookups(&mut setup, HOT_PEERS)?;
        eprintln!("  {count} peers: timers ...");
        let t = timers(&mut setup, options.sim_s);
        let rebuild = rebuild_ms(&mut setup);
        let node_per_peer = setup.node_bytes as f64 / count as f64;
        let snap_per_peer = setup.snapshot_bytes as f64 / count as f64;
        let lookup_rx = (l.receive_ns - l.crypto_ns).max(0.0);
        let per_peer = t.us_per_sim_s / count as f64;
        let (b_get, b_route, b_rx, b_lookup_rx, b_per_peer) =
            *base.get_or_insert((l.peer_get_ns, l.route_frame_ns, l.receive_ns, lookup_rx, per_peer));
        let (b_hot_route, b_hot_rx) = *hot_base.get_or_insert((hot.route_frame_ns, hot.receive_ns));
        let ratio = |v: f64, b: f64| if b > 0.0 { v / b } else { f64::NAN };
        println!(
            "{:>7} {:>7} {:>9.0} {:>9.0} {:>8.2} {:>8.1} ({:>4.2}x) {:>8.1} ({:>4.2}x) {:>8.1} ({:>4.2}x) {:>8.1} {:>7.1} ({:>4.2}x) {:>13.0} {:>9.3} ({:>4.2}x) {:>8.1} {:>9.3}",
            count,
            count,
            node_per_peer,
            snap_per_peer,
            rebuild,
            l.peer_get_ns,
            ratio(l.peer_get_ns, b_get),
            l.route_frame_ns,
            ratio(l.route_frame_ns, b_route),
            l.receive_ns,
            ratio(l.receive_ns, b_rx),
            l.crypto_ns,
            lookup_rx,
            ratio(lookup_rx, b_lookup_rx),
            t.us_per_sim_s,
            per_peer,
            ratio(per_peer, b_per_peer),
            t.transmits_per_sim_s,
            t.rebuilds_per_sim_s,
        );
        records.push(serde_json::json!({
            "peers": count,
            "macs": count,
            "networks": NETWORKS,
            "baseline_peers": base_count,
            "bytes_per_peer": node_per_peer.round(),
            "snapshot_bytes_per_peer": snap_per_peer.round(),
            "snapshot_rebuild_ms": round3(rebuild),
            "peer_get_ns": round1(l.peer_get_ns),
            "peer_get_ratio": round3(ratio(l.peer_get_ns, b_get)),
            "route_frame_ns": round1(l.route_frame_ns),
            "route_frame_ratio": round3(ratio(l.route_frame_ns, b_route)),
            "receive_ns": round1(l.receive_ns),
            "receive_ratio": round3(ratio(l.receive_ns, b_rx)),
            "receive_crypto_ns": round1(l.crypto_ns),
            "receive_lookup_ns": round1(lookup_rx),
            "receive_lookup_ratio": round3(ratio(lookup_rx, b_lookup_rx)),
            "timer_sim_s": options.sim_s,
            "timer_calls": t.calls,
            "timer_us_per_sim_s": round1(t.us_per_sim_s),
            "timer_us_per_peer_per_sim_s": round3(per_peer),
            "timer_per_peer_ratio": round3(ratio(per_peer, b_per_peer)),
            "transmits_per_sim_s": round1(t.transmits_per_sim_s),
            "transmits_per_peer_per_sim_s": round3(t.transmits_per_sim_s / count as f64),
            "snapshot_rebuilds_per_sim_s": round3(t.rebuilds_per_sim_s),
            "hot_peers": HOT_PEERS.min(count),
            "hot_route_frame_ns": round1(hot.route_frame_ns),
            "hot_route_frame_ratio": round3(ratio(hot.route_frame_ns, b_hot_route)),
            "hot_receive_ns": round1(hot.receive_ns),
            "hot_receive_ratio": round3(ratio(hot.receive_ns, b_hot_rx)),
        }));
        hot_lines.push(format!(
            "{:>7} {:>7} {:>8.1} ({:>4.2}x) {:>8.1} ({:>4.2}x)",
            count,
            HOT_PEERS.min(count),
            hot.route_frame_ns,
            ratio(hot.route_frame_ns, b_hot_route),
            hot.receive_ns,
            ratio(hot.receive_ns, b_hot_rx)
        ));
        eprintln!("  {count} peers: done in {:.1} s", started.elapsed().as_secs_f64());
        drop(setup);
    }
    println!();
    println!("the same lookups with a fixed working set: traffic to and from {HOT_PEERS} active peers among N");
    println!("{:>7} {:>7} {:>15} {:>15}", "peers", "active", "route_frame ns", "receive ns");
    for line in &hot_lines {
        println!("{line}");
    }
    let path = crate::report::write("peers", &records)?;
    println!("written to {}", path.display());
    let plot = crate::report::plot("peers", &records, figure)?;
    println!("plot: {}", plot.display());
    Ok(())
}

/// The chart of `bench peers`: against the peer count (log scale, the first count being the baseline),
/// ns per lookup with random members among all N (cold) and among 1,000 active ones (hot), heap bytes
/// per peer, and timer CPU per peer.
pub fn figure(records: &[serde_json::Value]) -> Result<Figure> {
    ensure!(!records.is_empty(), "no peers records");
    let series = |name: &str, key: &str| -> Result<LineSeries> {
        let points = records.iter().map(|r| Ok((number(r, "peers")?, number(r, key)?))).collect::<Result<_>>()?;
        Ok(LineSeries { name: name.into(), baseline: false, points })
    };
    let base = number(&records[0], "baseline_peers").or_else(|_| number(&records[0], "peers"))?;
    let hot = records[0]["hot_peers"].as_u64().unwrap_or(HOT_PEERS as u64);
    let lines = |title: String, y_label: &str, log_y: bool, series: Vec<LineSeries>| {
        Panel::Lines(Lines {
            title,
            x_label: "peers in the node (log)".into(),
            y_label: y_label.into(),
            log_x: true,
            log_y,
            series,
            baseline_x: Some((base, format!(" baseline: {} peers", format_tick(base)))),
            ratio_to_first: true,
        })
    };
    Ok(Figure {
        title: "bench peers: how the node scales with its peer count".into(),
        notes: vec!["one member MAC per peer; labels: value (× the baseline count's value); lower is better".into()],
        columns: 2,
        panels: vec![
            lines(
                "lookups, random member among all N (cold)".into(),
                "ns per lookup (log)",
                true,
                vec![
                    series("route_frame", "route_frame_ns")?,
                    series("receive", "receive_ns")?,
                    series("receive minus crypto", "receive_lookup_ns")?,
                    series("peer table get", "peer_get_ns")?,
                ],
            ),
            lines(
                format!("lookups, random member among {} active (hot)", format_tick(hot as f64)),
                "ns per lookup (log)",
                true,
                vec![series("route_frame", "hot_route_frame_ns")?, series("receive", "hot_receive_ns")?],
            ),
            lines(
                "heap memory per peer".into(),
                "bytes per peer",
                false,
                vec![
                    series("node (without snapshot)", "bytes_per_peer")?,
                    series("data path snapshot", "snapshot_bytes_per_peer")?,
                ],
            ),
            lines(
                "timers: keepalives and housekeeping".into(),
                "CPU µs per peer per simulated s",
                false,
                vec![series("handle_timeout", "timer_us_per_peer_per_sim_s")?],
            ),
        ],
    })
}
