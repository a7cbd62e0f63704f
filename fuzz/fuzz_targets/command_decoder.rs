//! Fuzz target: the server codec decoding commands, whole and split where byte 0 says.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((at, input)) = pulpo_fuzz::split_point(data) {
        pulpo_fuzz::codec::check_commands(input, at);
    }
});
