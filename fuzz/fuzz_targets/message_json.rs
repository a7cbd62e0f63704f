//! Fuzz target: `Message::from_json`, and the round trip of what it accepts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pulpo_fuzz::text::check_message(data);
});
