//! Time as a parameter: the node never reads a clock. The shell passes the current [`Instant`]
//! with every event. zerotier-one's timers are in milliseconds and so is the node's arithmetic
//! ([`Instant::add_ms`], [`since`]); the instant itself keeps microseconds so that the bonds'
//! latency and jitter figures (zerotier-bonding.md §4) are not rounded to whole milliseconds.

/// A point in time, in microseconds since an origin the caller chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms.saturating_mul(1000))
    }

    pub const fn from_micros(us: u64) -> Self {
        Instant(us)
    }

    /// Whole milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// `self + ms`, saturating.
    pub const fn add_ms(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms.saturating_mul(1000)))
    }
}

/// Whole milliseconds from `then` to `now` (0 if `then` is later).
pub fn since(now: Instant, then: Instant) -> u64 {
    now.0.saturating_sub(then.0) / 1000
}

/// True if `then` is unset (zero) or at least `ms` before `now`.
pub fn elapsed(now: Instant, then: Instant, ms: u64) -> bool {
    then == Instant::ZERO || since(now, then) >= ms
}
