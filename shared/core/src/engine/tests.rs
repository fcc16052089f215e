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
    let claim = claim_record(&p("call"), &step, 1, 0, 10_000, None);
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
    let effects = with_execution_id(effects_for(&c, &p("call"), &r), "E");
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
        effects_for(&c, &p("call"), &r),
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
        with_execution_id(effects_for(&c, &p("start"), &r), "E"),
        vec![Effect::Enqueue(task("call", 1), 0)]
    );
    r.next = Some("check".into());
    assert_eq!(
        effects_for(&c, &p("call"), &r),
        vec![Effect::RunInline("check".into())]
    );
    // a condition that matched nothing ends the path: the execution completes with null
    let mut cond = record("check", StepStatus::Succeeded, 1);
    cond.next = None;
    assert_eq!(
        effects_for(&c, &p("check"), &cond),
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
        effects_for(&c, &p("done"), &done),
        vec![Effect::CompleteExecution { output: json!([1]) }]
    );
    let fmt = record("each[3]/fmt", StepStatus::Succeeded, 1);
    assert_eq!(
        effects_for(&c, &p("each[3]/fmt"), &fmt),
        vec![Effect::CountIteration {
            loop_path: "each".into(),
            index: 3,
            result: json!("out")
        }]
    );
    let mut failed = record("each[3]/get", StepStatus::Failed, 4);
    failed.error = Some(StepError::new("record", "boom"));
    match &effects_for(&c, &p("each[3]/get"), &failed)[..] {
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
    let state = loop_state((0..5).map(|i| json!(i)).collect(), 2);
    let first = with_execution_id(initial_iterations(&c, &p("each"), &state), "E");
    assert_eq!(
        first,
        vec![
            Effect::Enqueue(task("each[0]/get", 1), 0),
            Effect::Enqueue(task("each[1]/get", 1), 0)
        ]
    );
    let after_1 = following_iteration(&c, &p("each"), &state, 1).unwrap();
    assert_eq!(
        with_execution_id(vec![after_1], "E"),
        vec![Effect::Enqueue(task("each[3]/get", 1), 0)]
    );
    assert!(
        following_iteration(&c, &p("each"), &state, 3).is_none(),
        "5 is past the end"
    );
    let mut failed = state.clone();
    failed.failed = true;
    assert!(following_iteration(&c, &p("each"), &failed, 0).is_none());
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
    let claim = claim_record(&p("call"), &step, 1, 0, 10_000, None);
    let r = finish_record(
        &c,
        &claim,
        &step,
        Value::Null,
        StepOutcome::Failed(deadline_error(10_000)),
        10_000,
    );
    assert_eq!(r.status, StepStatus::TimedOut);
    assert!(matches!(
        effects_for(&c, &p("call"), &r)[..],
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
    let claim = claim_record(&p("call"), step, 1, 1_000, 10_000, None);
    assert_eq!(claim.lease_until, Some(1_000 + 9_000 + LEASE_MARGIN_MS));
}
