//! Packet pacing: a token bucket on the monotonic clock.
//!
//! Credit is kept in packet-nanoseconds (`rate × elapsed ns`; one packet costs 10⁹), in integers,
//! so a long run neither drifts nor loses fractions of a packet to rounding. The bucket holds at
//! most `burst` packets: after a stall (a descheduled thread, a full TX ring) the generator
//! catches up by at most one burst instead of flooding, which keeps the offered rate honest.

/// What one packet costs, in packet-nanoseconds.
const PACKET: u128 = 1_000_000_000;

#[derive(Clone, Debug)]
pub struct Pacer {
    /// Packets per second; `None` sends as fast as the ring takes frames.
    rate: Option<u64>,
    burst: u128,
    credit: u128,
    last_ns: u64,
}

impl Pacer {
    /// A bucket for `rate` pps (`None`: unlimited) holding up to `burst` packets, starting full
    /// of one burst at `now_ns`.
    pub fn new(rate: Option<u64>, burst: u32, now_ns: u64) -> Pacer {
        let burst = u128::from(burst.max(1)) * PACKET;
        Pacer { rate, burst, credit: burst, last_ns: now_ns }
    }

    /// How many of `want` packets may go now; the caller sends them and calls [`Pacer::spend`].
    pub fn available(&mut self, now_ns: u64, want: usize) -> usize {
        let Some(rate) = self.rate else { return want };
        let elapsed = u128::from(now_ns.saturating_sub(self.last_ns));
        self.last_ns = self.last_ns.max(now_ns);
        // Up to `burst` whole packets plus the fraction of the next one.
        self.credit = (self.credit + elapsed * u128::from(rate)).min(self.burst + PACKET - 1);
        ((self.credit / PACKET) as usize).min(want)
    }

    /// Takes `sent` packets out of the bucket (at most what [`Pacer::available`] granted).
    pub fn spend(&mut self, sent: usize) {
        if self.rate.is_some() {
            self.credit = self.credit.saturating_sub(sent as u128 * PACKET);
        }
    }

    /// Nanoseconds until the credit for `packets` is there (0 if it already is, or unlimited;
    /// never more than a full bucket's worth).
    pub fn wait_ns(&self, packets: u32) -> u64 {
        let need = (u128::from(packets) * PACKET).min(self.burst);
        match self.rate {
            None | Some(0) => 0,
            Some(_) if self.credit >= need => 0,
            Some(rate) => ((need - self.credit).div_ceil(u128::from(rate))) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_second_sends_the_rate() {
        // 1 Mpps in bursts of 32, polled every microsecond for one second.
        let mut p = Pacer::new(Some(1_000_000), 32, 0);
        let mut sent = 0u64;
        for us in 0..1_000_000u64 {
            let n = p.available(us * 1000, 64);
            p.spend(n);
            sent += n as u64;
        }
        // The first burst is granted up front; then exactly one packet per microsecond.
        assert_eq!(sent, 32 + 999_999);
    }

    #[test]
    fn fractional_rates_do_not_drift() {
        // 3 pps polled every 1 ms for 10 s: 30 packets (+ the first one, granted at t=0).
        let mut p = Pacer::new(Some(3), 1, 0);
        let mut sent = 0;
        for ms in 0..=10_000u64 {
            let n = p.available(ms * 1_000_000, 8);
            p.spend(n);
            sent += n;
        }
        assert_eq!(sent, 31);
    }

    #[test]
    fn a_stall_is_caught_up_by_one_burst_only() {
        let mut p = Pacer::new(Some(1000), 16, 0);
        let n = p.available(0, 100);
        p.spend(n);
        assert_eq!(n, 16);
        assert_eq!(p.available(0, 100), 0);
        assert_eq!(p.wait_ns(1), 1_000_000, "1000 pps: next packet in 1 ms");
        assert_eq!(p.wait_ns(8), 8_000_000);
        assert_eq!(p.wait_ns(1000), 16_000_000, "at most a full bucket");
        // A 10 s stall would be 10,000 packets; the bucket gives one burst.
        assert_eq!(p.available(10_000_000_000, 100_000), 16);
    }

    #[test]
    fn wait_rounds_up_to_the_next_packet() {
        let mut p = Pacer::new(Some(3), 1, 0);
        let n = p.available(0, 1);
        p.spend(n);
        assert_eq!(p.wait_ns(1), 333_333_334);
        assert_eq!(p.available(333_333_333, 1), 0);
        assert_eq!(p.available(333_333_334, 1), 1);
    }

    #[test]
    fn unlimited_grants_everything() {
        let mut p = Pacer::new(None, 1, 0);
        assert_eq!(p.available(0, 1_000_000), 1_000_000);
        p.spend(1_000_000);
        assert_eq!(p.wait_ns(1), 0);
    }
}
