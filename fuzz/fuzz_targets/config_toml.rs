//! Fuzz target: `config::from_toml_str`, and the round trip of what it accepts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Not UTF-8 is refused before parsing (the loader reports it); keep the fuzzer on text.
    pulpo_fuzz::text::check_config(&String::from_utf8_lossy(data));
});
