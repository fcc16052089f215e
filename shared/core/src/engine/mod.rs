//! The engine as pure decisions: given what the store says and what a step produced, return the
//! new step record and the effects to perform. The worker in wf-app performs them (store writes,
//! queue sends) and never decides anything itself. Engine tests assert on effects without I/O.
//!
//! Protocol (DESIGN.md "How an execution runs"): a step task `{executionId, path, attempt}` is
//! claimed with a conditional write (status + attempt + lease), run, and finished with a write
//! conditional on the claim. Every effect is idempotent, so a redelivered task re-derives the same
//! effects from the stored record ([`effects_for`]) and performs them again harmlessly.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use crate::error::StepError;
use crate::execution::{ExecutionRecord, LoopState, StepRecord, StepStatus, StepTask};
use crate::expr::{ExprContext, referenced_variables, referenced_variables_in};
use crate::model::{ConditionStep, EffectiveRetry, Step, Workflow};
use crate::path::StepPath;

/// Extra lease time past a step's own budget before another worker may take it over. A step
/// is cut at its budget by the worker's own timer, so the margin only covers writing the
/// result and scheduling delays.
pub const LEASE_MARGIN_MS: i64 = 5_000;

/// Where a step id lives: the loop ids enclosing it (empty at top level).
#[derive(Debug, Clone)]
struct StepInfo {
    loops: Vec<String>,
    /// Step ids whose records this step's templates read (`steps.<id>`).
    reads_steps: BTreeSet<String>,
    /// Whether a template reads `steps` as a whole (dynamic access): then all visible steps load.
    reads_all_steps: bool,
    /// Secret names the step's templates read (`secrets.<NAME>`).
    reads_secrets: BTreeSet<String>,
}

/// A validated workflow indexed for the engine (cached per immutable version by the worker).
#[derive(Debug, Clone)]
pub struct CompiledWorkflow {
    pub workflow: Workflow,
    pub version: u32,
    info: HashMap<String, StepInfo>,
    /// The start step's inputSchema, compiled on first use (every trigger checks it).
    input_validator: Arc<OnceLock<Result<InputValidator, String>>>,
}

/// A compiled input schema (wrapped: jsonschema's validator has no Debug).
pub struct InputValidator(jsonschema::Validator);

impl std::fmt::Debug for InputValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InputValidator")
    }
}

impl CompiledWorkflow {
    /// Index a workflow. It must have passed validation (unique step ids).
    pub fn new(workflow: Workflow, version: u32) -> Self {
        let mut info = HashMap::new();
        fn walk(steps: &[Step], loops: &mut Vec<String>, info: &mut HashMap<String, StepInfo>) {
            for step in steps {
                let mut vars = BTreeSet::new();
                for s in template_strings(step) {
                    vars.extend(referenced_variables(s));
                }
                if let Step::Action(a) = step {
                    referenced_variables_in(&a.params, &mut vars);
                }
                if let Step::Output(o) = step {
                    referenced_variables_in(&o.output, &mut vars);
                }
                let mut reads_steps = BTreeSet::new();
                let mut reads_secrets = BTreeSet::new();
                let mut reads_all_steps = false;
                for v in &vars {
                    let mut parts = v.split('.');
                    match (parts.next(), parts.next()) {
                        (Some("steps"), Some(id)) => {
                            reads_steps.insert(id.to_string());
                        }
                        (Some("steps"), None) => reads_all_steps = true,
                        (Some("secrets"), Some(name)) => {
                            reads_secrets.insert(name.to_string());
                        }
                        _ => {}
                    }
                }
                info.insert(
                    step.id().to_string(),
                    StepInfo {
                        loops: loops.clone(),
                        reads_steps,
                        reads_all_steps,
                        reads_secrets,
                    },
                );
                if let Step::Loop(l) = step {
                    loops.push(l.id.clone());
                    walk(&l.steps, loops, info);
                    loops.pop();
                }
            }
        }
        walk(&workflow.steps, &mut Vec::new(), &mut info);
        Self {
            workflow,
            version,
            info,
            input_validator: Arc::new(OnceLock::new()),
        }
    }

    /// Check an input against the start step's `inputSchema`: every violation as
    /// (JSON pointer, message). The schema is compiled once per version.
    pub fn check_input(&self, input: &Value) -> Result<(), Vec<(String, String)>> {
        let Some(schema) = self
            .workflow
            .start_step()
            .and_then(|s| s.input_schema.as_ref())
        else {
            return Ok(());
        };
        let compiled = self.input_validator.get_or_init(|| {
            jsonschema::validator_for(schema)
                .map(InputValidator)
                .map_err(|e| format!("the workflow's inputSchema is invalid: {e}"))
        });
        let validator = match compiled {
            Ok(v) => &v.0,
            Err(e) => return Err(vec![(String::new(), e.clone())]),
        };
        let violations: Vec<(String, String)> = validator
            .iter_errors(input)
            .map(|e| (e.instance_path.to_string(), e.to_string()))
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }

    /// The definition of the step a path names, if the path fits the workflow.
    pub fn step(&self, path: &StepPath) -> Option<&Step> {
        let mut scope: &[Step] = &self.workflow.steps;
        let ids: Vec<&str> = path.ids().collect();
        for (i, id) in ids.iter().enumerate() {
            let step = scope.iter().find(|s| s.id() == *id)?;
            if i == ids.len() - 1 {
                return Some(step);
            }
            match step {
                Step::Loop(l) => scope = &l.steps,
                _ => return None,
            }
        }
        None
    }

    pub fn start_path(&self) -> Option<StepPath> {
        self.workflow.start_step().map(|s| StepPath::top(&s.id))
    }

    /// Paths of the step records a step at `path` reads through `steps.<id>`, resolved to the
    /// scope each id lives in (the current iteration for ids of an enclosing loop body).
    /// `None` when a template reads `steps` dynamically (load every visible record instead).
    pub fn visible_step_paths(&self, path: &StepPath) -> Option<Vec<(String, String)>> {
        let me = self.info.get(path.step_id())?;
        if me.reads_all_steps {
            return None;
        }
        let mut out = Vec::new();
        for id in &me.reads_steps {
            if let Some(target) = self.info.get(id)
                && let Some(p) = self.resolve_in_scope(path, &target.loops, id)
            {
                out.push((id.clone(), p));
            }
        }
        Some(out)
    }

    /// Ids visible from `path` mapped to their record paths (for dynamic `steps` access).
    pub fn all_visible_step_paths(&self, path: &StepPath) -> Vec<(String, String)> {
        self.info
            .iter()
            .filter_map(|(id, info)| {
                self.resolve_in_scope(path, &info.loops, id)
                    .map(|p| (id.clone(), p))
            })
            .collect()
    }

    fn resolve_in_scope(
        &self,
        from: &StepPath,
        target_loops: &[String],
        id: &str,
    ) -> Option<String> {
        // The target's scope must enclose (or equal) the current scope.
        let from_loops: Vec<&str> = from.segments[..from.depth()]
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        if target_loops.len() > from_loops.len()
            || target_loops.iter().zip(&from_loops).any(|(a, b)| a != b)
        {
            return None;
        }
        Some(format!(
            "{}{}",
            from.scope_prefix_at(target_loops.len()),
            id
        ))
    }

    /// Secret names the step at `path` reads.
    pub fn secrets_read(&self, path: &StepPath) -> impl Iterator<Item = &str> {
        self.info
            .get(path.step_id())
            .into_iter()
            .flat_map(|i| i.reads_secrets.iter().map(String::as_str))
    }
}

/// Strings of a step (other than action params and output values) that may hold templates.
fn template_strings(step: &Step) -> Vec<&str> {
    match step {
        Step::Llm(l) => {
            let mut v = vec![l.prompt.as_str()];
            if let Some(s) = &l.system {
                v.push(s);
            }
            v
        }
        Step::Condition(c) => c.branches.iter().map(|b| b.condition.as_str()).collect(),
        Step::Loop(l) => vec![l.items.as_str()],
        _ => Vec::new(),
    }
}

/// What the worker must do with a delivered task, before running anything.
// Made once per task and matched at once; boxing the record would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum TaskPlan {
    /// Nothing to do (terminal execution, stale attempt, unknown path): acknowledge.
    Ack { reason: &'static str },
    /// The deadline passed: time the execution out, then acknowledge.
    TimeOut,
    /// Claim the step for this attempt and run it.
    Claim,
    /// The step finished before (a redelivery): perform its effects again, then acknowledge.
    Replay(StepRecord),
    /// Another worker holds a live lease: look again after this many milliseconds.
    Busy { retry_after_ms: u64 },
    /// A retry was scheduled but this is the old attempt's task: make sure the retry is queued.
    EnsureRetry { attempt: u32 },
}

/// Decide what to do with a task given the execution and the stored step record.
pub fn plan_task(
    execution: &ExecutionRecord,
    step: Option<&StepRecord>,
    task: &StepTask,
    now: i64,
) -> TaskPlan {
    if execution.status.is_terminal() {
        return TaskPlan::Ack {
            reason: "execution finished",
        };
    }
    if now >= execution.deadline_at {
        return TaskPlan::TimeOut;
    }
    let Some(rec) = step else {
        return TaskPlan::Claim;
    };
    if rec.status.is_terminal() {
        return TaskPlan::Replay(rec.clone());
    }
    match rec.status {
        StepStatus::Running => {
            if task.attempt < rec.attempts {
                TaskPlan::Ack {
                    reason: "stale attempt",
                }
            } else if rec.lease_until.is_some_and(|l| l > now) {
                let wait = rec.lease_until.unwrap_or(now) - now;
                TaskPlan::Busy {
                    retry_after_ms: wait.max(100) as u64,
                }
            } else {
                TaskPlan::Claim
            }
        }
        StepStatus::Retrying => {
            if task.attempt > rec.attempts {
                TaskPlan::Claim
            } else {
                TaskPlan::EnsureRetry {
                    attempt: rec.attempts + 1,
                }
            }
        }
        _ => TaskPlan::Ack {
            reason: "unexpected status",
        },
    }
}

/// The record a worker writes when it claims a step.
pub fn claim_record(
    path: &StepPath,
    step: &Step,
    attempt: u32,
    now: i64,
    deadline: i64,
    previous: Option<&StepRecord>,
) -> StepRecord {
    let step_budget = step
        .timeout_ms()
        .map(|t| t as i64)
        .unwrap_or(deadline - now);
    StepRecord {
        path: path.to_string(),
        step_type: step.type_name().to_string(),
        status: StepStatus::Running,
        attempts: attempt,
        input: Value::Null,
        output: Value::Null,
        error: previous.and_then(|p| p.error.clone()),
        started_at: previous.map(|p| p.started_at).unwrap_or(now),
        finished_at: None,
        duration_ms: None,
        lease_until: Some(now + step_budget.min(deadline - now).max(0) + LEASE_MARGIN_MS),
        next: None,
    }
}

/// What a step produced when it ran.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Succeeded with an output; `next` is the chosen edge (conditions) or the step's `next`.
    Succeeded {
        output: Value,
        next: Option<String>,
    },
    Failed(StepError),
}

/// Evaluate a condition step: the first true branch wins, else `else`, else the path ends.
/// Returns the step's resolved input (each branch's value), output and chosen next.
pub fn evaluate_condition(
    step: &ConditionStep,
    ctx: &ExprContext,
) -> Result<(Value, Value, Option<String>), StepError> {
    let mut evaluated = Vec::new();
    for (i, branch) in step.branches.iter().enumerate() {
        let v = ctx.eval_bool(&branch.condition).map_err(|mut e| {
            e.message = format!("branches[{i}].if: {}", e.message);
            e
        })?;
        evaluated.push(json!({ "if": branch.condition, "value": v }));
        if v {
            return Ok((
                json!({ "branches": evaluated }),
                json!({ "branch": i }),
                Some(branch.next.clone()),
            ));
        }
    }
    let input = json!({ "branches": evaluated });
    Ok(match &step.otherwise {
        Some(e) => (input, json!({ "branch": "else" }), Some(e.clone())),
        None => (input, json!({ "branch": null }), None),
    })
}

/// The final record of a step after its attempt, and where the execution goes next.
/// A retryable failure with attempts left becomes `retrying` (the worker queues the retry).
pub fn finish_record(
    compiled: &CompiledWorkflow,
    claimed: &StepRecord,
    step: &Step,
    input: Value,
    outcome: StepOutcome,
    now: i64,
) -> StepRecord {
    let mut rec = claimed.clone();
    rec.input = input;
    rec.lease_until = None;
    match outcome {
        StepOutcome::Succeeded { output, next } => {
            rec.status = StepStatus::Succeeded;
            rec.output = output;
            rec.error = None;
            rec.next = next;
        }
        StepOutcome::Failed(error) => {
            let retry = EffectiveRetry::of(&compiled.workflow.config, step);
            let may_retry = !step.is_pure() && !matches!(step, Step::Loop(_));
            if may_retry && error.retryable && rec.attempts <= retry.max_retries {
                rec.status = StepStatus::Retrying;
                rec.error = Some(error);
                rec.next = None;
                return rec; // not finished: no finishedAt
            }
            rec.status = if error.code == "timeout.execution" {
                StepStatus::TimedOut
            } else {
                StepStatus::Failed
            };
            rec.error = Some(error);
            rec.next = step.on_error().map(str::to_string);
        }
    }
    rec.finished_at = Some(now);
    rec.duration_ms = Some(now - rec.started_at);
    rec
}

/// Something the worker must do after a step's record is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Queue a task (`delay_ms` for retries). Non-pure successors go through the queue.
    Enqueue(StepTask, u64),
    /// Run a pure successor right away in this invocation (checkpointed like any step).
    RunInline(String),
    CompleteExecution {
        output: Value,
    },
    FailExecution {
        error: StepError,
    },
    TimeOutExecution {
        error: StepError,
    },
    /// Count iteration `index` of the loop at `loop_path` with its result (exactly once).
    CountIteration {
        loop_path: String,
        index: u32,
        result: Value,
    },
    /// An iteration failed: the loop fails with this error.
    FailLoop {
        loop_path: String,
        error: StepError,
    },
}

/// The effects of a stored step record. Used after a fresh finish and again on redelivery:
/// the same record always yields the same (idempotent) effects.
pub fn effects_for(compiled: &CompiledWorkflow, path: &StepPath, rec: &StepRecord) -> Vec<Effect> {
    let Some(step) = compiled.step(path) else {
        return Vec::new();
    };
    let execution_id = String::new(); // filled by the worker (tasks carry its id)
    let in_loop = path.enclosing_loop();
    match rec.status {
        StepStatus::Retrying => {
            let retry = EffectiveRetry::of(&compiled.workflow.config, step);
            let attempt = rec.attempts + 1;
            vec![Effect::Enqueue(
                StepTask {
                    execution_id,
                    path: path.to_string(),
                    attempt,
                },
                retry.delay_before(attempt),
            )]
        }
        StepStatus::Succeeded => {
            if let Step::Output(_) = step {
                return match in_loop {
                    Some((lp, index)) => vec![Effect::CountIteration {
                        loop_path: lp.to_string(),
                        index,
                        result: rec.output.clone(),
                    }],
                    None => vec![Effect::CompleteExecution {
                        output: rec.output.clone(),
                    }],
                };
            }
            match &rec.next {
                Some(next) => vec![successor(compiled, path, next, execution_id)],
                None => match in_loop {
                    Some((lp, index)) => vec![Effect::CountIteration {
                        loop_path: lp.to_string(),
                        index,
                        result: rec.output.clone(),
                    }],
                    None => vec![Effect::CompleteExecution {
                        output: Value::Null,
                    }],
                },
            }
        }
        StepStatus::Failed | StepStatus::TimedOut => {
            let error = rec
                .error
                .clone()
                .unwrap_or_else(|| StepError::new("step.failed", "step failed"));
            if rec.status == StepStatus::TimedOut {
                return vec![Effect::TimeOutExecution { error }];
            }
            if let Some(next) = &rec.next {
                return vec![successor(compiled, path, next, execution_id)];
            }
            let error = StepError {
                message: format!("step {path} failed: {}", error.message),
                ..error
            };
            match in_loop {
                Some((lp, _)) => vec![Effect::FailLoop {
                    loop_path: lp.to_string(),
                    error,
                }],
                None => vec![Effect::FailExecution { error }],
            }
        }
        StepStatus::Running => Vec::new(),
    }
}

fn successor(
    compiled: &CompiledWorkflow,
    path: &StepPath,
    next: &str,
    execution_id: String,
) -> Effect {
    let next_path = path.sibling(next);
    match compiled.step(&next_path) {
        Some(s) if s.is_pure() => Effect::RunInline(next_path.to_string()),
        _ => Effect::Enqueue(
            StepTask {
                execution_id,
                path: next_path.to_string(),
                attempt: 1,
            },
            0,
        ),
    }
}

/// The loop state a loop step stores when it starts.
pub fn loop_state(items: Vec<Value>, concurrency: u32) -> LoopState {
    let total = items.len() as u32;
    LoopState {
        items,
        total,
        remaining: total,
        concurrency: concurrency.max(1),
        failed: false,
    }
}

/// The path of iteration `index`'s entry step, or None for an empty body.
pub fn iteration_entry(
    compiled: &CompiledWorkflow,
    loop_path: &StepPath,
    index: u32,
) -> Option<StepPath> {
    match compiled.step(loop_path)? {
        Step::Loop(l) => l
            .steps
            .first()
            .map(|s| loop_path.iteration_child(index, s.id())),
        _ => None,
    }
}

/// The first iterations to start: one per concurrency slot. Slot `k` runs iterations
/// `k, k + c, k + 2c, ...` one after the other: finishing iteration `i` starts `i + c`.
/// Deterministic, so re-sending after a redelivery is harmless, and at most `c` run at once.
pub fn initial_iterations(
    compiled: &CompiledWorkflow,
    loop_path: &StepPath,
    state: &LoopState,
) -> Vec<Effect> {
    (0..state.concurrency.min(state.total))
        .filter_map(|i| iteration_task(compiled, loop_path, i))
        .collect()
}

/// The iteration to start after iteration `index` was counted, if any.
pub fn following_iteration(
    compiled: &CompiledWorkflow,
    loop_path: &StepPath,
    state: &LoopState,
    index: u32,
) -> Option<Effect> {
    let next = index + state.concurrency;
    if next < state.total && !state.failed {
        iteration_task(compiled, loop_path, next)
    } else {
        None
    }
}

fn iteration_task(compiled: &CompiledWorkflow, loop_path: &StepPath, index: u32) -> Option<Effect> {
    let entry = iteration_entry(compiled, loop_path, index)?;
    Some(Effect::Enqueue(
        StepTask {
            execution_id: String::new(),
            path: entry.to_string(),
            attempt: 1,
        },
        0,
    ))
}

/// The loop step's output: iteration results in item order.
pub fn loop_output(mut results: Vec<(u32, Value)>) -> Value {
    results.sort_by_key(|(i, _)| *i);
    Value::Array(results.into_iter().map(|(_, v)| v).collect())
}

/// Fill in the execution id of queued tasks (effects are computed without it).
pub fn with_execution_id(effects: Vec<Effect>, execution_id: &str) -> Vec<Effect> {
    effects
        .into_iter()
        .map(|e| match e {
            Effect::Enqueue(mut t, d) => {
                t.execution_id = execution_id.to_string();
                Effect::Enqueue(t, d)
            }
            other => other,
        })
        .collect()
}

/// The error of an execution past its deadline.
pub fn deadline_error(timeout_ms: u64) -> StepError {
    StepError::new(
        "timeout.execution",
        format!("the execution ran past its deadline (timeoutMs {timeout_ms})"),
    )
}

#[cfg(test)]
mod tests;
