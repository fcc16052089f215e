//! The local home: the whole engine in one process on one SQLite file (store, task queue and
//! event bus), with the built-in actions and the LLM from the environment. What `wf run` and
//! `wf dev` use.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use wf_core::engine::CompiledWorkflow;
use wf_core::execution::{ExecutionStatus, ExecutionView};
use wf_core::model::Workflow;
use wf_core::ports::{Clock, SystemClock};
use wf_local::{QueueConfig, SqliteQueue, SqliteStore};

use crate::actions::{BuiltinActions, OutboundPolicy};
use crate::app::workflows::PublishMode;
use crate::app::{App, AppError, NoTriggerSync, TriggerSync};
use crate::llm::OpenAiCompatible;
use crate::runner::{PoolSettings, WorkerPool};
use crate::services::{EnvSecrets, Services};
use crate::settings::EngineSettings;

/// Options of a local engine.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Worker loops polling the queue.
    pub workers: usize,
    /// How long a received task stays invisible before it is redelivered.
    pub visibility_timeout: Duration,
    /// Deliveries a task that cannot be handled gets before its execution is failed.
    pub max_receive_count: u32,
    /// The deployment's engine settings (the lease of a claimed step, event chain bounds).
    pub settings: EngineSettings,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            workers: 4,
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: crate::app::maintenance::DEFAULT_MAX_RECEIVE_COUNT,
            settings: EngineSettings::default(),
        }
    }
}

/// The local engine: SQLite store and queue, built-in actions, the LLM from the environment.
pub struct LocalApp {
    pub store: Arc<SqliteStore>,
    pub queue: Arc<SqliteQueue>,
    pub app: Arc<App>,
    options: LocalOptions,
}

impl LocalApp {
    /// An engine with no trigger infrastructure (`wf run`, tests).
    pub fn open(db: &Path, options: LocalOptions) -> Result<Self, AppError> {
        Self::open_with(db, options, |_| Arc::new(NoTriggerSync))
    }

    /// An engine whose activations keep `triggers(app)` in step: the trigger sync may hold a
    /// weak reference to the application it serves (the scheduler starts executions with it).
    pub fn open_with(
        db: &Path, options: LocalOptions, triggers: impl FnOnce(Weak<App>) -> Arc<dyn TriggerSync>,
    ) -> Result<Self, AppError> {
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
        .map_err(|e| AppError::permanent("http_client", e.to_string()))?;
        let llm = OpenAiCompatible::from_env()
            .map_err(|e| AppError::permanent("http_client", e.to_string()))?;
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
        let settings = options.settings;
        let app = Arc::new_cyclic(|weak| {
            App::with_triggers(svc, triggers(weak.clone())).with_settings(settings)
        });
        app.enable_pure_start();
        Ok(Self {
            store,
            queue,
            app,
            options,
        })
    }

    pub fn services(&self) -> &Services {
        self.app.services()
    }

    /// Start the worker loops.
    pub fn start_workers(&self) -> WorkerPool {
        WorkerPool::start(
            self.app.clone(),
            self.queue.clone(),
            PoolSettings {
                loops: self.options.workers,
                max_receive_count: self.options.max_receive_count,
                ..PoolSettings::default()
            },
        )
    }

    /// Publish `workflow` (it must be valid) as a new version and return it compiled.
    pub async fn publish(&self, workflow: Workflow) -> Result<Arc<CompiledWorkflow>, AppError> {
        let published = self.app.publish(&workflow, PublishMode::Always).await?;
        self.app.definition(&workflow.id, published.version).await
    }

    /// Wait until an execution is terminal (timing it out once its deadline has passed); the
    /// view has every step record.
    pub async fn wait_finished(&self, execution_id: &str) -> Result<ExecutionView, AppError> {
        match self.app.wait_finished(execution_id, None).await? {
            Some(view) => self.app.with_all_steps(view).await,
            None => Err(AppError::retryable(
                "not_finished",
                format!("execution {execution_id} did not finish"),
            )),
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
