//! ZeroTier 1.x (zerotier-one 1.14.1) wire protocol core.
//!
//! Pure: no I/O and no clocks; time is a parameter. Spec: `shared/spec/zerotier-protocol.md`.
//!
//! * [`header`] — packet head layout, flags, verbs, datagram classification (§2, §3.2, §7);
//! * [`fragment`] — fragment datagrams, sender fragmentation, bounded reassembly (§3);
//! * [`compress`] — bounded LZ4 block (de)compression (§6.7);
//! * [`packet`] — building and opening whole packets: armor/dearmor via `ztplane-crypto`,
//!   compression, verb byte (§6);
//! * [`rx`] — receive front end: classify + reassemble by packet ID, relay check (§3.2, §9);
//! * [`network`] — network IDs and MAC derivation (§10);
//! * [`verbs`] — one typed codec per verb payload (§8); [`credentials`] (§8.16),
//!   [`dictionary`] (§8.10), [`world`] (planet/moon files), [`inet`] (InetAddress);
//! * [`ethernet`] — summaries of the Ethernet payloads carried by FRAME & co., flow IDs (§10);
//! * [`rules`] — rules engine: rule-list codec, capability rules, frame filtering (VL2 §6, §3.7);
//! * [`pcap`] and [`inspect`] — the capture decoder behind `ztplanectl decode`.

pub mod compress;
pub mod credentials;
pub mod dictionary;
pub mod error;
pub mod ethernet;
pub mod fragment;
pub mod header;
pub mod inet;
pub mod inspect;
pub mod network;
pub mod packet;
pub mod pcap;
pub mod rules;
pub mod rx;
pub mod verbs;
pub mod wire;
pub mod world;

pub use error::{ProtocolError, Result};
pub use ztplane_crypto::{Address, CipherSuite, Identity, PeerKey};

/// HELLO "cryptField" (spec §6.6): XOR `data` with Salsa20/12 under the un-mangled peer key,
/// nonce = packet ID with byte 7 masked (the masking is done by `ztplane-crypto`).
pub(crate) fn hello_crypt(key: &PeerKey, packet_id: &[u8; 8], data: &mut [u8]) {
    ztplane_crypto::hello_crypt_field(key, packet_id, data);
}
