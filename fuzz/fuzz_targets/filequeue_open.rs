//! Fuzz target: a queue directory whose segment files hold fuzzer bytes (raw, behind a good
//! header, or well-formed records then damaged), opened and used.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pulpo_fuzz::filequeue::check_open(&pulpo_fuzz::filequeue::segment_files(data));
});
