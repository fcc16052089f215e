//! The whole engine in one process on one SQLite file: what `wf run` (and later `wf dev`) use.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wf_core::StoreError;
use wf_core::engine::CompiledWorkflow;
use wf_core::execution::{ExecutionStatus, ExecutionView};
use wf_core::model::Workflow;
use wf_core::ports::{Clock, ExecutionStore, SystemClock};
use wf_local::{QueueConfig, SqliteQueue, SqliteStore};

use crate::actions::{BuiltinActions, OutboundPolicy};
use crate::llm::OpenAiCompatible;
use crate::runner::WorkerPool;
use crate::services::{EnvSecrets, Services};
use crate::worker::{Worker, WorkerError};

/// Options of a local engine.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Worker loops polling the queue.
    pub workers: usize,
    /// How long a received task stays invisible before it is redelivered.
    pub visibility_timeout: Duration,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            workers: 4,
            visibility_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

/// The local engine: SQLite store and queue, built-in actions, the LLM from the environment.
pub struct LocalApp {
    pub store: Arc<SqliteStore>,
    pub queue: Arc<SqliteQueue>,
    pub worker: Arc<Worker>,
    options: LocalOptions,
}

impl LocalApp {
    pub fn open(db: &Path, options: LocalOptions) -> Result<Self, LocalError> {
        let store = Arc::new(SqliteStore::open(db)?);
        let queue = Arc::new(store.queue(QueueConfig {
            visibility_timeout: options.visibility_timeout,
        }));
        let bus = Arc::new(store.event_bus());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let actions = BuiltinActions::with_policy(
            store.clone(),
            bus.clone(),
            clock.clone(),
            OutboundPolicy::local(),
        )
        .map_err(|e| LocalError::Http(e.to_string()))?;
        let llm = OpenAiCompatible::from_env().map_err(|e| LocalError::Http(e.to_string()))?;
        let svc = Services {
            executions: store.clone(),
            definitions: store.clone(),
            records: store.clone(),
            queue: queue.clone(),
            bus,
            actions: Arc::new(actions),
            llm: Arc::new(llm),
            clock,
            secrets: Arc::new(EnvSecrets),
        };
        Ok(Self {
            store,
            queue,
            worker: Arc::new(Worker::new(svc)),
            options,
        })
    }

    pub fn services(&self) -> &Services {
        self.worker.services()
    }

    /// Start the worker loops.
    pub fn start_workers(&self) -> WorkerPool {
        WorkerPool::start(
            self.worker.clone(),
            self.queue.clone(),
            self.options.workers,
            10,
        )
    }

    /// Publish `workflow` as the next version (immutable) and return it compiled.
    pub async fn publish(&self, workflow: Workflow) -> Result<Arc<CompiledWorkflow>, LocalError> {
        let now = self.services().clock.now_ms();
        let published = crate::publish::publish(&*self.store, &workflow, now).await?;
        Ok(self
            .worker
            .definition(&workflow.id, published.version)
            .await?)
    }

    /// Wait until an execution is terminal (or its deadline passed, then time it out).
    pub async fn wait_finished(&self, execution_id: &str) -> Result<ExecutionView, LocalError> {
        let mut finished = self.worker.subscribe_finished();
        loop {
            let Some(mut exec) = self.store.get_execution(execution_id).await? else {
                return Err(StoreError::NotFound(format!("execution {execution_id}")).into());
            };
            if exec.status.is_terminal() {
                let steps = self.store.list_steps(execution_id).await?;
                return Ok(ExecutionView {
                    execution: exec,
                    steps,
                });
            }
            let now = self.services().clock.now_ms();
            if now > exec.deadline_at + 1_000 {
                let compiled = self
                    .worker
                    .definition(&exec.workflow_id, exec.version)
                    .await?;
                self.worker
                    .time_out(&mut exec, compiled.workflow.config.timeout_ms)
                    .await?;
                continue;
            }
            let _ = tokio::time::timeout(Duration::from_millis(250), async {
                while let Ok((id, _)) = finished.recv().await {
                    if id == execution_id {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

/// Exit status of `wf run` for an execution status.
pub fn exit_code(status: ExecutionStatus) -> i32 {
    match status {
        ExecutionStatus::Succeeded => 0,
        ExecutionStatus::TimedOut => 2,
        _ => 1,
    }
}
