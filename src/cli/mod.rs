//! The `pulpo` command line: argument parsing (clap derive) and one function
//! per subcommand, each working through the [`Queue`] trait so every command
//! runs on either queue. `main.rs` only calls [`main`].

mod show;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::config::{self, Overrides, QueueKind, Settings};
use crate::duration::parse_duration;
use crate::handlers::Registry;
use crate::message::{Message, parse_time};
use crate::queue::{self, NewJob, PeekState, Queue, QueueError};
use crate::runner;

/// How many messages `publish --count` hands the queue at once: each batch's
/// ids are printed as soon as the queue has stored it.
const PUBLISH_BATCH: u64 = 1_000;

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
    /// Delete jobs by id.
    Delete {
        /// The job ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<u64>,
    },
    /// Kick up to N buried jobs of the tube (delayed ones when none is buried).
    Kick {
        /// The most jobs to kick.
        #[arg(default_value_t = 1, value_name = "N")]
        bound: u64,
    },
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
    /// Validate the config and print it as resolved (defaults < file < env < flags).
    Config,
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// The message's request type (selects the handler).
    request_type: String,
    /// The payload, stored as body.payload.
    payload: Option<String>,
    /// Priority: 0 is most urgent [default: the handler's priority, else defaults.priority].
    #[arg(long, value_name = "N")]
    priority: Option<u32>,
    /// Hold the job back this long before it is ready, e.g. 10s.
    #[arg(long, value_parser = parse_duration_arg, value_name = "D")]
    delay: Option<Duration>,
    /// Time to run once reserved [default: the handler's ttr, else defaults.ttr].
    #[arg(long, value_parser = parse_duration_arg, value_name = "D")]
    ttr: Option<Duration>,
    /// The job expires this long from now.
    #[arg(long, value_parser = parse_duration_arg, value_name = "D", conflicts_with = "expiration")]
    expires_in: Option<Duration>,
    /// The job expires at this time (RFC 3339, or YYYY-MM-DD HH:MM:SS local).
    #[arg(long, value_parser = parse_time_arg, value_name = "TIME")]
    expiration: Option<DateTime<Utc>>,
    /// An extra header field, KEY=VALUE (VALUE read as JSON when it parses).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// The message body as a JSON object; the payload argument, if given, sets its "payload".
    #[arg(long, value_name = "JSON")]
    body_json: Option<String>,
    /// Publish this many copies.
    #[arg(long, default_value_t = 1, value_name = "N")]
    count: u64,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "ready", "delayed", "buried"])))]
struct PeekArgs {
    /// The job id.
    id: Option<u64>,
    /// The next ready job of the tube.
    #[arg(long)]
    ready: bool,
    /// The delayed job of the tube with the least delay left.
    #[arg(long)]
    delayed: bool,
    /// The next buried job of the tube.
    #[arg(long)]
    buried: bool,
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
    /// The exit code: 2 for usage and config errors, 1 otherwise.
    pub code: u8,
    /// The one-line reason.
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
        Err(err) => return usage_error(err),
    };
    let running = matches!(cli.command, Command::Run);
    init_logging(cli.global.log_format, if running { "info" } else { "warn" });
    let runtime = if running {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pulpo: error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run_with(cli, &registry)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("pulpo: error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Help and version print as clap renders them; a usage error becomes one
/// line on stderr and exit code 2.
fn usage_error(err: clap::Error) -> ExitCode {
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
    eprintln!("pulpo: error: {reason} (see pulpo --help)");
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
        // Handler tables are checked before anything runs.
        registry.build_all(&settings)?;
        let config_file = global.config.clone();
        // `--tube` narrows what run reserves from to that tube, as for pop.
        let only_tube = global.tube.clone();
        let load = move || {
            let mut settings = config::load(config_file.as_deref(), &overrides)?;
            if let Some(tube) = &only_tube {
                settings.watch = vec![tube.clone()];
            }
            Ok(settings)
        };
        let report = runner::run_until_stopped(load, registry, shutdown_on_signals())
            .await
            .map_err(|err| match err {
                runner::RunError::Config(err) => Failure::from(err),
                other => Failure {
                    code: 1,
                    message: other.to_string(),
                },
            })?;
        show::run_report(json, &report);
        return Ok(());
    }
    let mut queue = queue::open(&settings).await?;
    let queue = queue.as_mut();
    let tube = settings.tube.clone();
    match cli.command {
        Command::Publish(args) => publish(queue, &settings, args, json).await,
        Command::Peek(args) => peek(queue, &tube, args, json).await,
        Command::Delete { ids } => delete(queue, &ids, json).await,
        Command::Kick { bound } => {
            let kicked = queue.kick(&tube, bound).await?;
            show::emit(json, json!({"tube": tube, "kicked": kicked}), || {
                format!("kicked {kicked} job{} in tube {tube}", plural(kicked))
            });
            Ok(())
        }
        Command::KickJob { id } => {
            queue.kick_job(id).await?;
            show::emit(json, json!({"id": id, "kicked": true}), || {
                format!("kicked job {id}")
            });
            Ok(())
        }
        Command::Pop => {
            let watch = if global.tube.is_some() {
                vec![tube]
            } else {
                settings.watch.clone()
            };
            pop(queue, &watch, json).await
        }
        Command::Stats => {
            let stats = queue.stats().await?;
            show::emit(json, Value::Object(stats.clone()), || show::pairs(&stats));
            Ok(())
        }
        Command::StatsJob { id } => {
            let info = queue.stats_job(id).await?;
            let value = serde_json::to_value(&info).unwrap_or(Value::Null);
            show::emit(json, value, || show::job_stats(&info));
            Ok(())
        }
        Command::Tubes => tubes(queue, json).await,
        Command::Pause { tube, duration } => {
            queue.pause_tube(&tube, duration).await?;
            let secs = duration.as_secs_f64();
            show::emit(json, json!({"tube": tube, "paused_for": secs}), || {
                format!("paused tube {tube} for {}", humantime::format_duration(duration))
            });
            Ok(())
        }
        Command::Config | Command::Run => unreachable!("handled before the queue is opened"),
    }
}

/// A token cancelled by the first SIGINT or SIGTERM; a second one exits the
/// process at once (128 + the signal's number), leaving reserved jobs to
/// come back by themselves.
fn shutdown_on_signals() -> tokio_util::sync::CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        tracing::warn!("cannot listen for SIGINT/SIGTERM; stop the runner with SIGKILL");
        return token;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("signal received: stopping (send another to exit at once)");
        cancel.cancel();
        let code = tokio::select! {
            _ = interrupt.recv() => 130,
            _ = terminate.recv() => 143,
        };
        tracing::warn!("second signal: exiting at once; jobs still reserved come back after their TTR");
        std::process::exit(code);
    });
    token
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Builds the message `publish` stores, from its flags and the defaults.
fn build_message(args: &PublishArgs, now: DateTime<Utc>) -> Result<Message, Failure> {
    let mut message = Message::new(&args.request_type);
    if let Some(body_json) = &args.body_json {
        let body: Value = serde_json::from_str(body_json)
            .map_err(|err| Failure::usage(format!("--body-json is not valid JSON: {err}")))?;
        let Value::Object(body) = body else {
            return Err(Failure::usage(
                "--body-json must be a JSON object, e.g. '{\"to\": \"a@example.com\"}'",
            ));
        };
        message.body = body;
    }
    if let Some(payload) = &args.payload {
        message
            .body
            .insert("payload".to_owned(), Value::String(payload.clone()));
    }
    for pair in &args.headers {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Failure::usage(format!("--header {pair:?}: expected KEY=VALUE")));
        };
        if matches!(
            key,
            "request_type" | "priority" | "delay" | "expiration" | "ttr" | "attempts"
        ) {
            return Err(Failure::usage(format!(
                "--header {key}=...: {key} has its own flag (see pulpo publish --help)"
            )));
        }
        if key.is_empty() {
            return Err(Failure::usage(format!("--header {pair:?}: the key is empty")));
        }
        if key == "source" {
            message.header.source = Some(value.to_owned());
            continue;
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        message.header.extra.insert(key.to_owned(), value);
    }
    message.header.priority = args.priority;
    if let Some(delay) = args.delay {
        message.header.delay = Some(now + chrono_duration(delay)?);
    }
    if let Some(ttr) = args.ttr {
        message.header.ttr = Some(queue::whole_seconds_ceil(ttr).max(1));
    }
    message.header.expiration = match (args.expires_in, args.expiration) {
        (Some(expires_in), _) => Some(now + chrono_duration(expires_in)?),
        (None, expiration) => expiration,
    };
    Ok(message)
}

fn chrono_duration(duration: Duration) -> Result<chrono::Duration, Failure> {
    chrono::Duration::from_std(duration)
        .map_err(|_| Failure::usage(format!("duration {duration:?} is too long")))
}

async fn publish(
    queue: &mut dyn Queue,
    settings: &Settings,
    args: PublishArgs,
    json: bool,
) -> Result<(), Failure> {
    if args.count == 0 {
        return Err(Failure::usage("--count must be at least 1"));
    }
    let now = Utc::now();
    let mut message = build_message(&args, now)?;
    // As in `publish::prepare`, the request type's handler table comes
    // before `[defaults]`; a flag comes before both.
    let handler = settings.handler(&args.request_type);
    let priority = args
        .priority
        .or_else(|| handler.and_then(|h| h.priority))
        .unwrap_or(settings.defaults.priority);
    message.header.priority = Some(priority);
    let ttr = args
        .ttr
        .or_else(|| handler.and_then(|h| h.ttr))
        .unwrap_or(settings.defaults.ttr);
    message.header.ttr = Some(queue::whole_seconds_ceil(ttr).max(1));
    let body = Bytes::from(message.to_json());
    let job = NewJob {
        priority,
        delay: args.delay.unwrap_or_default(),
        ttr,
        body,
    };
    let tube = &settings.tube;

    let mut ids = Vec::new();
    let mut remaining = args.count;
    while remaining > 0 {
        let n = remaining.min(PUBLISH_BATCH);
        remaining -= n;
        let batch = (0..n).map(|_| job.clone()).collect();
        for result in queue.put_many(tube, batch).await? {
            let id = result?;
            if !json {
                println!("{id}");
            }
            ids.push(id);
        }
    }
    if json {
        show::print_json(&json!({"tube": tube, "ids": ids}));
    }
    Ok(())
}

async fn peek(queue: &mut dyn Queue, tube: &str, args: PeekArgs, json: bool) -> Result<(), Failure> {
    let job = match args.id {
        Some(id) => queue.peek(id).await?,
        None => {
            let (state, name) = if args.ready {
                (PeekState::Ready, "ready")
            } else if args.delayed {
                (PeekState::Delayed, "delayed")
            } else {
                (PeekState::Buried, "buried")
            };
            match queue.peek_state(tube, state).await? {
                Some(job) => job,
                None => {
                    return Err(Failure {
                        code: 1,
                        message: format!("no {name} job in tube {tube}"),
                    });
                }
            }
        }
    };
    let info = match queue.stats_job(job.id).await {
        Ok(info) => Some(info),
        // Deleted between the two calls: show what we have.
        Err(QueueError::JobNotFound { .. }) => None,
        Err(err) => return Err(err.into()),
    };
    show::job(json, &job, info.as_ref());
    Ok(())
}

async fn delete(queue: &mut dyn Queue, ids: &[u64], json: bool) -> Result<(), Failure> {
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for &id in ids {
        match queue.delete(id).await {
            Ok(()) => {
                if !json {
                    println!("deleted job {id}");
                }
                deleted.push(id);
            }
            Err(err @ QueueError::JobNotFound { .. }) => {
                if !json && ids.len() > 1 {
                    eprintln!("pulpo: error: {err}");
                }
                failed.push(json!({"id": id, "error": err.to_string()}));
            }
            Err(err) => return Err(err.into()),
        }
    }
    if json {
        show::print_json(&json!({"deleted": deleted, "failed": failed}));
    }
    match (failed.len(), ids) {
        (0, _) => Ok(()),
        (_, [id]) => Err(Failure {
            code: 1,
            message: format!("job {id} not found (or reserved by another worker)"),
        }),
        (n, _) => Err(Failure {
            code: 1,
            message: format!("{n} of {} jobs not deleted", ids.len()),
        }),
    }
}

async fn pop(queue: &mut dyn Queue, watch: &[String], json: bool) -> Result<(), Failure> {
    let Some(job) = queue.reserve(watch, Duration::ZERO).await? else {
        return Err(Failure {
            code: 1,
            message: format!("no ready job in {}", watch.join(", ")),
        });
    };
    let info = queue.stats_job(job.id).await.ok();
    show::job(json, &job, info.as_ref());
    queue.delete(job.id).await?;
    Ok(())
}

async fn tubes(queue: &mut dyn Queue, json: bool) -> Result<(), Failure> {
    let mut infos = Vec::new();
    for name in queue.list_tubes().await? {
        match queue.stats_tube(&name).await {
            Ok(info) => infos.push(info),
            // A tube can vanish between the two calls once it is empty.
            Err(QueueError::TubeNotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let value = serde_json::to_value(&infos).unwrap_or(Value::Null);
    show::emit(json, json!({"tubes": value}), || show::tube_table(&infos));
    Ok(())
}

/// A JSON object of one job: id, state, stats and message (or the raw body).
pub(crate) fn job_document(job: &queue::Job, info: Option<&queue::JobStats>) -> Value {
    let mut doc = Map::new();
    doc.insert("id".to_owned(), json!(job.id));
    if let Some(info) = info {
        doc.insert("state".to_owned(), json!(info.state));
        doc.insert(
            "stats".to_owned(),
            serde_json::to_value(info).unwrap_or(Value::Null),
        );
    }
    match Message::from_json(&job.body) {
        Ok(message) => {
            let value = serde_json::from_slice(&message.to_json()).unwrap_or(Value::Null);
            doc.insert("message".to_owned(), value);
        }
        Err(err) => {
            doc.insert(
                "body".to_owned(),
                Value::String(String::from_utf8_lossy(&job.body).into_owned()),
            );
            doc.insert("body_error".to_owned(), Value::String(err.to_string()));
        }
    }
    Value::Object(doc)
}
