//! The worker: runs one step task by the protocol in ARCHITECTURE.md ("How a step runs"). It
//! only runs tasks: every decision comes from `wf_core::engine`, every other use case lives in
//! [`crate::app`], and this module performs the engine's decisions with the ports.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tracing::{debug, warn};
use wf_core::engine::{
    self, AttemptBudget, CompiledWorkflow, Effect, StepOutcome, TaskPlan, attempt_budget_within,
    claim_record, effects_for, finish_record, heartbeat_interval_ms, initial_iterations,
    iteration_counted, loop_output, loop_record_output, loop_state, lost_record, plan_task,
    renewed_lease, settle_attempt, too_large_error, too_large_record,
};
use wf_core::event_chain;
use wf_core::execution::{
    ClaimOutcome, ExecutionRecord, ExecutionStatus, ExecutionUpdate, IterationCount, LoopState,
    StepRecord, StepStatus, StepTask,
};
use wf_core::expr::ExprContext;
use wf_core::model::Step;
use wf_core::path::StepPath;
use wf_core::ports::ActionContext;
use wf_core::scrub::Scrubber;
use wf_core::{StoreError, StoreResult};

use crate::app::{App, AppError};
use crate::context::{KnownRecords, LoopScope, step_context};
use crate::services::Services;
use crate::step_runner::run_step;

impl App {
    /// Run one delivered step task. `Ok` means acknowledge it; an `Err` means it could not be
    /// handled (a retryable one may succeed on redelivery; see [`App::task_failed`]). Pure
    /// successors run inline in this call; others are queued.
    #[tracing::instrument(skip_all, fields(execution_id = %task.execution_id, path = %task.path, attempt = task.attempt))]
    pub async fn run_task(&self, task: &StepTask) -> Result<(), AppError> {
        let Some(mut execution) = self.execution_for_task(&task.execution_id).await? else {
            warn!("task for an unknown execution: acknowledged");
            return Ok(());
        };
        let compiled = self
            .definition(&execution.workflow_id, execution.version)
            .await?;
        let scrub = self.scrubber(&compiled);
        let mut run = Run {
            app: self,
            execution_id: &task.execution_id,
            compiled: &compiled,
            scrub: &scrub,
            sends: Vec::new(),
            inline: VecDeque::new(),
            inlined: 0,
            known: KnownRecords::default(),
            loop_state: None,
            held: None,
        };
        run.inline.push_back((task.path.clone(), task.attempt));
        let mut delivered = true;
        loop {
            while let Some((path, attempt)) = run.inline.pop_front() {
                if execution.status.is_terminal() {
                    break;
                }
                run.process(&mut execution, &path, attempt, delivered)
                    .await?;
                delivered = false;
            }
            // The counts held for the iterations run inline are written before the task ends;
            // what they decide (the loop's end) may run more inline.
            if execution.status.is_terminal() || run.held.is_none() {
                break;
            }
            let effects = run.write_held_counts(&execution).await?;
            run.perform(&mut execution, effects).await?;
        }
        if !run.sends.is_empty() {
            self.services().queue.send(&run.sends).await?;
        }
        Ok(())
    }
}

impl App {
    /// What an action knows about its step, with the execution's causation chain (the one its
    /// trigger stored, else just its own workflow) and the deployment's bounds on it.
    pub(crate) fn action_context(
        &self, execution: &ExecutionRecord, path: &StepPath, attempt: u32, timeout: Duration,
    ) -> ActionContext {
        let mut event_chain = event_chain::from_trigger(&execution.trigger.details);
        if event_chain.is_empty() {
            event_chain.push(execution.workflow_id.clone());
        }
        ActionContext {
            execution_id: execution.id.clone(),
            path: path.to_string(),
            attempt,
            idempotency_key: format!("{}/{}", execution.id, path),
            timeout,
            event_chain,
            event_limits: self.settings().event_limits(),
        }
    }
}

/// The state of one `handle` call.
struct Run<'a> {
    app: &'a App,
    /// The execution the task is for (every step it runs inline is of the same one).
    execution_id: &'a str,
    compiled: &'a CompiledWorkflow,
    /// Applied by [`Scrubbed`], the worker's only way to write execution state.
    scrub: &'a Scrubber,
    sends: Vec<(StepTask, u64)>,
    inline: VecDeque<(String, u32)>,
    /// Steps this task has run inline so far (bounded: [`engine::MAX_INLINE_RUNS`]).
    inlined: usize,
    /// Terminal step records this task stored or read: the templates of the steps it runs
    /// next read them here, not from the store.
    known: KnownRecords,
    /// The state of the loop this task last counted iterations of or read: the slot's next
    /// iteration, run inline next, checks the loop with it instead of reading it again, and
    /// [`engine::hold_count`] decides with it.
    loop_state: Option<(String, LoopState)>,
    /// Counts of one loop's iterations this task ran and has not written yet
    /// ([`engine::hold_count`]): written together before any other effect and before the task
    /// ends ([`Run::write_held_counts`]).
    held: Option<HeldCounts>,
}

/// Iterations of one loop whose counts a task holds, with their results (in memory only:
/// [`Scrubbed`] scrubs them when they are written).
struct HeldCounts {
    loop_path: String,
    results: Vec<(u32, Value)>,
}

/// The one boundary between a run and the store: every step record, loop state, iteration
/// result and execution result the worker writes passes the execution's [`Scrubber`] first
/// (inputs, outputs, error messages and details, LLM raw text). Records are scrubbed in place,
/// so what the worker goes on with (effects, the execution's output) is what was stored.
struct Scrubbed<'a> {
    app: &'a App,
    scrub: &'a Scrubber,
    /// The execution whose state this writes (a task runs steps of one execution).
    execution_id: &'a str,
}

impl Scrubbed<'_> {
    fn store(&self) -> &dyn wf_core::ports::ExecutionStore {
        &*self.app.services().executions
    }

    async fn claim_step(&self, record: &mut StepRecord, now: i64) -> StoreResult<ClaimOutcome> {
        self.scrub.step_record(record);
        self.store()
            .claim_step(self.execution_id, record, now)
            .await
    }

    async fn claim_new_step(&self, record: &mut StepRecord, now: i64) -> StoreResult<ClaimOutcome> {
        self.scrub.step_record(record);
        self.store()
            .claim_new_step(self.execution_id, record, now)
            .await
    }

    async fn finish_step(&self, record: &mut StepRecord) -> StoreResult<bool> {
        self.scrub.step_record(record);
        self.store().finish_step(self.execution_id, record).await
    }

    async fn update_execution(&self, update: &mut ExecutionUpdate) -> StoreResult<bool> {
        self.scrub.execution_update(update);
        self.store()
            .update_execution(self.execution_id, update)
            .await
    }

    async fn init_loop(
        &self, loop_path: &str, state: &LoopState, items: &mut [Value],
    ) -> StoreResult<LoopState> {
        items.iter_mut().for_each(|i| self.scrub.value(i));
        let store = self.store();
        store
            .init_loop(self.execution_id, loop_path, state, items)
            .await
    }

    async fn count_iterations(
        &self, loop_path: &str, results: &[(u32, Value)],
    ) -> StoreResult<IterationCount> {
        let results: Vec<(u32, Value)> = results
            .iter()
            .map(|(index, result)| (*index, self.scrub.scrubbed(result)))
            .collect();
        let store = self.store();
        store
            .count_iterations(self.execution_id, loop_path, &results)
            .await
    }

    /// Bring the execution to a terminal status with its output and error scrubbed.
    async fn finish_execution(
        &self, execution: &mut Arc<ExecutionRecord>, status: ExecutionStatus, mut output: Value,
        mut error: Option<wf_core::StepError>,
    ) -> Result<(), AppError> {
        self.scrub.value(&mut output);
        if let Some(e) = error.as_mut() {
            self.scrub.error(e);
        }
        self.app
            .finish_execution(Arc::make_mut(execution), status, output, error)
            .await
    }
}

impl Run<'_> {
    fn svc(&self) -> &Services {
        self.app.services()
    }

    /// Counts a step that refused to publish for an event loop bound (`event.emit` failing
    /// with `event.loop`, a `record.*` output with `eventSuppressed`) in
    /// `wf_events_refused_total`.
    fn count_event_refusal(&self, chain: &[String], outcome: &StepOutcome) {
        let refused = match outcome {
            StepOutcome::Failed(e) => e.code == "event.loop",
            StepOutcome::Succeeded { output, .. } => output.get("eventSuppressed").is_some(),
            StepOutcome::DeadlinePassed(_) => false,
        };
        if !refused {
            return;
        }
        if let Err(refusal) = event_chain::check_emit(chain, self.app.settings().event_limits()) {
            self.app
                .metrics()
                .incr("wf_events_refused_total", refusal.reason());
        }
    }

    /// Where every write of execution state goes (scrubbed).
    fn store(&self) -> Scrubbed<'_> {
        Scrubbed {
            app: self.app,
            scrub: self.scrub,
            execution_id: self.execution_id,
        }
    }

    /// Plan and run the step at `path_str`: the delivered task (`delivered`) or a step this
    /// task reached inline.
    async fn process(
        &mut self, execution: &mut Arc<ExecutionRecord>, path_str: &str, attempt: u32,
        delivered: bool,
    ) -> Result<(), AppError> {
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
        let Some(loops) = self.loop_scope(&execution.id, &path).await? else {
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
        // A pure step reached inline is planned as not stored yet, without reading its record:
        // its final record is stored with a put-if-absent, and a record stored before (a
        // redelivered chain) refuses it and is handed back (`Held`), then replayed.
        let mut stored = if !delivered && step.is_pure() {
            None
        } else if delivered && attempt == 1 && !step.is_pure() {
            // The first delivery of a first attempt usually finds no record: claim without
            // reading, with a put that only succeeds where there is none. A record stored
            // before comes back with the refusal and is planned below, as a read would have
            // found it.
            let now = self.svc().clock.now_ms();
            if plan_task(execution, None, &task, now) != TaskPlan::Claim {
                // Finished or overdue: what to do depends on the record.
                self.svc()
                    .executions
                    .get_step(&execution.id, path_str)
                    .await?
            } else {
                let mut claim = claim_record(
                    &path,
                    &step,
                    attempt,
                    now,
                    execution.deadline_at,
                    None,
                    self.app.settings().lease_ms(),
                );
                match self.store().claim_new_step(&mut claim, now).await? {
                    ClaimOutcome::Claimed => {
                        return self
                            .run_claimed(execution, &path, &step, claim, &loops)
                            .await;
                    }
                    ClaimOutcome::Held(current) => Some(current),
                }
            }
        } else {
            self.svc()
                .executions
                .get_step(&execution.id, path_str)
                .await?
        };
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
                        let outcome = StepOutcome::DeadlinePassed(engine::deadline_error(timeout));
                        let mut done = finish_record(
                            self.compiled,
                            &rec,
                            &step,
                            rec.input.clone(),
                            outcome,
                            now,
                        );
                        self.store().finish_step(&mut done).await?;
                    }
                    return self.app.time_out(Arc::make_mut(execution)).await;
                }
                TaskPlan::Busy { retry_after_ms } => {
                    // A waiting loop is driven by its iterations; anything else held: look
                    // again when the lease ends (`engine::is_waiting_loop`).
                    let waiting_loop =
                        engine::is_waiting_loop(&step, stored.as_ref(), execution.deadline_at);
                    let state = if waiting_loop {
                        self.svc()
                            .executions
                            .get_loop(&execution.id, path_str)
                            .await?
                    } else {
                        None
                    };
                    let Some(state) = state else {
                        if !waiting_loop {
                            self.sends.push((task, retry_after_ms.min(900_000)));
                        }
                        return Ok(());
                    };
                    // This may be the redelivery of the task whose run stored the waiting
                    // record and died before its first iterations were sent: send them again
                    // (deterministic tasks: a repeat replays its step or is acknowledged).
                    let first = initial_iterations(self.compiled, &execution.id, &path, &state);
                    return self.perform(execution, first).await;
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
                TaskPlan::Claim => {
                    let claim = claim_record(
                        &path,
                        &step,
                        attempt,
                        now,
                        execution.deadline_at,
                        stored.as_ref(),
                        self.app.settings().lease_ms(),
                    );
                    if step.is_pure() && stored.is_none() {
                        // Pure steps are deterministic: compute the final record and store it
                        // with one put-if-absent instead of a claim and a finish. A concurrent
                        // duplicate computes the same record and replays the stored one.
                        let mut done = self
                            .run_pure(execution, &path, &step, &claim, &loops)
                            .await?;
                        match self.store().claim_step(&mut done, now).await {
                            Ok(ClaimOutcome::Claimed) => {
                                return self.apply(execution, &path, &done).await;
                            }
                            Ok(ClaimOutcome::Held(current)) => stored = Some(current),
                            Err(StoreError::TooLarge(m)) => {
                                let mut failed = too_large_record(
                                    self.compiled,
                                    &claim,
                                    &step,
                                    &m,
                                    self.svc().clock.now_ms(),
                                );
                                match self.store().claim_step(&mut failed, now).await? {
                                    ClaimOutcome::Claimed => {
                                        return self.apply(execution, &path, &failed).await;
                                    }
                                    ClaimOutcome::Held(current) => stored = Some(current),
                                }
                            }
                            Err(e) => return Err(e.into()),
                        }
                        continue;
                    }
                    if claim.lease_lost > 0 {
                        warn!(
                            lease_lost = claim.lease_lost,
                            "the worker running this step was lost (its lease expired): taking it over"
                        );
                    }
                    // A step lost too often is failed instead of run again (with the claim's
                    // condition, so only one worker decides it).
                    let lost = lost_record(self.compiled, &claim, &step, &path, now);
                    let given_up = lost.is_some();
                    let mut write = lost.unwrap_or(claim);
                    match self.store().claim_step(&mut write, now).await? {
                        ClaimOutcome::Claimed if given_up => {
                            warn!("step lost too many times: failed with step.lost");
                            return self.apply(execution, &path, &write).await;
                        }
                        ClaimOutcome::Claimed => {
                            return self
                                .run_claimed(execution, &path, &step, write, &loops)
                                .await;
                        }
                        ClaimOutcome::Held(current) => stored = Some(current),
                    }
                }
            }
        }
        Ok(())
    }

    /// The iteration `path` runs in (index and item of the innermost enclosing loop), after
    /// checking that every enclosing loop exists and has not failed; `None` when one of them
    /// failed or does not exist (the task is moot). Reads the small loop counters and one page
    /// of items: the same work whatever the loop's size.
    async fn loop_scope(
        &mut self, execution_id: &str, path: &StepPath,
    ) -> Result<Option<LoopScope>, AppError> {
        let app = self.app;
        let store = &app.services().executions;
        let mut innermost = None;
        let mut p = path.clone();
        while let Some((loop_path, index)) = p.enclosing_loop() {
            let loop_key = loop_path.to_string();
            let state = match &self.loop_state {
                Some((key, state)) if *key == loop_key => Some(*state),
                _ => {
                    let read = store.get_loop(execution_id, &loop_key).await?;
                    if let (None, Some(state)) = (&innermost, read) {
                        self.loop_state = Some((loop_key.clone(), state));
                    }
                    read
                }
            };
            match state {
                Some(state) if !state.failed => {}
                _ => return Ok(None),
            }
            if innermost.is_none() {
                let item = store.loop_item(execution_id, &loop_key, index).await?;
                innermost = Some((index, item.unwrap_or(Value::Null)));
            }
            p = loop_path;
        }
        Ok(Some(LoopScope {
            iteration: innermost,
        }))
    }

    /// The expression context of the step at `path` ([`step_context`], with the records this
    /// task holds).
    async fn context(
        &mut self, execution: &ExecutionRecord, path: &StepPath, loops: &LoopScope,
    ) -> Result<serde_json::Map<String, Value>, wf_core::StepError> {
        let (svc, compiled) = (self.app.services(), self.compiled);
        step_context(svc, execution, compiled, path, loops, &mut self.known).await
    }

    /// Run a pure step (start, condition, output) and return its final record (not stored).
    async fn run_pure(
        &mut self, execution: &ExecutionRecord, path: &StepPath, step: &Step, claim: &StepRecord,
        loops: &LoopScope,
    ) -> Result<StepRecord, AppError> {
        let (input, outcome) = match self.context(execution, path, loops).await {
            Ok(map) => {
                let ctx = ExprContext::new(map);
                let action_ctx =
                    self.app
                        .action_context(execution, path, claim.attempts, Duration::ZERO);
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
        &mut self, execution: &mut Arc<ExecutionRecord>, path: &StepPath, step: &Step,
        claim: StepRecord, loops: &LoopScope,
    ) -> Result<(), AppError> {
        // `running` is written before the first step that does real work; an execution made
        // only of pure steps goes from queued to its final status in one write.
        if execution.status == ExecutionStatus::Queued {
            let mut update = ExecutionUpdate {
                status: ExecutionStatus::Running,
                output: None,
                error: None,
                finished_at: None,
            };
            if self.store().update_execution(&mut update).await? {
                Arc::make_mut(execution).status = ExecutionStatus::Running;
                self.app.remember_execution(execution);
            }
        }
        let ctx = match self.context(execution, path, loops).await {
            Ok(map) => ExprContext::new(map),
            Err(e) => return self.fail(execution, path, step, &claim, e).await,
        };
        if let Step::Loop(l) = step {
            return self
                .start_loop(execution, path, step, l, &claim, &ctx)
                .await;
        }
        // On AWS one invocation runs at most the worker function's timeout (less a margin).
        let cap = self
            .app
            .settings()
            .worker_timeout
            .map(|t| engine::worker_step_cap_ms(t.as_millis() as u64));
        let budget: AttemptBudget =
            attempt_budget_within(step, self.svc().clock.now_ms(), execution.deadline_at, cap);
        let action_ctx = self.app.action_context(
            execution,
            path,
            claim.attempts,
            Duration::from_millis(budget.ms),
        );
        let chain = action_ctx.event_chain.clone();
        let work = run_step(self.svc(), step, &ctx, &execution.input, action_ctx);
        let Some(run) = self.with_heartbeat(&execution.id, &claim, work).await else {
            warn!("the lease was taken over while the step ran: this worker's attempt is dropped");
            return Ok(());
        };
        self.count_event_refusal(&chain, &run.outcome);
        let outcome = settle_attempt(
            run.outcome,
            budget,
            self.svc().clock.now_ms(),
            execution.deadline_at,
            self.compiled.workflow.config.timeout_ms,
        );
        self.finish(execution, path, step, &claim, run.input, outcome)
            .await
    }

    /// Run `work` while a heartbeat task next to it renews the claim's lease every third of
    /// the lease ([`heartbeat_interval_ms`]). `None` when a renewal found the claim taken over
    /// (the work is then dropped: its new holder runs the step). A failed renewal (the store
    /// unreachable) is tried again at the next beat. A crash drops both, so the lease runs out
    /// and another worker takes the step over.
    async fn with_heartbeat<F: Future>(
        &self, execution_id: &str, claim: &StepRecord, work: F,
    ) -> Option<F::Output> {
        let lease_ms = self.app.settings().lease_ms();
        let every = Duration::from_millis(heartbeat_interval_ms(lease_ms));
        let store = self.svc().executions.clone();
        let clock = self.svc().clock.clone();
        let (execution_id, claim) = (execution_id.to_string(), claim.clone());
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        let beat = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let until = renewed_lease(clock.now_ms(), lease_ms);
                match store.renew_lease(&execution_id, &claim, until).await {
                    Ok(true) => debug!(lease_until = until, "lease renewed"),
                    Ok(false) => {
                        let _ = lost_tx.send(());
                        return;
                    }
                    Err(e) => warn!(error = %e, "lease renewal failed; trying again"),
                }
            }
        });
        let _stop = AbortOnDrop(beat);
        tokio::select! {
            out = work => Some(out),
            Ok(()) = lost_rx => None,
        }
    }

    async fn start_loop(
        &mut self, execution: &mut Arc<ExecutionRecord>, path: &StepPath, step: &Step,
        l: &wf_core::model::LoopStep, claim: &StepRecord, ctx: &ExprContext,
    ) -> Result<(), AppError> {
        let items = match ctx.eval(&l.items) {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                let e = wf_core::StepError::new(
                    "loop.items",
                    format!(
                        "items {:?} must yield an array, got {}",
                        l.items,
                        wf_core::expr::type_name(&other)
                    ),
                );
                return self.fail(execution, path, step, claim, e).await;
            }
            Err(e) => return self.fail(execution, path, step, claim, e).await,
        };
        let input = engine::loop_record_input(&items);
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
        let mut items = items;
        let state = loop_state(items.len() as u32, l.concurrency);
        let state = match self.store().init_loop(&path_str, &state, &mut items).await {
            Ok(s) => s,
            Err(StoreError::TooLarge(m)) => {
                let e = too_large_error(&format!("loop {path}"), &m);
                return self.fail(execution, path, step, claim, e).await;
            }
            Err(e) => return Err(e.into()),
        };
        let mut waiting = engine::waiting_loop_record(claim, input, execution.deadline_at);
        if !self.store().finish_step(&mut waiting).await? {
            return Ok(()); // lost the claim: its new holder starts the loop
        }
        let effects = initial_iterations(self.compiled, &execution.id, path, &state);
        self.perform(execution, effects).await
    }

    /// Store a finished record conditional on its claim; one the store refuses as too large is
    /// replaced by the engine's clean failure ([`too_large_record`]). Returns the record
    /// stored, or None when the claim was lost.
    async fn store_finished(
        &self, claim: &StepRecord, step: &Step, done: StepRecord,
    ) -> Result<Option<StepRecord>, AppError> {
        let store = self.store();
        let mut done = done;
        let (applied, stored) = match store.finish_step(&mut done).await {
            Ok(applied) => (applied, done),
            Err(StoreError::TooLarge(m)) => {
                let mut failed =
                    too_large_record(self.compiled, claim, step, &m, self.svc().clock.now_ms());
                (store.finish_step(&mut failed).await?, failed)
            }
            Err(e) => return Err(e.into()),
        };
        if applied && let Some(error) = stored.error.as_ref() {
            // Every failed attempt, by its code (retried or final).
            self.app
                .metrics()
                .incr("wf_step_failures_total", &error.code);
        }
        Ok(applied.then_some(stored))
    }

    /// [`Self::finish`] with a failure before the step produced an input.
    async fn fail(
        &mut self, execution: &mut Arc<ExecutionRecord>, path: &StepPath, step: &Step,
        claim: &StepRecord, error: wf_core::StepError,
    ) -> Result<(), AppError> {
        let outcome = StepOutcome::Failed(error);
        self.finish(execution, path, step, claim, Value::Null, outcome)
            .await
    }

    /// Store the attempt's result (conditional on our claim) and perform its effects.
    async fn finish(
        &mut self, execution: &mut Arc<ExecutionRecord>, path: &StepPath, step: &Step,
        claim: &StepRecord, input: Value, outcome: StepOutcome,
    ) -> Result<(), AppError> {
        let now = self.svc().clock.now_ms();
        let done = finish_record(self.compiled, claim, step, input, outcome, now);
        match self.store_finished(claim, step, done).await? {
            Some(stored) => self.apply(execution, path, &stored).await,
            None => {
                debug!("claim lost before finishing: another worker owns this step now");
                Ok(())
            }
        }
    }

    /// Perform the effects of a stored step record.
    async fn apply(
        &mut self, execution: &mut Arc<ExecutionRecord>, path: &StepPath, rec: &StepRecord,
    ) -> Result<(), AppError> {
        let effects = effects_for(self.compiled, &execution.id, path, rec);
        self.known.keep(rec);
        self.perform(execution, effects).await
    }

    async fn perform(
        &mut self, execution: &mut Arc<ExecutionRecord>, effects: Vec<Effect>,
    ) -> Result<(), AppError> {
        let mut pending: VecDeque<Effect> = effects.into();
        while let Some(effect) = pending.pop_front() {
            let effect = engine::within_inline_budget(effect, &execution.id, self.inlined);
            let other_loop = |held: &HeldCounts| match &effect {
                Effect::Enqueue(..) | Effect::RunInline(_) => false,
                Effect::CountIteration { loop_path, .. } => *loop_path != held.loop_path,
                _ => true,
            };
            // Held counts are written before any effect but a step to run or another count
            // of their loop.
            if self.held.as_ref().is_some_and(other_loop) {
                pending.extend(self.write_held_counts(execution).await?);
            }
            match effect {
                Effect::Enqueue(task, delay) => self.sends.push((task, delay)),
                Effect::RunInline(p) => {
                    self.inlined += 1;
                    self.inline.push_back((p, 1));
                }
                Effect::CompleteExecution { output } => {
                    self.store()
                        .finish_execution(execution, ExecutionStatus::Succeeded, output, None)
                        .await?;
                }
                Effect::FailExecution { error } => {
                    self.end(execution, ExecutionStatus::Failed, error).await?;
                }
                Effect::TimeOutExecution { error } => {
                    self.end(execution, ExecutionStatus::TimedOut, error)
                        .await?;
                }
                Effect::CountIteration {
                    loop_path,
                    index,
                    result,
                } => {
                    self.known.forget_iteration(&loop_path, index);
                    if let Some(next) = self.hold_count(execution, &loop_path, index, &result) {
                        pending.push_back(next);
                        continue;
                    }
                    let more = self
                        .count_iterations(execution, &loop_path, Some((index, result)))
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

    /// End the execution without an output (failed, timed out).
    async fn end(
        &self, execution: &mut Arc<ExecutionRecord>, status: ExecutionStatus,
        error: wf_core::StepError,
    ) -> Result<(), AppError> {
        self.store()
            .finish_execution(execution, status, Value::Null, Some(error))
            .await
    }

    /// Hold the count of iteration `index` when [`engine::hold_count`] allows it, returning the
    /// slot's next iteration to run now; None: count it now.
    fn hold_count(
        &mut self, execution: &ExecutionRecord, loop_path: &str, index: u32, result: &Value,
    ) -> Option<Effect> {
        let state = match &self.loop_state {
            Some((key, state)) if key == loop_path => *state,
            _ => return None,
        };
        let held = match &self.held {
            Some(h) if h.loop_path == loop_path => h.results.len(),
            Some(_) => return None,
            None => 0,
        };
        let lp = StepPath::parse(loop_path)?;
        let next = engine::hold_count(
            self.compiled,
            &execution.id,
            &lp,
            &state,
            index,
            held,
            self.inlined,
        )?;
        self.held
            .get_or_insert_with(|| HeldCounts {
                loop_path: loop_path.to_string(),
                results: Vec::new(),
            })
            .results
            .push((index, result.clone()));
        Some(next)
    }

    /// Write the counts this task holds (see [`Run::held`]) and return what they decide.
    async fn write_held_counts(
        &mut self, execution: &ExecutionRecord,
    ) -> Result<Vec<Effect>, AppError> {
        let Some(held) = self.held.as_ref() else {
            return Ok(Vec::new());
        };
        let loop_path = held.loop_path.clone();
        self.count_iterations(execution, &loop_path, None).await
    }

    /// Count iteration `current` (index and result) with the counts held for its loop,
    /// or only the held ones, in one store call; returns what follows (the slot's next
    /// iteration after `current`, the loop's end).
    async fn count_iterations(
        &mut self, execution: &ExecutionRecord, loop_path: &str, current: Option<(u32, Value)>,
    ) -> Result<Vec<Effect>, AppError> {
        let lp = parse_loop_path(loop_path)?;
        let mut results = match self.held.take() {
            Some(held) if held.loop_path == loop_path => held.results,
            other => {
                self.held = other;
                Vec::new()
            }
        };
        let last = current.as_ref().map(|(index, _)| *index);
        results.extend(current);
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let counted = match self.store().count_iterations(loop_path, &results).await {
            Ok(c) => c,
            Err(StoreError::TooLarge(m)) => {
                let (index, _) = results[results.len() - 1];
                let error = too_large_error(&format!("iteration {loop_path}[{index}]"), &m);
                return Ok(vec![Effect::FailLoop {
                    loop_path: loop_path.to_string(),
                    error,
                }]);
            }
            Err(e) => return Err(e.into()),
        };
        // The count answers the loop's state it left; counts made before (a redelivery) are
        // followed by reading the state as it stands.
        let state = match counted {
            IterationCount::Counted(after) => after,
            IterationCount::AlreadyCounted => {
                let stored = self.svc().executions.get_loop(&execution.id, loop_path);
                let Some(state) = stored.await? else {
                    return Ok(Vec::new());
                };
                state
            }
        };
        let decided = iteration_counted(self.compiled, &execution.id, &lp, &state, last, counted);
        self.loop_state = Some((loop_path.to_string(), state));
        let mut effects: Vec<Effect> = decided.next.into_iter().collect();
        if decided.loop_done {
            effects.extend(self.finish_loop(execution, &lp, None).await?);
        }
        Ok(effects)
    }

    async fn fail_loop(
        &mut self, execution: &ExecutionRecord, loop_path: &str, error: wf_core::StepError,
    ) -> Result<Vec<Effect>, AppError> {
        let lp = parse_loop_path(loop_path)?;
        self.svc()
            .executions
            .fail_loop(&execution.id, loop_path)
            .await?;
        // What this task knows of the loop says so too: no more of its iterations run here.
        if let Some((key, state)) = self.loop_state.as_mut()
            && key == loop_path
        {
            state.failed = true;
        }
        self.finish_loop(execution, &lp, Some(error)).await
    }

    /// Finish the loop step (idempotently) and return its effects: with its iterations'
    /// results in item order, or failed with `error`.
    async fn finish_loop(
        &mut self, execution: &ExecutionRecord, lp: &StepPath, error: Option<wf_core::StepError>,
    ) -> Result<Vec<Effect>, AppError> {
        let loop_path = lp.to_string();
        let store = &self.svc().executions;
        let Some(rec) = store.get_step(&execution.id, &loop_path).await? else {
            return Ok(Vec::new());
        };
        if rec.status.is_terminal() {
            return Ok(effects_for(self.compiled, &execution.id, lp, &rec));
        }
        let Some(step) = self.compiled.step(lp) else {
            return Ok(Vec::new());
        };
        let outcome = match error {
            None => StepOutcome::Succeeded {
                output: loop_record_output(loop_output(
                    store.list_iterations(&execution.id, &loop_path).await?,
                )),
                next: step.next().map(str::to_string),
            },
            Some(e) => StepOutcome::Failed(e),
        };
        let now = self.svc().clock.now_ms();
        let done = finish_record(self.compiled, &rec, step, rec.input.clone(), outcome, now);
        let stored = match self.store_finished(&rec, step, done).await? {
            Some(stored) => Some(stored),
            // Someone else finished it meanwhile: follow what they stored.
            None => store
                .get_step(&execution.id, &loop_path)
                .await?
                .filter(|r| r.status.is_terminal()),
        };
        Ok(stored
            .map(|r| effects_for(self.compiled, &execution.id, lp, &r))
            .unwrap_or_default())
    }
}

/// Stops the heartbeat task when the step it runs next to ends or is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn parse_loop_path(loop_path: &str) -> Result<StepPath, AppError> {
    StepPath::parse(loop_path).ok_or_else(|| {
        AppError::permanent("internal", format!("malformed loop path {loop_path:?}"))
    })
}
