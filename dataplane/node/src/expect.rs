//! The "expecting replies" table (VL1 §8.3): an OK is processed only if its in-re packet ID is
//! one we sent. Like upstream, 256 buckets × 32 slots of the upper 32 bits of the wire ID, each
//! bucket a ring, so the table is bounded and old entries fall out by themselves. Entries are
//! not consumed: one config request is answered by several OK chunks (§2.4).

const BUCKETS: usize = 256;
const SLOTS: usize = 32;
const VALID: u64 = 1 << 32;

pub struct ExpectingReplies {
    /// Upper 32 bits of the ID with [`VALID`] set: an unused slot (0) matches nothing.
    ids: Box<[[u64; SLOTS]; BUCKETS]>,
    next: Box<[u8; BUCKETS]>,
}

impl Default for ExpectingReplies {
    fn default() -> Self {
        ExpectingReplies { ids: Box::new([[0; SLOTS]; BUCKETS]), next: Box::new([0; BUCKETS]) }
    }
}

impl ExpectingReplies {
    pub fn register(&mut self, packet_id: u64) {
        let (bucket, tag) = Self::split(packet_id);
        let slot = &mut self.next[bucket];
        self.ids[bucket][*slot as usize] = u64::from(tag) | VALID;
        *slot = ((*slot as usize + 1) % SLOTS) as u8;
    }

    pub fn expecting(&self, packet_id: u64) -> bool {
        let (bucket, tag) = Self::split(packet_id);
        self.ids[bucket].contains(&(u64::from(tag) | VALID))
    }

    fn split(packet_id: u64) -> (usize, u32) {
        let high = (packet_id >> 32) as u32;
        ((high & 0xff) as usize, high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_recent_ids_per_bucket() {
        let mut t = ExpectingReplies::default();
        assert!(!t.expecting(0x0000_0000_1234_5678), "an empty slot matched");
        assert!(!t.expecting(0x1234_5678_0000_0001));
        t.register(0x1234_5678_0000_0001);
        assert!(t.expecting(0x1234_5678_9999_9999));
        for i in 0..SLOTS as u64 {
            t.register(((0x1000 + i) << 40) | (0x78 << 32));
        }
        assert!(!t.expecting(0x1234_5678_0000_0001), "pushed out of its bucket's ring");
    }
}
