//! The `pulpo` command line: argument parsing (clap derive), the dispatch,
//! and one file per group of commands (publish, run, inspect, manage), each
//! working through the [`crate::queue::Queue`] trait so every command runs
//! on either queue. `main.rs` only calls [`main`].

mod history;
mod inspect;
mod jobs;
mod manage;
mod publish;
mod run;
mod schedules;
mod serve;
mod show;

use inspect::PeekArgs;
pub(crate) use inspect::job_document;
use publish::PublishArgs;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::config::{self, Overrides, QueueKind};
use crate::duration::parse_duration;
use crate::handlers::Registry;
use crate::message::parse_time;
use crate::queue::{self, QueueError};

/// pulpo: publish jobs, inspect and manage the queue.
#[derive(Debug, Parser)]
#[command(name = "pulpo", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand accepts, before or after its name.
#[derive(Debug, Args)]
struct GlobalArgs {
    /// Config file [default: ./pulpo.toml when present].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Which queue to use: file or beanstalkd.
    #[arg(long, global = true, value_name = "KIND")]
    queue: Option<QueueKind>,
    /// The file queue's directory.
    #[arg(long, global = true, value_name = "DIR")]
    path: Option<PathBuf>,
    /// beanstalkd's address: HOST:PORT or unix:/path.
    #[arg(long, global = true, value_name = "ADDR")]
    address: Option<String>,
    /// The tube to publish to and to inspect (pop and run reserve from it alone).
    #[arg(long, global = true, value_name = "TUBE")]
    tube: Option<String>,
    /// Print one JSON document instead of human text.
    #[arg(long, global = true)]
    json: bool,
    /// Log lines as human text or JSON objects (stderr; PULPO_LOG sets the level).
    #[arg(long, global = true, value_name = "FORMAT", default_value = "human")]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event, with the job span's fields.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the runner: reserve jobs from the watched tubes, run their handlers,
    /// settle them; stops when idle (see on_idle) or on SIGINT/SIGTERM.
    Run,
    /// Publish a message; prints the new job ids.
    Publish(PublishArgs),
    /// Show a job by id, or the next ready, delayed or buried job of the tube.
    Peek(PeekArgs),
    /// List a page of the tube's jobs in one state, filtered by type, body text or reason.
    Jobs(jobs::ListArgs),
    /// Delete jobs by id, or every job of the tube a state and filters match.
    Delete {
        /// The job ids.
        #[arg(value_name = "ID")]
        ids: Vec<u64>,
        #[command(flatten)]
        bulk: jobs::BulkArgs,
    },
    /// Kick up to N buried jobs of the tube (delayed ones when none is buried), or
    /// every buried (or --delayed) job the filters match.
    Kick {
        /// The most jobs to kick [default: 1].
        #[arg(value_name = "N")]
        bound: Option<u64>,
        #[command(flatten)]
        bulk: jobs::BulkArgs,
    },
    /// Retry buried jobs with a fresh set of attempts: each is replaced by a
    /// copy, ready, with a new id (kick gives back one attempt only).
    Retry(manage::RetryArgs),
    /// Kick one buried or delayed job.
    KickJob {
        /// The job id.
        #[arg(value_name = "ID")]
        id: u64,
    },
    /// Reserve the next ready job, print it, and delete it.
    Pop,
    /// Show the queue's statistics.
    Stats,
    /// Show a job's statistics.
    StatsJob {
        /// The job id.
        #[arg(value_name = "ID")]
        id: u64,
    },
    /// List the tubes with their job counts.
    Tubes,
    /// Hold back reservations from a tube for a while.
    Pause {
        /// The tube.
        tube: String,
        /// How long, e.g. 30s, 5m or plain seconds.
        #[arg(value_parser = parse_duration_arg)]
        duration: Duration,
    },
    /// Show a job's state: live while the queue has it, then its record
    /// (attempts, errors, events, result; needs [history] enabled).
    Status {
        /// The job id.
        #[arg(value_name = "ID")]
        job: crate::history::JobRef,
    },
    /// List job records, newest first (needs [history] enabled).
    History(history::HistoryArgs),
    /// Validate the config and print it as resolved (defaults < file < env < flags).
    Config,
    /// List each schedule with its next fire times and the last tick fired.
    Schedules,
    /// Serve the file queue over beanstalkd's protocol, so any beanstalkd client can use it.
    Serve {
        /// Where to listen (`HOST:PORT` or `unix:/path`), instead of `[serve] listen`; repeatable.
        #[arg(long, value_name = "ADDR")]
        listen: Vec<String>,
        /// Where the HTTP API, dashboard and /metrics listen (`HOST:PORT`), instead of `[serve] http`.
        #[arg(long, value_name = "ADDR")]
        http: Option<String>,
    },
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|err| err.to_string())
}

fn parse_time_arg(text: &str) -> Result<DateTime<Utc>, String> {
    parse_time(text).map_err(|err| err.to_string())
}

/// A failed command: its one-line reason and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code: 2 for usage and config errors, 141 when stdout's
    /// reader went away, 1 otherwise.
    pub code: u8,
    /// The one-line reason; empty when there is nothing to say (a closed
    /// stdout ends a command quietly, as it does other Unix tools).
    pub message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<QueueError> for Failure {
    fn from(err: QueueError) -> Failure {
        Failure {
            code: 1,
            message: err.to_string(),
        }
    }
}

impl From<config::ConfigError> for Failure {
    fn from(err: config::ConfigError) -> Failure {
        Failure::usage(err.to_string())
    }
}

/// Parses the process's arguments, runs the command, and returns the exit
/// code; errors are printed to stderr as one line.
pub fn main() -> ExitCode {
    main_with(Registry::with_builtins())
}

/// [`main`] with the handler kinds of `registry`: a Rust program registers
/// its own kinds and gets the whole `pulpo` command line, `run` included.
pub fn main_with(registry: Registry) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err, json_asked()),
    };
    let json = cli.global.json;
    let running = matches!(cli.command, Command::Run | Command::Serve { .. });
    init_logging(cli.global.log_format, if running { "info" } else { "warn" });
    let runtime = if matches!(cli.command, Command::Serve { .. }) {
        // Every connection waiting in a reserve holds a blocking thread (the file queue's API
        // blocks), so the pool must not be what caps connections.
        tokio::runtime::Builder::new_multi_thread()
            .max_blocking_threads(config::MAX_SERVE_CONNECTIONS as usize + 64)
            .enable_all()
            .build()
    } else if running {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            show::failure(json, &format!("cannot start the async runtime: {err}"), 1);
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run_with(cli, &registry)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                show::failure(json, &failure.message, failure.code);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Whether the command line asks for `--json` (before a `--`), for a usage
/// error clap found before the flags were parsed.
fn json_asked() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json")
}

/// Help and version print as clap renders them; a usage error becomes one
/// line on stderr (JSON with `json`) and exit code 2.
fn usage_error(err: clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
    }
    let rendered = err.render().to_string();
    let first = rendered
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("invalid arguments");
    let reason = first.strip_prefix("error: ").unwrap_or(first);
    show::failure(json, &format!("{reason} (see pulpo --help)"), 2);
    ExitCode::from(2)
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PULPO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

/// Runs one parsed command line with the built-in handler kinds.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    run_with(cli, &Registry::with_builtins()).await
}

/// Runs one parsed command line with the handler kinds of `registry`.
pub async fn run_with(cli: Cli, registry: &Registry) -> Result<(), Failure> {
    let global = cli.global;
    let overrides = Overrides {
        queue: global.queue,
        path: global.path.clone(),
        address: global.address.clone(),
        tube: global.tube.clone(),
    };
    let settings = config::load(global.config.as_deref(), &overrides)?;
    let json = global.json;
    if let Command::Config = cli.command {
        // Validating includes building every handler from its table.
        registry.build_all(&settings)?;
        return show::config(&settings, json);
    }
    if let Command::Run = cli.command {
        return run::run(
            registry,
            &settings,
            global.config.clone(),
            overrides,
            global.tube.clone(),
            json,
        )
        .await;
    }
    if let Command::History(args) = cli.command {
        // Records only: no queue needed (beanstalkd may be down).
        return history::list(&settings, args, json);
    }
    if let Command::Status { job } = cli.command {
        // Opens the queue only when the record does not settle it.
        return history::status(&settings, job, json).await;
    }
    if let Command::Serve { listen, http } = cli.command {
        return serve::serve(&settings, listen, http, json).await;
    }
    let mut queue = queue::open(&settings).await?;
    let queue = queue.as_mut();
    let tube = settings.tube.clone();
    match cli.command {
        Command::Publish(args) => publish::publish(queue, &settings, args, json).await,
        Command::Peek(args) => inspect::peek(queue, &tube, args, json).await,
        Command::Jobs(args) => jobs::list(queue, &tube, args, json).await,
        Command::Delete { ids, bulk } => {
            if bulk.filter_mode("delete", !ids.is_empty())? {
                return jobs::bulk(queue, &settings, &tube, crate::jobs::Action::Delete, bulk, json).await;
            }
            if ids.is_empty() {
                return Err(Failure::usage(
                    "delete needs job ids, or a state and filters (e.g. --buried --type T)",
                ));
            }
            manage::delete(queue, &settings, &ids, json).await
        }
        Command::Kick { bound, bulk } => {
            if bulk.filter_mode("kick", bound.is_some())? {
                return jobs::bulk(queue, &settings, &tube, crate::jobs::Action::Kick, bulk, json).await;
            }
            let bound = bound.unwrap_or(1);
            let kicked = queue.kick(&tube, bound).await?;
            show::emit(json, json!({"tube": tube, "kicked": kicked}), || {
                format!("kicked {kicked} job{} in tube {tube}", plural(kicked))
            })?;
            Ok(())
        }
        Command::Retry(args) => manage::retry(queue, &settings, &tube, args, json).await,
        Command::KickJob { id } => {
            queue.kick_job(id).await?;
            show::emit(json, json!({"id": id, "kicked": true}), || {
                format!("kicked job {id}")
            })?;
            Ok(())
        }
        Command::Pop => {
            let watch = if global.tube.is_some() {
                vec![tube]
            } else {
                settings.watch.clone()
            };
            manage::pop(queue, &watch, json).await
        }
        Command::Stats => {
            show::stats(json, queue.stats().await?)?;
            Ok(())
        }
        Command::StatsJob { id } => {
            let info = queue.stats_job(id).await?;
            let value = serde_json::to_value(&info).unwrap_or(Value::Null);
            show::emit(json, value, || show::job_stats(&info))?;
            Ok(())
        }
        Command::Tubes => inspect::tubes(queue, json).await,
        Command::Schedules => schedules::list(queue, &settings, json).await,
        Command::Pause { tube, duration } => {
            queue.pause_tube(&tube, duration).await?;
            // What the queue applied, which may be rounded up (beanstalkd
            // pauses whole seconds).
            let applied = queue.applied_pause(duration);
            let value = json!({
                "tube": tube,
                "paused_for": applied.as_secs_f64(),
                "requested": duration.as_secs_f64(),
            });
            show::emit(json, value, || {
                let mut line = format!("paused tube {tube} for {}", humantime::format_duration(applied));
                if applied != duration {
                    line += &format!(
                        " (rounded up from {}: the queue pauses in whole seconds)",
                        humantime::format_duration(duration)
                    );
                }
                line
            })?;
            Ok(())
        }
        Command::Config
        | Command::Run
        | Command::Serve { .. }
        | Command::History(_)
        | Command::Status { .. } => {
            unreachable!("handled before the queue is opened")
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
