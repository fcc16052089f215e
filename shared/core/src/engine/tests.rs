//! Engine decisions asserted as data: no store, no queue, no clock.

use serde_json::{Value, json};

use super::*;
use crate::execution::{ExecutionStatus, TriggerInfo};
use crate::model::EffectiveRetry;

fn compiled() -> CompiledWorkflow {
    let wf: Workflow = serde_json::from_value(json!({
        "id": "w", "config": { "maxRetries": 2, "backoffMs": 100 },
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "call" },
            { "id": "call", "type": "action", "action": "http.request", "params": { "url": "{{ vars.u }}" },
              "onError": "oops", "next": "check" },
            { "id": "check", "type": "condition", "branches": [ { "if": "{{ steps.call.output.status == 200 }}", "next": "each" } ] },
            { "id": "each", "type": "loop", "items": "{{ input.items }}", "concurrency": 2,
              "steps": [
                { "id": "get", "type": "action", "action": "record.get",
                  "params": { "collection": "c", "id": "{{ item }}", "x": "{{ steps.call.output }}" }, "next": "fmt" },
                { "id": "fmt", "type": "output", "output": "{{ steps.get.output }} {{ secrets.KEY }}" }
              ], "next": "done" },
            { "id": "done", "type": "output", "output": "{{ steps.each.output }}" },
            { "id": "oops", "type": "output", "output": "{{ steps.call.error }}" }
        ]
    }))
    .unwrap();
    CompiledWorkflow::new(wf, 1)
}

fn p(s: &str) -> StepPath {
    StepPath::parse(s).unwrap()
}

fn execution(status: ExecutionStatus) -> ExecutionRecord {
    ExecutionRecord {
        id: "E".into(),
        workflow_id: "w".into(),
        version: 1,
        status,
        trigger: TriggerInfo::new("manual"),
        input: json!({}),
        output: Value::Null,
        error: None,
        started_at: 0,
        finished_at: None,
        duration_ms: None,
        deadline_at: 10_000,
        rerun_of: None,
        handoff: Vec::new(),
    }
}

fn record(path: &str, status: StepStatus, attempts: u32) -> StepRecord {
    StepRecord {
        path: path.into(),
        step_type: "action".into(),
        status,
        attempts,
        input: Value::Null,
        output: json!("out"),
        error: None,
        started_at: 0,
        finished_at: None,
        duration_ms: None,
        lease_until: Some(5_000),
        next: None,
        lease_lost: 0,
    }
}

fn task(path: &str, attempt: u32) -> StepTask {
    StepTask {
        execution_id: "E".into(),
        path: path.into(),
        attempt,
    }
}

#[test]
fn plan_covers_every_stored_state() {
    let running = execution(ExecutionStatus::Running);
    let t = task("call", 1);
    assert_eq!(plan_task(&running, None, &t, 0), TaskPlan::Claim);
    assert!(matches!(
        plan_task(&execution(ExecutionStatus::Succeeded), None, &t, 0),
        TaskPlan::Ack { .. }
    ));
    assert_eq!(plan_task(&running, None, &t, 10_000), TaskPlan::TimeOut);
    let held = record("call", StepStatus::Running, 1);
    assert_eq!(
        plan_task(&running, Some(&held), &t, 1_000),
        TaskPlan::Busy {
            retry_after_ms: 4_000
        }
    );
    assert_eq!(
        plan_task(&running, Some(&held), &t, 5_000),
        TaskPlan::Claim,
        "expired lease"
    );
    let newer = record("call", StepStatus::Running, 2);
    assert!(
        matches!(
            plan_task(&running, Some(&newer), &t, 6_000),
            TaskPlan::Ack { .. }
        ),
        "stale attempt"
    );
    let retrying = record("call", StepStatus::Retrying, 1);
    assert_eq!(
        plan_task(&running, Some(&retrying), &task("call", 2), 0),
        TaskPlan::Claim
    );
    assert_eq!(
        plan_task(&running, Some(&retrying), &t, 0),
        TaskPlan::EnsureRetry { attempt: 2 }
    );
    let done = record("call", StepStatus::Succeeded, 1);
    assert_eq!(
        plan_task(&running, Some(&done), &t, 0),
        TaskPlan::Replay(done.clone())
    );
}

#[test]
fn failures_retry_then_route_to_on_error() {
    let c = compiled();
    let step = c.step(&p("call")).unwrap().clone();
    let claim = claim_record(&p("call"), &step, 1, 0, 10_000, None, DEFAULT_LEASE_MS);
    let retryable = StepError::retryable("http.status", "503");
    let r = finish_record(
        &c,
        &claim,
        &step,
        Value::Null,
        StepOutcome::Failed(retryable.clone()),
        10,
    );
    assert_eq!(r.status, StepStatus::Retrying);
    let effects = effects_for(&c, "E", &p("call"), &r);
    assert_eq!(effects, vec![Effect::Enqueue(task("call", 2), 100)]);
    // the last attempt (maxRetries 2 = 3 attempts) routes to onError
    let mut third = claim.clone();
    third.attempts = 3;
    let r = finish_record(
        &c,
        &third,
        &step,
        Value::Null,
        StepOutcome::Failed(retryable),
        10,
    );
    assert_eq!(
        (r.status, r.next.as_deref()),
        (StepStatus::Failed, Some("oops"))
    );
    assert_eq!(
        effects_for(&c, "E", &p("call"), &r),
        vec![Effect::RunInline("oops".into())]
    );
    // non-retryable errors do not retry
    let r = finish_record(
        &c,
        &claim,
        &step,
        Value::Null,
        StepOutcome::Failed(StepError::new("x", "y")),
        10,
    );
    assert_eq!(r.status, StepStatus::Failed);
}

#[test]
fn successors_run_inline_when_pure_and_queue_otherwise() {
    let c = compiled();
    let mut r = record("start", StepStatus::Succeeded, 1);
    r.next = Some("call".into());
    assert_eq!(
        effects_for(&c, "E", &p("start"), &r),
        vec![Effect::Enqueue(task("call", 1), 0)]
    );
    r.next = Some("check".into());
    assert_eq!(
        effects_for(&c, "E", &p("call"), &r),
        vec![Effect::RunInline("check".into())]
    );
    // a condition that matched nothing ends the path: the execution completes with null
    let mut cond = record("check", StepStatus::Succeeded, 1);
    cond.next = None;
    assert_eq!(
        effects_for(&c, "E", &p("check"), &cond),
        vec![Effect::CompleteExecution {
            output: Value::Null
        }]
    );
}

#[test]
fn outputs_complete_the_execution_or_the_iteration() {
    let c = compiled();
    let mut done = record("done", StepStatus::Succeeded, 1);
    done.output = json!([1]);
    assert_eq!(
        effects_for(&c, "E", &p("done"), &done),
        vec![Effect::CompleteExecution { output: json!([1]) }]
    );
    let fmt = record("each[3]/fmt", StepStatus::Succeeded, 1);
    assert_eq!(
        effects_for(&c, "E", &p("each[3]/fmt"), &fmt),
        vec![Effect::CountIteration {
            loop_path: "each".into(),
            index: 3,
            result: json!("out")
        }]
    );
    let mut failed = record("each[3]/get", StepStatus::Failed, 4);
    failed.error = Some(StepError::new("record", "boom"));
    match &effects_for(&c, "E", &p("each[3]/get"), &failed)[..] {
        [Effect::FailLoop { loop_path, error }] => {
            assert_eq!(loop_path, "each");
            assert!(error.message.contains("each[3]/get"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn loop_slots_start_c_iterations_and_chain_by_c() {
    let c = compiled();
    let state = loop_state(5, 2);
    let first = initial_iterations(&c, "E", &p("each"), &state);
    assert_eq!(
        first,
        vec![
            Effect::Enqueue(task("each[0]/get", 1), 0),
            Effect::Enqueue(task("each[1]/get", 1), 0)
        ]
    );
    let after_1 = following_iteration(&c, "E", &p("each"), &state, 1).unwrap();
    assert_eq!(after_1, Effect::Enqueue(task("each[3]/get", 1), 0));
    assert!(
        following_iteration(&c, "E", &p("each"), &state, 3).is_none(),
        "5 is past the end"
    );
    let mut failed = state;
    failed.failed = true;
    assert!(following_iteration(&c, "E", &p("each"), &failed, 0).is_none());
    assert_eq!(
        loop_output(vec![(1, json!("b")), (0, json!("a"))]),
        json!(["a", "b"])
    );
}

#[test]
fn reads_are_resolved_to_the_right_scope() {
    let c = compiled();
    let mut reads = c.visible_step_paths(&p("each[2]/fmt")).unwrap();
    reads.sort();
    assert_eq!(reads, vec![("get".to_string(), "each[2]/get".to_string())]);
    let reads = c.visible_step_paths(&p("each[2]/get")).unwrap();
    assert_eq!(reads, vec![("call".to_string(), "call".to_string())]);
    assert_eq!(
        c.secrets_read(&p("each[0]/fmt")).collect::<Vec<_>>(),
        vec!["KEY"]
    );
    // top-level steps cannot see into a loop body
    assert!(
        c.resolve_in_scope(&p("done"), &["each".to_string()], "get")
            .is_none()
    );
}

#[test]
fn the_deadline_times_out_a_running_step() {
    let c = compiled();
    let step = c.step(&p("call")).unwrap().clone();
    let claim = claim_record(&p("call"), &step, 1, 0, 10_000, None, DEFAULT_LEASE_MS);
    let r = finish_record(
        &c,
        &claim,
        &step,
        Value::Null,
        StepOutcome::DeadlinePassed(deadline_error(10_000)),
        10_000,
    );
    assert_eq!(r.status, StepStatus::TimedOut);
    assert_eq!(r.next, None, "the deadline never follows onError");
    assert!(matches!(
        effects_for(&c, "E", &p("call"), &r)[..],
        [Effect::TimeOutExecution { .. }]
    ));
}

#[test]
fn exponential_backoff_is_capped() {
    let c = compiled();
    let mut cfg = c.workflow.config.clone();
    cfg.backoff_multiplier = Some(3.0);
    cfg.max_backoff_ms = Some(500);
    let step = c.step(&p("call")).unwrap();
    let r = EffectiveRetry::of(&cfg, step);
    assert_eq!(
        (r.delay_before(2), r.delay_before(3), r.delay_before(4)),
        (100, 300, 500)
    );
}

#[test]
fn the_lease_covers_the_step_timeout_within_the_deadline() {
    let c = compiled();
    let step = c.step(&p("call")).unwrap();
    let claim = claim_record(&p("call"), step, 1, 1_000, 10_000, None, DEFAULT_LEASE_MS);
    assert_eq!(claim.lease_until, Some(1_000 + 9_000 + LEASE_MARGIN_MS));
}

/// A loop of two slots whose iterations are one pure step.
fn pure_loop() -> CompiledWorkflow {
    let wf: Workflow = serde_json::from_value(json!({
        "id": "w",
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "each" },
            { "id": "each", "type": "loop", "items": "{{ input.items }}", "concurrency": 2,
              "steps": [ { "id": "double", "type": "output", "output": "{{ item * 2 }}" } ] }
        ]
    }))
    .unwrap();
    CompiledWorkflow::new(wf, 1)
}

#[test]
fn a_count_is_held_only_while_its_slot_goes_on_inline_and_fewer_than_the_bound_are_held() {
    let c = pure_loop();
    let state = loop_state(9, 2);
    let each = p("each");
    let inline_3 = Some(Effect::RunInline("each[3]/double".into()));
    assert_eq!(hold_count(&c, "E", &each, &state, 1, 0, 0), inline_3);
    assert_eq!(
        hold_count(&c, "E", &each, &state, 1, HELD_COUNTS - 2, 0),
        inline_3
    );
    assert_eq!(
        hold_count(&c, "E", &each, &state, 1, HELD_COUNTS - 1, 0),
        None,
        "the bound: this count is written with the held ones"
    );
    assert_eq!(
        hold_count(&c, "E", &each, &state, 1, 0, MAX_INLINE_RUNS),
        None,
        "the next iteration would be queued: count now"
    );
    assert_eq!(
        hold_count(&c, "E", &each, &state, 7, 0, 0),
        None,
        "the slot's last iteration (9 is past the end)"
    );
    let failed = LoopState {
        failed: true,
        ..state
    };
    assert_eq!(hold_count(&c, "E", &each, &failed, 1, 0, 0), None);
    // An action entry step goes through the queue: its count is never held.
    assert_eq!(hold_count(&compiled(), "E", &each, &state, 1, 0, 0), None);
    // Writing held counts decides no next iteration (theirs already ran), only the loop's end.
    let mut done = state;
    done.remaining = 0;
    let written = iteration_counted(&c, "E", &each, &done, None, IterationCount::Counted(done));
    assert_eq!((written.next, written.loop_done), (None, true));
}

#[test]
fn a_slot_runs_its_next_pure_iteration_inline_and_queues_the_first_ones() {
    let c = pure_loop();
    let state = loop_state(5, 2);
    assert_eq!(
        initial_iterations(&c, "E", &p("each"), &state),
        vec![
            Effect::Enqueue(task("each[0]/double", 1), 0),
            Effect::Enqueue(task("each[1]/double", 1), 0)
        ],
        "the slots start on the queue, spread over the workers"
    );
    assert_eq!(
        following_iteration(&c, "E", &p("each"), &state, 1),
        Some(Effect::RunInline("each[3]/double".into())),
        "a pure entry step takes the slot in the task that counted"
    );
    // An action entry step is always queued (the loop of `compiled()`).
    assert_eq!(
        following_iteration(&compiled(), "E", &p("each"), &state, 1),
        Some(Effect::Enqueue(task("each[3]/get", 1), 0))
    );
}

#[test]
fn a_task_runs_at_most_max_inline_runs_steps_inline() {
    let inline = || Effect::RunInline("each[3]/double".into());
    assert_eq!(within_inline_budget(inline(), "E", 0), inline());
    assert_eq!(
        within_inline_budget(inline(), "E", MAX_INLINE_RUNS - 1),
        inline()
    );
    assert_eq!(
        within_inline_budget(inline(), "E", MAX_INLINE_RUNS),
        Effect::Enqueue(task("each[3]/double", 1), 0),
        "past the budget the same step is queued"
    );
    let queued = Effect::Enqueue(task("call", 2), 100);
    assert_eq!(
        within_inline_budget(queued.clone(), "E", MAX_INLINE_RUNS),
        queued
    );
}

#[test]
fn every_task_effect_names_its_execution() {
    let c = compiled();
    let mut r = record("start", StepStatus::Succeeded, 1);
    r.next = Some("call".into());
    let state = loop_state(3, 2);
    let mut effects = effects_for(&c, "E", &p("start"), &r);
    effects.extend(initial_iterations(&c, "E", &p("each"), &state));
    effects.extend(following_iteration(&c, "E", &p("each"), &state, 0));
    assert_eq!(effects.len(), 4);
    for e in effects {
        match e {
            Effect::Enqueue(t, _) => assert_eq!(t.execution_id, "E"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_loop_completes_only_on_the_count_that_empties_it_without_failure() {
    let c = compiled();
    let mut state = loop_state(3, 2);
    state.remaining = 0;
    let lp = p("each");
    let done = iteration_counted(
        &c,
        "E",
        &lp,
        &state,
        Some(2),
        IterationCount::Counted(state),
    );
    assert!(done.loop_done);
    assert_eq!(done.next, None, "no iteration follows the last one");
    let not_yet = iteration_counted(
        &c,
        "E",
        &lp,
        &state,
        Some(0),
        IterationCount::Counted(LoopState {
            remaining: 1,
            ..state
        }),
    );
    assert!(!not_yet.loop_done);
    assert_eq!(
        not_yet.next,
        Some(Effect::Enqueue(task("each[2]/get", 1), 0))
    );
    // a replayed count reads the stored remaining
    let replay = iteration_counted(
        &c,
        "E",
        &lp,
        &state,
        Some(2),
        IterationCount::AlreadyCounted,
    );
    assert!(replay.loop_done);
    // a failed loop never completes, and starts nothing more
    state.failed = true;
    let failed = iteration_counted(
        &c,
        "E",
        &lp,
        &state,
        Some(0),
        IterationCount::Counted(state),
    );
    assert_eq!((failed.loop_done, failed.next), (false, None));
}

#[test]
fn the_deadline_bounds_an_attempt_unless_the_step_timeout_is_shorter() {
    let c = compiled();
    let step = c.step(&p("call")).unwrap();
    let b = attempt_budget(step, 1_000, 10_000);
    assert_eq!(
        b,
        AttemptBudget {
            ms: 9_000,
            bound: AttemptBound::Deadline
        }
    );
    let mut with_timeout = step.clone();
    if let Step::Action(a) = &mut with_timeout {
        a.timeout_ms = Some(500);
    }
    let b2 = attempt_budget(&with_timeout, 1_000, 10_000);
    assert_eq!(
        b2,
        AttemptBudget {
            ms: 500,
            bound: AttemptBound::StepTimeout
        }
    );
    // a step timeout longer than what is left: the deadline bounds it
    let b3 = attempt_budget(&with_timeout, 9_800, 10_000);
    assert_eq!(b3.bound, AttemptBound::Deadline);

    let failed = StepOutcome::Failed(StepError::timeout("cut"));
    // bounded by the deadline and ended there: the execution's deadline, typed
    assert!(matches!(
        settle_attempt(failed.clone(), b, 10_000, 10_000, 10_000),
        StepOutcome::DeadlinePassed(e) if e.code == "timeout.execution"
    ));
    // bounded by the step timeout: an ordinary failure, even at the same time
    assert_eq!(
        settle_attempt(failed.clone(), b2, 1_500, 10_000, 10_000),
        failed
    );
    // bounded by the deadline but failed long before it: an ordinary failure
    assert_eq!(
        settle_attempt(failed.clone(), b, 2_000, 10_000, 10_000),
        failed
    );
}

#[test]
fn an_oversized_result_becomes_one_clean_failure() {
    let c = compiled();
    let step = c.step(&p("call")).unwrap().clone();
    let claim = claim_record(&p("call"), &step, 1, 0, 10_000, None, DEFAULT_LEASE_MS);
    let r = too_large_record(&c, &claim, &step, "item over 400 KB", 10);
    assert_eq!(r.input, Value::Null);
    assert_eq!(r.output, Value::Null);
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.code, "payload.too_large");
    assert_eq!(e.message, "step call: item over 400 KB");
    // it follows onError like any non-retryable failure
    assert_eq!(
        (r.status, r.next.as_deref()),
        (StepStatus::Failed, Some("oops"))
    );
    let each = c.step(&p("each")).unwrap().clone();
    let claim = claim_record(&p("each"), &each, 1, 0, 10_000, None, DEFAULT_LEASE_MS);
    let r = too_large_record(&c, &claim, &each, "m", 10);
    assert_eq!(r.error.unwrap().message, "loop each: m");
}

#[test]
fn the_lease_is_short_and_renewed_whatever_the_deadline() {
    let c = compiled();
    let step = c.step(&p("call")).unwrap();
    // A step without timeoutMs in an execution with an hour left: the lease is the
    // deployment's, not the deadline.
    let claim = claim_record(&p("call"), step, 1, 1_000, 3_600_000, None, 30_000);
    assert_eq!(claim.lease_until, Some(1_000 + 30_000));
    assert_eq!(claim.lease_lost, 0);
    // The heartbeat renews it every third of the lease, to a full lease from then.
    assert_eq!(heartbeat_interval_ms(30_000), 10_000);
    assert_eq!(renewed_lease(21_000, 30_000), 51_000);
    // After the lease, the step is claimable again (a crashed worker's step resumes).
    let exec = ExecutionRecord {
        deadline_at: 3_600_000,
        ..execution(ExecutionStatus::Running)
    };
    assert_eq!(
        plan_task(&exec, Some(&claim), &task("call", 1), 31_000),
        TaskPlan::Claim
    );
    assert!(matches!(
        plan_task(&exec, Some(&claim), &task("call", 1), 30_999),
        TaskPlan::Busy { .. }
    ));
}

#[test]
fn a_takeover_is_the_same_attempt_with_the_lost_lease_counted() {
    let c = compiled();
    let step = c.step(&p("call")).unwrap().clone();
    let first = claim_record(&p("call"), &step, 2, 0, 100_000, None, 30_000);
    // The worker died: its record stays `running`; the takeover keeps attempt 2 (no retry is
    // burnt) and counts the loss.
    let taken = claim_record(&p("call"), &step, 2, 40_000, 100_000, Some(&first), 30_000);
    assert_eq!((taken.attempts, taken.lease_lost), (2, 1));
    assert_eq!(taken.started_at, first.started_at);
    assert_eq!(lost_record(&c, &taken, &step, &p("call"), 40_000), None);
    // A retry after a real failure carries the count on, without adding to it.
    let mut retrying = taken.clone();
    retrying.status = StepStatus::Retrying;
    let retry = claim_record(
        &p("call"),
        &step,
        3,
        50_000,
        100_000,
        Some(&retrying),
        30_000,
    );
    assert_eq!((retry.attempts, retry.lease_lost), (3, 1));
    // A success clears nothing but the error: the count stays on the record as history.
    let done = finish_record(
        &c,
        &taken,
        &step,
        Value::Null,
        StepOutcome::Succeeded {
            output: json!(1),
            next: None,
        },
        41_000,
    );
    assert_eq!(done.lease_lost, 1);
}

#[test]
fn a_step_lost_too_often_fails_with_step_lost_and_follows_on_error() {
    let c = compiled();
    let step = c.step(&p("call")).unwrap().clone();
    let mut rec = claim_record(&p("call"), &step, 1, 0, 1_000_000, None, 30_000);
    let mut now = 0;
    for lost in 1..=MAX_LEASE_LOSSES {
        now += 31_000;
        rec = claim_record(&p("call"), &step, 1, now, 1_000_000, Some(&rec), 30_000);
        assert_eq!(rec.lease_lost, lost);
    }
    let failed = lost_record(&c, &rec, &step, &p("call"), now).expect("given up");
    assert_eq!(failed.status, StepStatus::Failed);
    assert_eq!(failed.attempts, 1, "lost leases are not attempts");
    let error = failed.error.clone().unwrap();
    assert_eq!(error.code, LOST_ERROR_CODE);
    assert!(!error.retryable, "not retried: it may not be idempotent");
    assert!(error.message.contains("lost 3 times"), "{}", error.message);
    assert_eq!(error.details.as_ref().unwrap()["leaseLost"], json!(3));
    assert_eq!(failed.lease_lost, 3, "the crashes are recorded on the step");
    assert_eq!(failed.next.as_deref(), Some("oops"));
    assert_eq!(
        effects_for(&c, "E", &p("call"), &failed),
        vec![Effect::RunInline("oops".into())]
    );
}

#[test]
fn the_worker_function_timeout_bounds_steps_and_publishing() {
    let wf: Workflow = serde_json::from_value(json!({
        "id": "w",
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "slow" },
            { "id": "slow", "type": "action", "action": "http.request", "timeoutMs": 1200000,
              "params": { "url": "https://x" }, "next": "each" },
            { "id": "each", "type": "loop", "items": "{{ input.items }}",
              "steps": [ { "id": "inner", "type": "action", "action": "http.request",
                           "timeoutMs": 896000, "params": { "url": "https://x" } } ] }
        ]
    }))
    .unwrap();
    // A 900 s worker function keeps 5 s to store the result: 895 s at most per step.
    let problems = worker_timeout_problems(&wf, 900_000);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert_eq!(problems[0].pointer, "/steps/1/timeoutMs");
    assert_eq!(problems[0].code, STEP_TIMEOUT_EXCEEDS_WORKER);
    for needle in ["step slow", "1200000", "900000"] {
        assert!(
            problems[0].message.contains(needle),
            "{}",
            problems[0].message
        );
    }
    assert_eq!(problems[1].pointer, "/steps/2/steps/0/timeoutMs");
    assert!(worker_timeout_problems(&wf, 1_300_000).is_empty());
    // A step without timeoutMs is bounded by the cap there (a step timeout, retryable), and by
    // the deadline alone elsewhere.
    let c = CompiledWorkflow::new(wf, 1);
    let step = c.step(&p("each")).unwrap();
    assert_eq!(
        attempt_budget_within(step, 0, 3_600_000, Some(worker_step_cap_ms(900_000))),
        AttemptBudget {
            ms: 895_000,
            bound: AttemptBound::StepTimeout
        }
    );
    assert_eq!(
        attempt_budget_within(step, 0, 3_600_000, None),
        attempt_budget(step, 0, 3_600_000)
    );
    assert_eq!(
        attempt_budget_within(step, 0, 100_000, Some(895_000)).bound,
        AttemptBound::Deadline
    );
}

#[test]
fn a_loop_record_shows_its_items_while_small_and_a_first_page_past_that() {
    let small: Vec<Value> = (0..10).map(|i| json!(i)).collect();
    assert_eq!(loop_record_input(&small), json!({ "items": small }));
    // 100,000 items are far past what a record shows: the first page and the count.
    let large: Vec<Value> = (0..100_000).map(|i| json!({ "n": i })).collect();
    let shown = loop_record_input(&large);
    assert_eq!(shown["itemCount"], json!(100_000));
    assert_eq!(shown["itemsShown"], json!(crate::keys::LOOP_ITEMS_PER_PAGE));
    assert_eq!(shown["items"][0], json!({ "n": 0 }));
    assert!(serde_json::to_vec(&shown).unwrap().len() <= LOOP_INPUT_SHOWN_BYTES);
}

#[test]
fn a_loop_record_keeps_its_results_while_small_and_a_summary_past_that() {
    let small = loop_output(vec![(1, json!("b")), (0, json!("a"))]);
    assert_eq!(loop_record_output(small.clone()), small);
    let c = compiled();
    let step = |id: &str| {
        c.workflow
            .steps
            .iter()
            .find(|s| s.id() == id)
            .unwrap()
            .clone()
    };
    let loop_step = step("each");
    assert!(!is_summarized_loop_output(&loop_step, &small));
    // Another step's object output is just its output.
    assert!(!is_summarized_loop_output(
        &step("call"),
        &json!({ "status": 200 })
    ));
    let large = loop_output((0..100_000).map(|i| (i, json!({ "n": i }))).collect());
    let summary = loop_record_output(large);
    assert_eq!(summary["resultCount"], json!(100_000));
    assert_eq!(summary["results"][0], json!({ "n": 0 }));
    assert!(is_summarized_loop_output(&loop_step, &summary));
}

#[test]
fn a_loop_is_waiting_once_its_claim_is_kept_until_the_deadline() {
    let c = compiled();
    let step = |id: &str| {
        c.workflow
            .steps
            .iter()
            .find(|s| s.id() == id)
            .unwrap()
            .clone()
    };
    let deadline = 1_000_000;
    let claim = claim_record(&p("each"), &step("each"), 1, 0, deadline, None, 30_000);
    assert!(!is_waiting_loop(&step("each"), Some(&claim), deadline));
    assert!(!is_waiting_loop(&step("each"), None, deadline));
    let waiting = waiting_loop_record(&claim, json!({ "items": [1, 2] }), deadline);
    assert_eq!(waiting.lease_until, Some(deadline));
    assert_eq!(waiting.input, json!({ "items": [1, 2] }));
    assert!(is_waiting_loop(&step("each"), Some(&waiting), deadline));
    // Only a loop waits for its iterations.
    let mut held = claim_record(&p("call"), &step("call"), 1, 0, deadline, None, 30_000);
    held.input = json!({ "url": "x" });
    held.lease_until = Some(deadline);
    assert!(!is_waiting_loop(&step("call"), Some(&held), deadline));
}
