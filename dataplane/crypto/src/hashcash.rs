//! Memory-hard address derivation (§5.1): the 64-byte digest whose first byte gates validity and whose last
//! five bytes are the address.
use crate::salsa20;
use sha2::{Digest, Sha512};

/// Size of the scratch memory (`ZT_IDENTITY_GEN_MEMORY`).
pub(crate) const GEN_MEMORY: usize = 2_097_152;
/// Validity threshold for the first digest byte (`ZT_IDENTITY_GEN_HASHCASH_FIRST_BYTE_LESS_THAN`).
pub(crate) const FIRST_BYTE_LESS_THAN: u8 = 17;

const WORDS: usize = GEN_MEMORY / 8;
/// Keystream blocks produced per refill in the mixing phase.
const MIX_BATCH_BLOCKS: usize = 64;

/// Computes the memory-hard digest of a 64-byte public key. `scratch` is reused across calls (identity
/// generation tries many keys); it is resized to 2 MiB.
pub(crate) fn memory_hard_digest(public_key: &[u8; 64], scratch: &mut Vec<u8>) -> [u8; 64] {
    let mut digest: [u8; 64] = Sha512::digest(public_key).into();
    let key: [u8; 32] = digest[0..32].try_into().expect("32 bytes");
    let nonce: [u8; 8] = digest[32..40].try_into().expect("8 bytes");

    // Phase 1: keystream blocks 0..32768 chained by XOR with the previous block.
    scratch.clear();
    scratch.resize(GEN_MEMORY, 0);
    salsa20::xor::<20>(&key, &nonce, 0, scratch);
    for b in 1..GEN_MEMORY / 64 {
        let (prev, cur) = scratch.split_at_mut(b * 64);
        let prev = &prev[(b - 1) * 64..];
        for (c, p) in cur[..64].iter_mut().zip(prev) {
            *c ^= p;
        }
    }

    // Phase 2: data-dependent swaps between the scratch memory and the digest, each followed by XOR of the
    // digest with the next keystream block.
    let mut counter = (GEN_MEMORY / 64) as u64;
    let mut keystream = [0u8; MIX_BATCH_BLOCKS * 64];
    let mut used = keystream.len();
    let word_at = |mem: &[u8], w: usize| u64::from_be_bytes(mem[w * 8..w * 8 + 8].try_into().expect("8 bytes"));
    let mut i = 0;
    while i < WORDS {
        let digest_word = (word_at(scratch, i) % 8) as usize;
        let mem_word = (word_at(scratch, i + 1) % WORDS as u64) as usize;
        let mem = &mut scratch[mem_word * 8..mem_word * 8 + 8];
        mem.swap_with_slice(&mut digest[digest_word * 8..digest_word * 8 + 8]);
        if used == keystream.len() {
            keystream.fill(0);
            salsa20::xor::<20>(&key, &nonce, counter, &mut keystream);
            counter += MIX_BATCH_BLOCKS as u64;
            used = 0;
        }
        for (d, k) in digest.iter_mut().zip(&keystream[used..used + 64]) {
            *d ^= k;
        }
        used += 64;
        i += 2;
    }
    digest
}
