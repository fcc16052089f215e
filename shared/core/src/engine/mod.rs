//! The engine as pure decisions: given what the store says and what a step produced, return the
//! new step record and the effects to perform. The worker in wf-app performs them (store writes,
//! queue sends) and never decides anything itself. Engine tests assert on effects without I/O.
//!
//! Protocol (ARCHITECTURE.md "How a step runs"): a step task `{executionId, path, attempt}` is
//! claimed with a conditional write (status + attempt + lease), run, and finished with a write
//! conditional on the claim. Every effect is idempotent, so a redelivered task re-derives the same
//! effects from the stored record ([`effects_for`]) and performs them again harmlessly.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use crate::error::{InvalidText, StepError, TextRule};
use crate::execution::{
    ExecutionRecord, IterationCount, LoopState, StepRecord, StepStatus, StepTask,
};
use crate::expr::{ExprContext, referenced_variables, referenced_variables_in};
use crate::model::{ConditionStep, EffectiveRetry, Step, Workflow};
use crate::path::StepPath;
use crate::validate::Problem;

/// Extra lease time past a step's own budget before another worker may take it over. A step
/// is cut at its budget by the worker's own timer, so the margin only covers writing the
/// result and scheduling delays.
pub const LEASE_MARGIN_MS: i64 = 5_000;

/// The lease of a claim when the deployment sets none (`WF_LEASE_SECS`): how long a step stays
/// held without its worker renewing it. The worker renews it while the step runs
/// ([`heartbeat_interval_ms`]), so a step may run longer; a crashed worker's step is claimable
/// again at most this long after its last renewal.
pub const DEFAULT_LEASE_MS: i64 = 30_000;

/// How many times a step's worker may be lost (its lease expired without a result: a crash, an
/// out-of-memory kill, a Lambda timeout) before the step fails with `step.lost` instead of
/// being run again. A lost lease is not an attempt (retries stay for real failures); this
/// bound is what keeps a step that kills its worker, or a non-idempotent one, from running
/// without end.
pub const MAX_LEASE_LOSSES: u32 = 3;

/// The error of a step given up after [`MAX_LEASE_LOSSES`] lost leases.
pub const LOST_ERROR_CODE: &str = "step.lost";

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
    /// Whether a template of the step reads `input` (a step that does not is given no copy of
    /// the execution's input: a loop over a large input would copy it once per iteration).
    reads_input: bool,
}

/// A validated workflow indexed for the engine (cached per immutable version by the worker).
#[derive(Debug, Clone)]
pub struct CompiledWorkflow {
    pub workflow: Workflow,
    pub version: u32,
    info: HashMap<String, StepInfo>,
    /// The start step's inputSchema, compiled on first use (every trigger checks it).
    input_validator: Arc<OnceLock<Result<InputValidator, InvalidText>>>,
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
                let mut reads_input = false;
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
                        (Some("input"), _) => reads_input = true,
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
                        reads_input,
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
            crate::schema::user_schema_validator(schema)
                .map(InputValidator)
                .map_err(|e| {
                    InvalidText::new(
                        TextRule::InputSchema,
                        format!("the workflow's inputSchema is invalid: {e}"),
                    )
                })
        });
        let validator = match compiled {
            Ok(v) => &v.0,
            Err(e) => return Err(vec![(String::new(), e.message.clone())]),
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
        &self, from: &StepPath, target_loops: &[String], id: &str,
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

    /// Secret names any step of the workflow reads: what an execution of it may resolve, so
    /// what its records are scrubbed of ([`crate::scrub::Scrubber`]; a secret one step sent
    /// may come back in a later step's answer).
    pub fn all_secrets_read(&self) -> BTreeSet<&str> {
        self.info
            .values()
            .flat_map(|i| i.reads_secrets.iter().map(String::as_str))
            .collect()
    }

    /// Whether the step at `path` reads the execution's `input` in a template (true for a
    /// path this version does not know).
    pub fn reads_input(&self, path: &StepPath) -> bool {
        self.info.get(path.step_id()).is_none_or(|i| i.reads_input)
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
    execution: &ExecutionRecord, step: Option<&StepRecord>, task: &StepTask, now: i64,
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

/// The record a worker writes when it claims a step. `lease_ms` is the deployment's lease
/// ([`DEFAULT_LEASE_MS`]): the claim holds until `now + min(attempt budget + margin, lease)`,
/// and the worker renews it while the step runs ([`renewed_lease`]). Claiming over a `running`
/// record (its lease expired: the worker holding it was lost) is a takeover: the same attempt,
/// with `leaseLost` counted.
pub fn claim_record(
    path: &StepPath, step: &Step, attempt: u32, now: i64, deadline: i64,
    previous: Option<&StepRecord>, lease_ms: i64,
) -> StepRecord {
    let budget = attempt_budget(step, now, deadline).ms as i64;
    let lease_lost = match previous {
        Some(p) if p.status == StepStatus::Running => p.lease_lost + 1,
        Some(p) => p.lease_lost,
        None => 0,
    };
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
        lease_until: Some(now + (budget + LEASE_MARGIN_MS).min(lease_ms.max(1))),
        next: None,
        lease_lost,
    }
}

/// How often the worker running a claimed step renews its lease: a third of it, so that two
/// renewals may fail (a store hiccup) before the lease runs out.
pub fn heartbeat_interval_ms(lease_ms: i64) -> u64 {
    (lease_ms / 3).max(1) as u64
}

/// The lease a renewal at `now` sets: `lease_ms` from now.
pub fn renewed_lease(now: i64, lease_ms: i64) -> i64 {
    now + lease_ms.max(1)
}

/// The error of a step whose worker was lost `lost` times.
pub fn lost_error(path: &StepPath, lost: u32) -> StepError {
    StepError::new(
        LOST_ERROR_CODE,
        format!(
            "the worker running step {path} was lost {lost} times (a crash, an out-of-memory \
             kill or the worker function's timeout) before it finished; it is not run again \
             (at most {MAX_LEASE_LOSSES} lost leases per step)"
        ),
    )
    .with_details(json!({ "leaseLost": lost, "maxLeaseLosses": MAX_LEASE_LOSSES }))
}

/// A claim that takes over a step lost too often ([`MAX_LEASE_LOSSES`]) is not run: this is
/// the failed record to store in its place (with the claim's condition, so one worker decides),
/// following `onError` like any failure. `None`: run the claim.
pub fn lost_record(
    compiled: &CompiledWorkflow, claim: &StepRecord, step: &Step, path: &StepPath, now: i64,
) -> Option<StepRecord> {
    if claim.lease_lost < MAX_LEASE_LOSSES {
        return None;
    }
    Some(finish_record(
        compiled,
        claim,
        step,
        Value::Null,
        StepOutcome::Failed(lost_error(path, claim.lease_lost)),
        now,
    ))
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
    /// The attempt was cut by the execution's deadline (not by the step's own timeout): the
    /// step ends `timed_out` and so does the execution; never retried.
    DeadlinePassed(StepError),
}

/// Which limit bounds one attempt of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptBound {
    /// The step's own `timeoutMs`: running out is an ordinary (retryable) step failure.
    StepTimeout,
    /// What is left of the execution's deadline: running out times the execution out.
    Deadline,
}

/// How long one attempt may run, and which limit that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptBudget {
    pub ms: u64,
    pub bound: AttemptBound,
}

/// The budget of an attempt starting at `now`: the step's `timeoutMs` when it ends before the
/// execution's deadline, else the time left until the deadline.
pub fn attempt_budget(step: &Step, now: i64, deadline: i64) -> AttemptBudget {
    attempt_budget_within(step, now, deadline, None)
}

/// [`attempt_budget`] where one invocation may run at most `cap_ms` (on AWS: the worker
/// function's timeout less [`WORKER_TIMEOUT_MARGIN_MS`]). A step cut by the cap fails like one
/// cut by its own `timeoutMs` (retryable), before the function's timeout would kill the worker.
pub fn attempt_budget_within(
    step: &Step, now: i64, deadline: i64, cap_ms: Option<u64>,
) -> AttemptBudget {
    let remaining = (deadline - now).max(0) as u64;
    let own = match (step.timeout_ms(), cap_ms) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    };
    match own {
        Some(t) if t < remaining => AttemptBudget {
            ms: t,
            bound: AttemptBound::StepTimeout,
        },
        _ => AttemptBudget {
            ms: remaining,
            bound: AttemptBound::Deadline,
        },
    }
}

/// Time a worker function keeps, out of its timeout, to store a step's result.
pub const WORKER_TIMEOUT_MARGIN_MS: u64 = 5_000;

/// Code of the problem of a step whose `timeoutMs` the worker function cannot run.
pub const STEP_TIMEOUT_EXCEEDS_WORKER: &str = "step.timeout_exceeds_worker";

/// The longest a step may run in a worker function whose timeout is `worker_timeout_ms`.
pub fn worker_step_cap_ms(worker_timeout_ms: u64) -> u64 {
    worker_timeout_ms
        .saturating_sub(WORKER_TIMEOUT_MARGIN_MS)
        .max(1)
}

/// The steps whose `timeoutMs` a worker function with this timeout could never run to the end
/// (it would be killed first), each as a problem naming the step and both numbers. Publishing
/// such a workflow is refused on that deployment.
pub fn worker_timeout_problems(workflow: &Workflow, worker_timeout_ms: u64) -> Vec<Problem> {
    fn walk(steps: &[Step], at: &str, worker_timeout_ms: u64, out: &mut Vec<Problem>) {
        let cap = worker_step_cap_ms(worker_timeout_ms);
        for (i, step) in steps.iter().enumerate() {
            let pointer = format!("{at}/steps/{i}");
            if let Some(t) = step.timeout_ms()
                && t > cap
            {
                out.push(Problem::new(
                    STEP_TIMEOUT_EXCEEDS_WORKER,
                    format!("{pointer}/timeoutMs"),
                    format!(
                        "step {} has timeoutMs {t}, more than the worker function can run: its \
                         timeout is {worker_timeout_ms} ms, less {WORKER_TIMEOUT_MARGIN_MS} ms \
                         to store the result ({cap} ms at most)",
                        step.id()
                    ),
                    format!(
                        "lower timeoutMs to {cap} or less, or raise the worker function's \
                         timeout (WF_WORKER_TIMEOUT_SECS)"
                    ),
                ));
            }
            if let Step::Loop(l) = step {
                walk(&l.steps, &pointer, worker_timeout_ms, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&workflow.steps, "", worker_timeout_ms, &mut out);
    out
}

/// A failure this close to the deadline of an attempt bounded by it is the deadline (timers
/// and the wall clock differ by a few milliseconds).
pub const DEADLINE_SLACK_MS: i64 = 50;

/// The outcome of an attempt given when it ended: a failure of an attempt bounded by the
/// execution's deadline that ended at the deadline is the deadline passing, whatever error the
/// step itself reported (its own timer fired with the same budget).
pub fn settle_attempt(
    outcome: StepOutcome, budget: AttemptBudget, ended_at: i64, deadline: i64, timeout_ms: u64,
) -> StepOutcome {
    match outcome {
        StepOutcome::Failed(_)
            if budget.bound == AttemptBound::Deadline
                && ended_at + DEADLINE_SLACK_MS >= deadline =>
        {
            StepOutcome::DeadlinePassed(deadline_error(timeout_ms))
        }
        other => other,
    }
}

/// The error of a write refused for its size (`what`: "step x", "loop each", ...).
pub fn too_large_error(what: &str, message: &str) -> StepError {
    StepError::new("payload.too_large", format!("{what}: {message}"))
}

/// The record to store instead of one the store refused as too large: the step fails cleanly
/// with nothing of the oversized payload (its input included), so nothing is half-written.
pub fn too_large_record(
    compiled: &CompiledWorkflow, claimed: &StepRecord, step: &Step, message: &str, now: i64,
) -> StepRecord {
    let what = match step {
        Step::Loop(_) => format!("loop {}", claimed.path),
        _ => format!("step {}", claimed.path),
    };
    finish_record(
        compiled,
        claimed,
        step,
        Value::Null,
        StepOutcome::Failed(too_large_error(&what, message)),
        now,
    )
}

/// Evaluate a condition step: the first true branch wins, else `else`, else the path ends.
/// Returns the step's resolved input (each branch's value), output and chosen next.
pub fn evaluate_condition(
    step: &ConditionStep, ctx: &ExprContext,
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
    compiled: &CompiledWorkflow, claimed: &StepRecord, step: &Step, input: Value,
    outcome: StepOutcome, now: i64,
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
        StepOutcome::DeadlinePassed(error) => {
            rec.status = StepStatus::TimedOut;
            rec.error = Some(error);
            rec.next = None;
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
            rec.status = StepStatus::Failed;
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
pub fn effects_for(
    compiled: &CompiledWorkflow, execution_id: &str, path: &StepPath, rec: &StepRecord,
) -> Vec<Effect> {
    let Some(step) = compiled.step(path) else {
        return Vec::new();
    };
    let execution_id = execution_id.to_string();
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
    compiled: &CompiledWorkflow, path: &StepPath, next: &str, execution_id: String,
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

/// How many steps one task runs inline (pure successors, a slot's next pure iterations) before
/// it queues the next one instead: a task stays short, within its lease and a function's time,
/// however long a chain of pure steps or a loop's slot is.
pub const MAX_INLINE_RUNS: usize = 256;

/// `effect` as a task performs it after `inlined` inline runs: a [`Effect::RunInline`] past
/// [`MAX_INLINE_RUNS`] becomes a queued task of the same step (same outcome, one queue trip).
pub fn within_inline_budget(effect: Effect, execution_id: &str, inlined: usize) -> Effect {
    match effect {
        Effect::RunInline(path) if inlined >= MAX_INLINE_RUNS => Effect::Enqueue(
            StepTask {
                execution_id: execution_id.to_string(),
                path,
                attempt: 1,
            },
            0,
        ),
        other => other,
    }
}

/// The record a loop step stores once its counter and items are stored: its claim, kept until
/// the execution's deadline (the iterations drive the loop now), with the input it shows.
pub fn waiting_loop_record(claim: &StepRecord, input: Value, deadline_at: i64) -> StepRecord {
    let mut waiting = claim.clone();
    waiting.input = input;
    waiting.lease_until = Some(deadline_at);
    waiting
}

/// Whether a held loop step is waiting for its iterations ([`waiting_loop_record`] stored):
/// then its redelivered task re-sends the first iterations (the run that stored the record may
/// have died before sending them). Otherwise (another step, or a loop whose run died before
/// that write) the task looks again when the lease ends, and takes the step over if its holder
/// died.
pub fn is_waiting_loop(step: &Step, stored: Option<&StepRecord>, deadline_at: i64) -> bool {
    matches!(step, Step::Loop(_))
        && stored.is_some_and(|r| {
            // A claim's input is null; the waiting record shows the loop's items.
            r.status == StepStatus::Running
                && r.lease_until == Some(deadline_at)
                && !r.input.is_null()
        })
}

/// The loop counter a loop step stores when it starts, over `total` items.
pub fn loop_state(total: u32, concurrency: u32) -> LoopState {
    LoopState {
        total,
        remaining: total,
        concurrency: concurrency.max(1),
        failed: false,
    }
}

/// The path of iteration `index`'s entry step, or None for an empty body.
pub fn iteration_entry(
    compiled: &CompiledWorkflow, loop_path: &StepPath, index: u32,
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
    compiled: &CompiledWorkflow, execution_id: &str, loop_path: &StepPath, state: &LoopState,
) -> Vec<Effect> {
    (0..state.concurrency.min(state.total))
        .filter_map(|i| iteration_task(compiled, execution_id, loop_path, i, false))
        .collect()
}

/// The iteration to start after iteration `index` was counted, if any.
pub fn following_iteration(
    compiled: &CompiledWorkflow, execution_id: &str, loop_path: &StepPath, state: &LoopState,
    index: u32,
) -> Option<Effect> {
    let next = index + state.concurrency;
    if next < state.total && !state.failed {
        iteration_task(compiled, execution_id, loop_path, next, true)
    } else {
        None
    }
}

/// What counting iteration `index` of a loop decided.
#[derive(Debug, Clone, PartialEq)]
pub struct IterationCounted {
    /// The iteration that takes the finished one's slot, if any.
    pub next: Option<Effect>,
    /// Whether this count completes the loop: every iteration counted and none failed. Only
    /// the count that brought `remaining` to 0 (or a replay of it) says so.
    pub loop_done: bool,
}

/// Decide what follows a count of iterations, given the loop's state after it (the count's
/// answer; for a count made before, the state as read now). `index` is the iteration counted
/// last, whose slot's next iteration this decides; None when the counts written were held
/// ones ([`hold_count`]), whose next iterations already ran.
pub fn iteration_counted(
    compiled: &CompiledWorkflow, execution_id: &str, loop_path: &StepPath, state: &LoopState,
    index: Option<u32>, count: IterationCount,
) -> IterationCounted {
    let remaining = match count {
        IterationCount::Counted(after) => after.remaining,
        IterationCount::AlreadyCounted => state.remaining,
    };
    IterationCounted {
        next: index.and_then(|i| following_iteration(compiled, execution_id, loop_path, state, i)),
        loop_done: remaining == 0 && !state.failed,
    }
}

/// At most this many iterations' counts are held by a task ([`hold_count`]) before they are
/// written together.
pub const HELD_COUNTS: usize = 16;

/// Whether a task may hold the count of iteration `index` instead of writing it now, to write
/// it later with the counts of the iterations that follow in its slot (one
/// `count_iterations`: a page of results and one counter update for up to [`HELD_COUNTS`]
/// iterations). Only when the slot's next iteration runs inline in this task right after
/// (its entry step is pure, the inline budget has room) and the task holds fewer than
/// `HELD_COUNTS - 1`; returns that iteration's effect, to perform now. `state` is the loop as
/// the task last saw it. Holding only delays the count within the task: the task writes what
/// it holds before any other effect and before it ends, and a crash in between redelivers the
/// task, whose replay counts again (exactly once per index, the store's rule).
pub fn hold_count(
    compiled: &CompiledWorkflow, execution_id: &str, loop_path: &StepPath, state: &LoopState,
    index: u32, held: usize, inlined: usize,
) -> Option<Effect> {
    if held + 1 >= HELD_COUNTS || inlined >= MAX_INLINE_RUNS {
        return None;
    }
    match following_iteration(compiled, execution_id, loop_path, state, index)? {
        next @ Effect::RunInline(_) => Some(next),
        _ => None,
    }
}

/// The task of iteration `index`'s entry step. With `inline_if_pure`, a pure entry step runs in
/// the task that decided it (the slot's next iteration after a count: no queue round trip, as
/// pure successors run); the first iterations of a loop are always queued, so the slots spread
/// over the workers.
fn iteration_task(
    compiled: &CompiledWorkflow, execution_id: &str, loop_path: &StepPath, index: u32,
    inline_if_pure: bool,
) -> Option<Effect> {
    let entry = iteration_entry(compiled, loop_path, index)?;
    if inline_if_pure && compiled.step(&entry).is_some_and(Step::is_pure) {
        return Some(Effect::RunInline(entry.to_string()));
    }
    Some(Effect::Enqueue(
        StepTask {
            execution_id: execution_id.to_string(),
            path: entry.to_string(),
            attempt: 1,
        },
        0,
    ))
}

/// Bytes of items a loop step's record shows in full as its input (`{"items": [...]}`).
pub const LOOP_INPUT_SHOWN_BYTES: usize = 64 * 1024;

/// The input a loop step's record shows: `{"items": [...]}` when the items' JSON fits in
/// [`LOOP_INPUT_SHOWN_BYTES`], else the first page of them with `itemCount` and `itemsShown`.
/// The items themselves are stored apart, in pages (`init_loop`), so a loop is not bounded by
/// what one record may hold.
pub fn loop_record_input(items: &[Value]) -> Value {
    let size = serde_json::to_vec(items).map_or(usize::MAX, |b| b.len());
    if size <= LOOP_INPUT_SHOWN_BYTES {
        return serde_json::json!({ "items": items });
    }
    let shown = &items[..items.len().min(crate::keys::LOOP_ITEMS_PER_PAGE as usize)];
    serde_json::json!({
        "items": shown,
        "itemCount": items.len(),
        "itemsShown": shown.len(),
    })
}

/// The loop step's output: iteration results in item order.
pub fn loop_output(mut results: Vec<(u32, Value)>) -> Value {
    results.sort_by_key(|(i, _)| *i);
    Value::Array(results.into_iter().map(|(_, v)| v).collect())
}

/// What a loop step's record holds as its output: the results array (from [`loop_output`])
/// when its JSON fits in [`LOOP_INPUT_SHOWN_BYTES`], else a summary `{ "resultCount",
/// "resultsShown", "results": [first page] }`. The full results stay in their `ITER#` items,
/// where templates read them ([`is_summarized_loop_output`]): a loop's output is not bounded
/// by what one record may hold.
pub fn loop_record_output(results: Value) -> Value {
    let Value::Array(all) = results else {
        return results;
    };
    let size = serde_json::to_vec(&all).map_or(usize::MAX, |b| b.len());
    if size <= LOOP_INPUT_SHOWN_BYTES {
        return Value::Array(all);
    }
    let shown = all.len().min(crate::keys::LOOP_ITEMS_PER_PAGE as usize);
    serde_json::json!({
        "resultCount": all.len(),
        "resultsShown": shown,
        "results": &all[..shown],
    })
}

/// Whether a loop step's recorded output is the summary of [`loop_record_output`] (a loop's
/// own output is always an array): templates then read the results from the `ITER#` items.
pub fn is_summarized_loop_output(step: &Step, output: &Value) -> bool {
    matches!(step, Step::Loop(_)) && output.is_object()
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
