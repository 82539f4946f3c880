//! Time as a parameter: the node never reads a clock. The shell passes the current [`Instant`]
//! (milliseconds since any fixed origin, as zerotier-one's timers are in ms) with every event.

/// A point in time, in milliseconds since an origin the caller chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + ms`, saturating.
    pub const fn add_ms(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms))
    }
}

/// Milliseconds from `then` to `now` (0 if `then` is later).
pub fn since(now: Instant, then: Instant) -> u64 {
    now.0.saturating_sub(then.0)
}

/// True if `then` is unset (zero) or at least `ms` before `now`.
pub fn elapsed(now: Instant, then: Instant, ms: u64) -> bool {
    then == Instant::ZERO || since(now, then) >= ms
}
