//! The command line: `serve`, `migrate`, `check-config`, `sync` and `jobs`.
//!
//! `sync` and `jobs` talk to the database directly (the same queue the daemons serve), so they work
//! from any machine that can reach it, whether or not a daemon runs there.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::{Config, SyncMode};
use crate::context::Context;
use crate::store::job_status::{self, JobFilter};
use crate::{daemon, db, sync};

/// Keeps a Postgres mirror of Stripe and Intercom data.
#[derive(Debug, Parser)]
#[command(name = "supasaasy", version)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "supasaasy.toml",
        env = "SUPASAASY_CONFIG"
    )]
    pub config: PathBuf,
    /// Log lines as human-readable text or as one JSON object per line.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SUPASAASY_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: migrations, webhook and API listener, workers, scheduler.
    Serve {
        /// Listen here instead of `server.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Do not migrate the schema at start (as `[database] migrate = false`): it must already
        /// be this binary's, or a newer one compatible with it.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Validate the config file (and that its environment variables are set) and exit.
    CheckConfig,
    /// Ask a running daemon's `/livez` (for a container's HEALTHCHECK); exit 0 when it answers
    /// 200. Reads only `server.listen` (a wildcard address is asked on loopback).
    Healthcheck {
        /// Ask this URL instead.
        #[arg(long)]
        url: Option<String>,
    },
    /// Print the configuration in effect (file, environment overrides, defaults) as JSON, secrets
    /// shown only as set or not.
    Config,
    /// Enqueue a sync job for an app.
    Sync {
        /// The app to sync.
        app_key: String,
        /// A full sync (walk everything, then tombstone what was not seen) instead of incremental.
        #[arg(long)]
        full: bool,
        /// Only this resource (repeatable); default: the app's sync_resources.
        #[arg(long = "resource", value_name = "R")]
        resources: Vec<String>,
        /// Show progress until the job ends; exit non-zero unless it completed.
        #[arg(long)]
        wait: bool,
    },
    /// Show recent jobs, or one job with its tasks.
    Jobs {
        /// A job id.
        job_id: Option<String>,
        /// Only this app's jobs.
        #[arg(long)]
        app: Option<String>,
        /// How many jobs to list.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

/// Runs a command. Config errors print one line and exit 2.
///
/// # Errors
///
/// Whatever stops the command, with context.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // `sync` and `jobs` only talk to the database: they need no provider or admin secrets.
    let database_only = matches!(cli.command, Command::Sync { .. } | Command::Jobs { .. });
    if let Command::Healthcheck { url } = &cli.command {
        return healthcheck(&cli.config, url.as_deref()).await;
    }
    let loaded = if database_only {
        Config::load_for_database(&cli.config)
    } else {
        Config::load(&cli.config)
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    match cli.command {
        Command::CheckConfig => {
            println!(
                "config ok: {} app(s), {} schedule(s)",
                config.apps.len(),
                config.sync_schedules.len()
            );
            for app in &config.apps {
                println!(
                    "  {} ({}) -> {} [{}]",
                    app.app_key,
                    app.connector,
                    app.base_url,
                    app.sync_resources.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        // Answered before the config is loaded.
        Command::Healthcheck { .. } => Ok(ExitCode::SUCCESS),
        Command::Config => {
            println!("{}", serde_json::to_string_pretty(&config.effective())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            db::migrate(&config.database.target).await?;
            println!("database schema is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { listen, no_migrate } => {
            let mut config = config;
            config.database.migrate &= !no_migrate;
            let addr = listen.unwrap_or(config.server.listen);
            let ctx = Context::build(config)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("server.listen: cannot listen on {addr}"))?;
            let cancel = CancellationToken::new();
            tokio::spawn(stop_on_signal(cancel.clone()));
            daemon::run(ctx, listener, cancel).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync {
            app_key,
            full,
            resources,
            wait,
        } => {
            let ctx = Context::build(config)?;
            let mode = if full {
                SyncMode::Full
            } else {
                SyncMode::Incremental
            };
            let named = (!resources.is_empty()).then_some(resources.as_slice());
            let plan = match sync::plan(&ctx, &app_key, mode, named) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            // Never migrates: the schema must be one this binary can run against.
            db::prepare(&ctx.config.database.target, false).await?;
            let job_id = sync::enqueue(&ctx, &plan, "cli").await?;
            println!("{job_id}");
            if !wait {
                return Ok(ExitCode::SUCCESS);
            }
            let doc = sync::wait_for_end(&ctx, job_id, show_progress).await?;
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!();
            }
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(if doc["status"] == "completed" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Jobs { job_id, app, limit } => {
            let ctx = Context::build(config)?;
            db::prepare(&ctx.config.database.target, false).await?;
            let client = ctx.pool.get().await.context("connecting to the database")?;
            match job_id {
                Some(id) => {
                    let id =
                        Uuid::try_parse(&id).with_context(|| format!("{id:?} is not a job id"))?;
                    match job_status::job_document(&**client, id, true).await? {
                        Some(doc) => println!("{}", serde_json::to_string_pretty(&doc)?),
                        None => {
                            eprintln!("error: no job {id}");
                            return Ok(ExitCode::FAILURE);
                        }
                    }
                }
                None => {
                    let filter = JobFilter {
                        app_key: app,
                        status: None,
                        limit,
                    };
                    let list = job_status::list_jobs(&**client, &filter).await?;
                    print_jobs(&list);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `healthcheck`: GET `/livez` of the daemon this config describes, within 5 seconds.
async fn healthcheck(config: &std::path::Path, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let url = match url {
        Some(url) => url.to_owned(),
        None => {
            let mut addr = Config::listen_address(config)?;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}/livez")
        }
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    match client.get(&url).send().await {
        Ok(resp) if resp.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(resp) => {
            eprintln!("{url} answered {}", resp.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Cancels `cancel` on SIGTERM or Ctrl-C.
async fn stop_on_signal(cancel: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("stopping: finishing requests and checkpointing running tasks");
    cancel.cancel();
}

/// Shows a job's progress: a bar redrawn in place on a terminal; elsewhere (a log, a CI job) one
/// line each time the progress changes.
fn show_progress(doc: &Value) {
    use std::io::IsTerminal;
    static LAST: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
    let pct = doc["progress_percentage"]
        .as_i64()
        .unwrap_or(0)
        .clamp(0, 100) as usize;
    let done =
        doc["completed_tasks"].as_i64().unwrap_or(0) + doc["failed_tasks"].as_i64().unwrap_or(0);
    let progress = format!(
        "{pct:>3}%  {done}/{} tasks  {} objects  {:<10}",
        doc["total_tasks"],
        doc["processed_entities"],
        doc["status"].as_str().unwrap_or("")
    );
    if std::io::stderr().is_terminal() {
        let bar = format!("{}{}", "#".repeat(pct / 5), " ".repeat(20 - pct / 5));
        eprint!("\r[{bar}] {progress}");
        let _ = std::io::stderr().flush();
        return;
    }
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *last != progress {
        eprintln!("{}", progress.trim_end());
        *last = progress;
    }
}

fn print_jobs(list: &[Value]) {
    println!(
        "{:<36}  {:<16}  {:<11}  {:<10}  {:>5}  {:>9}  created_at",
        "job_id", "app_key", "mode", "status", "tasks", "objects"
    );
    for j in list {
        println!(
            "{:<36}  {:<16}  {:<11}  {:<10}  {:>2}/{:<2}  {:>9}  {}",
            j["job_id"].as_str().unwrap_or(""),
            j["app_key"].as_str().unwrap_or(""),
            j["mode"].as_str().unwrap_or(""),
            j["status"].as_str().unwrap_or(""),
            j["completed_tasks"],
            j["total_tasks"],
            j["processed_entities"],
            j["created_at"].as_str().unwrap_or(""),
        );
    }
}
