//! Fuzz target: the file queue's segment header, frame, record and resync functions.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pulpo_fuzz::filequeue::check_frames(data);
});
