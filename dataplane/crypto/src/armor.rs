//! Packet armor and dearmor (§6): per-packet key mangling (§6.1), suites 0 and 1 (Salsa20/12 + Poly1305,
//! §6.2), suite 3 (AES-GMAC-SIV, §6.3), suite 2 pass-through (§6.5) and the HELLO crypt field (§6.6).
//!
//! Works in place on one assembled packet (header bytes 0..27, protected payload from byte 27: verb byte and
//! verb payload) and never allocates.
use crate::salsa20::{self, BLOCK_LEN, PREFIX_BLOCKS};
use crate::{ArmorError, PeerKey};
use subtle::ConstantTimeEq;

/// Header bytes before the protected payload (ID, destination, source, flags, MAC).
pub const HEADER_LEN: usize = 27;
/// Smallest packet: header plus verb byte (`ZT_PROTO_MIN_PACKET_LENGTH`).
pub const MIN_PACKET_LEN: usize = 28;
/// Largest assembled packet (`ZT_PROTO_MAX_PACKET_LENGTH` = 7 × 1432).
pub const MAX_PACKET_LEN: usize = 10024;

const FLAGS: usize = 18;
const MAC: core::ops::Range<usize> = 19..27;
/// Flag bits that armor keeps from the caller: fragmented (0x40) and hops (0x07).
const KEEP_FLAGS: u8 = 0x47;
/// Legacy "encrypted" bit, set iff suite 1.
const LEGACY_ENCRYPTED: u8 = 0x80;
/// Flags without the mutable hop count: what the MAC covers.
const AUTHENTICATED_FLAGS: u8 = 0xf8;

/// Cipher suite: bits 3..6 of the flags byte (§2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CipherSuite {
    /// Poly1305 MAC, payload in the clear (HELLO, bonding control packets).
    Poly1305 = 0,
    /// Salsa20/12 encryption + Poly1305 MAC.
    Salsa2012Poly1305 = 1,
    /// No crypto: trusted path; the MAC field carries the trusted path ID (§6.5).
    None = 2,
    /// AES-GMAC-SIV (protocol ≥ 12).
    AesGmacSiv = 3,
}

impl CipherSuite {
    /// The suite named by a flags byte (offset 18).
    pub fn from_flags(flags: u8) -> Result<Self, ArmorError> {
        Self::try_from((flags >> 3) & 7)
    }
}

impl TryFrom<u8> for CipherSuite {
    type Error = ArmorError;

    fn try_from(value: u8) -> Result<Self, ArmorError> {
        match value {
            0 => Ok(CipherSuite::Poly1305),
            1 => Ok(CipherSuite::Salsa2012Poly1305),
            2 => Ok(CipherSuite::None),
            3 => Ok(CipherSuite::AesGmacSiv),
            other => Err(ArmorError::UnsupportedSuite(other)),
        }
    }
}

/// What [`dearmor`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dearmored {
    pub suite: CipherSuite,
    /// Suite 3 only: the sender's random 8-byte IV, recovered from the tag (never on the wire; the packet ID
    /// used afterwards is the wire value, bytes 0..8).
    pub aes_iv: Option<[u8; 8]>,
}

fn check_len(packet: &[u8]) -> Result<(), ArmorError> {
    if packet.len() < MIN_PACKET_LEN {
        Err(ArmorError::TooShort(packet.len()))
    } else if packet.len() > MAX_PACKET_LEN {
        Err(ArmorError::TooLong(packet.len()))
    } else {
        Ok(())
    }
}

/// §6.1: the Salsa20/12 key for this packet, bound to its ID, addresses, flags (without hops) and size.
fn mangled_key(key: &PeerKey, packet: &[u8]) -> [u8; 32] {
    let mut mangled = *key.salsa_key();
    for (k, p) in mangled[..18].iter_mut().zip(&packet[..18]) {
        *k ^= p;
    }
    mangled[18] ^= packet[FLAGS] & AUTHENTICATED_FLAGS;
    let size = packet.len();
    mangled[19] ^= size as u8;
    mangled[20] ^= (size >> 8) as u8;
    mangled
}

/// §6.3 associated data: destination, source, flags without hops.
fn gmac_siv_aad(packet: &[u8]) -> [u8; 11] {
    let mut aad = [0u8; 11];
    aad.copy_from_slice(&packet[8..19]);
    aad[10] &= AUTHENTICATED_FLAGS;
    aad
}

fn nonce_of(packet: &[u8]) -> [u8; 8] {
    packet[..8].try_into().expect("8 bytes")
}

/// The per-packet Salsa20/12 state of suites 0 and 1 (§6.1, §6.2): mangled key, nonce (the packet ID) and
/// keystream blocks 0..8 — block 0 keys Poly1305, blocks 1.. encrypt the payload (suite 1).
struct PacketKeystream {
    mangled: [u8; 32],
    nonce: [u8; 8],
    prefix: [u8; PREFIX_BLOCKS * BLOCK_LEN],
}

impl PacketKeystream {
    /// For `packet` as it is (or will be) on the wire; only suite 1 needs more than block 0.
    fn new(key: &PeerKey, packet: &[u8], suite: CipherSuite) -> Self {
        let mangled = mangled_key(key, packet);
        let nonce = nonce_of(packet);
        let payload_len = packet.len() - HEADER_LEN;
        let blocks = match suite {
            CipherSuite::Salsa2012Poly1305 => (1 + payload_len.div_ceil(BLOCK_LEN)).min(PREFIX_BLOCKS),
            _ => 1,
        };
        let prefix = salsa20::salsa2012_prefix(&mangled, &nonce, blocks);
        PacketKeystream { mangled, nonce, prefix }
    }

    /// The 8 MAC bytes: Poly1305 of the payload as on the wire, truncated.
    fn mac(&self, payload: &[u8]) -> [u8; 8] {
        let tag = crate::poly1305_tag(self.prefix[..32].try_into().expect("32 bytes"), payload);
        tag[..8].try_into().expect("8 bytes")
    }

    /// Suite-1 encryption / decryption: XOR with the keystream from block 1 on.
    fn xor_payload(&self, payload: &mut [u8]) {
        let in_prefix = payload.len().min((PREFIX_BLOCKS - 1) * BLOCK_LEN);
        let (head, rest) = payload.split_at_mut(in_prefix);
        for (p, k) in head.iter_mut().zip(&self.prefix[BLOCK_LEN..]) {
            *p ^= k;
        }
        if !rest.is_empty() {
            salsa20::salsa2012_xor_from(&self.mangled, &self.nonce, PREFIX_BLOCKS as u64, rest);
        }
    }
}

/// Armors an assembled packet in place for `suite` (§6).
///
/// `packet` holds the header with the random packet ID, destination, source, and flags (0x40 fragmented bit
/// already set if the packet will be fragmented; hops 0), then the verb byte at 27 and the payload. This sets
/// the cipher bits and the legacy 0x80 bit (iff suite 1), writes the MAC and encrypts. For suite 3 the packet
/// ID field is replaced by the first half of the SIV tag. For [`CipherSuite::None`] only the cipher bits are
/// set: the caller writes the trusted path ID into bytes 19..27.
pub fn armor(key: &PeerKey, packet: &mut [u8], suite: CipherSuite) -> Result<(), ArmorError> {
    check_len(packet)?;
    let legacy = if suite == CipherSuite::Salsa2012Poly1305 { LEGACY_ENCRYPTED } else { 0 };
    packet[FLAGS] = (packet[FLAGS] & KEEP_FLAGS) | ((suite as u8) << 3) | legacy;
    match suite {
        CipherSuite::Poly1305 | CipherSuite::Salsa2012Poly1305 => {
            let keystream = PacketKeystream::new(key, packet, suite);
            let (header, payload) = packet.split_at_mut(HEADER_LEN);
            if suite == CipherSuite::Salsa2012Poly1305 {
                keystream.xor_payload(payload);
            }
            header[MAC].copy_from_slice(&keystream.mac(payload));
        }
        CipherSuite::None => {}
        CipherSuite::AesGmacSiv => {
            let iv = nonce_of(packet);
            let aad = gmac_siv_aad(packet);
            let (header, payload) = packet.split_at_mut(HEADER_LEN);
            let tag = key.gmac_siv.encrypt_in_place(&iv, &aad, payload);
            header[..8].copy_from_slice(&tag[..8]);
            header[MAC].copy_from_slice(&tag[8..]);
        }
    }
    Ok(())
}

/// Verifies and decrypts an assembled packet in place (§6); the suite comes from the flags byte.
///
/// Suites 0/1: the MAC is checked (constant time) before anything is decrypted, so on failure the payload
/// is untouched ciphertext. Suite 3: SIV decryption must run before the tag can be checked, so on
/// [`ArmorError::MacMismatch`] the payload holds garbage and must be discarded. Changing the hop bits
/// (byte 18 AND 7) never affects the outcome. Suite 2 yields [`ArmorError::TrustedPathSuite`]: the caller
/// decides from the trusted path configuration (§6.5).
pub fn dearmor(key: &PeerKey, packet: &mut [u8]) -> Result<Dearmored, ArmorError> {
    check_len(packet)?;
    let suite = CipherSuite::from_flags(packet[FLAGS])?;
    match suite {
        CipherSuite::Poly1305 | CipherSuite::Salsa2012Poly1305 => {
            let keystream = PacketKeystream::new(key, packet, suite);
            let (header, payload) = packet.split_at_mut(HEADER_LEN);
            if !bool::from(keystream.mac(payload).ct_eq(&header[MAC])) {
                return Err(ArmorError::MacMismatch);
            }
            if suite == CipherSuite::Salsa2012Poly1305 {
                keystream.xor_payload(payload);
            }
            Ok(Dearmored { suite, aes_iv: None })
        }
        CipherSuite::None => Err(ArmorError::TrustedPathSuite),
        CipherSuite::AesGmacSiv => {
            let aad = gmac_siv_aad(packet);
            let (header, payload) = packet.split_at_mut(HEADER_LEN);
            let mut tag = [0u8; 16];
            tag[..8].copy_from_slice(&header[..8]);
            tag[8..].copy_from_slice(&header[MAC]);
            let iv = key.gmac_siv.decrypt_in_place(&tag, &aad, payload).ok_or(ArmorError::MacMismatch)?;
            Ok(Dearmored { suite, aes_iv: Some(iv) })
        }
    }
}

/// §6.6: encrypts or decrypts (same operation) the HELLO tail `data` with Salsa20/12 under the un-mangled
/// key (peer key bytes 0..32), nonce = packet ID with the low 3 bits of byte 7 cleared, keystream from 0.
pub fn hello_crypt_field(key: &PeerKey, packet_id: &[u8; 8], data: &mut [u8]) {
    let mut nonce = *packet_id;
    nonce[7] &= 0xf8;
    salsa20::xor::<12>(key.salsa_key(), &nonce, 0, data);
}
