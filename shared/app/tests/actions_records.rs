//! `record.*` and `event.emit` over the real SQLite store and local event bus (on a temp file).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use ulid::Ulid;
use wf_app::actions::{BuiltinActions, OutboundPolicy};
use wf_core::StepError;
use wf_core::ports::{ActionContext, ActionRunner, Clock, PlatformEvent};
use wf_local::{LocalEventBus, SqliteStore};

const NOW: i64 = 1_764_000_000_000;

struct FixedClock;

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        NOW
    }
}

struct Fixture {
    runner: BuiltinActions,
    bus: LocalEventBus,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("wf.db")).expect("store opens");
    let bus = store.event_bus();
    let runner = BuiltinActions::with_policy(
        Arc::new(store),
        Arc::new(bus.clone()),
        Arc::new(FixedClock),
        OutboundPolicy::aws(),
    )
    .expect("runner");
    Fixture {
        runner,
        bus,
        _dir: dir,
    }
}

/// Execution ids are ULIDs; this one started at a known time.
fn exec_id() -> String {
    Ulid::from_parts(1_763_000_000_000, 7).to_string()
}

fn ctx(path: &str) -> ActionContext {
    let execution_id = exec_id();
    ActionContext {
        idempotency_key: format!("{execution_id}/{path}"),
        execution_id,
        path: path.into(),
        attempt: 1,
        timeout: Duration::from_secs(5),
        event_chain: Vec::new(),
        event_limits: Default::default(),
    }
}

impl Fixture {
    async fn run(&self, action: &str, params: Value, path: &str) -> Result<Value, StepError> {
        self.runner.run(action, params, &ctx(path)).await
    }

    async fn events(&self) -> Vec<PlatformEvent> {
        self.bus
            .list_events(0, 100)
            .await
            .expect("events")
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }
}

#[tokio::test]
async fn create_then_get_and_the_created_event() {
    let f = fixture();
    let out = f
        .run(
            "record.create",
            json!({ "collection": "orders", "id": "o-1", "data": { "amount": 250 } }),
            "save",
        )
        .await
        .expect("created");
    assert_eq!(
        out,
        json!({ "collection": "orders", "id": "o-1", "data": { "amount": 250 } })
    );

    let got = f
        .run(
            "record.get",
            json!({ "collection": "orders", "id": "o-1" }),
            "read",
        )
        .await
        .expect("get");
    assert_eq!(
        got,
        json!({ "collection": "orders", "id": "o-1", "data": { "amount": 250 }, "found": true })
    );

    let events = f.events().await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.id, format!("{}/save#created", exec_id()));
    assert_eq!(e.event_type, "orders.created");
    assert_eq!(e.source, "wf.records");
    assert_eq!(e.time, NOW);
    assert_eq!(
        e.detail,
        json!({ "collection": "orders", "id": "o-1", "data": { "amount": 250 } })
    );
}

#[tokio::test]
async fn a_redelivered_create_succeeds_with_the_same_output_and_event_id() {
    let f = fixture();
    let params = json!({ "collection": "orders", "id": "o-1", "data": { "amount": 1 } });
    let first = f
        .run("record.create", params.clone(), "save")
        .await
        .expect("first");
    let again = f
        .run("record.create", params, "save")
        .await
        .expect("replayed");
    assert_eq!(first, again);
    let events = f.events().await;
    // Published again (the first attempt may have died before publishing), never as a
    // second distinct event.
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e.id == events[0].id), "{events:?}");
}

#[tokio::test]
async fn create_on_an_id_made_by_another_step_fails_without_retry() {
    let f = fixture();
    f.run(
        "record.create",
        json!({ "collection": "orders", "id": "o-1", "data": {} }),
        "first",
    )
    .await
    .expect("created");
    let err = f
        .run(
            "record.create",
            json!({ "collection": "orders", "id": "o-1", "data": { "other": true } }),
            "second",
        )
        .await
        .expect_err("exists");
    assert_eq!(err.code, "record.exists");
    assert!(!err.retryable);
    assert_eq!(f.events().await.len(), 1, "no event for the failed create");
}

#[tokio::test]
async fn create_without_id_uses_a_ulid_stable_across_redeliveries() {
    let f = fixture();
    let params = json!({ "collection": "leads", "data": { "name": "Ada" } });
    let first = f
        .run("record.create", params.clone(), "each[3]/save")
        .await
        .expect("first");
    let id = first["id"].as_str().expect("id").to_owned();
    let ulid = Ulid::from_string(&id).expect("a ULID");
    assert_eq!(
        ulid.timestamp_ms(),
        1_763_000_000_000,
        "sorts by execution start"
    );
    let again = f
        .run("record.create", params.clone(), "each[3]/save")
        .await
        .expect("replay");
    assert_eq!(again["id"], first["id"]);
    let other = f
        .run("record.create", params, "each[4]/save")
        .await
        .expect("other step");
    assert_ne!(other["id"], first["id"]);
}

#[tokio::test]
async fn get_of_a_missing_record() {
    let f = fixture();
    let got = f
        .run(
            "record.get",
            json!({ "collection": "orders", "id": "nope" }),
            "read",
        )
        .await
        .expect("get");
    assert_eq!(
        got,
        json!({ "collection": "orders", "id": "nope", "data": null, "found": false })
    );
}

#[tokio::test]
async fn update_merges_top_level_keys_and_publishes() {
    let f = fixture();
    f.run(
        "record.create",
        json!({ "collection": "orders", "id": "o-1", "data": { "amount": 1, "status": "new" } }),
        "save",
    )
    .await
    .expect("created");
    let out = f
        .run(
            "record.update",
            json!({ "collection": "orders", "id": "o-1", "data": { "status": "paid", "paidAt": 5 } }),
            "pay",
        )
        .await
        .expect("updated");
    assert_eq!(
        out,
        json!({ "collection": "orders", "id": "o-1",
                "data": { "amount": 1, "status": "paid", "paidAt": 5 } })
    );
    let events = f.events().await;
    let updated = events
        .iter()
        .find(|e| e.event_type == "orders.updated")
        .expect("updated event");
    assert_eq!(updated.id, format!("{}/pay#updated", exec_id()));
    assert_eq!(updated.detail["data"]["status"], "paid");

    let err = f
        .run(
            "record.update",
            json!({ "collection": "orders", "id": "ghost", "data": { "x": 1 } }),
            "pay2",
        )
        .await
        .expect_err("missing");
    assert_eq!(err.code, "record.not_found");
    assert!(!err.retryable);
}

#[tokio::test]
async fn delete_reports_and_publishes_only_when_something_was_deleted() {
    let f = fixture();
    f.run(
        "record.create",
        json!({ "collection": "orders", "id": "o-1", "data": { "amount": 3 } }),
        "save",
    )
    .await
    .expect("created");
    let out = f
        .run(
            "record.delete",
            json!({ "collection": "orders", "id": "o-1" }),
            "drop",
        )
        .await
        .expect("deleted");
    assert_eq!(
        out,
        json!({ "collection": "orders", "id": "o-1", "deleted": true })
    );
    let out = f
        .run(
            "record.delete",
            json!({ "collection": "orders", "id": "o-1" }),
            "drop",
        )
        .await
        .expect("second delete");
    assert_eq!(out["deleted"], false);
    let deleted: Vec<PlatformEvent> = f
        .events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "orders.deleted")
        .collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].id, format!("{}/drop#deleted", exec_id()));
    assert_eq!(
        deleted[0].detail,
        json!({ "collection": "orders", "id": "o-1", "data": { "amount": 3 } })
    );
}

#[tokio::test]
async fn query_pages_by_id() {
    let f = fixture();
    for i in 1..=5 {
        f.run(
            "record.create",
            json!({ "collection": "items", "id": format!("i-{i}"), "data": { "n": i } }),
            &format!("c{i}"),
        )
        .await
        .expect("created");
    }
    f.run(
        "record.create",
        json!({ "collection": "other", "id": "x", "data": {} }),
        "cx",
    )
    .await
    .expect("created");

    let page = f
        .run(
            "record.query",
            json!({ "collection": "items", "limit": 2 }),
            "q",
        )
        .await
        .expect("page 1");
    assert_eq!(
        page,
        json!({ "items": [ { "id": "i-1", "data": { "n": 1 } }, { "id": "i-2", "data": { "n": 2 } } ],
                "next": "i-2" })
    );
    let page = f
        .run(
            "record.query",
            json!({ "collection": "items", "limit": 2, "after": "i-2" }),
            "q",
        )
        .await
        .expect("page 2");
    assert_eq!(page["next"], "i-4");
    let page = f
        .run(
            "record.query",
            json!({ "collection": "items", "limit": 2, "after": "i-4" }),
            "q",
        )
        .await
        .expect("page 3");
    assert_eq!(
        page,
        json!({ "items": [ { "id": "i-5", "data": { "n": 5 } } ], "next": null })
    );
    // Exactly a full last page: no empty page after it.
    let page = f
        .run(
            "record.query",
            json!({ "collection": "items", "after": null }),
            "q",
        )
        .await
        .expect("default limit");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(page["next"], Value::Null);
}

#[tokio::test]
async fn event_emit_publishes_with_a_deterministic_id() {
    let f = fixture();
    let out = f
        .run(
            "event.emit",
            json!({ "type": "order.flagged", "detail": { "orderId": 7 } }),
            "flag",
        )
        .await
        .expect("emitted");
    let id = format!("{}/flag#event", exec_id());
    assert_eq!(out, json!({ "id": id, "type": "order.flagged" }));
    let again = f
        .run(
            "event.emit",
            json!({ "type": "order.flagged", "detail": { "orderId": 7 } }),
            "flag",
        )
        .await
        .expect("redelivered");
    assert_eq!(again, out);
    f.run("event.emit", json!({ "type": "ping" }), "ping")
        .await
        .expect("no detail");

    // The redelivery published the same id again; the bus keeps one event per id.
    let events = f.events().await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].id, id);
    assert_eq!(events[0].source, "wf.workflow");
    assert_eq!(events[0].detail, json!({ "orderId": 7 }));
    assert_eq!(events[1].detail, json!({}), "detail defaults to {{}}");
}

#[tokio::test]
async fn params_are_checked_against_the_catalog() {
    let f = fixture();
    let err = f
        .run(
            "record.create",
            json!({ "collection": "bad collection!", "id": "", "extra": 1 }),
            "save",
        )
        .await
        .expect_err("invalid");
    assert_eq!(err.code, "action.params");
    assert!(!err.retryable);
    let details = err.details.expect("details");
    let pointers: Vec<&str> = details["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert!(pointers.contains(&"/collection"), "{pointers:?}");
    assert!(pointers.contains(&"/id"), "{pointers:?}");
    // Missing `data` and the unknown key are reported at the params root.
    assert!(
        pointers.iter().filter(|p| p.is_empty()).count() >= 2,
        "{pointers:?}"
    );
    assert!(f.events().await.is_empty());

    let err = f
        .run("event.emit", json!({ "type": "has space" }), "e")
        .await
        .expect_err("invalid type");
    assert_eq!(err.code, "action.params");
}

#[tokio::test]
async fn the_engines_own_collections_are_out_of_reach() {
    // `_chat` holds the AI conversations of the management API: no workflow reads or writes it.
    let f = fixture();
    for (action, params) in [
        (
            "record.get",
            json!({ "collection": "_chat", "id": "orders" }),
        ),
        (
            "record.create",
            json!({ "collection": "_chat", "id": "orders", "data": {} }),
        ),
        (
            "record.update",
            json!({ "collection": "_chat", "id": "orders", "data": {} }),
        ),
        (
            "record.delete",
            json!({ "collection": "_chat", "id": "orders" }),
        ),
    ] {
        let err = f.run(action, params, "steal").await.unwrap_err();
        assert!(!err.retryable, "{action}: {err:?}");
        assert!(err.message.contains("collection"), "{action}: {err:?}");
    }
}

fn chained(path: &str, chain: &[&str], max_depth: u32) -> ActionContext {
    ActionContext {
        event_chain: chain.iter().map(|s| s.to_string()).collect(),
        event_limits: wf_core::event_chain::EventLimits {
            max_depth,
            max_revisits: 3,
        },
        ..ctx(path)
    }
}

#[tokio::test]
async fn published_events_carry_the_causation_chain_through_the_local_bus() {
    let f = fixture();
    let c = chained("tick", &["origin", "looper"], 8);
    f.runner
        .run("event.emit", json!({ "type": "loop.tick" }), &c)
        .await
        .expect("emitted");
    let c = chained("save", &["origin", "looper"], 8);
    f.runner
        .run(
            "record.create",
            json!({ "collection": "ticks", "id": "t1", "data": {} }),
            &c,
        )
        .await
        .expect("created");
    let events = f.events().await;
    assert_eq!(events.len(), 2, "{events:?}");
    for e in &events {
        assert_eq!(e.chain, ["origin", "looper"], "{e:?}");
    }
}

#[tokio::test]
async fn event_emit_past_the_depth_limit_fails_without_retry_and_publishes_nothing() {
    let f = fixture();
    let c = chained("tick", &["a", "b", "c"], 3);
    let err = f
        .runner
        .run("event.emit", json!({ "type": "loop.tick" }), &c)
        .await
        .expect_err("refused");
    assert_eq!(err.code, "event.loop");
    assert!(!err.retryable);
    assert!(
        err.message.contains("a -> b -> c") && err.message.contains("depth limit of 3"),
        "{}",
        err.message
    );
    let details = err.details.expect("details");
    assert_eq!(details["reason"], "depth");
    assert_eq!(details["depth"], 3);
    assert_eq!(details["limit"], 3);
    // A chain revisiting its own workflow as often as allowed: refused too.
    let c = chained("tick", &["a", "a", "a"], 8);
    let err = f
        .runner
        .run("event.emit", json!({ "type": "loop.tick" }), &c)
        .await
        .expect_err("refused");
    assert_eq!(err.details.expect("details")["reason"], "revisit");
    assert!(f.events().await.is_empty());
}

#[tokio::test]
async fn record_writes_past_the_limit_stand_but_publish_nothing() {
    let f = fixture();
    let c = chained("save", &["a", "b"], 2);
    let out = f
        .runner
        .run(
            "record.create",
            json!({ "collection": "ticks", "id": "t1", "data": { "n": 1 } }),
            &c,
        )
        .await
        .expect("written");
    let why = out["eventSuppressed"].as_str().expect("suppressed");
    assert!(why.contains("depth limit of 2"), "{why}");
    let got = f
        .run(
            "record.get",
            json!({ "collection": "ticks", "id": "t1" }),
            "get",
        )
        .await
        .expect("get");
    assert_eq!(got["found"], true);
    assert!(f.events().await.is_empty());
}
