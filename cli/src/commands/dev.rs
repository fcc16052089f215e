//! `wf dev`: serve the whole product locally (see wf_app::dev).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use wf_app::app::maintenance::{SweepSettings, retention_from_env};
use wf_app::dev::{DevOptions, DevServer};
use wf_app::settings::EngineSettings;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (loopback by default: nothing is exposed to the network).
    #[arg(long, env = "WF_DEV_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// The SQLite file that keeps definitions, executions and the queue (survives restarts).
    #[arg(long, env = "WF_DEV_DB", default_value = ".wf/dev.db")]
    pub db: PathBuf,
    /// Folder of workflow files to publish and watch.
    #[arg(long, default_value = "workflows")]
    pub workflows: PathBuf,
    /// Worker loops running steps.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Seconds a received step task stays invisible before it is redelivered: after a crash,
    /// unfinished work resumes within this time of the restart.
    #[arg(long, env = "WF_QUEUE_VISIBILITY_SECS", default_value_t = 30)]
    pub visibility_secs: u64,
    /// Seconds between sweeps (timeouts, stuck executions, retention by WF_RETENTION_DAYS).
    #[arg(long, default_value_t = 60)]
    pub sweep_secs: u64,
    /// Deliveries a step task that cannot be handled gets; after the last one its execution
    /// fails with `dead_letter` and the reason (as SQS's maxReceiveCount does on AWS)
    #[arg(long, env = "WF_MAX_RECEIVE_COUNT", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_receive_count: u32,
    /// Threads that serve requests and run steps [default: the machine's cores less one, at
    /// least 1: the SQLite writer has a thread of its own, busy under load, and a request
    /// thread fewer than cores keeps the two from taking turns on a core].
    #[arg(long, env = "WF_DEV_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

/// The request threads when `--threads` is not given: cores less the writer's one, at least 1.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

pub fn run(args: Args) -> ExitCode {
    let retention = match retention_from_env() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wf dev: {e}");
            return ExitCode::from(crate::EXIT_USAGE);
        }
    };
    // WF_LEASE_SECS, WF_EVENT_MAX_DEPTH: read once here.
    let settings = match EngineSettings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wf dev: {e}");
            return ExitCode::from(crate::EXIT_USAGE);
        }
    };
    let options = DevOptions {
        addr: args.addr,
        db: args.db,
        workflows_dir: args.workflows,
        workers: args.workers,
        visibility_timeout: Duration::from_secs(args.visibility_secs.max(1)),
        max_receive_count: args.max_receive_count,
        settings,
        sweep: SweepSettings {
            retention: Some(retention),
            ..SweepSettings::default()
        },
        sweep_interval: Duration::from_secs(args.sweep_secs.max(1)),
        watch_interval: Duration::from_millis(500),
    };
    let threads = args.threads.map_or_else(default_threads, usize::from);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wf dev: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Listen for SIGTERM / Ctrl-C before anything starts: a signal that comes while the
        // server starts or prints its banner stops it cleanly rather than killing it.
        let stop = StopSignals::install();
        let mut server = match DevServer::start(options).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("wf dev: {e}");
                return ExitCode::FAILURE;
            }
        };
        // What happens to the workflow files (the first sync's results are queued already).
        if let Some(mut notices) = server.take_notices() {
            while let Ok(n) = notices.try_recv() {
                eprintln!("{n}");
            }
            tokio::spawn(async move {
                while let Some(n) = notices.recv().await {
                    eprintln!("{n}");
                }
            });
        }
        match server.banner().await {
            Ok(b) => print!("{b}"),
            Err(e) => eprintln!("wf dev: {e}"),
        }
        println!("Ctrl-C to stop.");
        stop.wait().await;
        eprintln!("wf dev: stopping");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// SIGTERM and SIGINT (Ctrl-C), registered when installed (not on first wait).
struct StopSignals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = signal(SignalKind::terminate())
                .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
                .ok();
            Self { streams }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.streams {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
