//! The checks behind pulpo's fuzz targets. Each target in `fuzz_targets/` is
//! one line that hands libFuzzer's bytes to a function here; the function
//! feeds them to one reader of hostile input and asserts its contract: no
//! panic, errors are values, buffers stay within the reader's caps, and what
//! it accepts survives a write and a second read unchanged.

pub mod codec;
pub mod filequeue;
pub mod text;

/// Splits `data` into a split point chosen by its first byte and the rest:
/// byte 0 picks a point proportionally in `0..=rest.len()`, so every target
/// that feeds a stream in two pieces can reach every partial-frame path.
pub fn split_point(data: &[u8]) -> Option<(usize, &[u8])> {
    let (&selector, rest) = data.split_first()?;
    Some((selector as usize * rest.len() / 255, rest))
}
