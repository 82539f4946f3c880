//! ZeroTier 1.x identities (type 0, C25519): key material (§4.1), agreement (§4.2), address derivation and
//! validation (§5.1), text and binary forms (§5.2).
use crate::hashcash::{FIRST_BYTE_LESS_THAN, memory_hard_digest};
use crate::{Address, CryptoError, PeerKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha512};
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Public key length: X25519 public (32) ‖ Ed25519 public (32).
pub const PUBLIC_KEY_LEN: usize = 64;
/// Private key length: X25519 scalar (32) ‖ Ed25519 seed (32).
pub const SECRET_KEY_LEN: usize = 64;
/// Signature length: Ed25519 signature (64) ‖ SHA-512(message)[0..32].
pub const SIGNATURE_LEN: usize = 96;
/// Binary form of a public identity: address (5) ‖ type (1) ‖ public key (64) ‖ private length (1).
const BINARY_PUBLIC_LEN: usize = 5 + 1 + PUBLIC_KEY_LEN + 1;

/// A ZeroTier node identity: address, public key and optionally the private key.
///
/// `Display` writes `address:0:public` and, when the identity holds its secret, `:private` as well (the
/// `identity.secret` file format); use [`Identity::to_public_string`] to share it. `Debug` never prints the
/// secret.
#[derive(Clone)]
pub struct Identity {
    address: Address,
    public_key: [u8; PUBLIC_KEY_LEN],
    secret_key: Option<Zeroizing<[u8; SECRET_KEY_LEN]>>,
}

impl Identity {
    /// Generates a new identity with a random key whose memory-hard digest satisfies the hashcash rule and
    /// yields a non-reserved address (§5.1). Takes about 15 digest computations on average.
    pub fn generate() -> Result<Identity, CryptoError> {
        let mut secret = Zeroizing::new([0u8; SECRET_KEY_LEN]);
        getrandom::getrandom(&mut secret[..]).map_err(|e| CryptoError::Random(e.to_string()))?;
        let mut public_key = [0u8; PUBLIC_KEY_LEN];
        let seed: [u8; 32] = secret[32..64].try_into().expect("32 bytes");
        public_key[32..64].copy_from_slice(SigningKey::from_bytes(&seed).verifying_key().as_bytes());
        let mut scratch = Vec::new();
        loop {
            // Perturb the X25519 half only, so the Ed25519 half is derived once (as upstream does).
            let bump = u64::from_le_bytes(secret[8..16].try_into().expect("8 bytes")).wrapping_add(1);
            secret[8..16].copy_from_slice(&bump.to_le_bytes());
            let dip = u64::from_le_bytes(secret[16..24].try_into().expect("8 bytes")).wrapping_sub(1);
            secret[16..24].copy_from_slice(&dip.to_le_bytes());
            let scalar: [u8; 32] = secret[0..32].try_into().expect("32 bytes");
            let x_public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(scalar));
            public_key[0..32].copy_from_slice(x_public.as_bytes());
            let digest = memory_hard_digest(&public_key, &mut scratch);
            let address = address_of_digest(&digest);
            if digest[0] < FIRST_BYTE_LESS_THAN && !address.is_reserved() {
                return Ok(Identity { address, public_key, secret_key: Some(secret) });
            }
        }
    }

    /// Identity from its parts (no validation; see [`Identity::validate`]).
    pub fn from_parts(
        address: Address,
        public_key: [u8; PUBLIC_KEY_LEN],
        secret_key: Option<[u8; SECRET_KEY_LEN]>,
    ) -> Self {
        Identity { address, public_key, secret_key: secret_key.map(Zeroizing::new) }
    }

    pub fn address(&self) -> Address {
        self.address
    }

    /// X25519 public (0..32) ‖ Ed25519 public (32..64).
    pub fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public_key
    }

    /// X25519 scalar (0..32) ‖ Ed25519 seed (32..64), if held.
    pub fn secret_key(&self) -> Option<&[u8; SECRET_KEY_LEN]> {
        self.secret_key.as_deref()
    }

    pub fn has_secret(&self) -> bool {
        self.secret_key.is_some()
    }

    /// The same identity without its secret.
    pub fn to_public(&self) -> Identity {
        Identity { address: self.address, public_key: self.public_key, secret_key: None }
    }

    /// The memory-hard digest of the public key (§5.1); exposed for test vectors. Allocates 2 MiB.
    pub fn memory_hard_digest(&self) -> [u8; 64] {
        memory_hard_digest(&self.public_key, &mut Vec::new())
    }

    /// Checks that the address is derived from the public key by the memory-hard rule (§5.1): `digest[0] < 17`,
    /// `digest[59..64] == address`, address not reserved. Costs a few milliseconds and 2 MiB of scratch
    /// memory: callers should rate-limit validation of identities from unknown sources.
    pub fn validate(&self) -> bool {
        if self.address.is_reserved() {
            return false;
        }
        let digest = self.memory_hard_digest();
        digest[0] < FIRST_BYTE_LESS_THAN && address_of_digest(&digest) == self.address
    }

    /// Signs `message` (§4.1): Ed25519 over SHA-512(message)[0..32], followed by that 32-byte digest.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], CryptoError> {
        let secret = self.secret_key.as_ref().ok_or(CryptoError::NoSecretKey(self.address))?;
        let seed: [u8; 32] = secret[32..64].try_into().expect("32 bytes");
        let signing = SigningKey::from_bytes(&seed);
        let digest = Sha512::digest(message);
        let mut signature = [0u8; SIGNATURE_LEN];
        signature[..64].copy_from_slice(&signing.sign(&digest[..32]).to_bytes());
        signature[64..].copy_from_slice(&digest[..32]);
        Ok(signature)
    }

    /// Verifies a 96-byte signature made by [`Identity::sign`] (§4.1). Any other length is rejected.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = <&[u8; SIGNATURE_LEN]>::try_from(signature) else {
            return false;
        };
        let digest = Sha512::digest(message);
        if !bool::from(digest[..32].ct_eq(&signature[64..])) {
            return false;
        }
        let Ok(verifying) = VerifyingKey::from_bytes(self.public_key[32..64].try_into().expect("32 bytes")) else {
            return false;
        };
        let ed_signature = ed25519_dalek::Signature::from_bytes(signature[..64].try_into().expect("64 bytes"));
        ed25519_dalek::Verifier::verify(&verifying, &digest[..32], &ed_signature).is_ok()
    }

    /// Key agreement with `other` (§4.2): first 48 bytes of SHA-512(X25519(my secret, their public)).
    /// Symmetric: `a.agree(&b)` equals `b.agree(&a)`.
    pub fn agree(&self, other: &Identity) -> Result<PeerKey, CryptoError> {
        Ok(PeerKey::from_bytes(self.raw_agreement(other)?[..48].try_into().expect("48 bytes")))
    }

    /// The full 64-byte SHA-512 of the X25519 shared secret (upstream's `agree` with a 64-byte key).
    pub fn raw_agreement(&self, other: &Identity) -> Result<Zeroizing<[u8; 64]>, CryptoError> {
        let secret = self.secret_key.as_ref().ok_or(CryptoError::NoSecretKey(self.address))?;
        let scalar: [u8; 32] = secret[0..32].try_into().expect("32 bytes");
        let their: [u8; 32] = other.public_key[0..32].try_into().expect("32 bytes");
        let shared = x25519_dalek::StaticSecret::from(scalar).diffie_hellman(&x25519_dalek::PublicKey::from(their));
        Ok(Zeroizing::new(Sha512::digest(shared.as_bytes()).into()))
    }

    /// Parses the binary form (§5.2) at the start of `bytes`; returns the identity and the bytes consumed.
    pub fn from_bytes(bytes: &[u8]) -> Result<(Identity, usize), CryptoError> {
        let need = |needed: usize| {
            if bytes.len() < needed { Err(CryptoError::Truncated { needed, available: bytes.len() }) } else { Ok(()) }
        };
        need(6)?;
        let address = Address::from_bytes(bytes[0..5].try_into().expect("5 bytes"));
        if bytes[5] != 0 {
            return Err(CryptoError::UnsupportedIdentityType(bytes[5]));
        }
        need(BINARY_PUBLIC_LEN)?;
        let public_key: [u8; PUBLIC_KEY_LEN] = bytes[6..70].try_into().expect("64 bytes");
        match bytes[70] {
            0 => Ok((Identity { address, public_key, secret_key: None }, BINARY_PUBLIC_LEN)),
            64 => {
                need(BINARY_PUBLIC_LEN + SECRET_KEY_LEN)?;
                let mut secret = Zeroizing::new([0u8; SECRET_KEY_LEN]);
                secret.copy_from_slice(&bytes[71..135]);
                Ok((Identity { address, public_key, secret_key: Some(secret) }, BINARY_PUBLIC_LEN + SECRET_KEY_LEN))
            }
            other => Err(CryptoError::BadSecretLength(other)),
        }
    }

    /// Appends the binary form (§5.2); the private key only if `include_secret` and it is held.
    pub fn write_bytes(&self, out: &mut Vec<u8>, include_secret: bool) {
        out.extend_from_slice(&self.address.to_bytes());
        out.push(0);
        out.extend_from_slice(&self.public_key);
        match (&self.secret_key, include_secret) {
            (Some(secret), true) => {
                out.push(SECRET_KEY_LEN as u8);
                out.extend_from_slice(&secret[..]);
            }
            _ => out.push(0),
        }
    }

    /// `address:0:public` (the `identity.public` file format).
    pub fn to_public_string(&self) -> String {
        format!("{}:0:{}", self.address, hex(&self.public_key))
    }
}

/// The address is the last five digest bytes.
fn address_of_digest(digest: &[u8; 64]) -> Address {
    Address::from_bytes(digest[59..64].try_into().expect("5 bytes"))
}

impl PartialEq for Identity {
    /// Same address and public key (secrets are not compared).
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address && self.public_key == other.public_key
    }
}
impl Eq for Identity {}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("address", &self.address)
            .field("public_key", &hex(&self.public_key))
            .field("has_secret", &self.has_secret())
            .finish()
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_public_string())?;
        if let Some(secret) = &self.secret_key {
            write!(f, ":{}", hex(&secret[..]))?;
        }
        Ok(())
    }
}

impl FromStr for Identity {
    type Err = CryptoError;

    /// `address:0:public[:private]`, lower- or upper-case hex; trailing whitespace (a file's newline) is
    /// ignored.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fields: Vec<&str> = text.trim_end().split(':').collect();
        if fields.len() != 3 && fields.len() != 4 {
            return Err(CryptoError::BadIdentityText { fields: fields.len() });
        }
        let address: Address = fields[0].parse()?;
        if fields[1] != "0" {
            return Err(match fields[1].parse::<u8>() {
                Ok(t) => CryptoError::UnsupportedIdentityType(t),
                Err(_) => CryptoError::BadIdentityText { fields: fields.len() },
            });
        }
        let mut public_key = [0u8; PUBLIC_KEY_LEN];
        decode_hex("public key", fields[2], &mut public_key)?;
        let secret_key = match fields.get(3) {
            Some(text) => {
                let mut secret = Zeroizing::new([0u8; SECRET_KEY_LEN]);
                decode_hex("private key", text, &mut secret[..])?;
                Some(secret)
            }
            None => None,
        };
        Ok(Identity { address, public_key, secret_key })
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Decodes exactly `out.len() * 2` hex digits.
pub(crate) fn decode_hex(field: &'static str, text: &str, out: &mut [u8]) -> Result<(), CryptoError> {
    let expected_len = out.len() * 2;
    let bad = || CryptoError::BadHex { field, expected_len, got: text.chars().take(160).collect() };
    let digits = text.as_bytes();
    if digits.len() != expected_len {
        return Err(bad());
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *o = (nibble(pair[0]).ok_or_else(bad)? << 4) | nibble(pair[1]).ok_or_else(bad)?;
    }
    Ok(())
}
