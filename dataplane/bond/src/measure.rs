//! Per-path measurement exchanges (bonding spec §4.1, §4.2; protocol spec §8.8, §8.13).
//!
//! Two sources feed [`crate::quality::LinkQuality`]:
//! * **QOS_MEASUREMENT** in zerotier-one 1.14.1's format: the receiver keeps (packet ID, arrival time) of
//!   sampled packets (odd big-endian IDs, not ACK/QOS) and reports `(id, holding_ms)` records on the same
//!   path; the sender turns each record into an RTT sample (`now - sent - holding`, computed without
//!   zerotier-one's 16-bit wrap-around, §11.9). A zerotier-one peer therefore feeds our latency estimate and
//!   we feed its.
//! * **Path acks** between two ztplane nodes: the receiver reports, per path, the cumulative count and
//!   bytes of data packets received and the ID of the newest one with its holding time. The sender knows
//!   how many data packets it had logged on the path up to that ID, so loss is counted, not sampled
//!   (judged a window behind, as the wire's order is only nearly the log's: [`REORDER_WINDOW_US`]),
//!   and an overdue ack is the fastest evidence that a path died.
//!
//! The byte codecs for these messages live in `ztplane-protocol`; the engine deals in typed values.

use std::collections::{HashMap, VecDeque};

/// One QOS_MEASUREMENT record (protocol spec §8.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QosRecord {
    /// The packet ID as a big-endian-decoded u64.
    pub packet_id: u64,
    /// Milliseconds between the packet's arrival and the report, truncated to 16 bits.
    pub holding_ms: u16,
}

/// Records per QOS_MEASUREMENT packet (`ZT_QOS_TABLE_SIZE`).
pub const QOS_RECORDS_PER_PACKET: usize = 140;
/// Pending sampled arrivals kept per path (`ZT_QOS_MAX_PENDING_RECORDS`).
pub const QOS_MAX_PENDING: usize = 420;
/// Sampled sends remembered per path for matching QoS records.
const QOS_SENT_MEMORY: usize = 4096;
/// How far the wire's order may stray from the send log's. The log orders packets by when a
/// worker sealed them, the wire by when the worker that owns the socket sent them: a core
/// preempted in between (a busy 2-core host: tens of ms) puts packets on the wire after ones
/// logged later, so an ack can name a packet logged after some not yet sent. Loss is therefore
/// judged only for packets logged this long before the acked one (the peer's count then bounds
/// how many of them arrived from above: the packets it counts beyond them only hide loss for a
/// while, they never invent it), and a shortfall must persist this long before it is loss.
pub const REORDER_WINDOW_US: u64 = 50_000;
/// How far the peer's count may run ahead of our log (packets whose send record never reached
/// the bond) before the excess is forgotten: it must not hide later losses for long.
const MAX_DEFICIT_CREDIT: i64 = 1024;
/// Data packets remembered per path for matching acks (send time and ID by sequence number): 64 KiB,
/// enough for 200 ms of round trip at 20 000 packets/s on one path.
pub const SENT_RING: usize = 4096;

/// zerotier-one's sampling rule (§3): odd IDs, excluding the measurement verbs themselves.
pub fn is_qos_sampled(packet_id: u64) -> bool {
    packet_id & 1 == 1
}

/// A ztplane path acknowledgement (see module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathAck {
    /// Data packets received on this path since the bond started.
    pub received_count: u64,
    pub received_bytes: u64,
    /// The newest data packet received on this path.
    pub newest_packet_id: u64,
    /// Microseconds between that packet's arrival and this ack.
    pub holding_us: u32,
}

/// One data packet a worker sent, recorded in the worker's own buffer and handed to the bond's owner in
/// batches ([`crate::Bond::on_data_sent_batch`]) so that sending cores never touch the bond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRecord {
    pub path: crate::path::PathId,
    pub packet_id: u64,
    pub bytes: u32,
    pub at_us: u64,
}

/// What kind of packet crossed the path, for accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketKind {
    /// FRAME / EXT_FRAME / MULTICAST_FRAME: counted for loss, throughput, acks.
    Data,
    /// Other verbs (ECHO, OK, HELLO, ...): sampled for QoS only.
    Control,
    /// QOS_MEASUREMENT, ACK and ztplane path acks: never sampled (§3).
    Measurement,
}

/// Sender-side log of what went out on a path.
pub struct SentLog {
    /// Data packets sent so far (the sequence number of the next one).
    pub data_sent: u64,
    pub data_bytes_sent: u64,
    /// When anything was last sent on the path.
    pub last_sent_us: Option<u64>,
    /// (packet ID, send time) of data packets by sequence number modulo [`SENT_RING`].
    ring: Box<[(u64, u64)]>,
    /// Sampled packets (data and control) awaiting a QoS record: ID -> send time.
    qos_pending: HashMap<u64, u64>,
    qos_order: VecDeque<u64>,
    /// Sampled packets sent since the last QoS packet arrived (to know whether the peer's table could
    /// have overflowed, which would make missing records meaningless).
    pub sampled_since_qos: u64,
    /// Data packets logged up to the newest acked one (or all of them, once the peer's count
    /// covers them), the peer's count of data packets received on the path and of their bytes.
    pub acked_seq: u64,
    pub peer_received: u64,
    pub acked_bytes: u64,
    /// Loss accounting (see [`REORDER_WINDOW_US`]): packets logged up to `judged_seq` are judged;
    /// deficit = judged_seq − peer_received − `deficit_offset`; (time, deficit) samples covering
    /// the last window; packets judged lost.
    pub judged_seq: u64,
    deficit_offset: i64,
    deficits: VecDeque<(u64, i64)>,
    pub lost: u64,
    /// Outcomes handed to the quality estimate so far (cumulative, for increments), and the
    /// offsets that keep them continuous across an outage.
    known_recorded: u64,
    delivered_recorded: u64,
    known_offset: i64,
    lost_offset: i64,
    /// The path was down: the next ack only re-establishes the reference point. Packets lost in the
    /// outage are the outage's (availability), not the link's loss ratio once it is back.
    pub resync_on_next_ack: bool,
    /// The newest ack that named a packet not (yet) in the log, and when it arrived. Send
    /// records reach the bond in batches, after the workers' batch and the owner's reordering
    /// horizon, while on a LAN the peer's ack for a packet can be back sooner: such an ack is
    /// applied when its packet's record comes. A newer ack replaces it.
    pub held_ack: Option<(PathAck, u64)>,
    /// Path acks applied at once, applied once their packet's record came, and never matched
    /// (replaced while held, or naming a packet the log never had); when the last one came.
    pub acks_matched: u64,
    pub acks_late: u64,
    pub acks_unmatched: u64,
    pub last_ack_us: Option<u64>,
}

impl SentLog {
    pub fn new() -> Self {
        SentLog {
            data_sent: 0,
            data_bytes_sent: 0,
            last_sent_us: None,
            ring: vec![(0u64, 0u64); SENT_RING].into_boxed_slice(),
            qos_pending: HashMap::new(),
            qos_order: VecDeque::new(),
            sampled_since_qos: 0,
            acked_seq: 0,
            peer_received: 0,
            acked_bytes: 0,
            judged_seq: 0,
            deficit_offset: 0,
            deficits: VecDeque::new(),
            lost: 0,
            known_recorded: 0,
            delivered_recorded: 0,
            known_offset: 0,
            lost_offset: 0,
            resync_on_next_ack: false,
            held_ack: None,
            acks_matched: 0,
            acks_late: 0,
            acks_unmatched: 0,
            last_ack_us: None,
        }
    }

    pub fn record(&mut self, kind: PacketKind, packet_id: u64, bytes: usize, now_us: u64) {
        self.last_sent_us = Some(now_us);
        if kind == PacketKind::Data {
            // Send times must not decrease along the sequence (`count_sent_before` searches them):
            // a record that comes late from another core takes its predecessor's time.
            let previous = self.data_sent.checked_sub(1).map_or(0, |s| self.ring[(s % SENT_RING as u64) as usize].1);
            let now_us = now_us.max(previous);
            self.ring[(self.data_sent % SENT_RING as u64) as usize] = (packet_id, now_us);
            self.data_sent += 1;
            self.data_bytes_sent += bytes as u64;
        }
        if kind != PacketKind::Measurement && is_qos_sampled(packet_id) {
            if self.qos_order.len() >= QOS_SENT_MEMORY
                && let Some(old) = self.qos_order.pop_front()
            {
                self.qos_pending.remove(&old);
            }
            self.qos_pending.insert(packet_id, now_us);
            self.qos_order.push_back(packet_id);
            self.sampled_since_qos += 1;
        }
    }

    /// Send time of the data packet with sequence number `seq`, if still remembered.
    pub fn send_time_of_seq(&self, seq: u64) -> Option<u64> {
        if seq >= self.data_sent || self.data_sent - seq > SENT_RING as u64 {
            return None;
        }
        Some(self.ring[(seq % SENT_RING as u64) as usize].1)
    }

    /// How many data packets from sequence `from_seq` on were sent at or before `cutoff_us` (send times
    /// grow with the sequence, so this is a binary search over the remembered ones).
    pub fn count_sent_before(&self, from_seq: u64, cutoff_us: u64) -> u64 {
        let oldest = self.data_sent.saturating_sub(SENT_RING as u64);
        let (mut lo, mut hi) = (from_seq.max(oldest), self.data_sent);
        if lo >= hi {
            return 0;
        }
        let first = lo;
        // Find the first sequence sent after the cutoff.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ring[(mid % SENT_RING as u64) as usize].1 <= cutoff_us {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo - first
    }

    /// Sequence number and send time of the data packet `packet_id`, searching newest first.
    pub fn find_data(&self, packet_id: u64) -> Option<(u64, u64)> {
        let remembered = self.data_sent.min(SENT_RING as u64);
        (1..=remembered).map(|back| self.data_sent - back).find_map(|seq| {
            let (id, at) = self.ring[(seq % SENT_RING as u64) as usize];
            (id == packet_id).then_some((seq, at))
        })
    }

    /// The deficit if packets up to `logged` were acked with the peer counting `received`.
    pub fn deficit_at(&self, logged: u64, received: u64) -> i64 {
        logged as i64 - received as i64 - self.deficit_offset
    }

    /// The deficit now (packets judged and not counted by the peer).
    pub fn deficit(&self) -> i64 {
        self.deficit_at(self.judged_seq, self.peer_received)
    }

    /// No newer ack for a whole window: the last count is final for the packets acked so far,
    /// which are judged now.
    pub fn judge_quiet(&mut self, now_us: u64) {
        // (After an outage nothing is judged until an ack re-establishes the reference.)
        if !self.resync_on_next_ack
            && self.judged_seq < self.acked_seq
            && self.last_ack_us.is_some_and(|t| now_us >= t + REORDER_WINDOW_US)
        {
            self.judged_seq = self.acked_seq;
            self.note_deficit(now_us);
        }
    }

    /// Judges the packets logged up to the last one sent at or before `cutoff_us` (at most up to
    /// `acked_seq`).
    pub fn judge_until(&mut self, cutoff_us: u64) {
        let from = self.judged_seq;
        let upto = from.max(self.data_sent.saturating_sub(SENT_RING as u64)) + self.count_sent_before(from, cutoff_us);
        self.judged_seq = upto.min(self.acked_seq).max(self.judged_seq);
    }

    /// Packets currently short and not yet judged (the deficit beyond what is counted lost).
    pub fn pending_loss(&self) -> u64 {
        (self.deficit() - self.lost as i64).max(0) as u64
    }

    /// Records the deficit after an ack at `now_us`. A count running ahead of the log by more
    /// than [`MAX_DEFICIT_CREDIT`] is forgotten beyond that.
    pub fn note_deficit(&mut self, now_us: u64) {
        let floor = self.lost as i64 - MAX_DEFICIT_CREDIT;
        let d = self.deficit();
        if d < floor {
            self.deficit_offset -= floor - d;
        }
        self.deficits.push_back((now_us, self.deficit()));
        self.prune_deficits(now_us);
    }

    /// Keeps the samples in effect during the last window: those after its start and the one in
    /// effect at its start.
    fn prune_deficits(&mut self, now_us: u64) {
        let start = now_us.saturating_sub(REORDER_WINDOW_US);
        while self.deficits.len() > 1 && self.deficits[1].0 <= start {
            self.deficits.pop_front();
        }
    }

    /// The deficit that persisted through the whole window before `now_us` (its minimum), once
    /// the samples span that long.
    fn persistent_deficit(&mut self, now_us: u64) -> Option<i64> {
        self.prune_deficits(now_us);
        let &(first, _) = self.deficits.front()?;
        (first + REORDER_WINDOW_US <= now_us).then(|| self.deficits.iter().map(|&(_, d)| d).min().unwrap_or(0))
    }

    /// Judges what persisted the window as lost and returns the outcomes learnt since the last
    /// call: (packets whose fate is now known, of them delivered).
    pub fn settle_outcomes(&mut self, now_us: u64) -> (u64, u64) {
        if let Some(persisting) = self.persistent_deficit(now_us)
            && persisting > self.lost as i64
        {
            self.lost = persisting as u64;
        }
        // Known: judged, less those still short; delivered: known less the lost.
        let known = (self.judged_seq as i64 - self.pending_loss() as i64 - self.known_offset).max(0) as u64;
        let delivered = known.saturating_sub((self.lost as i64 - self.lost_offset).max(0) as u64);
        let new_known = known.saturating_sub(self.known_recorded);
        let new_delivered = delivered.saturating_sub(self.delivered_recorded).min(new_known);
        self.known_recorded = self.known_recorded.max(known);
        self.delivered_recorded = self.delivered_recorded.max(delivered);
        (new_known, new_delivered)
    }

    /// The path went down: the shortfall so far is the outage's and is not judged.
    pub fn outage(&mut self) {
        self.deficits.clear();
    }

    /// Starts measuring afresh after an outage at the acked position `acked_seq` with the peer's
    /// count `received`: what went missing in the outage is the outage's, not the link's loss.
    pub fn rebase(&mut self, acked_seq: u64, received: u64, bytes: u64) {
        self.acked_seq = acked_seq;
        self.judged_seq = acked_seq;
        self.peer_received = received;
        self.acked_bytes = bytes;
        self.deficit_offset = acked_seq as i64 - received as i64 - self.lost as i64;
        self.deficits.clear();
        self.known_offset = acked_seq as i64 - self.known_recorded as i64;
        self.lost_offset = self.lost as i64 - (self.known_recorded - self.delivered_recorded) as i64;
    }

    /// Take the send time of a sampled packet named by a QoS record.
    pub fn take_qos(&mut self, packet_id: u64) -> Option<u64> {
        self.qos_pending.remove(&packet_id)
    }

    /// Forget sampled packets sent before `cutoff_us`; returns how many were forgotten.
    pub fn expire_qos(&mut self, cutoff_us: u64) -> u64 {
        self.settle_qos(0, cutoff_us)
    }

    /// Forget sampled packets sent before `cutoff_us`, returning how many of them were sent at or after
    /// `counted_from_us` (those a drained QoS report should have named: lost). Older ones belong to a report
    /// that itself may have been lost, so they are dropped without being counted.
    pub fn settle_qos(&mut self, counted_from_us: u64, cutoff_us: u64) -> u64 {
        let mut counted = 0;
        while let Some(&id) = self.qos_order.front() {
            match self.qos_pending.get(&id) {
                Some(&at) if at >= cutoff_us => break,
                Some(&at) => {
                    self.qos_pending.remove(&id);
                    if at >= counted_from_us {
                        counted += 1;
                    }
                }
                None => {}
            }
            self.qos_order.pop_front();
        }
        counted
    }
}

impl Default for SentLog {
    fn default() -> Self {
        Self::new()
    }
}

/// Times the last ack of a burst is repeated (two ack intervals apart) once data stops on a
/// path: the sender learns of the burst's last packets only from it, and one lost ack would
/// leave them overdue until the path carries data again — on a lossy path taking turns with
/// another (balance-rr), long enough to look dead. Four tries all lost is 6e-6 at 5 % loss.
pub const TAIL_ACKS: u8 = 3;

/// Receiver-side log: what arrived on a path, for acks and QoS records.
#[derive(Default)]
pub struct ReceiveLog {
    pub data_received: u64,
    pub data_bytes_received: u64,
    /// Newest data packet (ID, arrival) and whether an ack for it is still owed.
    pub newest_data: Option<(u64, u64)>,
    pub ack_owed: bool,
    /// Repeats of the last ack still to send once data stops (see [`TAIL_ACKS`]).
    pub tail_acks: u8,
    pub last_ack_sent_us: u64,
    /// Sampled arrivals awaiting a QoS record.
    pub qos_pending: Vec<(u64, u64)>,
    pub last_qos_sent_us: u64,
}

impl ReceiveLog {
    pub fn record(&mut self, kind: PacketKind, packet_id: u64, bytes: usize, now_us: u64) {
        if kind == PacketKind::Data {
            self.data_received += 1;
            self.data_bytes_received += bytes as u64;
            self.newest_data = Some((packet_id, now_us));
            self.ack_owed = true;
            self.tail_acks = TAIL_ACKS;
        }
        if kind != PacketKind::Measurement && is_qos_sampled(packet_id) && self.qos_pending.len() < QOS_MAX_PENDING {
            self.qos_pending.push((packet_id, now_us));
        }
    }

    pub fn make_ack(&mut self, now_us: u64) -> Option<PathAck> {
        let (id, at) = self.newest_data?;
        if !self.ack_owed {
            self.tail_acks = self.tail_acks.saturating_sub(1);
        }
        self.ack_owed = false;
        self.last_ack_sent_us = now_us;
        Some(PathAck {
            received_count: self.data_received,
            received_bytes: self.data_bytes_received,
            newest_packet_id: id,
            holding_us: now_us.saturating_sub(at).min(u32::MAX as u64) as u32,
        })
    }

    /// When the next ack is due (acks are coalesced to one per `interval_us`), if one is owed;
    /// at the short interval, also the repeats of the last one ([`TAIL_ACKS`]).
    pub fn ack_due_at(&self, interval_us: u64) -> Option<u64> {
        if self.ack_owed {
            Some(self.last_ack_sent_us + interval_us)
        } else if self.tail_acks > 0 && interval_us <= crate::failover::ACK_INTERVAL_US {
            Some(self.last_ack_sent_us + 2 * interval_us)
        } else {
            None
        }
    }

    /// When the next QoS packet is due (§4.2: a full table's worth, or `interval_us` since the last one
    /// with ≥ 1 record), never sooner than `min_spacing_us` after the last one; `None` if nothing to report.
    pub fn qos_due_at(&self, interval_us: u64, min_spacing_us: u64) -> Option<u64> {
        if self.qos_pending.is_empty() {
            return None;
        }
        let spacing = self.last_qos_sent_us + min_spacing_us;
        Some(if self.qos_pending.len() >= QOS_RECORDS_PER_PACKET {
            spacing
        } else {
            spacing.max(self.last_qos_sent_us + interval_us)
        })
    }

    /// Up to 140 records in ascending ID order (as zerotier-one emits them), removed from the table.
    pub fn take_qos_records(&mut self, now_us: u64) -> Vec<QosRecord> {
        self.qos_pending.sort_unstable_by_key(|&(id, _)| id);
        let n = self.qos_pending.len().min(QOS_RECORDS_PER_PACKET);
        self.last_qos_sent_us = now_us;
        self.qos_pending
            .drain(..n)
            .map(|(id, at)| QosRecord {
                packet_id: id,
                holding_ms: (now_us.saturating_sub(at) / 1000).min(u16::MAX as u64) as u16,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_log_finds_data_by_id_and_seq() {
        let mut log = SentLog::new();
        for i in 0..10u64 {
            log.record(PacketKind::Data, 1000 + i, 100, i * 10);
        }
        assert_eq!(log.find_data(1007), Some((7, 70)));
        assert_eq!(log.send_time_of_seq(3), Some(30));
        assert_eq!(log.send_time_of_seq(10), None);
        assert_eq!(log.data_bytes_sent, 1000);
        // Odd IDs are sampled for QoS.
        assert_eq!(log.take_qos(1001), Some(10));
        assert_eq!(log.take_qos(1002), None);
        assert_eq!(log.expire_qos(55), 2); // 1003 @30, 1005 @50
    }

    #[test]
    fn qos_records_ascending_and_capped() {
        let mut rx = ReceiveLog::default();
        for i in (0..300u64).rev() {
            rx.record(PacketKind::Data, 2 * i + 1, 10, 1_000);
        }
        rx.record(PacketKind::Measurement, 7777, 10, 1_000);
        assert_eq!(rx.qos_due_at(1_000_000, 250_000), Some(250_000), "a full table goes at the spacing");
        let recs = rx.take_qos_records(6_000);
        assert_eq!(recs.len(), QOS_RECORDS_PER_PACKET);
        assert!(recs.windows(2).all(|w| w[0].packet_id < w[1].packet_id));
        assert_eq!(recs[0], QosRecord { packet_id: 1, holding_ms: 5 });
        assert_eq!(rx.qos_pending.len(), 160);
        let ack = rx.make_ack(2_000).unwrap();
        assert_eq!((ack.received_count, ack.newest_packet_id, ack.holding_us), (300, 1, 1_000));
    }
}
