//! Byte-level damage for property tests: take a good input (a fixture, a
//! real segment) and flip, overwrite, insert or delete a few bytes, so the
//! readers see inputs close to valid ones, where bugs hide.

use proptest::prelude::*;

/// One edit: (what, where, byte). `what % 4`: 0 flips a bit, 1 overwrites,
/// 2 inserts, 3 deletes.
pub type Edit = (u8, prop::sample::Index, u8);

/// Applies `edits` to a copy of `bytes`.
pub fn mutate(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for (what, at, byte) in edits {
        if out.is_empty() {
            out.push(*byte);
            continue;
        }
        let i = at.index(out.len());
        match what % 4 {
            0 => out[i] ^= 1 << (byte % 8),
            1 => out[i] = *byte,
            2 => out.insert(i, *byte),
            _ => {
                out.remove(i);
            }
        }
    }
    out
}

/// Up to four edits.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec((any::<u8>(), any::<prop::sample::Index>(), any::<u8>()), 0..5)
}
