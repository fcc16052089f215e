//! A worker process on the AWS adapters, configured from the environment (`wf_aws::Config`):
//! worker loops that receive step tasks from SQS, run them, and delete each message only when
//! it was handled. The multi-process test starts several against one moto_server.
//!
//! It stops when its standard input closes (the parent ended or dropped it) or on Ctrl-C.
//! `WF_WORKER_LOOPS` sets the number of loops (default 4).

use std::io::Read;
use std::sync::Arc;

use anyhow::Context;
use wf_app::App;
use wf_app::actions::{BuiltinActions, OutboundPolicy};
use wf_app::llm::{LlmConfig, OpenAiCompatible};
use wf_app::runner::{PoolSettings, WorkerPool};
use wf_app::services::{EnvSecrets, Services};
use wf_aws::{AwsClients, Config, DynamoStore, EventBridgeBus, SqsQueue};
use wf_core::ports::{Clock, SystemClock};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::from_env().context("reading the AWS configuration")?;
    let loops: usize = std::env::var("WF_WORKER_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let clients = AwsClients::load(&config).await;
    let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), &config));
    let queue = Arc::new(SqsQueue::new(clients.sqs.clone(), &config.queue_url));
    let bus = Arc::new(EventBridgeBus::new(
        clients.eventbridge.clone(),
        &config.event_bus,
    ));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let actions = BuiltinActions::with_policy(
        store.clone(),
        bus.clone(),
        clock.clone(),
        OutboundPolicy::local(),
    )
    .context("building the HTTP client")?;
    let llm_url = std::env::var("WF_LLM_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:9".into());
    let llm =
        OpenAiCompatible::new(LlmConfig::new(&llm_url, None)).context("building the LLM client")?;
    let svc = Services {
        executions: store.clone(),
        definitions: store.clone(),
        records: store,
        queue: queue.clone(),
        bus,
        actions: Arc::new(actions),
        llm: Arc::new(llm),
        clock,
        secrets: Arc::new(EnvSecrets),
    };
    let settings = PoolSettings {
        loops,
        ..PoolSettings::default()
    };
    let pool = WorkerPool::start(Arc::new(App::new(svc)), queue, settings);
    tracing::info!(loops, "worker started");
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    });
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    pool.shutdown().await;
    tracing::info!("worker stopped");
    Ok(())
}
