//! The worker: runs one step task by the protocol in DESIGN.md ("How an execution runs").
//! Every decision comes from `wf_core::engine`; this module only performs them with the ports.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;
use tracing::{debug, info, warn};
use wf_core::engine::{
    self, CompiledWorkflow, Effect, StepOutcome, TaskPlan, claim_record, effects_for,
    finish_record, following_iteration, initial_iterations, loop_output, loop_state, plan_task,
    with_execution_id,
};
use wf_core::execution::{
    ClaimOutcome, ExecutionRecord, ExecutionStatus, ExecutionUpdate, IterationCount, StepRecord,
    StepStatus, StepTask,
};
use wf_core::expr::ExprContext;
use wf_core::model::Step;
use wf_core::path::StepPath;
use wf_core::ports::ActionContext;
use wf_core::{StepError, StoreError};

use crate::context::{LoopFrames, step_context};
use crate::services::Services;
use crate::step_runner::run_step;

/// Why a task could not be handled. Retryable errors leave the task unacknowledged.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("execution {0} not found")]
    ExecutionNotFound(String),
    #[error("workflow {0} version {1} not found")]
    DefinitionNotFound(String, u32),
}

impl WorkerError {
    pub fn is_retryable(&self) -> bool {
        match self {
            WorkerError::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Runs step tasks. One per process; cheap to share.
pub struct Worker {
    svc: Services,
    definitions: Mutex<HashMap<(String, u32), Arc<CompiledWorkflow>>>,
    finished: broadcast::Sender<(String, ExecutionStatus)>,
}

impl Worker {
    pub fn new(svc: Services) -> Self {
        let (finished, _) = broadcast::channel(1024);
        Self {
            svc,
            definitions: Mutex::new(HashMap::new()),
            finished,
        }
    }

    pub fn services(&self) -> &Services {
        &self.svc
    }

    /// Executions this worker brought to a terminal status, as they happen.
    pub fn subscribe_finished(&self) -> broadcast::Receiver<(String, ExecutionStatus)> {
        self.finished.subscribe()
    }

    /// The compiled definition of a published version (immutable, so cached forever).
    pub async fn definition(
        &self,
        workflow_id: &str,
        version: u32,
    ) -> Result<Arc<CompiledWorkflow>, WorkerError> {
        let key = (workflow_id.to_string(), version);
        if let Some(c) = self.lock_definitions().get(&key) {
            return Ok(c.clone());
        }
        let wf = self
            .svc
            .definitions
            .get_version(workflow_id, version)
            .await?
            .ok_or_else(|| WorkerError::DefinitionNotFound(workflow_id.to_string(), version))?;
        let compiled = Arc::new(CompiledWorkflow::new(wf, version));
        self.lock_definitions().insert(key, compiled.clone());
        Ok(compiled)
    }

    fn lock_definitions(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Arc<CompiledWorkflow>>> {
        // A poisoned cache is still a valid cache: entries are immutable.
        self.definitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Handle one delivered task. `Ok` means acknowledge it; a retryable `Err` means leave it
    /// to be redelivered. Pure successors run inline in this call; others are queued.
    #[tracing::instrument(skip_all, fields(execution_id = %task.execution_id, path = %task.path, attempt = task.attempt))]
    pub async fn handle(&self, task: &StepTask) -> Result<(), WorkerError> {
        let Some(mut execution) = self
            .svc
            .executions
            .get_execution(&task.execution_id)
            .await?
        else {
            warn!("task for an unknown execution: acknowledged");
            return Ok(());
        };
        let compiled = self
            .definition(&execution.workflow_id, execution.version)
            .await?;
        let mut run = Run {
            w: self,
            compiled: &compiled,
            sends: Vec::new(),
            inline: VecDeque::new(),
        };
        run.inline.push_back((task.path.clone(), task.attempt));
        while let Some((path, attempt)) = run.inline.pop_front() {
            if execution.status.is_terminal() {
                break;
            }
            run.process(&mut execution, &path, attempt).await?;
        }
        if !run.sends.is_empty() {
            self.svc.queue.send(&run.sends).await?;
        }
        Ok(())
    }

    /// Time out an execution past its deadline (the sweeper and workers both call this).
    pub async fn time_out(
        &self,
        execution: &mut ExecutionRecord,
        timeout_ms: u64,
    ) -> Result<(), WorkerError> {
        let error = engine::deadline_error(timeout_ms);
        self.finish_execution(
            execution,
            ExecutionStatus::TimedOut,
            Value::Null,
            Some(error),
        )
        .await
    }

    async fn finish_execution(
        &self,
        execution: &mut ExecutionRecord,
        status: ExecutionStatus,
        output: Value,
        error: Option<StepError>,
    ) -> Result<(), WorkerError> {
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
        if applied {
            info!(execution_id = %execution.id, status = status.as_str(), "execution finished");
            execution.status = status;
            execution.output = output;
            execution.error = error;
            execution.finished_at = Some(now);
            let _ = self.finished.send((execution.id.clone(), status));
        } else if let Some(stored) = self.svc.executions.get_execution(&execution.id).await? {
            *execution = stored;
        }
        Ok(())
    }
}

/// The state of one `handle` call.
struct Run<'a> {
    w: &'a Worker,
    compiled: &'a CompiledWorkflow,
    sends: Vec<(StepTask, u64)>,
    inline: VecDeque<(String, u32)>,
}

impl Run<'_> {
    fn svc(&self) -> &Services {
        &self.w.svc
    }

    async fn process(
        &mut self,
        execution: &mut ExecutionRecord,
        path_str: &str,
        attempt: u32,
    ) -> Result<(), WorkerError> {
        let Some(path) = StepPath::parse(path_str) else {
            warn!(path = path_str, "malformed step path: acknowledged");
            return Ok(());
        };
        let Some(step) = self.compiled.step(&path).cloned() else {
            warn!(
                path = path_str,
                "no such step in this version: acknowledged"
            );
            return Ok(());
        };
        let Some(loops) = self.loop_frames(&execution.id, &path).await? else {
            debug!(
                path = path_str,
                "enclosing loop failed or absent: acknowledged"
            );
            return Ok(());
        };
        let task = StepTask {
            execution_id: execution.id.clone(),
            path: path_str.to_string(),
            attempt,
        };
        let mut stored = self
            .svc()
            .executions
            .get_step(&execution.id, path_str)
            .await?;
        // At most two rounds: plan, and re-plan once if the claim lost to another writer.
        for _ in 0..2 {
            let now = self.svc().clock.now_ms();
            match plan_task(execution, stored.as_ref(), &task, now) {
                TaskPlan::Ack { reason } => {
                    debug!(reason, "nothing to do");
                    return Ok(());
                }
                TaskPlan::TimeOut => {
                    let timeout = self.compiled.workflow.config.timeout_ms;
                    if let Some(rec) = stored.filter(|r| r.status == StepStatus::Running) {
                        let outcome = StepOutcome::Failed(engine::deadline_error(timeout));
                        let done = finish_record(
                            self.compiled,
                            &rec,
                            &step,
                            rec.input.clone(),
                            outcome,
                            now,
                        );
                        self.svc()
                            .executions
                            .finish_step(&execution.id, &done)
                            .await?;
                    }
                    return self.w.time_out(execution, timeout).await;
                }
                TaskPlan::Busy { retry_after_ms } => {
                    let loop_started = matches!(step, Step::Loop(_))
                        && self
                            .svc()
                            .executions
                            .get_loop(&execution.id, path_str)
                            .await?
                            .is_some();
                    if !loop_started {
                        // Look again when the lease ends: if its holder died, we take over.
                        self.sends.push((task, retry_after_ms.min(900_000)));
                    }
                    return Ok(());
                }
                TaskPlan::EnsureRetry { attempt } => {
                    if let Some(rec) = &stored {
                        self.apply(execution, &path, rec).await?;
                    }
                    debug!(attempt, "retry already scheduled; re-sent");
                    return Ok(());
                }
                TaskPlan::Replay(rec) => {
                    debug!("step finished before: replaying its effects");
                    return self.apply(execution, &path, &rec).await;
                }
                TaskPlan::Claim if step.is_pure() && stored.is_none() => {
                    // Pure steps are deterministic: compute the final record and store it with
                    // one put-if-absent instead of a claim and a finish. A concurrent duplicate
                    // computes the same record and replays the stored one.
                    let claim =
                        claim_record(&path, &step, attempt, now, execution.deadline_at, None);
                    let done = self
                        .run_pure(execution, &path, &step, &claim, &loops)
                        .await?;
                    match self
                        .svc()
                        .executions
                        .claim_step(&execution.id, &done, now)
                        .await
                    {
                        Ok(ClaimOutcome::Claimed) => {
                            return self.apply(execution, &path, &done).await;
                        }
                        Ok(ClaimOutcome::Held(current)) => stored = Some(current),
                        Err(StoreError::TooLarge(m)) => {
                            let e =
                                StepError::new("payload.too_large", format!("step {path}: {m}"));
                            let failed = finish_record(
                                self.compiled,
                                &claim,
                                &step,
                                Value::Null,
                                StepOutcome::Failed(e),
                                self.svc().clock.now_ms(),
                            );
                            match self
                                .svc()
                                .executions
                                .claim_step(&execution.id, &failed, now)
                                .await?
                            {
                                ClaimOutcome::Claimed => {
                                    return self.apply(execution, &path, &failed).await;
                                }
                                ClaimOutcome::Held(current) => stored = Some(current),
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                TaskPlan::Claim => {
                    let claim = claim_record(
                        &path,
                        &step,
                        attempt,
                        now,
                        execution.deadline_at,
                        stored.as_ref(),
                    );
                    match self
                        .svc()
                        .executions
                        .claim_step(&execution.id, &claim, now)
                        .await?
                    {
                        ClaimOutcome::Claimed => {
                            return self
                                .run_claimed(execution, &path, &step, claim, &loops)
                                .await;
                        }
                        ClaimOutcome::Held(current) => stored = Some(current),
                    }
                }
            }
        }
        Ok(())
    }

    /// The states of the loops enclosing `path` (outermost first) with this iteration's index;
    /// `None` when one of them failed or does not exist (the task is moot).
    async fn loop_frames(
        &self,
        execution_id: &str,
        path: &StepPath,
    ) -> Result<Option<LoopFrames>, WorkerError> {
        let mut frames = Vec::new();
        let mut p = path.clone();
        while let Some((loop_path, index)) = p.enclosing_loop() {
            match self
                .svc()
                .executions
                .get_loop(execution_id, &loop_path.to_string())
                .await?
            {
                Some(state) if !state.failed => frames.push((state, index)),
                _ => return Ok(None),
            }
            p = loop_path;
        }
        frames.reverse();
        Ok(Some(frames))
    }

    /// Run a pure step (start, condition, output) and return its final record (not stored).
    async fn run_pure(
        &mut self,
        execution: &ExecutionRecord,
        path: &StepPath,
        step: &Step,
        claim: &StepRecord,
        loops: &LoopFrames,
    ) -> Result<StepRecord, WorkerError> {
        let (input, outcome) =
            match step_context(self.svc(), execution, self.compiled, path, loops).await {
                Ok(map) => {
                    let ctx = ExprContext::new(map);
                    let action_ctx = ActionContext {
                        execution_id: execution.id.clone(),
                        path: path.to_string(),
                        attempt: claim.attempts,
                        idempotency_key: format!("{}/{}", execution.id, path),
                        timeout: Duration::ZERO,
                    };
                    let run = run_step(self.svc(), step, &ctx, &execution.input, action_ctx).await;
                    (run.input, run.outcome)
                }
                Err(e) => (Value::Null, StepOutcome::Failed(e)),
            };
        let now = self.svc().clock.now_ms();
        Ok(finish_record(
            self.compiled,
            claim,
            step,
            input,
            outcome,
            now,
        ))
    }

    async fn run_claimed(
        &mut self,
        execution: &mut ExecutionRecord,
        path: &StepPath,
        step: &Step,
        claim: StepRecord,
        loops: &LoopFrames,
    ) -> Result<(), WorkerError> {
        // `running` is written before the first step that does real work; an execution made
        // only of pure steps goes from queued to its final status in one write.
        if execution.status == ExecutionStatus::Queued {
            let update = ExecutionUpdate {
                status: ExecutionStatus::Running,
                output: None,
                error: None,
                finished_at: None,
            };
            if self
                .svc()
                .executions
                .update_execution(&execution.id, &update)
                .await?
            {
                execution.status = ExecutionStatus::Running;
            }
        }
        let ctx = match step_context(self.svc(), execution, self.compiled, path, loops).await {
            Ok(map) => ExprContext::new(map),
            Err(e) => {
                return self
                    .finish(
                        execution,
                        path,
                        step,
                        &claim,
                        Value::Null,
                        StepOutcome::Failed(e),
                    )
                    .await;
            }
        };
        if let Step::Loop(l) = step {
            return self
                .start_loop(execution, path, step, l, &claim, &ctx)
                .await;
        }
        let now = self.svc().clock.now_ms();
        let remaining = (execution.deadline_at - now).max(0) as u64;
        let step_budget = step.timeout_ms().unwrap_or(u64::MAX);
        let budget = step_budget.min(remaining);
        let action_ctx = ActionContext {
            execution_id: execution.id.clone(),
            path: path.to_string(),
            attempt: claim.attempts,
            idempotency_key: format!("{}/{}", execution.id, path),
            timeout: Duration::from_millis(budget),
        };
        let mut run = run_step(self.svc(), step, &ctx, &execution.input, action_ctx).await;
        // A timeout that used up the execution's remaining time is the execution's deadline.
        if let StepOutcome::Failed(e) = &run.outcome
            && e.code == "timeout"
            && step_budget >= remaining
        {
            run.outcome = StepOutcome::Failed(engine::deadline_error(
                self.compiled.workflow.config.timeout_ms,
            ));
        }
        self.finish(execution, path, step, &claim, run.input, run.outcome)
            .await
    }

    async fn start_loop(
        &mut self,
        execution: &mut ExecutionRecord,
        path: &StepPath,
        step: &Step,
        l: &wf_core::model::LoopStep,
        claim: &StepRecord,
        ctx: &ExprContext,
    ) -> Result<(), WorkerError> {
        let items = match ctx.eval(&l.items) {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                let e = StepError::new(
                    "loop.items",
                    format!(
                        "items {:?} must yield an array, got {}",
                        l.items,
                        wf_core::expr::type_name(&other)
                    ),
                );
                return self
                    .finish(
                        execution,
                        path,
                        step,
                        claim,
                        Value::Null,
                        StepOutcome::Failed(e),
                    )
                    .await;
            }
            Err(e) => {
                return self
                    .finish(
                        execution,
                        path,
                        step,
                        claim,
                        Value::Null,
                        StepOutcome::Failed(e),
                    )
                    .await;
            }
        };
        let input = json!({ "items": items.clone() });
        if items.is_empty() {
            let outcome = StepOutcome::Succeeded {
                output: json!([]),
                next: l.next.clone(),
            };
            return self
                .finish(execution, path, step, claim, input, outcome)
                .await;
        }
        let path_str = path.to_string();
        let state = match self
            .svc()
            .executions
            .init_loop(&execution.id, &path_str, &loop_state(items, l.concurrency))
            .await
        {
            Ok(s) => s,
            Err(StoreError::TooLarge(m)) => {
                let e = StepError::new("payload.too_large", format!("loop {path}: {m}"));
                return self
                    .finish(
                        execution,
                        path,
                        step,
                        claim,
                        Value::Null,
                        StepOutcome::Failed(e),
                    )
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        // Keep the claim for as long as the execution may run: iterations drive the loop now.
        let mut waiting = claim.clone();
        waiting.input = input;
        waiting.lease_until = Some(execution.deadline_at);
        if !self
            .svc()
            .executions
            .finish_step(&execution.id, &waiting)
            .await?
        {
            return Ok(()); // lost the claim: its new holder starts the loop
        }
        let effects = with_execution_id(
            initial_iterations(self.compiled, path, &state),
            &execution.id,
        );
        self.perform(execution, effects).await
    }

    /// Store the attempt's result (conditional on our claim) and perform its effects.
    async fn finish(
        &mut self,
        execution: &mut ExecutionRecord,
        path: &StepPath,
        step: &Step,
        claim: &StepRecord,
        input: Value,
        outcome: StepOutcome,
    ) -> Result<(), WorkerError> {
        let now = self.svc().clock.now_ms();
        let mut done = finish_record(self.compiled, claim, step, input, outcome, now);
        let applied = match self
            .svc()
            .executions
            .finish_step(&execution.id, &done)
            .await
        {
            Ok(applied) => applied,
            Err(StoreError::TooLarge(m)) => {
                // Never half-write: keep the claim's input out too, and fail the step cleanly.
                let e = StepError::new("payload.too_large", format!("step {path}: {m}"));
                done = finish_record(
                    self.compiled,
                    claim,
                    step,
                    Value::Null,
                    StepOutcome::Failed(e),
                    now,
                );
                self.svc()
                    .executions
                    .finish_step(&execution.id, &done)
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        if !applied {
            debug!("claim lost before finishing: another worker owns this step now");
            return Ok(());
        }
        self.apply(execution, path, &done).await
    }

    /// Perform the effects of a stored step record.
    async fn apply(
        &mut self,
        execution: &mut ExecutionRecord,
        path: &StepPath,
        rec: &StepRecord,
    ) -> Result<(), WorkerError> {
        let effects = with_execution_id(effects_for(self.compiled, path, rec), &execution.id);
        self.perform(execution, effects).await
    }

    async fn perform(
        &mut self,
        execution: &mut ExecutionRecord,
        effects: Vec<Effect>,
    ) -> Result<(), WorkerError> {
        let mut pending: VecDeque<Effect> = effects.into();
        while let Some(effect) = pending.pop_front() {
            match effect {
                Effect::Enqueue(task, delay) => self.sends.push((task, delay)),
                Effect::RunInline(p) => self.inline.push_back((p, 1)),
                Effect::CompleteExecution { output } => {
                    self.w
                        .finish_execution(execution, ExecutionStatus::Succeeded, output, None)
                        .await?;
                }
                Effect::FailExecution { error } => {
                    self.w
                        .finish_execution(
                            execution,
                            ExecutionStatus::Failed,
                            Value::Null,
                            Some(error),
                        )
                        .await?;
                }
                Effect::TimeOutExecution { error } => {
                    self.w
                        .finish_execution(
                            execution,
                            ExecutionStatus::TimedOut,
                            Value::Null,
                            Some(error),
                        )
                        .await?;
                }
                Effect::CountIteration {
                    loop_path,
                    index,
                    result,
                } => {
                    let more = self
                        .count_iteration(execution, &loop_path, index, &result)
                        .await?;
                    pending.extend(more);
                }
                Effect::FailLoop { loop_path, error } => {
                    let more = self.fail_loop(execution, &loop_path, error).await?;
                    pending.extend(more);
                }
            }
        }
        Ok(())
    }

    async fn count_iteration(
        &mut self,
        execution: &ExecutionRecord,
        loop_path: &str,
        index: u32,
        result: &Value,
    ) -> Result<Vec<Effect>, WorkerError> {
        let lp = StepPath::parse(loop_path)
            .ok_or_else(|| StoreError::Permanent(format!("bad loop path {loop_path}")))?;
        let counted = match self
            .svc()
            .executions
            .count_iteration(&execution.id, loop_path, index, result)
            .await
        {
            Ok(c) => c,
            Err(StoreError::TooLarge(m)) => {
                let e = StepError::new(
                    "payload.too_large",
                    format!("iteration {loop_path}[{index}]: {m}"),
                );
                return Ok(vec![Effect::FailLoop {
                    loop_path: loop_path.to_string(),
                    error: e,
                }]);
            }
            Err(e) => return Err(e.into()),
        };
        let Some(state) = self
            .svc()
            .executions
            .get_loop(&execution.id, loop_path)
            .await?
        else {
            return Ok(Vec::new());
        };
        let mut effects: Vec<Effect> = following_iteration(self.compiled, &lp, &state, index)
            .into_iter()
            .collect();
        let done = match counted {
            IterationCount::Counted { remaining } => remaining == 0,
            IterationCount::AlreadyCounted => state.remaining == 0,
        };
        if done && !state.failed {
            effects.extend(
                self.finish_loop(execution, &lp, StepOutcomeKind::Succeeded)
                    .await?,
            );
        }
        Ok(with_execution_id(effects, &execution.id))
    }

    async fn fail_loop(
        &mut self,
        execution: &ExecutionRecord,
        loop_path: &str,
        error: StepError,
    ) -> Result<Vec<Effect>, WorkerError> {
        let lp = StepPath::parse(loop_path)
            .ok_or_else(|| StoreError::Permanent(format!("bad loop path {loop_path}")))?;
        self.svc()
            .executions
            .fail_loop(&execution.id, loop_path)
            .await?;
        let effects = self
            .finish_loop(execution, &lp, StepOutcomeKind::Failed(error))
            .await?;
        Ok(with_execution_id(effects, &execution.id))
    }

    /// Finish the loop step (idempotently) and return its effects.
    async fn finish_loop(
        &mut self,
        execution: &ExecutionRecord,
        lp: &StepPath,
        kind: StepOutcomeKind,
    ) -> Result<Vec<Effect>, WorkerError> {
        let loop_path = lp.to_string();
        let Some(rec) = self
            .svc()
            .executions
            .get_step(&execution.id, &loop_path)
            .await?
        else {
            return Ok(Vec::new());
        };
        if rec.status.is_terminal() {
            return Ok(effects_for(self.compiled, lp, &rec));
        }
        let Some(step) = self.compiled.step(lp) else {
            return Ok(Vec::new());
        };
        let outcome = match kind {
            StepOutcomeKind::Succeeded => {
                let results = self
                    .svc()
                    .executions
                    .list_iterations(&execution.id, &loop_path)
                    .await?;
                StepOutcome::Succeeded {
                    output: loop_output(results),
                    next: step.next().map(str::to_string),
                }
            }
            StepOutcomeKind::Failed(e) => StepOutcome::Failed(e),
        };
        let now = self.svc().clock.now_ms();
        let mut done = finish_record(self.compiled, &rec, step, rec.input.clone(), outcome, now);
        let applied = match self
            .svc()
            .executions
            .finish_step(&execution.id, &done)
            .await
        {
            Ok(a) => a,
            Err(StoreError::TooLarge(m)) => {
                let e = StepError::new("payload.too_large", format!("loop {loop_path}: {m}"));
                done = finish_record(
                    self.compiled,
                    &rec,
                    step,
                    Value::Null,
                    StepOutcome::Failed(e),
                    now,
                );
                self.svc()
                    .executions
                    .finish_step(&execution.id, &done)
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        if !applied {
            // Someone else finished it meanwhile: follow what they stored.
            return match self
                .svc()
                .executions
                .get_step(&execution.id, &loop_path)
                .await?
            {
                Some(r) if r.status.is_terminal() => Ok(effects_for(self.compiled, lp, &r)),
                _ => Ok(Vec::new()),
            };
        }
        Ok(effects_for(self.compiled, lp, &done))
    }
}

enum StepOutcomeKind {
    Succeeded,
    Failed(StepError),
}
