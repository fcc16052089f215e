//! The application layer: [`App`] holds the ports, the compiled-definition cache and the
//! finished-execution broadcast, and its methods are the use cases. Every entry point (the HTTP
//! handlers, `wf dev`'s file sync, `wf run`, the scheduler, the Lambda handlers) calls these and
//! nothing lower; the worker ([`crate::worker`]) only runs step tasks over an `App`.
//!
//! * [`workflows`]: drafts, validation, publish, activation, config, webhook tokens and secrets.
//! * [`executions`]: start (every trigger ends here), manual and test runs, history, cancel, rerun.
//! * [`triggers`]: a webhook delivery, a platform event, a schedule's fire.
//! * [`maintenance`]: the sweep, and giving up on a poisoned task.
//! * [`error`]: [`AppError`], the one error of the use cases.

pub mod authoring;
pub mod error;
pub mod executions;
pub mod json;
mod live;
pub mod maintenance;
mod meta_cache;
mod staged;
pub mod triggers;
pub mod workflows;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::broadcast;
use tracing::info;
use wf_core::StepError;
use wf_core::engine::{self, CompiledWorkflow};
use wf_core::execution::{ExecutionRecord, ExecutionStatus, ExecutionUpdate, ExecutionView};

pub use error::{AppError, ErrorKind};
pub use meta_cache::META_FRESH_FOR;
pub use workflows::{NoTriggerSync, TriggerSync};

use crate::metrics::Metrics;
use crate::services::Services;
use crate::settings::EngineSettings;
use live::LiveExecutions;
use meta_cache::{InvalidatingDefinitions, MetaCache};

type DefinitionCache = HashMap<(String, u32), Arc<CompiledWorkflow>>;

/// The use cases over one process's ports. One per process (Lambda init, `wf dev`, `wf run`);
/// share it with an `Arc`.
pub struct App {
    svc: Services,
    triggers: Arc<dyn TriggerSync>,
    metrics: Arc<Metrics>,
    settings: EngineSettings,
    definitions: Mutex<DefinitionCache>,
    /// `META` as the webhook path last read it (`meta_cache`).
    metas: Arc<MetaCache>,
    live: Mutex<LiveExecutions>,
    finished: broadcast::Sender<(String, ExecutionStatus)>,
    /// Set by [`App::enable_pure_start`].
    pure_start: OnceLock<staged::PureStart>,
}

impl App {
    /// An application with no trigger infrastructure of its own (`wf run`, the worker and
    /// webhook functions, tests).
    pub fn new(svc: Services) -> Self {
        Self::with_triggers(svc, Arc::new(NoTriggerSync))
    }

    /// An application whose activations keep `triggers` (the local scheduler, EventBridge) in
    /// step.
    pub fn with_triggers(mut svc: Services, triggers: Arc<dyn TriggerSync>) -> Self {
        let (finished, _) = broadcast::channel(1024);
        let metas = Arc::new(MetaCache::default());
        svc.definitions = Arc::new(InvalidatingDefinitions {
            inner: svc.definitions.clone(),
            metas: metas.clone(),
        });
        Self {
            svc,
            triggers,
            metrics: Arc::new(Metrics::default()),
            settings: EngineSettings::default(),
            definitions: Mutex::new(HashMap::new()),
            metas,
            live: Mutex::new(LiveExecutions::default()),
            finished,
            pure_start: OnceLock::new(),
        }
    }

    /// The same application with the deployment's `settings` (read once at start-up).
    pub fn with_settings(mut self, settings: EngineSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The deployment's settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The ports. For adapters and tests that inspect the stores; entry points call the use
    /// cases instead.
    pub fn services(&self) -> &Services {
        &self.svc
    }

    /// This process's counters (`GET /metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Executions this process brought to a terminal status, as they happen.
    pub fn subscribe_finished(&self) -> broadcast::Receiver<(String, ExecutionStatus)> {
        self.finished.subscribe()
    }

    /// The compiled definition of a published version (immutable, so cached forever).
    pub async fn definition(
        &self, workflow_id: &str, version: u32,
    ) -> Result<Arc<CompiledWorkflow>, AppError> {
        let key = (workflow_id.to_string(), version);
        if let Some(c) = self.lock_definitions().get(&key) {
            return Ok(c.clone());
        }
        let wf = self
            .svc
            .definitions
            .get_version(workflow_id, version)
            .await?
            .ok_or_else(|| {
                AppError::not_found(format!(
                    "workflow {workflow_id} version {version} not found"
                ))
            })?;
        let compiled = Arc::new(CompiledWorkflow::new(wf, version));
        self.lock_definitions().insert(key, compiled.clone());
        Ok(compiled)
    }

    fn lock_definitions(&self) -> MutexGuard<'_, DefinitionCache> {
        // A poisoned cache is still a valid cache: entries are immutable.
        self.definitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_live(&self) -> MutexGuard<'_, LiveExecutions> {
        // A poisoned map is still valid: each entry is a record as stored.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record of an execution a step task is for: the one this process kept from an
    /// earlier task when its stored status is still the kept one (only the status is read),
    /// else read whole (and kept while it is not terminal). See [`live`].
    pub(crate) async fn execution_for_task(
        &self, id: &str,
    ) -> Result<Option<Arc<ExecutionRecord>>, AppError> {
        let kept = self.lock_live().get(id);
        if let Some(kept) = kept {
            match self.svc.executions.get_execution_status(id).await? {
                Some(status) if status == kept.status => return Ok(Some(kept)),
                Some(_) => {}
                None => {
                    self.lock_live().forget(id);
                    return Ok(None);
                }
            }
        }
        let Some(record) = self.svc.executions.get_execution(id).await? else {
            self.lock_live().forget(id);
            return Ok(None);
        };
        let record = Arc::new(record);
        self.lock_live().keep(&record);
        Ok(Some(record))
    }

    /// Keep (or forget, when terminal) the record of an execution a task changed.
    pub(crate) fn remember_execution(&self, record: &Arc<ExecutionRecord>) {
        self.lock_live().keep(record);
    }

    /// Bring an execution to a terminal status (once: the store refuses a second terminal
    /// update) and tell the waiters. `execution` is refreshed with what is stored.
    pub(crate) async fn finish_execution(
        &self, execution: &mut ExecutionRecord, status: ExecutionStatus, output: Value,
        error: Option<StepError>,
    ) -> Result<(), AppError> {
        let now = self.svc.clock.now_ms();
        let update = ExecutionUpdate {
            status,
            output: Some(output.clone()),
            error: error.clone(),
            finished_at: Some(now),
        };
        let applied = self
            .svc
            .executions
            .update_execution(&execution.id, &update)
            .await?;
        // Terminal either way (this update or an earlier one).
        self.lock_live().forget(&execution.id);
        if applied {
            execution.status = status;
            execution.output = output;
            execution.error = error;
            execution.finished_at = Some(now);
            self.announce_finished(&execution.id, status);
        } else if let Some(stored) = self.svc.executions.get_execution(&execution.id).await? {
            *execution = stored;
        }
        Ok(())
    }

    /// Count, log and tell the waiters that this process brought an execution to `status`
    /// (terminal), once it is stored.
    fn announce_finished(&self, id: &str, status: ExecutionStatus) {
        info!(execution_id = %id, status = status.as_str(), "execution finished");
        self.metrics
            .incr("wf_executions_finished_total", status.as_str());
        let _ = self.finished.send((id.to_string(), status));
    }

    /// Time out an execution past its deadline (workers, the sweeper and waiters call this).
    pub async fn time_out(&self, execution: &mut ExecutionRecord) -> Result<(), AppError> {
        let compiled = self
            .definition(&execution.workflow_id, execution.version)
            .await?;
        let error = engine::deadline_error(compiled.workflow.config.timeout_ms);
        self.finish_execution(
            execution,
            ExecutionStatus::TimedOut,
            Value::Null,
            Some(error),
        )
        .await
    }

    /// Wait until an execution is terminal: `Some(view)` when it is, `None` when `max` passed
    /// first (`None` waits as long as it takes). Wakes on this process finishing it and polls
    /// the store otherwise (on AWS another function's worker finishes it). An execution found
    /// past its deadline is timed out here, as the sweeper would.
    pub async fn wait_finished(
        &self, id: &str, max: Option<Duration>,
    ) -> Result<Option<ExecutionView>, AppError> {
        let mut finished = self.subscribe_finished();
        let give_up = max.map(|m| Instant::now() + m);
        let mut poll = Duration::from_millis(20);
        loop {
            let Some(mut execution) = self.svc.executions.get_execution(id).await? else {
                return Err(AppError::not_found(format!(
                    "execution {id} does not exist"
                )));
            };
            if execution.status.is_terminal() {
                return self.view(execution).await.map(Some);
            }
            if self.svc.clock.now_ms() > execution.deadline_at + 1_000 {
                self.time_out(&mut execution).await?;
                continue;
            }
            let nap = match give_up {
                Some(t) => {
                    let left = t.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    poll.min(left)
                }
                None => poll,
            };
            let _ = tokio::time::timeout(nap, async {
                while let Ok((done, _)) = finished.recv().await {
                    if done == id {
                        break;
                    }
                }
            })
            .await;
            poll = (poll * 2).min(Duration::from_millis(250));
        }
    }
}
