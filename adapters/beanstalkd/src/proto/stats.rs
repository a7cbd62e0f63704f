//! The YAML documents of `stats-job`, `stats-tube`, `stats` and the tube
//! lists, as typed structs with every documented field.
//!
//! beanstalkd writes a small YAML subset: `---`, then `key: value` lines
//! (some values double-quoted) or `- item` lines. That subset is parsed here
//! by hand; unknown keys are ignored, a missing documented key is an error.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

pub use pulpo_model::{JobState, JobStats, TubeStats};

use super::{ProtocolError, TubeName};

/// A YAML stats document, read and written as beanstalkd does. The job and
/// tube documents are `pulpo-model`'s types, shared with the file queue and
/// pulpo; this trait gives them (and [`ServerStats`]) their wire form.
pub trait StatsDocument: Sized {
    /// Parses the document; a missing documented key or a bad value is an
    /// error naming the key.
    fn parse(yaml: &[u8]) -> Result<Self, ProtocolError>;

    /// Writes the document as beanstalkd does.
    fn to_yaml(&self) -> Vec<u8>;
}

/// The `key: value` pairs of one document.
struct Doc<'a> {
    what: &'static str,
    pairs: HashMap<&'a str, &'a str>,
}

impl<'a> Doc<'a> {
    fn parse(what: &'static str, yaml: &'a [u8]) -> Result<Doc<'a>, ProtocolError> {
        let mut pairs = HashMap::new();
        for line in content_lines(what, yaml)? {
            let Some((key, value)) = line
                .split_once(": ")
                .or_else(|| line.strip_suffix(':').map(|k| (k, "")))
            else {
                return Err(ProtocolError::BadYaml {
                    what,
                    detail: format!("line {line:?} is not `key: value`"),
                });
            };
            pairs.insert(key, unquote(value));
        }
        Ok(Doc { what, pairs })
    }

    fn str(&self, key: &str) -> Result<&'a str, ProtocolError> {
        self.pairs
            .get(key)
            .copied()
            .ok_or_else(|| ProtocolError::BadYaml {
                what: self.what,
                detail: format!("missing key {key:?}"),
            })
    }

    fn get<T: FromStr>(&self, key: &str) -> Result<T, ProtocolError> {
        let value = self.str(key)?;
        value.parse().map_err(|_| ProtocolError::BadYaml {
            what: self.what,
            detail: format!("key {key:?} has the bad value {value:?}"),
        })
    }

    fn tube(&self, key: &str) -> Result<TubeName, ProtocolError> {
        Ok(TubeName::new(self.str(key)?)?)
    }
}

/// The lines of a document, without their line ends. A CR is a line end in YAML: one left at the
/// end of a line (a lone CR, or the last line of a document cut after its CR) is not part of the
/// value, or a value read back from its own writing would lose it.
fn doc_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|line| line.trim_end_matches('\r'))
}

/// The lines of document `what` that carry content: the text must be UTF-8, and blank lines and
/// the `---` marker are skipped.
fn content_lines<'a>(
    what: &'static str,
    yaml: &'a [u8],
) -> Result<impl Iterator<Item = &'a str>, ProtocolError> {
    let text = std::str::from_utf8(yaml).map_err(|_| ProtocolError::BadYaml {
        what,
        detail: "not UTF-8".to_owned(),
    })?;
    Ok(doc_lines(text).filter(|line| !line.is_empty() && *line != "---"))
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Implements [`StatsDocument`] for a stats struct whose fields map to YAML
/// keys (declaring the struct too, given `struct` and the field types);
/// `$key` is the wire key of each field, in beanstalkd's order. A field read
/// `via` another type is checked as that type (a tube name) and stored as the
/// struct's; fields `absent` from the wire take the value given.
macro_rules! stats_doc {
    // A struct only the protocol has: declared here, fields with their keys.
    ($(#[$meta:meta])* struct $name:ident, $what:literal, { $($(#[$fmeta:meta])* $field:ident : $ty:ty = $key:literal $(quoted $q:tt)?),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        stats_doc!($name, $what, { $($field = $key $(quoted $q)?),* });
    };
    ($name:ident, $what:literal, { $($field:ident = $key:literal $(via $via:ident)? $(quoted $q:tt)?),* $(,)? } $(absent { $($afield:ident: $avalue:expr),* })?) => {
        impl StatsDocument for $name {
            fn parse(yaml: &[u8]) -> Result<$name, ProtocolError> {
                let doc = Doc::parse($what, yaml)?;
                Ok($name {
                    $($field: stats_doc!(@read doc, $key $(, $via)?),)*
                    $($($afield: $avalue,)*)?
                })
            }

            fn to_yaml(&self) -> Vec<u8> {
                let mut out = String::from("---\n");
                $(
                    let quoted = false $(|| stats_doc!(@q $q))?;
                    let value = self.$field.write();
                    if quoted {
                        let _ = writeln!(out, "{}: \"{}\"", $key, value);
                    } else {
                        let _ = writeln!(out, "{}: {}", $key, value);
                    }
                )*
                out.into_bytes()
            }
        }
    };
    (@read $doc:ident, $key:literal) => { FieldValue::read(&$doc, $key)? };
    (@read $doc:ident, $key:literal, $via:ident) => { <$via as FieldValue>::read(&$doc, $key)?.into() };
    (@q $q:tt) => { true };
}

/// How one field reads from and writes to its YAML value.
trait FieldValue: Sized {
    fn read(doc: &Doc<'_>, key: &str) -> Result<Self, ProtocolError>;
    fn write(&self) -> String;
}

macro_rules! plain_field {
    ($($ty:ty),*) => {$(
        impl FieldValue for $ty {
            fn read(doc: &Doc<'_>, key: &str) -> Result<Self, ProtocolError> {
                doc.get(key)
            }
            fn write(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
plain_field!(u64, u32, bool, String);

impl FieldValue for f64 {
    fn read(doc: &Doc<'_>, key: &str) -> Result<Self, ProtocolError> {
        doc.get(key)
    }
    fn write(&self) -> String {
        format!("{self:.6}")
    }
}

/// Times are whole seconds on the wire.
impl FieldValue for Duration {
    fn read(doc: &Doc<'_>, key: &str) -> Result<Self, ProtocolError> {
        doc.get(key).map(Duration::from_secs)
    }
    fn write(&self) -> String {
        self.as_secs().to_string()
    }
}

impl FieldValue for JobState {
    fn read(doc: &Doc<'_>, key: &str) -> Result<Self, ProtocolError> {
        doc.get(key)
    }
    fn write(&self) -> String {
        self.as_str().to_owned()
    }
}

impl FieldValue for TubeName {
    fn read(doc: &Doc<'_>, key: &str) -> Result<Self, ProtocolError> {
        doc.tube(key)
    }
    fn write(&self) -> String {
        self.as_str().to_owned()
    }
}

stats_doc!(
    JobStats, "stats-job", {
        id = "id",
        tube = "tube" via TubeName,
        state = "state",
        pri = "pri",
        age = "age",
        delay = "delay",
        ttr = "ttr",
        time_left = "time-left",
        file = "file",
        reserves = "reserves",
        timeouts = "timeouts",
        releases = "releases",
        buries = "buries",
        kicks = "kicks",
    } absent { reason: None }
);

stats_doc!(
    TubeStats, "stats-tube", {
        name = "name" via TubeName,
        current_jobs_urgent = "current-jobs-urgent",
        current_jobs_ready = "current-jobs-ready",
        current_jobs_reserved = "current-jobs-reserved",
        current_jobs_delayed = "current-jobs-delayed",
        current_jobs_buried = "current-jobs-buried",
        total_jobs = "total-jobs",
        current_using = "current-using",
        current_watching = "current-watching",
        current_waiting = "current-waiting",
        cmd_delete = "cmd-delete",
        cmd_pause_tube = "cmd-pause-tube",
        pause = "pause",
        pause_time_left = "pause-time-left",
    }
);

stats_doc!(
    /// `stats`: every field of protocol.txt. (Only beanstalkd has a server to
    /// report on, so this one is not in `pulpo-model`.)
    struct ServerStats, "stats", {
        /// Ready jobs with priority < 1024.
        current_jobs_urgent: u64 = "current-jobs-urgent",
        /// Ready jobs.
        current_jobs_ready: u64 = "current-jobs-ready",
        /// Reserved jobs.
        current_jobs_reserved: u64 = "current-jobs-reserved",
        /// Delayed jobs.
        current_jobs_delayed: u64 = "current-jobs-delayed",
        /// Buried jobs.
        current_jobs_buried: u64 = "current-jobs-buried",
        /// put commands.
        cmd_put: u64 = "cmd-put",
        /// peek commands.
        cmd_peek: u64 = "cmd-peek",
        /// peek-ready commands.
        cmd_peek_ready: u64 = "cmd-peek-ready",
        /// peek-delayed commands.
        cmd_peek_delayed: u64 = "cmd-peek-delayed",
        /// peek-buried commands.
        cmd_peek_buried: u64 = "cmd-peek-buried",
        /// reserve commands.
        cmd_reserve: u64 = "cmd-reserve",
        /// reserve-with-timeout commands.
        cmd_reserve_with_timeout: u64 = "cmd-reserve-with-timeout",
        /// delete commands.
        cmd_delete: u64 = "cmd-delete",
        /// release commands.
        cmd_release: u64 = "cmd-release",
        /// use commands.
        cmd_use: u64 = "cmd-use",
        /// watch commands.
        cmd_watch: u64 = "cmd-watch",
        /// ignore commands.
        cmd_ignore: u64 = "cmd-ignore",
        /// bury commands.
        cmd_bury: u64 = "cmd-bury",
        /// kick commands.
        cmd_kick: u64 = "cmd-kick",
        /// touch commands.
        cmd_touch: u64 = "cmd-touch",
        /// stats commands.
        cmd_stats: u64 = "cmd-stats",
        /// stats-job commands.
        cmd_stats_job: u64 = "cmd-stats-job",
        /// stats-tube commands.
        cmd_stats_tube: u64 = "cmd-stats-tube",
        /// list-tubes commands.
        cmd_list_tubes: u64 = "cmd-list-tubes",
        /// list-tube-used commands.
        cmd_list_tube_used: u64 = "cmd-list-tube-used",
        /// list-tubes-watched commands.
        cmd_list_tubes_watched: u64 = "cmd-list-tubes-watched",
        /// pause-tube commands.
        cmd_pause_tube: u64 = "cmd-pause-tube",
        /// Times any job timed out.
        job_timeouts: u64 = "job-timeouts",
        /// Jobs created.
        total_jobs: u64 = "total-jobs",
        /// The largest job body accepted, in bytes.
        max_job_size: u64 = "max-job-size",
        /// Existing tubes.
        current_tubes: u64 = "current-tubes",
        /// Open connections.
        current_connections: u64 = "current-connections",
        /// Connections that have put.
        current_producers: u64 = "current-producers",
        /// Connections that have reserved.
        current_workers: u64 = "current-workers",
        /// Connections waiting in a reserve.
        current_waiting: u64 = "current-waiting",
        /// Connections ever opened.
        total_connections: u64 = "total-connections",
        /// The server's process id.
        pid: u64 = "pid",
        /// The server's version.
        version: String = "version" quoted q,
        /// User CPU seconds.
        rusage_utime: f64 = "rusage-utime",
        /// System CPU seconds.
        rusage_stime: f64 = "rusage-stime",
        /// Seconds since the server started.
        uptime: u64 = "uptime",
        /// The oldest binlog file still needed.
        binlog_oldest_index: u64 = "binlog-oldest-index",
        /// The binlog file being written (0 without a binlog).
        binlog_current_index: u64 = "binlog-current-index",
        /// Records migrated by compaction.
        binlog_records_migrated: u64 = "binlog-records-migrated",
        /// Records written to the binlog.
        binlog_records_written: u64 = "binlog-records-written",
        /// The largest a binlog file may grow, in bytes.
        binlog_max_size: u64 = "binlog-max-size",
        /// Whether the server is draining (accepts no puts).
        draining: bool = "draining",
        /// A random id of this server process.
        id: String = "id",
        /// The machine's host name.
        hostname: String = "hostname",
        /// The OS version (uname).
        os: String = "os",
        /// The machine architecture (uname).
        platform: String = "platform",
    }
);

/// Parses the YAML list of list-tubes / list-tubes-watched.
pub fn parse_tube_list(yaml: &[u8]) -> Result<Vec<TubeName>, ProtocolError> {
    let what = "tube list";
    let mut tubes = Vec::new();
    for line in content_lines(what, yaml)? {
        let Some(name) = line.strip_prefix("- ") else {
            return Err(ProtocolError::BadYaml {
                what,
                detail: format!("line {line:?} is not `- name`"),
            });
        };
        tubes.push(TubeName::new(unquote(name))?);
    }
    Ok(tubes)
}

/// Writes a tube list as beanstalkd does (`---\n- default\n`).
pub fn tube_list_to_yaml(tubes: &[TubeName]) -> Vec<u8> {
    let mut out = String::from("---\n");
    for tube in tubes {
        let _ = writeln!(out, "- {tube}");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS_JOB: &[u8] = include_bytes!("../../../../fixtures/beanstalkd/stats-job.yaml");
    const STATS_TUBE: &[u8] = include_bytes!("../../../../fixtures/beanstalkd/stats-tube.yaml");
    const STATS: &[u8] = include_bytes!("../../../../fixtures/beanstalkd/stats.yaml");

    #[test]
    fn parses_captured_documents_and_writes_them_back() {
        let job = JobStats::parse(STATS_JOB).unwrap();
        assert_eq!(
            (job.id, job.tube.as_str(), job.state, job.ttr),
            (1, "default", JobState::Ready, Duration::from_secs(10))
        );
        assert_eq!(JobStats::parse(&job.to_yaml()).unwrap(), job);
        assert_eq!(
            job.to_yaml(),
            STATS_JOB,
            "byte for byte as beanstalkd 1.12 writes it"
        );

        let tube = TubeStats::parse(STATS_TUBE).unwrap();
        assert_eq!(
            (tube.name.as_str(), tube.current_jobs_ready, tube.total_jobs),
            ("default", 1, 1)
        );
        assert_eq!(TubeStats::parse(&tube.to_yaml()).unwrap(), tube);

        let stats = ServerStats::parse(STATS).unwrap();
        assert_eq!(stats.version, "1.12");
        assert_eq!(stats.max_job_size, 65535);
        assert!(!stats.draining);
        assert_eq!(stats.os, "#1 SMP PREEMPT_DYNAMIC @0");
        assert_eq!(ServerStats::parse(&stats.to_yaml()).unwrap(), stats);
    }

    #[test]
    fn missing_and_bad_keys_are_named() {
        let text = String::from_utf8(STATS_JOB.to_vec()).unwrap();
        let missing = text.replace("kicks: 0\n", "");
        let err = JobStats::parse(missing.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("missing key \"kicks\""), "{err}");
        let bad = text.replace("pri: 0", "pri: high");
        let err = JobStats::parse(bad.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("\"pri\" has the bad value \"high\""),
            "{err}"
        );
        assert!(JobStats::parse(b"\xff\xfe").is_err());
        assert!(JobStats::parse(b"---\nno colon here\n").is_err());
        // Unknown keys are ignored.
        let extra = format!("{text}future-key: 7\n");
        assert!(JobStats::parse(extra.as_bytes()).is_ok());
    }

    #[test]
    fn tube_lists() {
        let tubes = parse_tube_list(b"---\n- default\n- emails\n").unwrap();
        assert_eq!(
            tubes.iter().map(TubeName::as_str).collect::<Vec<_>>(),
            ["default", "emails"]
        );
        assert_eq!(tube_list_to_yaml(&tubes), b"---\n- default\n- emails\n");
        assert!(parse_tube_list(b"---\n- bad name\n").is_err());
        assert!(parse_tube_list(b"---\nnot a list\n").is_err());
        assert_eq!(
            parse_tube_list(b"---\r\n- default\r").unwrap(),
            [TubeName::default_tube()]
        );
    }

    /// Found while writing the round-trip check of the `stats_yaml` fuzz target: a document
    /// whose last line ended in a CR kept the CR in the value, which the written document then
    /// lost (`parse(to_yaml(x)) != x`).
    #[test]
    fn a_carriage_return_ending_a_line_is_not_part_of_the_value() {
        let text = String::from_utf8(STATS.to_vec()).unwrap();
        let cut = format!("{}\r", text.trim_end());
        let stats = ServerStats::parse(cut.as_bytes()).unwrap();
        assert_eq!(stats.platform, "x86_64");
        assert_eq!(ServerStats::parse(&stats.to_yaml()).unwrap(), stats);
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(
            ServerStats::parse(crlf.as_bytes()).unwrap(),
            ServerStats::parse(STATS).unwrap()
        );
    }
}
