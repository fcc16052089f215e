//! An execution's pure start, run before the execution is stored.
//!
//! The steps an execution starts with are often pure (start, conditions, outputs): a function
//! of the input and of the records before them, with no effect outside the execution. A worker
//! would run them one task after another, each a read and a put-if-absent of its record. Here
//! they run in memory when the execution starts, as the worker would run them (the same
//! engine decisions: [`claim_record`], [`finish_record`], [`effects_for`], the same inline
//! budget, the execution's scrubber), and the execution is created with their records in one
//! store call (`ExecutionStore::create_execution_with_steps`: one transaction on SQLite). What
//! is left is queued as the worker would have queued it: the first step that is not pure, a
//! pure step's retry. An execution made only of pure steps is stored finished, and the queue is
//! never used.
//!
//! Nothing here is stored before that one call, so a crash before it loses nothing but the
//! computation (the trigger's retry starts again); after it, the records are the ones a worker
//! would have stored, and a redelivered task replays them.

use std::collections::VecDeque;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use wf_core::engine::{self, CompiledWorkflow, Effect, claim_record, effects_for, finish_record};
use wf_core::execution::{
    ExecutionRecord, ExecutionStatus, ExecutionUpdate, HandedOff, StepRecord, StepTask,
};
use wf_core::expr::ExprContext;
use wf_core::path::StepPath;
use wf_core::scrub::Scrubber;

use super::App;
use crate::context::{LoopScope, context_from_records, steps_read};
use crate::step_runner::run_step;

/// How a process runs the pure start of an execution, once [`App::enable_pure_start`] set it.
/// A function pointer, set at start-up, rather than a method `start` calls directly: a binary
/// that never enables it (the api function) links none of the step runner (its zip stays under
/// the 5 MB bound).
pub(crate) type PureStart = for<'a> fn(
    &'a App,
    &'a CompiledWorkflow,
    &'a ExecutionRecord,
    &'a StepPath,
) -> BoxFuture<'a, Option<StagedStart>>;

fn boxed_pure_start<'a>(
    app: &'a App, compiled: &'a CompiledWorkflow, record: &'a ExecutionRecord, start: &'a StepPath,
) -> BoxFuture<'a, Option<StagedStart>> {
    Box::pin(app.stage_pure_start(compiled, record, start))
}

/// What running an execution's pure start produced: the record to create (`running` with the
/// tasks it hands on, or terminal when nothing is left), the step records, and the tasks to
/// send once created.
pub(crate) struct StagedStart {
    pub record: ExecutionRecord,
    pub steps: Vec<StepRecord>,
    pub sends: Vec<(StepTask, u64)>,
}

impl App {
    /// Run the pure start of new executions in this process (see the module). Local engines
    /// (`wf dev`, `wf run`) and the webhook function do; the api function leaves it to the
    /// worker (its role reads no secrets, so few workflows could, and it keeps the step runner
    /// out of its binary); the trigger function starts with deterministic ids, which never do.
    pub fn enable_pure_start(&self) {
        let _ = self.pure_start.set(boxed_pure_start);
    }

    /// Run the pure steps `record` (a new, queued execution) starts with, from `start`. `None`
    /// when the start step is not pure, or when a secret the workflow reads is not set in this
    /// process (the records must be scrubbed of every secret a step may resolve, as the worker
    /// scrubs them; that worker then runs the start).
    pub(crate) async fn stage_pure_start(
        &self, compiled: &CompiledWorkflow, record: &ExecutionRecord, start: &StepPath,
    ) -> Option<StagedStart> {
        if !compiled.step(start)?.is_pure() {
            return None;
        }
        let scrub = self.resolved_scrubber(compiled)?;
        let clock = &self.svc.clock;
        let mut staged = StagedStart {
            record: record.clone(),
            steps: Vec::new(),
            sends: Vec::new(),
        };
        let mut pending = VecDeque::from([start.clone()]);
        let mut inlined = 0;
        while let Some(path) = pending.pop_front() {
            let step = compiled.step(&path)?;
            let now = clock.now_ms();
            let claim = claim_record(
                &path,
                step,
                1,
                now,
                record.deadline_at,
                None,
                self.settings.lease_ms(),
            );
            let read = steps_read(compiled, &path)
                .into_iter()
                .map(|(id, p)| {
                    let rec = staged.steps.iter().find(|s| s.path == p).cloned();
                    (id, rec)
                })
                .collect();
            let (input, outcome) = match context_from_records(
                &self.svc,
                &staged.record,
                compiled,
                &path,
                &LoopScope::default(),
                read,
            ) {
                Ok(map) => {
                    let ctx = ExprContext::new(map);
                    let action_ctx = self.action_context(record, &path, 1, Duration::ZERO);
                    let run = run_step(&self.svc, step, &ctx, &record.input, action_ctx).await;
                    (run.input, run.outcome)
                }
                Err(e) => (Value::Null, engine::StepOutcome::Failed(e)),
            };
            let mut done = finish_record(compiled, &claim, step, input, outcome, clock.now_ms());
            scrub.step_record(&mut done);
            let effects = effects_for(compiled, &record.id, &path, &done);
            staged.steps.push(done);
            let mut ending = None;
            for effect in effects {
                match engine::within_inline_budget(effect, &record.id, inlined) {
                    Effect::Enqueue(task, delay) => staged.sends.push((task, delay)),
                    Effect::RunInline(next) => {
                        inlined += 1;
                        pending.push_back(StepPath::parse(&next)?);
                    }
                    Effect::CompleteExecution { output } => {
                        ending = Some((ExecutionStatus::Succeeded, output, None));
                    }
                    Effect::FailExecution { error } => {
                        ending = Some((ExecutionStatus::Failed, Value::Null, Some(error)));
                    }
                    Effect::TimeOutExecution { error } => {
                        ending = Some((ExecutionStatus::TimedOut, Value::Null, Some(error)));
                    }
                    // Loops are not pure: no iteration is counted from a pure start.
                    Effect::CountIteration { .. } | Effect::FailLoop { .. } => return None,
                }
            }
            if let Some((status, output, error)) = ending {
                finish(
                    &mut staged.record,
                    &scrub,
                    status,
                    output,
                    error,
                    clock.now_ms(),
                );
                break;
            }
        }
        if !staged.record.status.is_terminal() && !staged.sends.is_empty() {
            // Its steps have run: the execution is created `running`, with the tasks it hands
            // on, which are sent again if they never reach a worker (`HandedOff`). A worker
            // then writes nothing to the execution before its end.
            staged.record.status = ExecutionStatus::Running;
            staged.record.handoff = staged
                .sends
                .iter()
                .map(|(task, delay)| HandedOff {
                    path: task.path.clone(),
                    attempt: task.attempt,
                    delay_ms: *delay,
                })
                .collect();
        }
        Some(staged)
    }

    /// The execution's scrubber ([`App::scrubber`]) when every secret the workflow reads is set
    /// in this process.
    fn resolved_scrubber(&self, compiled: &CompiledWorkflow) -> Option<Scrubber> {
        let values: Option<Vec<String>> = compiled
            .all_secrets_read()
            .into_iter()
            .map(|name| self.svc.secrets.get(name))
            .collect();
        Some(scrubber_of(values?))
    }

    /// The scrubber of an execution of `compiled`: every secret value a step of it may resolve
    /// (a secret one step sent may come back in a later step's answer). The values are also
    /// handed to the log scrubber ([`crate::logs`]).
    pub fn scrubber(&self, compiled: &CompiledWorkflow) -> Scrubber {
        let values = compiled
            .all_secrets_read()
            .into_iter()
            .filter_map(|name| self.svc.secrets.get(name));
        scrubber_of(values)
    }
}

/// A scrubber of these secret values (an empty one hides nothing); they also go to the log
/// scrubber.
fn scrubber_of(values: impl IntoIterator<Item = String>) -> Scrubber {
    let values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
    crate::logs::remember_secrets(&values);
    Scrubber::new(values)
}

/// End the staged record as `App::finish_execution` ends a stored one (output and error
/// scrubbed).
fn finish(
    record: &mut ExecutionRecord, scrub: &Scrubber, status: ExecutionStatus, mut output: Value,
    mut error: Option<wf_core::StepError>, now: i64,
) {
    scrub.value(&mut output);
    if let Some(e) = error.as_mut() {
        scrub.error(e);
    }
    record.apply(&ExecutionUpdate {
        status,
        output: Some(output),
        error,
        finished_at: Some(now),
    });
}
