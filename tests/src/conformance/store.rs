//! Conformance of `ExecutionStore`, `DefinitionStore` and `RecordStore`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;

use serde_json::{Value, json};
use wf_core::execution::{
    ClaimOutcome, CreateOutcome, DedupeKey, ExecutionQuery, ExecutionRecord, ExecutionStatus,
    ExecutionUpdate, IterationCount, StepRecord, StepStatus, TriggerInfo,
};
use wf_core::model::Workflow;
use wf_core::ports::{DefinitionStore, ExecutionStore, RecordCreate, RecordStore, WorkflowMeta};
use wf_core::rejection::{EventRejection, RejectionReason};
use wf_core::{StoreError, StoreResult};

use super::{T0, big_string, execution, execution_id, loop_items, loop_state, step, unique};

/// Over DynamoDB's 400 KB item limit.
const TOO_LARGE: usize = 420 * 1024;

fn expect_too_large<T: std::fmt::Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::TooLarge(message)) => {
            assert!(!message.is_empty(), "{what}: TooLarge names the item");
        }
        other => panic!("{what}: expected TooLarge, got {other:?}"),
    }
}

async fn create<S: ExecutionStore + ?Sized>(store: &S, record: &ExecutionRecord) {
    let outcome = store
        .create_execution(record, None)
        .await
        .expect("create_execution");
    assert_eq!(outcome, CreateOutcome::Created, "create {}", record.id);
}

// ---------------------------------------------------------------------------------------------
// Steps

/// Claims: fresh, held lease, expired lease, retrying with a higher attempt, stale attempts.
pub async fn claim_semantics<S: ExecutionStore + ?Sized>(store: &S) {
    let id = execution_id(T0);
    create(store, &execution(&id, &unique("wf"), T0)).await;
    let now = T0 + 1_000;

    // Fresh: no record yet.
    let first = step("a", StepStatus::Running, 1, Some(now + 30_000));
    assert_eq!(
        store.claim_step(&id, &first, now).await.expect("claim"),
        ClaimOutcome::Claimed,
        "a fresh step is claimable"
    );
    assert_eq!(
        store.get_step(&id, "a").await.expect("get"),
        Some(first.clone())
    );

    // Held: the lease runs until now + 30 s.
    let rival = step("a", StepStatus::Running, 1, Some(now + 60_000));
    match store
        .claim_step(&id, &rival, now + 10_000)
        .await
        .expect("claim")
    {
        ClaimOutcome::Held(stored) => assert_eq!(stored, first, "Held answers the stored record"),
        other => panic!("a live lease must hold, got {other:?}"),
    }
    // Expired lease with the same attempt number: claimable again (the worker died).
    let takeover = step("a", StepStatus::Running, 1, Some(now + 90_000));
    assert_eq!(
        store
            .claim_step(&id, &takeover, now + 30_000)
            .await
            .expect("claim"),
        ClaimOutcome::Claimed,
        "a lease that ended at or before now is claimable"
    );
    // Expired lease, but the claimer is an older attempt than the stored one: held.
    let newer = step("b", StepStatus::Running, 3, Some(now));
    assert_eq!(
        store.claim_step(&id, &newer, now).await.expect("claim"),
        ClaimOutcome::Claimed
    );
    let stale = step("b", StepStatus::Running, 2, Some(now + 100_000));
    assert!(
        matches!(
            store
                .claim_step(&id, &stale, now + 50_000)
                .await
                .expect("claim"),
            ClaimOutcome::Held(_)
        ),
        "an older attempt cannot take over even an expired lease"
    );

    // Retrying: attempt 2 failed; attempt 3 may claim, a redelivered attempt 2 may not.
    let retrying = step("c", StepStatus::Running, 2, Some(now + 30_000));
    assert_eq!(
        store.claim_step(&id, &retrying, now).await.expect("claim"),
        ClaimOutcome::Claimed
    );
    let mut failed_attempt = retrying.clone();
    failed_attempt.status = StepStatus::Retrying;
    failed_attempt.lease_until = None;
    assert!(
        store
            .finish_step(&id, &failed_attempt)
            .await
            .expect("finish")
    );
    let again = step("c", StepStatus::Running, 2, Some(now + 30_000));
    match store.claim_step(&id, &again, now).await.expect("claim") {
        ClaimOutcome::Held(stored) => assert_eq!(stored.status, StepStatus::Retrying),
        other => panic!("the same attempt cannot claim a retrying step, got {other:?}"),
    }
    let next = step("c", StepStatus::Running, 3, Some(now + 30_000));
    assert_eq!(
        store.claim_step(&id, &next, now).await.expect("claim"),
        ClaimOutcome::Claimed,
        "the next attempt claims a retrying step"
    );

    // Finished steps are never claimable.
    let mut done = next.clone();
    done.status = StepStatus::Succeeded;
    done.output = json!({ "ok": true });
    assert!(store.finish_step(&id, &done).await.expect("finish"));
    let late = step("c", StepStatus::Running, 4, Some(now + 30_000));
    match store
        .claim_step(&id, &late, now + 1_000_000)
        .await
        .expect("claim")
    {
        ClaimOutcome::Held(stored) => assert_eq!(stored, done),
        other => panic!("a succeeded step cannot be claimed, got {other:?}"),
    }
}

/// `finish_step` applies once: only over a running record with the same attempts.
pub async fn finish_step_once<S: ExecutionStore + ?Sized>(store: &S) {
    let id = execution_id(T0);
    create(store, &execution(&id, &unique("wf"), T0)).await;

    let mut orphan = step("nobody", StepStatus::Succeeded, 1, None);
    orphan.output = json!(1);
    assert!(
        !store.finish_step(&id, &orphan).await.expect("finish"),
        "finishing an unclaimed step is refused"
    );
    assert_eq!(store.get_step(&id, "nobody").await.expect("get"), None);

    let claim = step("a", StepStatus::Running, 2, Some(T0 + 30_000));
    assert_eq!(
        store.claim_step(&id, &claim, T0).await.expect("claim"),
        ClaimOutcome::Claimed
    );
    let mut wrong_attempt = step("a", StepStatus::Succeeded, 1, None);
    wrong_attempt.output = json!("old");
    assert!(
        !store
            .finish_step(&id, &wrong_attempt)
            .await
            .expect("finish"),
        "another attempt's finish is refused"
    );

    let mut done = step("a", StepStatus::Succeeded, 2, None);
    done.output = json!({ "first": true });
    done.finished_at = Some(T0 + 10);
    done.duration_ms = Some(10);
    assert!(store.finish_step(&id, &done).await.expect("finish"));
    let mut second = done.clone();
    second.output = json!({ "first": false });
    assert!(
        !store.finish_step(&id, &second).await.expect("finish"),
        "a second finish is refused"
    );
    assert_eq!(store.get_step(&id, "a").await.expect("get"), Some(done));
}

/// `renew_lease` extends only a claim still held: same attempt, not taken over; a takeover
/// (`leaseLost` counted) makes the old holder's renewal fail; a finished step is not renewed.
pub async fn renew_lease_only_while_held<S: ExecutionStore + ?Sized>(store: &S) {
    let id = execution_id(T0);
    create(store, &execution(&id, &unique("wf"), T0)).await;

    let never = step("none", StepStatus::Running, 1, Some(T0 + 1_000));
    assert!(
        !store
            .renew_lease(&id, &never, T0 + 5_000)
            .await
            .expect("renew"),
        "no record: nothing to renew"
    );
    assert_eq!(store.get_step(&id, "none").await.expect("get"), None);

    let claim = step("a", StepStatus::Running, 1, Some(T0 + 1_000));
    assert_eq!(
        store.claim_step(&id, &claim, T0).await.expect("claim"),
        ClaimOutcome::Claimed
    );
    assert!(
        store
            .renew_lease(&id, &claim, T0 + 31_000)
            .await
            .expect("renew")
    );
    let stored = store
        .get_step(&id, "a")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored.lease_until, Some(T0 + 31_000));
    assert_eq!(
        stored,
        StepRecord {
            lease_until: Some(T0 + 31_000),
            ..claim.clone()
        },
        "only the lease changes"
    );
    // Renewed, the lease holds off a takeover that the first lease would have allowed.
    let mut takeover = claim.clone();
    takeover.lease_lost = 1;
    takeover.lease_until = Some(T0 + 40_000);
    assert!(matches!(
        store
            .claim_step(&id, &takeover, T0 + 2_000)
            .await
            .expect("claim"),
        ClaimOutcome::Held(_)
    ));
    let mut other_attempt = claim.clone();
    other_attempt.attempts = 2;
    assert!(
        !store
            .renew_lease(&id, &other_attempt, T0 + 50_000)
            .await
            .expect("renew"),
        "another attempt's renewal is refused"
    );

    // The lease ran out: another worker takes the step over; the old holder cannot renew.
    assert_eq!(
        store
            .claim_step(&id, &takeover, T0 + 31_000)
            .await
            .expect("claim"),
        ClaimOutcome::Claimed
    );
    assert!(
        !store
            .renew_lease(&id, &claim, T0 + 60_000)
            .await
            .expect("renew"),
        "a lease taken over is lost"
    );
    assert!(
        store
            .renew_lease(&id, &takeover, T0 + 70_000)
            .await
            .expect("renew")
    );
    let stored = store
        .get_step(&id, "a")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        (stored.lease_lost, stored.lease_until),
        (1, Some(T0 + 70_000))
    );

    let mut done = takeover.clone();
    done.status = StepStatus::Succeeded;
    done.lease_until = None;
    assert!(store.finish_step(&id, &done).await.expect("finish"));
    assert!(
        !store
            .renew_lease(&id, &takeover, T0 + 80_000)
            .await
            .expect("renew"),
        "a finished step is not renewed"
    );
    assert_eq!(store.get_step(&id, "a").await.expect("get"), Some(done));
}

/// Steps are listed ordered by path; `delete_execution` removes every item of an execution.
pub async fn list_steps_and_delete<S: ExecutionStore + ?Sized>(store: &S) {
    let workflow = unique("wf");
    let id = execution_id(T0);
    let other = execution_id(T0 + 1);
    create(store, &execution(&id, &workflow, T0)).await;
    create(store, &execution(&other, &workflow, T0 + 1)).await;

    let paths = ["start", "each[1]/price", "each[0]/price", "check", "each"];
    for path in paths {
        let record = step(path, StepStatus::Running, 1, Some(T0));
        assert_eq!(
            store.claim_step(&id, &record, T0).await.expect("claim"),
            ClaimOutcome::Claimed
        );
    }
    let keep = step("start", StepStatus::Running, 1, Some(T0));
    store.claim_step(&other, &keep, T0).await.expect("claim");
    store
        .init_loop(&id, "each", &loop_state(2, 1), &loop_items(2))
        .await
        .expect("init_loop");
    store
        .count_iteration(&id, "each", 0, &json!(0))
        .await
        .expect("count");

    let listed: Vec<String> = store
        .list_steps(&id)
        .await
        .expect("list_steps")
        .into_iter()
        .map(|s| s.path)
        .collect();
    let mut expected: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected, "steps ordered by path, and only steps");

    store.delete_execution(&id).await.expect("delete");
    assert_eq!(store.get_execution(&id).await.expect("get"), None);
    assert!(store.list_steps(&id).await.expect("list").is_empty());
    assert_eq!(store.get_loop(&id, "each").await.expect("loop"), None);
    assert!(
        store
            .list_iterations(&id, "each")
            .await
            .expect("iterations")
            .is_empty()
    );
    assert!(
        store.get_execution(&other).await.expect("get").is_some(),
        "other executions are untouched"
    );
    assert_eq!(store.list_steps(&other).await.expect("list").len(), 1);
}

/// Steps are listed in the order they started (`startedAt`), whatever their sort keys say: in
/// the same millisecond a step after the one whose `next` led to it (pure steps run inline),
/// then by path with loop indexes compared as numbers (`each[2]/x` before `each[10]/x`).
pub async fn list_steps_in_start_order<S: ExecutionStore + ?Sized>(store: &S) {
    let id = execution_id(T0);
    create(store, &execution(&id, &unique("wf"), T0)).await;

    // (path, started at, next): claimed in an order that is neither the start order nor the
    // keys'.
    let started = [
        ("alerted", T0 + 50, None),
        ("each[10]/x", T0 + 30, None),
        ("notify", T0 + 20, Some("each")),
        ("each[2]/x", T0 + 30, None),
        ("check", T0, Some("notify")),
        ("each", T0 + 25, Some("alerted")),
        ("start", T0, Some("check")),
        ("each[1]/x", T0 + 30, None),
        ("b", T0 + 60, None),
        ("a", T0 + 60, None),
    ];
    for (path, at, next) in started {
        let mut record = step(path, StepStatus::Running, 1, Some(at + 30_000));
        record.started_at = at;
        record.next = next.map(str::to_string);
        assert_eq!(
            store.claim_step(&id, &record, at).await.expect("claim"),
            ClaimOutcome::Claimed
        );
    }
    // A retry keeps the step's first start: it does not move in the list.
    let mut retried = step("notify", StepStatus::Retrying, 1, None);
    retried.started_at = T0 + 20;
    let mut running = retried.clone();
    running.status = StepStatus::Running;
    running.lease_until = Some(T0 + 50_000);
    store.finish_step(&id, &retried).await.expect("finish");
    running.attempts = 2;
    assert_eq!(
        store
            .claim_step(&id, &running, T0 + 70)
            .await
            .expect("claim"),
        ClaimOutcome::Claimed
    );

    let listed = store.list_steps(&id).await.expect("list_steps");
    let paths: Vec<&str> = listed.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "start",
            "check",
            "notify",
            "each",
            "each[1]/x",
            "each[2]/x",
            "each[10]/x",
            "alerted",
            "a",
            "b",
        ],
        "steps in the order they started; in the same millisecond along `next`, then by path"
    );
    let mut sorted = listed.clone();
    wf_core::execution::sort_steps(&mut sorted);
    assert_eq!(
        sorted, listed,
        "the order is wf_core::execution::sort_steps"
    );

    // The keys give the same order without the records; the records are read by path.
    let mut keys = store.list_step_keys(&id).await.expect("list_step_keys");
    assert_eq!(keys.len(), listed.len(), "a key per record");
    wf_core::execution::sort_steps(&mut keys);
    let expected: Vec<wf_core::execution::StepKey> = listed.iter().map(Into::into).collect();
    assert_eq!(keys, expected, "the keys sort as the records do");
    let wanted = [
        "each[2]/x".to_string(),
        "gone".to_string(),
        "start".to_string(),
    ];
    let mut got = store.get_steps(&id, &wanted).await.expect("get_steps");
    got.sort_by(|a, b| a.path.cmp(&b.path));
    let by_path = |p: &str| listed.iter().find(|s| s.path == p).cloned().unwrap();
    assert_eq!(
        got,
        [by_path("each[2]/x"), by_path("start")],
        "the records asked for; a path without one is left out"
    );
    assert!(
        store
            .list_step_keys(&execution_id(T0 + 1))
            .await
            .expect("none")
            .is_empty(),
        "an execution without steps has no keys"
    );
}

// ---------------------------------------------------------------------------------------------
// Executions

/// Updates apply until the execution is terminal, then are refused.
pub async fn update_execution_until_terminal<S: ExecutionStore + ?Sized>(store: &S) {
    let id = execution_id(T0);
    let record = execution(&id, &unique("wf"), T0);
    create(store, &record).await;
    // The status alone (what a worker holding the record asks) follows every update.
    let status = async |id: &str| store.get_execution_status(id).await.expect("status");
    assert_eq!(status(&id).await, Some(record.status));

    let running = ExecutionUpdate {
        status: ExecutionStatus::Running,
        output: None,
        error: None,
        finished_at: None,
    };
    assert!(store.update_execution(&id, &running).await.expect("update"));
    assert_eq!(status(&id).await, Some(ExecutionStatus::Running));
    let done = ExecutionUpdate {
        status: ExecutionStatus::Succeeded,
        output: Some(json!({ "total": 3 })),
        error: None,
        finished_at: Some(T0 + 41),
    };
    assert!(store.update_execution(&id, &done).await.expect("update"));
    let stored = store
        .get_execution(&id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.status, ExecutionStatus::Succeeded);
    assert_eq!(stored.output, json!({ "total": 3 }));
    assert_eq!(stored.finished_at, Some(T0 + 41));
    assert_eq!(
        stored.duration_ms,
        Some(41),
        "duration from startedAt to finishedAt"
    );
    assert_eq!(stored.input, record.input);
    assert_eq!(status(&id).await, Some(ExecutionStatus::Succeeded));
    assert_eq!(
        status(&execution_id(T0 + 1)).await,
        None,
        "no such execution"
    );

    let late = ExecutionUpdate {
        status: ExecutionStatus::TimedOut,
        output: None,
        error: Some(wf_core::StepError::timeout("deadline")),
        finished_at: Some(T0 + 500_000),
    };
    assert!(
        !store.update_execution(&id, &late).await.expect("update"),
        "a terminal execution is not updated"
    );
    assert_eq!(
        store.get_execution(&id).await.expect("get"),
        Some(stored),
        "nothing changed"
    );
    let missing = store.update_execution(&execution_id(T0), &running).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "updating a missing execution is NotFound, got {missing:?}"
    );
}

/// An execution created with the records of its pure start: stored as given (terminal with its
/// output and duration, or queued), the steps with it; a live dedupe key writes nothing; a
/// redelivered create keeps what is stored (its status, its steps) and adds missing steps.
pub async fn create_execution_with_steps<S: ExecutionStore + ?Sized>(store: &S) {
    let finished_step = |path: &str, next: Option<&str>| StepRecord {
        step_type: "condition".into(),
        output: json!({ "path": path }),
        finished_at: Some(T0 + 2),
        duration_ms: Some(2),
        lease_until: None,
        next: next.map(str::to_string),
        ..step(path, StepStatus::Succeeded, 1, None)
    };
    let workflow = unique("wf");
    let id = execution_id(T0);
    let mut done = execution(&id, &workflow, T0);
    done.apply(&ExecutionUpdate {
        status: ExecutionStatus::Succeeded,
        output: Some(json!({ "alerted": true })),
        error: None,
        finished_at: Some(T0 + 3),
    });
    let steps = vec![
        finished_step("start", Some("check")),
        finished_step("check", Some("out")),
        finished_step("out", None),
    ];
    let key = DedupeKey {
        key: format!("{workflow}#k"),
        expires_at: T0 + 60_000,
    };
    let created = store
        .create_execution_with_steps(&done, Some(&key), &steps)
        .await
        .expect("create with steps");
    assert_eq!(created, CreateOutcome::Created);
    let stored = store
        .get_execution(&id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored, done, "stored as given, terminal");
    assert_eq!(stored.duration_ms, Some(3));
    assert_eq!(store.list_steps(&id).await.expect("steps"), steps);
    // Every read of step records sees them, and they hold their paths against claims.
    assert_eq!(
        store.get_step(&id, "check").await.expect("get_step"),
        Some(steps[1].clone())
    );
    assert_eq!(store.get_step(&id, "nope").await.expect("get_step"), None);
    let asked = ["out", "nope", "start"].map(String::from);
    let mut got = store.get_steps(&id, &asked).await.expect("get_steps");
    got.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(got, vec![steps[2].clone(), steps[0].clone()]);
    let mut keys: Vec<(String, i64, Option<String>)> = store
        .list_step_keys(&id)
        .await
        .expect("keys")
        .into_iter()
        .map(|k| (k.path, k.started_at, k.next))
        .collect();
    keys.sort();
    let mut expected: Vec<(String, i64, Option<String>)> = steps
        .iter()
        .map(|r| (r.path.clone(), r.started_at, r.next.clone()))
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
    let mut again = finished_step("check", Some("out"));
    again.output = json!({ "another": "run" });
    assert_eq!(
        store.claim_step(&id, &again, T0 + 10).await.expect("claim"),
        ClaimOutcome::Held(steps[1].clone()),
        "a step created with its execution is held like any stored one"
    );
    assert_eq!(store.list_steps(&id).await.expect("steps"), steps);

    // The same key again: the first execution, nothing written.
    let other = execution(&execution_id(T0 + 1), &workflow, T0 + 1);
    let again = store
        .create_execution_with_steps(&other, Some(&key), &steps)
        .await
        .expect("duplicate");
    assert_eq!(again, CreateOutcome::Duplicate(id.clone()));
    assert_eq!(store.get_execution(&other.id).await.expect("get"), None);
    assert!(store.list_steps(&other.id).await.expect("steps").is_empty());

    // A queued execution whose first step is stored already (another run of it): created
    // again, it keeps its status and that step, and gains the missing ones.
    let queued_id = execution_id(T0 + 2);
    let queued = execution(&queued_id, &workflow, T0 + 2);
    create(store, &queued).await;
    let mut theirs = finished_step("start", Some("check"));
    theirs.output = json!({ "theirs": true });
    assert_eq!(
        store
            .claim_step(&queued_id, &theirs, T0)
            .await
            .expect("claim"),
        ClaimOutcome::Claimed
    );
    let mut mine = done.clone();
    mine.id = queued_id.clone();
    mine.started_at = queued.started_at;
    mine.deadline_at = queued.deadline_at;
    let redelivered = store
        .create_execution_with_steps(&mine, None, &steps[..2])
        .await
        .expect("redelivered create");
    assert_eq!(redelivered, CreateOutcome::Created);
    let after = store.list_steps(&queued_id).await.expect("steps");
    assert_eq!(
        after,
        vec![theirs, steps[1].clone()],
        "stored step kept, missing added"
    );
    let stored = store
        .get_execution(&queued_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        stored.status,
        ExecutionStatus::Queued,
        "a step was not ours: the stored status stands"
    );

    // A queued execution with the records of its pure prefix (the rest is queued).
    let prefix_id = execution_id(T0 + 3);
    let prefix = execution(&prefix_id, &workflow, T0 + 3);
    let created = store
        .create_execution_with_steps(&prefix, None, &steps[..1])
        .await
        .expect("create a queued one");
    assert_eq!(created, CreateOutcome::Created);
    let stored = store
        .get_execution(&prefix_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.status, ExecutionStatus::Queued);
    assert_eq!(
        store.list_steps(&prefix_id).await.expect("steps"),
        steps[..1]
    );

    // A running one with the tasks its start handed on (as the start use case creates it):
    // stored as given, the handoff with it, and kept by a status update.
    let handed_id = execution_id(T0 + 5);
    let mut handed = execution(&handed_id, &workflow, T0 + 5);
    handed.status = ExecutionStatus::Running;
    handed.handoff = vec![
        wf_core::execution::HandedOff {
            path: "notify".into(),
            attempt: 1,
            delay_ms: 0,
        },
        wf_core::execution::HandedOff {
            path: "check".into(),
            attempt: 2,
            delay_ms: 1_500,
        },
    ];
    let created = store
        .create_execution_with_steps(&handed, None, &steps[..1])
        .await
        .expect("create a running one");
    assert_eq!(created, CreateOutcome::Created);
    assert_eq!(
        store.get_execution(&handed_id).await.expect("get"),
        Some(handed.clone())
    );
    let listed = store
        .list_executions(&ExecutionQuery {
            workflow_id: Some(workflow.clone()),
            status: Some(ExecutionStatus::Running),
            ..ExecutionQuery::default()
        })
        .await
        .expect("list")
        .items;
    assert_eq!(
        listed,
        vec![handed.clone()],
        "the sweep lists it with its handoff"
    );
    let mut done = handed.clone();
    done.apply(&ExecutionUpdate {
        status: ExecutionStatus::Succeeded,
        output: Some(json!({ "ok": true })),
        error: None,
        finished_at: Some(T0 + 9),
    });
    assert!(
        store
            .update_execution(&handed_id, &done.as_update())
            .await
            .expect("finish")
    );
    assert_eq!(
        store.get_execution(&handed_id).await.expect("get"),
        Some(done)
    );

    // A pure step that failed and will be retried: its next attempt claims it, and from then
    // on every read shows the claim.
    let retry_id = execution_id(T0 + 4);
    let retried = execution(&retry_id, &workflow, T0 + 4);
    let failed = StepRecord {
        error: Some(wf_core::StepError::new(
            "template.undefined",
            "no such value",
        )),
        ..step("check", StepStatus::Retrying, 1, None)
    };
    let created = store
        .create_execution_with_steps(&retried, None, &[steps[0].clone(), failed.clone()])
        .await
        .expect("create with a retrying step");
    assert_eq!(created, CreateOutcome::Created);
    assert_eq!(
        store.get_step(&retry_id, "check").await.expect("get"),
        Some(failed.clone())
    );
    let same_attempt = step("check", StepStatus::Running, 1, Some(T0 + 30_000));
    assert_eq!(
        store
            .claim_step(&retry_id, &same_attempt, T0 + 5)
            .await
            .expect("claim"),
        ClaimOutcome::Held(failed),
        "the attempt that failed does not run again"
    );
    let next = step("check", StepStatus::Running, 2, Some(T0 + 30_000));
    assert_eq!(
        store
            .claim_step(&retry_id, &next, T0 + 5)
            .await
            .expect("claim"),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.get_step(&retry_id, "check").await.expect("get"),
        Some(next.clone())
    );
    let listed = store.list_steps(&retry_id).await.expect("steps");
    assert_eq!(listed, vec![steps[0].clone(), next.clone()]);
    assert_eq!(
        store
            .claim_step(&retry_id, &next, T0 + 6)
            .await
            .expect("claim"),
        ClaimOutcome::Held(next.clone()),
        "the claim holds its lease"
    );
    let mut finished = next.clone();
    finished.status = StepStatus::Succeeded;
    finished.lease_until = None;
    assert!(
        store
            .finish_step(&retry_id, &finished)
            .await
            .expect("finish")
    );
    assert_eq!(
        store
            .get_steps(&retry_id, &["check".to_string()])
            .await
            .expect("get_steps"),
        vec![finished]
    );
}

/// `claim_new_step`: a put only where the step has no record; any stored record (held, expired,
/// retrying, finished, or created with the execution) comes back as `Held`.
pub async fn claim_new_step_only_where_nothing_is_stored<S: ExecutionStore + ?Sized>(store: &S) {
    let id = execution_id(T0);
    let workflow = unique("wf");
    let prefix = StepRecord {
        step_type: "start".into(),
        output: json!({}),
        finished_at: Some(T0),
        duration_ms: Some(0),
        lease_until: None,
        next: Some("a".into()),
        ..step("start", StepStatus::Succeeded, 1, None)
    };
    let created = store
        .create_execution_with_steps(
            &execution(&id, &workflow, T0),
            None,
            std::slice::from_ref(&prefix),
        )
        .await
        .expect("create");
    assert_eq!(created, CreateOutcome::Created);
    let fresh = step("a", StepStatus::Running, 1, Some(T0 + 30_000));
    assert_eq!(
        store.claim_new_step(&id, &fresh, T0).await.expect("claim"),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.get_step(&id, "a").await.expect("get"),
        Some(fresh.clone())
    );
    // Long after its lease: claim_step would take it over, claim_new_step does not.
    let later = step("a", StepStatus::Running, 1, Some(T0 + 90_000));
    assert_eq!(
        store
            .claim_new_step(&id, &later, T0 + 60_000)
            .await
            .expect("claim"),
        ClaimOutcome::Held(fresh.clone())
    );
    let retrying = step("b", StepStatus::Retrying, 1, None);
    assert_eq!(
        store.claim_step(&id, &retrying, T0).await.expect("claim"),
        ClaimOutcome::Claimed
    );
    let next = step("b", StepStatus::Running, 2, Some(T0 + 30_000));
    assert_eq!(
        store.claim_new_step(&id, &next, T0).await.expect("claim"),
        ClaimOutcome::Held(retrying)
    );
    let start_again = step("start", StepStatus::Running, 1, Some(T0 + 30_000));
    assert_eq!(
        store
            .claim_new_step(&id, &start_again, T0)
            .await
            .expect("claim"),
        ClaimOutcome::Held(prefix.clone()),
        "a record created with the execution holds its path"
    );
    let mut listed: Vec<String> = store
        .list_steps(&id)
        .await
        .expect("steps")
        .into_iter()
        .map(|r| r.path)
        .collect();
    listed.sort();
    assert_eq!(listed, ["a", "b", "start"]);
}

/// Dedupe keys: a live key answers the first id and writes nothing; a redelivered create is
/// `Created` and changes nothing; an expired key is replaced.
pub async fn dedupe_keys<S: ExecutionStore + ?Sized>(store: &S) {
    let workflow = unique("wf");
    let key = DedupeKey {
        key: format!("{workflow}#order-1"),
        expires_at: T0 + 86_400_000,
    };
    let first = execution(&execution_id(T0), &workflow, T0);
    assert_eq!(
        store
            .create_execution(&first, Some(&key))
            .await
            .expect("create"),
        CreateOutcome::Created
    );

    let second = execution(&execution_id(T0 + 5_000), &workflow, T0 + 5_000);
    assert_eq!(
        store
            .create_execution(&second, Some(&key))
            .await
            .expect("create"),
        CreateOutcome::Duplicate(first.id.clone()),
        "a live key answers the first execution"
    );
    assert_eq!(
        store.get_execution(&second.id).await.expect("get"),
        None,
        "nothing is written for a duplicate"
    );

    // A redelivered create of the first execution (after it moved on) changes nothing.
    let running = ExecutionUpdate {
        status: ExecutionStatus::Running,
        output: None,
        error: None,
        finished_at: None,
    };
    assert!(
        store
            .update_execution(&first.id, &running)
            .await
            .expect("update")
    );
    assert_eq!(
        store
            .create_execution(&first, Some(&key))
            .await
            .expect("create"),
        CreateOutcome::Created,
        "re-creating the same execution is Created"
    );
    assert_eq!(
        store.create_execution(&first, None).await.expect("create"),
        CreateOutcome::Created
    );
    let stored = store
        .get_execution(&first.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.status, ExecutionStatus::Running, "left as it stands");

    // Another execution under an existing id is not a redelivery.
    let mut impostor = execution(&first.id, &unique("wf"), T0 + 7);
    impostor.input = json!({ "other": true });
    let outcome = store.create_execution(&impostor, None).await;
    assert!(
        !matches!(outcome, Ok(CreateOutcome::Created)),
        "a different execution with an existing id is refused, got {outcome:?}"
    );
    assert_eq!(
        store
            .get_execution(&first.id)
            .await
            .expect("get")
            .map(|e| e.workflow_id),
        Some(workflow.clone())
    );

    // Past its expiry the key is replaced by the new execution.
    let later = T0 + 86_400_000 + 1;
    let third = execution(&execution_id(later), &workflow, later);
    let renewed = DedupeKey {
        key: key.key.clone(),
        expires_at: later + 86_400_000,
    };
    assert_eq!(
        store
            .create_execution(&third, Some(&renewed))
            .await
            .expect("create"),
        CreateOutcome::Created,
        "an expired key does not dedupe"
    );
    let fourth = execution(&execution_id(later + 1), &workflow, later + 1);
    assert_eq!(
        store
            .create_execution(&fourth, Some(&renewed))
            .await
            .expect("create"),
        CreateOutcome::Duplicate(third.id.clone()),
        "the replaced key answers the new execution"
    );

    // Keys are per workflow and per key.
    let other_key = DedupeKey {
        key: format!("{workflow}#order-2"),
        expires_at: later + 86_400_000,
    };
    let fifth = execution(&execution_id(later + 2), &workflow, later + 2);
    assert_eq!(
        store
            .create_execution(&fifth, Some(&other_key))
            .await
            .expect("create"),
        CreateOutcome::Created
    );
}

fn sorted_newest_first(mut items: Vec<ExecutionRecord>) -> Vec<String> {
    items.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    items.into_iter().map(|e| e.id).collect()
}

/// Walk every page of `query` with `limit`, checking there are no duplicates.
async fn walk<S: ExecutionStore + ?Sized>(
    store: &S, query: &ExecutionQuery, limit: usize,
) -> Vec<String> {
    let mut query = query.clone();
    query.limit = limit;
    query.cursor = None;
    let mut seen = Vec::new();
    for _ in 0..1_000 {
        let page = store
            .list_executions(&query)
            .await
            .expect("list_executions");
        assert!(
            page.items.len() <= limit,
            "a page holds at most limit items"
        );
        seen.extend(page.items.into_iter().map(|e| e.id));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no execution appears twice");
    seen
}

/// Newest first with every filter, and a cursor that walks all pages without gaps: every
/// status and every trigger alone, with a workflow, together, and with a version or a window
/// (each store reads an index made for the filter; the answers must be exactly the matches).
pub async fn list_executions_pages<S: ExecutionStore + ?Sized>(store: &S) {
    let wf_a = unique("wf-a");
    let wf_b = unique("wf-b");
    let statuses = [
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::Running,
        ExecutionStatus::TimedOut,
        ExecutionStatus::Cancelled,
    ];
    let triggers = ["webhook", "manual", "schedule", "event"];
    let mut all = Vec::new();
    for i in 0..30i64 {
        // Three executions share each start time: ties are broken by id, newest first.
        let started_at = T0 + (i / 3) * 1_000;
        let workflow = if i % 2 == 0 { &wf_a } else { &wf_b };
        let mut record = execution(&execution_id(started_at), workflow, started_at);
        record.version = 1 + (i % 3) as u32;
        // Every (workflow, trigger) pair and every (workflow, status) pair occurs.
        record.trigger = TriggerInfo::new(triggers[((i / 2) % 4) as usize]).with("n", i);
        create(store, &record).await;
        let status = statuses[(i % 5) as usize];
        let finished = status.is_terminal().then_some(started_at + 5);
        let update = ExecutionUpdate {
            status,
            output: None,
            error: None,
            finished_at: finished,
        };
        assert!(
            store
                .update_execution(&record.id, &update)
                .await
                .expect("update")
        );
        record.status = status;
        all.push(record);
    }
    // A few left queued, in a workflow of their own (the live filters' other status); one
    // queued in wf-a, and one that went through running to failed.
    let wf_c = unique("wf-c");
    for i in 0..3i64 {
        let started_at = T0 + 500 + i * 1_000;
        let record = execution(&execution_id(started_at), &wf_c, started_at);
        create(store, &record).await;
        all.push(record);
    }
    let queued_a = execution(&execution_id(T0 + 4_500), &wf_a, T0 + 4_500);
    create(store, &queued_a).await;
    all.push(queued_a);
    let mut through = execution(&execution_id(T0 + 6_500), &wf_c, T0 + 6_500);
    through.trigger = TriggerInfo::new("schedule");
    create(store, &through).await;
    for (status, finished_at) in [
        (ExecutionStatus::Running, None),
        (ExecutionStatus::Failed, Some(T0 + 6_600)),
    ] {
        let update = ExecutionUpdate {
            status,
            output: None,
            error: None,
            finished_at,
        };
        assert!(
            store
                .update_execution(&through.id, &update)
                .await
                .expect("update")
        );
    }
    through.status = ExecutionStatus::Failed;
    all.push(through);

    type Keep = Box<dyn Fn(&ExecutionRecord) -> bool>;
    let mut filters: Vec<(String, ExecutionQuery, Keep)> = vec![
        (
            "no filter".into(),
            ExecutionQuery::default(),
            Box::new(|_| true),
        ),
        (
            "version".into(),
            ExecutionQuery {
                workflow_id: Some(wf_a.clone()),
                version: Some(2),
                ..Default::default()
            },
            Box::new({
                let wf_a = wf_a.clone();
                move |e| e.workflow_id == wf_a && e.version == 2
            }),
        ),
        (
            "started window".into(),
            ExecutionQuery {
                started_after: Some(T0 + 2_000),
                started_before: Some(T0 + 7_000),
                ..Default::default()
            },
            Box::new(|e| e.started_at >= T0 + 2_000 && e.started_at < T0 + 7_000),
        ),
        (
            "failed in a window".into(),
            ExecutionQuery {
                status: Some(ExecutionStatus::Failed),
                started_after: Some(T0 + 2_000),
                started_before: Some(T0 + 7_000),
                ..Default::default()
            },
            Box::new(|e| {
                e.status == ExecutionStatus::Failed
                    && e.started_at >= T0 + 2_000
                    && e.started_at < T0 + 7_000
            }),
        ),
        (
            "schedule, version 3".into(),
            ExecutionQuery {
                trigger: Some("schedule".into()),
                version: Some(3),
                ..Default::default()
            },
            Box::new(|e| e.trigger.kind == "schedule" && e.version == 3),
        ),
    ];
    let all_statuses = [
        ExecutionStatus::Queued,
        ExecutionStatus::Running,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::TimedOut,
        ExecutionStatus::Cancelled,
    ];
    let workflows = [None, Some(&wf_a), Some(&wf_b), Some(&wf_c)];
    for workflow in workflows {
        let w = workflow.cloned();
        let wname = workflow.map_or("any workflow", |_| "one workflow");
        filters.push((
            wname.to_string(),
            ExecutionQuery {
                workflow_id: w.clone(),
                ..Default::default()
            },
            Box::new({
                let w = w.clone();
                move |e| w.as_ref().is_none_or(|w| &e.workflow_id == w)
            }),
        ));
        for status in all_statuses {
            filters.push((
                format!("{wname} + {}", status.as_str()),
                ExecutionQuery {
                    workflow_id: w.clone(),
                    status: Some(status),
                    ..Default::default()
                },
                Box::new({
                    let w = w.clone();
                    move |e| e.status == status && w.as_ref().is_none_or(|w| &e.workflow_id == w)
                }),
            ));
        }
        for trigger in triggers {
            filters.push((
                format!("{wname} + {trigger}"),
                ExecutionQuery {
                    workflow_id: w.clone(),
                    trigger: Some(trigger.into()),
                    ..Default::default()
                },
                Box::new({
                    let w = w.clone();
                    move |e| {
                        e.trigger.kind == trigger && w.as_ref().is_none_or(|w| &e.workflow_id == w)
                    }
                }),
            ));
            // A status and a trigger together (one of them is read from its index).
            for status in [ExecutionStatus::Failed, ExecutionStatus::Running] {
                filters.push((
                    format!("{wname} + {trigger} + {}", status.as_str()),
                    ExecutionQuery {
                        workflow_id: w.clone(),
                        trigger: Some(trigger.into()),
                        status: Some(status),
                        ..Default::default()
                    },
                    Box::new({
                        let w = w.clone();
                        move |e| {
                            e.trigger.kind == trigger
                                && e.status == status
                                && w.as_ref().is_none_or(|w| &e.workflow_id == w)
                        }
                    }),
                ));
            }
        }
    }
    // A trigger no execution has, and a workflow with no executions.
    filters.push((
        "unknown trigger".into(),
        ExecutionQuery {
            trigger: Some("nothing".into()),
            ..Default::default()
        },
        Box::new(|_| false),
    ));
    filters.push((
        "unknown workflow + failed".into(),
        ExecutionQuery {
            workflow_id: Some(unique("wf-none")),
            status: Some(ExecutionStatus::Failed),
            ..Default::default()
        },
        Box::new(|_| false),
    ));
    let mut matched = 0;
    for (name, query, keep) in &filters {
        let expected = sorted_newest_first(all.iter().filter(|e| keep(e)).cloned().collect());
        matched += usize::from(!expected.is_empty());
        for limit in [1, 4, 100] {
            let got = walk(store, query, limit).await;
            assert_eq!(
                &got, &expected,
                "{name}, limit {limit}: newest first, every page, no gaps"
            );
        }
    }
    assert!(
        matched > filters.len() * 3 / 4,
        "the fixture matches most filters ({matched} of {})",
        filters.len()
    );

    // A single page with everything carries no cursor; items are whole records.
    let page = store
        .list_executions(&ExecutionQuery {
            workflow_id: Some(wf_b.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.items.len(), 15);
    assert_eq!(page.next_cursor, None);
    let newest = &page.items[0];
    let fixture = all.iter().find(|e| e.id == newest.id).expect("known");
    assert_eq!(newest.trigger, fixture.trigger);
    assert_eq!(newest.status, fixture.status);
}

// ---------------------------------------------------------------------------------------------
// Loops

/// 50 concurrent counts over 20 indices: each index counted once, `remaining` reaches 0 once.
pub async fn loop_join_counts_each_iteration_once<S: ExecutionStore + ?Sized + 'static>(
    store: Arc<S>,
) {
    let id = execution_id(T0);
    create(&*store, &execution(&id, &unique("wf"), T0)).await;
    let initial = loop_state(20, 5);
    assert_eq!(
        store
            .init_loop(&id, "each", &initial, &loop_items(20))
            .await
            .expect("init_loop"),
        initial
    );
    // A repeated init answers the stored state, not the new one.
    assert_eq!(
        store
            .init_loop(&id, "each", &loop_state(99, 1), &loop_items(99))
            .await
            .expect("init_loop"),
        initial,
        "init_loop is put-if-absent"
    );

    let mut handles = Vec::new();
    for n in 0..50u32 {
        let store = store.clone();
        let id = id.clone();
        let index = (n * 7) % 20;
        handles.push(tokio::spawn(async move {
            let outcome = store
                .count_iteration(&id, "each", index, &json!({ "index": index }))
                .await
                .expect("count_iteration");
            (index, outcome)
        }));
    }
    let mut counted: BTreeMap<u32, u32> = BTreeMap::new();
    let mut remaining_seen = Vec::new();
    let mut already = 0;
    for handle in handles {
        let (index, outcome) = handle.await.expect("task");
        match outcome {
            IterationCount::Counted(after) => {
                *counted.entry(index).or_default() += 1;
                remaining_seen.push(after.remaining);
                assert_eq!(
                    (after.total, after.failed),
                    (20, false),
                    "the count answers the loop's state"
                );
            }
            IterationCount::AlreadyCounted => already += 1,
        }
    }
    assert_eq!(counted.len(), 20, "every index counted");
    assert!(
        counted.values().all(|&n| n == 1),
        "each index counted exactly once: {counted:?}"
    );
    assert_eq!(already, 30, "the repeats are AlreadyCounted");
    remaining_seen.sort_unstable();
    assert_eq!(
        remaining_seen,
        (0..20).collect::<Vec<u32>>(),
        "each count saw a distinct remaining; 0 exactly once"
    );
    let state = store
        .get_loop(&id, "each")
        .await
        .expect("get_loop")
        .expect("exists");
    assert_eq!(state.remaining, 0);
    assert!(!state.failed);
    assert_eq!(
        store
            .count_iteration(&id, "each", 3, &json!("again"))
            .await
            .expect("count"),
        IterationCount::AlreadyCounted,
        "a redelivered count after completion is still AlreadyCounted"
    );
    let iterations = store
        .list_iterations(&id, "each")
        .await
        .expect("list_iterations");
    assert_eq!(iterations.len(), 20);
    for (i, (index, result)) in iterations.iter().enumerate() {
        assert_eq!(*index, i as u32);
        assert_eq!(result, &json!({ "index": i }), "the first result is kept");
    }

    store.fail_loop(&id, "each").await.expect("fail_loop");
    assert!(
        store
            .get_loop(&id, "each")
            .await
            .expect("get_loop")
            .expect("exists")
            .failed
    );
}

/// A loop's items are stored in pages and read one at a time: every index across page
/// boundaries answers its own item, past the end answers None, a repeated init keeps the first
/// items, and a nested loop's items are its own.
pub async fn loop_items_in_pages<S: ExecutionStore + ?Sized>(store: &S) {
    let id = execution_id(T0);
    create(store, &execution(&id, &unique("wf"), T0)).await;
    let total = 2 * wf_core::keys::LOOP_ITEMS_PER_PAGE + 7;
    store
        .init_loop(&id, "each", &loop_state(total, 3), &loop_items(total))
        .await
        .expect("init_loop");
    let per_page = wf_core::keys::LOOP_ITEMS_PER_PAGE;
    for index in [0, 1, per_page - 1, per_page, 2 * per_page, total - 1] {
        assert_eq!(
            store
                .loop_item(&id, "each", index)
                .await
                .expect("loop_item"),
            Some(json!({ "i": index })),
            "item {index}"
        );
    }
    assert_eq!(
        store
            .loop_item(&id, "each", total)
            .await
            .expect("loop_item"),
        None
    );
    assert_eq!(
        store.loop_item(&id, "other", 0).await.expect("loop_item"),
        None
    );
    // A repeat with other items keeps the stored ones.
    let again: Vec<Value> = (0..total).map(|i| json!({ "again": i })).collect();
    let stored = store
        .init_loop(&id, "each", &loop_state(total, 3), &again)
        .await
        .expect("init_loop");
    assert_eq!(stored.total, total);
    assert_eq!(
        store.loop_item(&id, "each", 5).await.expect("loop_item"),
        Some(json!({ "i": 5 }))
    );
    // A loop nested in iteration 1 of `each` has items of its own.
    store
        .init_loop(
            &id,
            "each[1]/inner",
            &loop_state(2, 1),
            &[json!("x"), json!("y")],
        )
        .await
        .expect("init_loop");
    assert_eq!(
        store
            .loop_item(&id, "each[1]/inner", 1)
            .await
            .expect("loop_item"),
        Some(json!("y"))
    );
    assert_eq!(
        store.loop_item(&id, "each", 1).await.expect("loop_item"),
        Some(json!({ "i": 1 }))
    );
}

/// Iterations are listed by numeric index, per loop path (nested and look-alike paths apart).
pub async fn list_iterations_in_index_order<S: ExecutionStore + ?Sized>(store: &S) {
    let id = execution_id(T0);
    create(store, &execution(&id, &unique("wf"), T0)).await;
    for path in ["a[1]/b", "a[1]/bb", "a[1]/b_", "a[10]/b", "a[1]/b%"] {
        store
            .init_loop(&id, path, &loop_state(200, 10), &loop_items(200))
            .await
            .expect("init_loop");
    }
    for index in [10u32, 2, 100, 0, 11, 1] {
        let outcome = store
            .count_iteration(&id, "a[1]/b", index, &json!(format!("r{index}")))
            .await
            .expect("count");
        assert!(matches!(outcome, IterationCount::Counted { .. }));
    }
    for path in ["a[1]/bb", "a[1]/b_", "a[10]/b", "a[1]/b%"] {
        store
            .count_iteration(&id, path, 5, &json!("other loop"))
            .await
            .expect("count");
    }
    let listed = store
        .list_iterations(&id, "a[1]/b")
        .await
        .expect("list_iterations");
    let expected: Vec<(u32, Value)> = [0u32, 1, 2, 10, 11, 100]
        .into_iter()
        .map(|i| (i, json!(format!("r{i}"))))
        .collect();
    assert_eq!(
        listed, expected,
        "ordered by index; other loops' iterations apart"
    );
    let remaining = store
        .get_loop(&id, "a[1]/b")
        .await
        .expect("get_loop")
        .expect("exists")
        .remaining;
    assert_eq!(remaining, 194);
    assert!(
        store
            .list_iterations(&id, "nothing")
            .await
            .expect("list")
            .is_empty()
    );
}

async fn count_each<S: ExecutionStore + ?Sized>(
    store: &S, id: &str, results: Vec<(u32, Value)>,
) -> IterationCount {
    store
        .count_iterations(id, "each", &results)
        .await
        .expect("count_iterations")
}

/// A batch of counts (`count_iterations`): each iteration counted once whatever was counted
/// before it (alone, or in a batch cut differently, as a replay after a crash cuts them), the
/// first result of each kept when the same batch comes again, results too big for one page of a store that pages them listed
/// all the same, and a result too large for an item refusing the batch before anything of it
/// is written.
pub async fn count_iterations_in_batches<S: ExecutionStore + ?Sized>(store: &S) {
    let id = execution_id(T0);
    create(store, &execution(&id, &unique("wf"), T0)).await;
    store
        .init_loop(&id, "each", &loop_state(12, 2), &loop_items(12))
        .await
        .expect("init_loop");
    let batch = |indexes: &[u32], tag: &str| -> Vec<(u32, Value)> {
        indexes
            .iter()
            .map(|&i| (i, json!(format!("{tag} {i}"))))
            .collect()
    };
    let remaining_after = |outcome: IterationCount| match outcome {
        IterationCount::Counted(after) => Some(after.remaining),
        IterationCount::AlreadyCounted => None,
    };
    let count = |indexes: Vec<(u32, Value)>| count_each(store, &id, indexes);
    // The engine passes the same result for an index every time (the output of the record
    // that ended the iteration); only a repeat of the same batch tries another one here.
    let alone = count(vec![(2, json!("first 2"))]);
    assert_eq!(remaining_after(alone.await), Some(11));
    assert_eq!(
        remaining_after(count(batch(&[0, 2, 4, 6], "first")).await),
        Some(8),
        "2 was counted before: the batch counts the other three"
    );
    assert_eq!(
        count(batch(&[0, 2, 4, 6], "again")).await,
        IterationCount::AlreadyCounted,
        "the same batch again counts nothing"
    );
    // Six results of 90 KB: more than one page where a store pages them (DynamoDB: pages of
    // at most half an item).
    let big =
        |tag: &str, i: u32| json!({ "tag": format!("{tag} {i}"), "pad": "x".repeat(90 * 1024) });
    let odd: Vec<(u32, Value)> = [1, 3, 5, 7, 9, 11].map(|i| (i, big("big", i))).into();
    assert_eq!(remaining_after(count(odd).await), Some(2));
    let replay: Vec<(u32, Value)> = [5, 7, 9, 11].map(|i| (i, big("big", i))).into();
    assert_eq!(
        count(replay).await,
        IterationCount::AlreadyCounted,
        "a batch cut differently, all counted before"
    );
    assert_eq!(
        remaining_after(count(batch(&[6, 8], "late")).await),
        Some(1),
        "a batch partly counted before counts the rest"
    );
    assert_eq!(remaining_after(count(batch(&[10], "last")).await), Some(0));
    let listed = store
        .list_iterations(&id, "each")
        .await
        .expect("list_iterations");
    let expected: Vec<(u32, Value)> = (0..12u32)
        .map(|i| {
            let value = match i {
                0 | 2 | 4 | 6 => json!(format!("first {i}")),
                8 => json!("late 8"),
                10 => json!("last 10"),
                _ => big("big", i),
            };
            (i, value)
        })
        .collect();
    let differ: Vec<String> = listed
        .iter()
        .zip(&expected)
        .filter(|(l, e)| l != e)
        .map(|((i, l), (_, e))| {
            format!(
                "{i}: {:.60} instead of {:.60}",
                l.to_string(),
                e.to_string()
            )
        })
        .collect();
    assert!(
        listed.len() == expected.len() && differ.is_empty(),
        "every index once, in order, with its first result: {:?}; {differ:?}",
        listed.iter().map(|(i, _)| i).collect::<Vec<_>>()
    );

    // A result too large refuses the batch: nothing of it is stored or counted.
    store
        .init_loop(&id, "other", &loop_state(3, 1), &loop_items(3))
        .await
        .expect("init_loop");
    let too_large = vec![(0, json!("small")), (1, json!("x".repeat(500 * 1024)))];
    expect_too_large(
        store.count_iterations(&id, "other", &too_large).await,
        "a batch with a result too large",
    );
    let state = store.get_loop(&id, "other").await.expect("get_loop");
    assert_eq!(state.map(|s| s.remaining), Some(3));
    assert!(
        store
            .list_iterations(&id, "other")
            .await
            .expect("list")
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Definitions

/// Engine marks: absent is null; a put overwrites; a null put clears; names are apart.
pub async fn marks_are_kept_overwritten_and_cleared<S: ExecutionStore + ?Sized>(store: &S) {
    let (a, b) = (unique("mark"), unique("mark"));
    assert_eq!(store.get_mark(&a).await.expect("get"), Value::Null);
    store
        .put_mark(&a, &json!({ "cursor": "c1" }))
        .await
        .expect("put");
    store.put_mark(&b, &json!(2)).await.expect("put b");
    assert_eq!(
        store.get_mark(&a).await.expect("get"),
        json!({ "cursor": "c1" })
    );
    store
        .put_mark(&a, &json!({ "cursor": "c2" }))
        .await
        .expect("overwrite");
    assert_eq!(
        store.get_mark(&a).await.expect("get"),
        json!({ "cursor": "c2" })
    );
    store.put_mark(&a, &Value::Null).await.expect("clear");
    assert_eq!(store.get_mark(&a).await.expect("get"), Value::Null);
    store.put_mark(&a, &Value::Null).await.expect("clear again");
    assert_eq!(
        store.get_mark(&b).await.expect("get b"),
        json!(2),
        "names are apart"
    );
}

/// Event rejections: newest first per workflow, one item per event (a redelivery overwrites),
/// paged with an opaque cursor that other input does not pass for.
pub async fn rejections_newest_first_in_pages<S: ExecutionStore + ?Sized>(store: &S) {
    let (wf, other) = (unique("wf"), unique("wf"));
    let rejection = |workflow: &str, event: &str, time: i64, reason: RejectionReason| {
        EventRejection {
            workflow_id: workflow.to_string(),
            event_id: event.to_string(),
            event_type: "order.created".into(),
            source: "api".into(),
            event_time: time,
            reason,
            message: String::new(),
            rejected_at: time + 5,
        }
        .with_message(&format!("{event} was not started"))
    };
    for (event, time) in [
        ("e1", T0),
        ("e2", T0 + 10),
        ("e3", T0 + 20),
        ("e4", T0 + 20),
    ] {
        store
            .record_rejection(&rejection(&wf, event, time, RejectionReason::Input))
            .await
            .expect("record_rejection");
    }
    // The same event again (a redelivery, this time with another outcome): one item.
    store
        .record_rejection(&rejection(&wf, "e2", T0 + 10, RejectionReason::Filter))
        .await
        .expect("record_rejection again");
    store
        .record_rejection(&rejection(&other, "x", T0 + 99, RejectionReason::Depth))
        .await
        .expect("record_rejection of another workflow");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_rejections(&wf, 3, cursor.as_deref())
            .await
            .expect("list_rejections");
        pages += 1;
        assert!(page.items.len() <= 3, "a page holds at most the limit");
        seen.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 5, "the listing ends");
    }
    assert_eq!(
        pages, 2,
        "4 rejections in pages of 3: two pages, no empty third"
    );
    let ids: Vec<&str> = seen.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(
        ids,
        ["e4", "e3", "e2", "e1"],
        "newest first; same time by id, descending"
    );
    assert_eq!(
        seen[2].reason,
        RejectionReason::Filter,
        "the redelivery overwrote e2"
    );
    assert_eq!(
        seen[0],
        rejection(&wf, "e4", T0 + 20, RejectionReason::Input)
    );

    let others = store.list_rejections(&other, 0, None).await.expect("other");
    assert_eq!(others.items.len(), 1, "each workflow has its own list");
    assert_eq!(others.next_cursor, None);
    let none = store
        .list_rejections(&unique("wf"), 0, None)
        .await
        .expect("none");
    assert!(none.items.is_empty() && none.next_cursor.is_none());
    match store.list_rejections(&wf, 10, Some("not-a-cursor")).await {
        Err(StoreError::Invalid(message)) => assert!(message.contains("cursor"), "{message}"),
        other => panic!("a bad cursor is Invalid, got {other:?}"),
    }
}

fn workflow(id: &str, name: &str) -> Workflow {
    serde_json::from_value(json!({
        "id": id,
        "name": name,
        "steps": [ { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ] } ]
    }))
    .expect("workflow fixture")
}

/// Drafts overwrite, versions are immutable, META uses optimistic concurrency.
pub async fn definitions<S: DefinitionStore + ?Sized>(store: &S) {
    let id = unique("wf");
    assert_eq!(store.get_draft(&id).await.expect("get_draft"), None);
    // Drafts may be invalid: any JSON.
    store
        .put_draft(&id, &json!({ "id": id, "steps": "not yet" }), T0)
        .await
        .expect("put_draft");
    let draft = json!({ "id": id, "name": "second" });
    store
        .put_draft(&id, &draft, T0 + 1)
        .await
        .expect("put_draft");
    assert_eq!(store.get_draft(&id).await.expect("get_draft"), Some(draft));

    let v1 = workflow(&id, "one");
    store.put_version(&v1, 1).await.expect("put_version");
    let again = store.put_version(&workflow(&id, "changed"), 1).await;
    assert!(
        matches!(again, Err(StoreError::Conflict(_))),
        "versions are immutable, got {again:?}"
    );
    store
        .put_version(&workflow(&id, "two"), 2)
        .await
        .expect("put_version");
    assert_eq!(store.get_version(&id, 1).await.expect("get"), Some(v1));
    assert_eq!(
        store
            .get_version(&id, 2)
            .await
            .expect("get")
            .map(|w| w.name),
        Some("two".to_string())
    );
    assert_eq!(store.get_version(&id, 3).await.expect("get"), None);

    assert_eq!(store.get_meta(&id).await.expect("get_meta"), None);
    let meta = WorkflowMeta {
        id: id.clone(),
        active: false,
        latest_version: 1,
        webhook_token: Some("t0k3n".into()),
        updated_at: T0,
        ..Default::default()
    };
    store.put_meta(&meta, None).await.expect("put_meta");
    let exists = store.put_meta(&meta, None).await;
    assert!(
        matches!(exists, Err(StoreError::Conflict(_))),
        "None means must not exist, got {exists:?}"
    );
    let activated = WorkflowMeta {
        active: true,
        active_version: Some(2),
        latest_version: 2,
        updated_at: T0 + 10,
        ..meta.clone()
    };
    store
        .put_meta(&activated, Some(T0))
        .await
        .expect("put_meta with the right updatedAt");
    let stale = store
        .put_meta(
            &WorkflowMeta {
                active: false,
                updated_at: T0 + 20,
                ..meta.clone()
            },
            Some(T0),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(_))),
        "a stale updatedAt loses, got {stale:?}"
    );
    assert_eq!(
        store.get_meta(&id).await.expect("get_meta"),
        Some(activated.clone())
    );
    let missing = store
        .put_meta(
            &WorkflowMeta {
                id: unique("wf"),
                ..Default::default()
            },
            Some(T0),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::Conflict(_))),
        "{missing:?}"
    );

    let other = unique("wf");
    store
        .put_meta(
            &WorkflowMeta {
                id: other.clone(),
                ..Default::default()
            },
            None,
        )
        .await
        .expect("put_meta");
    let metas = store.list_metas().await.expect("list_metas");
    let ids: Vec<&str> = metas.iter().map(|m| m.id.as_str()).collect();
    assert!(
        ids.contains(&id.as_str()) && ids.contains(&other.as_str()),
        "{ids:?}"
    );
    assert!(metas.contains(&activated));

    store.delete_workflow(&id).await.expect("delete_workflow");
    assert_eq!(store.get_draft(&id).await.expect("get"), None);
    assert_eq!(store.get_version(&id, 1).await.expect("get"), None);
    assert_eq!(store.get_version(&id, 2).await.expect("get"), None);
    assert_eq!(store.get_meta(&id).await.expect("get"), None);
    assert!(store.get_meta(&other).await.expect("get").is_some());
}

// ---------------------------------------------------------------------------------------------
// Records

/// create / replay / exists / get / update-merge / delete / query.
pub async fn records<S: RecordStore + ?Sized>(store: &S) {
    let col = unique("orders");
    let data = json!({ "sku": "A-1", "qty": 2, "tags": ["x"] });
    assert_eq!(
        store
            .create(&col, "o1", &data, "exec1/save")
            .await
            .expect("create"),
        RecordCreate::Created(data.clone())
    );
    assert_eq!(
        store
            .create(&col, "o1", &json!({ "sku": "changed" }), "exec1/save")
            .await
            .expect("create"),
        RecordCreate::Replayed(data.clone()),
        "the same idempotency key replays the stored record"
    );
    assert_eq!(
        store
            .create(&col, "o1", &json!({ "sku": "B" }), "exec2/save")
            .await
            .expect("create"),
        RecordCreate::Exists,
        "another create of the same id"
    );
    assert_eq!(
        store.get(&col, "o1").await.expect("get"),
        Some(data.clone())
    );
    assert_eq!(store.get(&col, "nope").await.expect("get"), None);

    let merged = store
        .update(&col, "o1", &json!({ "qty": 3, "note": "rush" }))
        .await
        .expect("update");
    let expected = json!({ "sku": "A-1", "qty": 3, "tags": ["x"], "note": "rush" });
    assert_eq!(merged, expected, "shallow merge");
    assert_eq!(store.get(&col, "o1").await.expect("get"), Some(expected));
    let missing = store.update(&col, "nope", &json!({ "a": 1 })).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "update of a missing record, got {missing:?}"
    );

    for id in ["o3", "o2", "o5", "o4"] {
        store
            .create(&col, id, &json!({ "id": id }), &format!("k/{id}"))
            .await
            .expect("create");
    }
    store
        .create(&unique("other"), "o0", &json!({}), "k")
        .await
        .expect("create elsewhere");
    let ids = |rows: Vec<(String, Value)>| rows.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.query(&col, None, 100).await.expect("query")),
        ["o1", "o2", "o3", "o4", "o5"],
        "ordered by id, only this collection"
    );
    let first = store.query(&col, None, 2).await.expect("query");
    assert_eq!(first[1].1, json!({ "id": "o2" }));
    assert_eq!(ids(first), ["o1", "o2"]);
    assert_eq!(
        ids(store.query(&col, Some("o2"), 2).await.expect("query")),
        ["o3", "o4"]
    );
    assert!(
        store
            .query(&col, Some("o5"), 2)
            .await
            .expect("query")
            .is_empty()
    );

    assert!(store.delete(&col, "o1").await.expect("delete"));
    assert!(
        !store.delete(&col, "o1").await.expect("delete"),
        "already gone"
    );
    assert_eq!(store.get(&col, "o1").await.expect("get"), None);
    assert_eq!(
        store
            .create(&col, "o1", &json!({ "new": true }), "exec3/save")
            .await
            .expect("create"),
        RecordCreate::Created(json!({ "new": true })),
        "a deleted id can be created again"
    );
}

// ---------------------------------------------------------------------------------------------
// Payload limit

/// Items over 400 KB are refused with `TooLarge`, and nothing is written.
pub async fn payload_limit<S>(store: &S)
where
    S: ExecutionStore + RecordStore + DefinitionStore + ?Sized,
{
    let big = big_string(TOO_LARGE);
    let workflow = unique("wf");

    // Execution with a huge input: refused, and its dedupe key is not taken either.
    let mut huge = execution(&execution_id(T0), &workflow, T0);
    huge.input = json!({ "blob": big });
    let key = DedupeKey {
        key: format!("{workflow}#k"),
        expires_at: T0 + 86_400_000,
    };
    expect_too_large(store.create_execution(&huge, Some(&key)).await, "execution");
    assert_eq!(store.get_execution(&huge.id).await.expect("get"), None);
    let small = execution(&execution_id(T0 + 1), &workflow, T0 + 1);
    assert_eq!(
        store
            .create_execution(&small, Some(&key))
            .await
            .expect("create"),
        CreateOutcome::Created,
        "the refused create did not take the dedupe key"
    );

    // Step output too large: the claim stays as it was.
    let claim = step("a", StepStatus::Running, 1, Some(T0 + 30_000));
    store
        .claim_step(&small.id, &claim, T0)
        .await
        .expect("claim");
    let mut done = step("a", StepStatus::Succeeded, 1, None);
    done.output = json!(big);
    expect_too_large(store.finish_step(&small.id, &done).await, "step");
    assert_eq!(
        store.get_step(&small.id, "a").await.expect("get"),
        Some(claim),
        "a refused finish leaves the claim"
    );
    let mut huge_claim = step("b", StepStatus::Running, 1, Some(T0));
    huge_claim.input = json!(big);
    expect_too_large(store.claim_step(&small.id, &huge_claim, T0).await, "claim");
    assert_eq!(store.get_step(&small.id, "b").await.expect("get"), None);

    // Execution output too large: the execution is unchanged.
    let update = ExecutionUpdate {
        status: ExecutionStatus::Succeeded,
        output: Some(json!(big)),
        error: None,
        finished_at: Some(T0 + 2),
    };
    expect_too_large(store.update_execution(&small.id, &update).await, "update");
    assert_eq!(
        store
            .get_execution(&small.id)
            .await
            .expect("get")
            .map(|e| e.status),
        Some(ExecutionStatus::Queued)
    );

    // Iteration result too large: not counted.
    store
        .init_loop(&small.id, "each", &loop_state(3, 1), &loop_items(3))
        .await
        .expect("init_loop");
    expect_too_large(
        store
            .count_iteration(&small.id, "each", 0, &json!(big))
            .await,
        "iteration",
    );
    assert_eq!(
        store
            .get_loop(&small.id, "each")
            .await
            .expect("get")
            .map(|l| l.remaining),
        Some(3)
    );
    assert!(
        store
            .list_iterations(&small.id, "each")
            .await
            .expect("list")
            .is_empty()
    );

    // Records and drafts.
    let col = unique("blobs");
    expect_too_large(
        store.create(&col, "r1", &json!({ "blob": big }), "k").await,
        "record",
    );
    assert_eq!(store.get(&col, "r1").await.expect("get"), None);
    store
        .create(&col, "r2", &json!({ "a": 1 }), "k2")
        .await
        .expect("create");
    expect_too_large(
        store.update(&col, "r2", &json!({ "blob": big })).await,
        "record update",
    );
    assert_eq!(
        store.get(&col, "r2").await.expect("get"),
        Some(json!({ "a": 1 }))
    );
    expect_too_large(
        store
            .put_draft(&workflow, &json!({ "blob": big }), T0)
            .await,
        "draft",
    );
    assert_eq!(store.get_draft(&workflow).await.expect("get"), None);

    // Just under the limit is fine.
    let fits = big_string(300 * 1024);
    store
        .create(&col, "r3", &json!({ "blob": fits }), "k3")
        .await
        .expect("a 300 KB record fits");
}

// ---------------------------------------------------------------------------------------------
// Retention

/// What a backend with per-item expiry (DynamoDB TTL) shows of an execution's items.
#[async_trait]
pub trait RetentionProbe: Send + Sync {
    /// Every item of the execution: its sort key and its expiry (epoch seconds), if any.
    async fn expiries(&self, execution_id: &str) -> Vec<(String, Option<i64>)>;
}

/// Every item of an execution (EXEC, STEP#, LOOP#, ITER#) carries the same expiry: the
/// execution's start plus the retention.
pub async fn retention_marks_every_item<S, P>(store: &S, probe: &P, retention_days: u32)
where
    S: ExecutionStore + ?Sized,
    P: RetentionProbe + ?Sized,
{
    let id = execution_id(T0);
    create(store, &execution(&id, &unique("wf"), T0)).await;
    let claim = step("a", StepStatus::Running, 1, Some(T0 + 30_000));
    store.claim_step(&id, &claim, T0).await.expect("claim");
    let mut done = step("a", StepStatus::Succeeded, 1, None);
    done.started_at = T0 + 5_000;
    store.finish_step(&id, &done).await.expect("finish");
    store
        .init_loop(&id, "each", &loop_state(2, 1), &loop_items(2))
        .await
        .expect("init_loop");
    store
        .count_iteration(&id, "each", 1, &json!("r"))
        .await
        .expect("count");
    let items = probe.expiries(&id).await;
    assert!(
        items.len() >= 4,
        "EXEC, STEP, LOOP and ITER items: {items:?}"
    );
    let expected = T0 / 1000 + i64::from(retention_days) * 86_400;
    for (sk, expiry) in &items {
        assert_eq!(
            *expiry,
            Some(expected),
            "{sk} expires with its execution (start + {retention_days} days)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Nesting

/// A value nested exactly `depth` levels (objects and arrays alternating), as deep as the engine
/// accepts at its entry points (`wf_core::json_depth::MAX_JSON_DEPTH`).
pub fn nested_value(depth: usize) -> Value {
    let mut v = json!("leaf");
    for level in 0..depth {
        v = if level % 2 == 0 {
            json!([v])
        } else {
            json!({ "k": v })
        };
    }
    v
}

/// Every value accepted at the entry points can be written and read back: an execution's input
/// and output, a step's input and output, a record, each nested at the bound, through get and
/// list alike (the stores wrap values in records; none of those wrappers may push a value past
/// what their decoder reads).
pub async fn deep_values_round_trip<S>(store: &S)
where
    S: ExecutionStore + RecordStore + ?Sized,
{
    use wf_core::json_depth::{MAX_JSON_DEPTH, value_depth};
    let deep = nested_value(MAX_JSON_DEPTH);
    assert_eq!(value_depth(&deep), MAX_JSON_DEPTH);
    let workflow = unique("wf");
    let id = execution_id(T0);
    let mut record = execution(&id, &workflow, T0);
    record.input = deep.clone();
    create(store, &record).await;
    let read = store
        .get_execution(&id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(read.input, deep, "the input reads back");

    let mut claim = step("a", StepStatus::Running, 1, Some(T0 + 30_000));
    claim.input = deep.clone();
    store.claim_step(&id, &claim, T0).await.expect("claim");
    let mut done = step("a", StepStatus::Succeeded, 1, None);
    done.input = deep.clone();
    done.output = deep.clone();
    assert!(store.finish_step(&id, &done).await.expect("finish"));
    let got = store
        .get_step(&id, "a")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!((got.input, got.output), (deep.clone(), deep.clone()));
    let steps = store.list_steps(&id).await.expect("list steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].output, deep);

    let update = ExecutionUpdate {
        status: ExecutionStatus::Succeeded,
        output: Some(deep.clone()),
        error: None,
        finished_at: Some(T0 + 5),
    };
    assert!(store.update_execution(&id, &update).await.expect("update"));
    let query = ExecutionQuery {
        workflow_id: Some(workflow.clone()),
        limit: 10,
        ..ExecutionQuery::default()
    };
    let page = store.list_executions(&query).await.expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        (&page.items[0].input, &page.items[0].output),
        (&deep, &deep),
        "listing reads both back"
    );

    let col = unique("deep");
    store
        .create(
            &col,
            "r1",
            &json!({ "v": nested_value(MAX_JSON_DEPTH - 1) }),
            "exec/deep",
        )
        .await
        .expect("create record");
    assert_eq!(
        store.get(&col, "r1").await.expect("get record"),
        Some(json!({ "v": nested_value(MAX_JSON_DEPTH - 1) }))
    );
}
