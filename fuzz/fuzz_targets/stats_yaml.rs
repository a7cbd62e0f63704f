//! Fuzz target: the stats-job, stats-tube, stats and tube-list YAML parsers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pulpo_fuzz::text::check_stats_yaml(data);
});
