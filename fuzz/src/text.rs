//! The text readers under hostile bytes: beanstalkd's stats YAML, the
//! message JSON and pulpo.toml.
//!
//! Each must return a value or an error whose message formats; and what it
//! accepts, written back by its own writer, must read back to the same thing
//! (for the stats, after one write: floats are written with 6 decimals).

use std::path::Path;

use pulpo::config;
use pulpo::message::Message;
use pulpo_beanstalkd::proto::{
    JobStats, ServerStats, StatsDocument, TubeStats, parse_tube_list, tube_list_to_yaml,
};

/// Parses `yaml` as every stats document and as a tube list.
pub fn check_stats_yaml(yaml: &[u8]) {
    match JobStats::parse(yaml) {
        Ok(stats) => {
            let written = stats.to_yaml();
            let again = JobStats::parse(&written).expect("stats-job written by to_yaml parses");
            assert_eq!(
                again,
                stats,
                "stats-job parse(to_yaml(x)) != x\n{}",
                String::from_utf8_lossy(&written)
            );
        }
        Err(err) => drop(err.to_string()),
    }
    match TubeStats::parse(yaml) {
        Ok(stats) => {
            let written = stats.to_yaml();
            let again = TubeStats::parse(&written).expect("stats-tube written by to_yaml parses");
            assert_eq!(
                again,
                stats,
                "stats-tube parse(to_yaml(x)) != x\n{}",
                String::from_utf8_lossy(&written)
            );
        }
        Err(err) => drop(err.to_string()),
    }
    match ServerStats::parse(yaml) {
        Ok(stats) => {
            // Floats are written with 6 decimals (as beanstalkd does), so compare from the first write.
            let written = stats.to_yaml();
            let again = ServerStats::parse(&written).expect("stats written by to_yaml parses");
            assert_eq!(
                String::from_utf8_lossy(&again.to_yaml()),
                String::from_utf8_lossy(&written),
                "stats: to_yaml(parse(to_yaml(x))) != to_yaml(x)"
            );
        }
        Err(err) => drop(err.to_string()),
    }
    match parse_tube_list(yaml) {
        Ok(tubes) => {
            let again = parse_tube_list(&tube_list_to_yaml(&tubes)).expect("a written tube list parses");
            assert_eq!(again, tubes, "tube list parse(to_yaml(x)) != x");
        }
        Err(err) => drop(err.to_string()),
    }
}

/// Reads `bytes` as a message; one that reads must write and read back equal.
pub fn check_message(bytes: &[u8]) {
    match Message::from_json(bytes) {
        Ok(message) => {
            let written = message.to_json();
            let again = Message::from_json(&written).unwrap_or_else(|err| {
                panic!(
                    "a message written by to_json does not read back: {err}\n{}",
                    String::from_utf8_lossy(&written)
                )
            });
            assert_eq!(again, message, "from_json(to_json(m)) != m");
            let _ = message.to_string();
        }
        Err(err) => drop(err.to_string()),
    }
}

/// Reads `text` as pulpo.toml; settings that load must print as TOML that
/// loads to the same settings.
pub fn check_config(text: &str) {
    let path = Path::new("fuzz/pulpo.toml");
    match config::from_toml_str(text, path) {
        Ok(settings) => {
            let printed = settings.to_toml_string();
            let again = config::from_toml_str(&printed, path)
                .unwrap_or_else(|err| panic!("printed settings do not load: {err}\n{printed}"));
            assert_eq!(
                again.to_json_value(),
                settings.to_json_value(),
                "settings changed when printed:\n{printed}"
            );
        }
        Err(err) => drop(err.to_string()),
    }
}
