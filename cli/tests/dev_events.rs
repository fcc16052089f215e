//! `wf dev` platform events end to end: `POST /events` starts every active subscribed workflow
//! whose filter is true, once per event id; record.* and event.emit actions publish through the
//! same bus ("when a customer is created ..."); the schedule trigger is registered and shown.

mod dev_support;

use std::time::Duration;

use dev_support::{DevProcess, step};
use serde_json::{Value, json};

fn subscriber(id: &str, event: &str, filter: Option<&str>, active: bool) -> Value {
    let mut trigger = json!({ "type": "event", "event": event });
    if let Some(f) = filter {
        trigger["filter"] = json!(f);
    }
    json!({
        "id": id,
        "config": { "active": active },
        "steps": [
            { "id": "start", "type": "start", "triggers": [trigger], "next": "out" },
            { "id": "out", "type": "output", "output": { "seen": "{{ input }}", "eventId": "{{ execution.trigger.eventId }}" } }
        ]
    })
}

/// Publish a marker event and wait for its subscriber: the bus is routed in order, so every
/// event published before the marker has been routed by then.
async fn drain(dev: &DevProcess, n: usize) {
    let r = dev
        .post(
            "/events",
            json!({ "type": "test.marker", "detail": { "n": n }, "id": format!("marker-{n}") }),
        )
        .await;
    r.expect(202);
    dev.wait_executions("marker", n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_starts_each_subscribed_active_workflow_whose_filter_is_true_once_per_id() {
    let dev = DevProcess::new()
        .workflow(subscriber(
            "big-orders",
            "order.created",
            Some("{{ event.detail.amount > 10 }}"),
            true,
        ))
        .workflow(subscriber("all-orders", "order.created", None, true))
        .workflow(subscriber(
            "small-orders",
            "order.created",
            Some("{{ event.detail.amount < 5 }}"),
            true,
        ))
        .workflow(subscriber("asleep", "order.created", None, false))
        .workflow(subscriber("payments", "order.paid", None, true))
        .workflow(subscriber(
            "broken-filter",
            "order.created",
            Some("{{ event.detail.customer.tier == 'gold' }}"),
            true,
        ))
        .workflow(subscriber(
            "by-source",
            "order.created",
            Some("{{ event.source == 'shop' }}"),
            true,
        ))
        .workflow({
            let mut w = subscriber(
                "by-vars",
                "order.created",
                Some("{{ event.detail.amount > vars.min }}"),
                true,
            );
            w["config"]["variables"] = json!({ "min": 40 });
            w
        })
        .workflow(subscriber("marker", "test.marker", None, true))
        .start();

    let r = dev
        .post(
            "/events",
            json!({ "type": "order.created", "detail": { "amount": 50 }, "id": "evt-1" }),
        )
        .await;
    assert_eq!(
        r.expect(202),
        &json!({ "id": "evt-1", "type": "order.created" })
    );
    // The same event again (a retry by the sender): nothing new.
    let r = dev
        .post(
            "/events",
            json!({ "type": "order.created", "detail": { "amount": 50 }, "id": "evt-1" }),
        )
        .await;
    r.expect(202);
    drain(&dev, 1).await;

    for id in ["big-orders", "all-orders"] {
        let list = dev.executions_of(id).await;
        assert_eq!(list.len(), 1, "{id}: one execution per event id");
        let e = dev.wait_execution(list[0]["id"].as_str().unwrap()).await;
        assert_eq!(e["status"], json!("succeeded"), "{e:#}");
        assert_eq!(
            e["input"],
            json!({ "amount": 50 }),
            "the input is the event's detail"
        );
        assert_eq!(
            e["trigger"],
            json!({ "type": "event", "eventId": "evt-1", "eventType": "order.created", "chain": [id] }),
            "an event from outside starts a causation chain at the workflow it starts"
        );
        assert_eq!(e["output"]["eventId"], json!("evt-1"));
    }
    assert_eq!(
        dev.executions_of("by-vars").await.len(),
        1,
        "filters see vars"
    );
    for id in [
        "small-orders",
        "asleep",
        "payments",
        "broken-filter",
        "by-source",
    ] {
        assert!(
            dev.executions_of(id).await.is_empty(),
            "{id} must not start"
        );
    }

    // Another event (no id: one is made) starts them again; a small one starts small-orders.
    let r = dev
        .post(
            "/events",
            json!({ "type": "order.created", "detail": { "amount": 20 } }),
        )
        .await;
    let made = r.expect(202)["id"].as_str().unwrap().to_string();
    assert_eq!(made.len(), 26, "a ULID: {made}");
    dev.post("/events", json!({ "type": "order.created", "detail": { "amount": 1 }, "id": "evt-3", "source": "shop" }))
        .await
        .expect(202);
    dev.post("/events", json!({ "type": "order.paid", "id": "evt-5" }))
        .await
        .expect(202);
    drain(&dev, 2).await;
    assert_eq!(dev.executions_of("big-orders").await.len(), 2);
    assert_eq!(dev.executions_of("all-orders").await.len(), 3);
    let small = dev.executions_of("small-orders").await;
    assert_eq!(small.len(), 1);
    assert_eq!(small[0]["trigger"]["eventId"], json!("evt-3"));
    assert_eq!(
        dev.executions_of("by-source").await.len(),
        1,
        "filters see event.source"
    );
    assert_eq!(
        dev.executions_of("by-vars").await.len(),
        1,
        "20 and 1 are not over vars.min"
    );
    let paid = dev.executions_of("payments").await;
    assert_eq!(paid.len(), 1);
    let e = dev.wait_execution(paid[0]["id"].as_str().unwrap()).await;
    assert_eq!(e["input"], json!({}), "no detail is an empty object");
    assert!(dev.executions_of("asleep").await.is_empty());

    // Activation counts at routing time.
    let r = dev
        .patch("/workflows/asleep/config", json!({ "active": true }))
        .await;
    r.expect(200);
    dev.post(
        "/events",
        json!({ "type": "order.created", "detail": { "amount": 7 }, "id": "evt-4" }),
    )
    .await
    .expect(202);
    dev.wait_executions("asleep", 1).await;

    // Bad events: 400/413 in the API's shape, nothing published.
    dev.post("/events", json!({ "type": "order created!", "detail": {} }))
        .await
        .expect_error(400, "invalid_event");
    dev.post("/events", json!({ "type": "" }))
        .await
        .expect_error(400, "invalid_event");
    dev.post("/events", json!({ "detail": {} }))
        .await
        .expect_error(400, "invalid_request");
    dev.post(
        "/events",
        json!({ "type": "order.created", "colour": "red" }),
    )
    .await
    .expect_error(400, "invalid_request");
    dev.post_raw(
        "/events",
        "application/json",
        b"{\"type\": \"order.created\"".to_vec(),
        &[],
    )
    .await
    .expect_error(400, "invalid_json");
    let big = json!({ "type": "order.created", "detail": { "pad": "x".repeat(300 * 1024) } });
    dev.post("/events", big)
        .await
        .expect_error(413, "too_large");
    drain(&dev, 3).await;
    assert_eq!(dev.executions_of("all-orders").await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_customer_is_created_another_workflow_starts() {
    let dev = DevProcess::new()
        // Creates (and later updates) a customer record.
        .workflow(json!({
            "id": "signup",
            "config": { "active": true },
            "steps": [
                { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ], "next": "create" },
                { "id": "create", "type": "action", "action": "record.create",
                  "params": { "collection": "customers", "id": "{{ input.id }}",
                              "data": { "name": "{{ input.name }}", "country": "{{ input.country }}" } },
                  "next": "touch" },
                { "id": "touch", "type": "action", "action": "record.update",
                  "params": { "collection": "customers", "id": "{{ input.id }}", "data": { "verified": true } } }
            ]
        }))
        // "When a customer is created" (in Germany): welcome them, then tell the bus.
        .workflow(json!({
            "id": "welcome",
            "config": { "active": true },
            "steps": [
                { "id": "start", "type": "start",
                  "triggers": [ { "type": "event", "event": "customers.created", "filter": "{{ event.detail.data.country == 'DE' }}" } ],
                  "next": "announce" },
                { "id": "announce", "type": "action", "action": "event.emit",
                  "params": { "type": "customer.welcomed", "detail": { "id": "{{ input.id }}", "name": "{{ input.data.name }}" } },
                  "next": "out" },
                { "id": "out", "type": "output", "output": { "welcomed": "{{ input.id }}" } }
            ]
        }))
        .workflow(subscriber("all-customers", "customers.created", None, true))
        .workflow(subscriber("updates", "customers.updated", None, true))
        .workflow(subscriber("audit", "customer.welcomed", None, true))
        .start();

    let r = dev
        .post(
            "/workflows/signup/executions?wait=10",
            json!({ "input": { "id": "c1", "name": "Anna", "country": "DE" } }),
        )
        .await;
    let signup = r.expect(200).clone();
    assert_eq!(signup["status"], json!("succeeded"), "{signup:#}");
    assert_eq!(step(&signup, "create")["output"]["id"], json!("c1"));

    // customers.created -> welcome -> event.emit customer.welcomed -> audit.
    let welcome = dev.wait_executions("welcome", 1).await;
    let welcome = dev.wait_execution(welcome[0]["id"].as_str().unwrap()).await;
    assert_eq!(welcome["status"], json!("succeeded"), "{welcome:#}");
    assert_eq!(
        welcome["input"],
        json!({ "collection": "customers", "id": "c1", "data": { "name": "Anna", "country": "DE" } })
    );
    assert_eq!(welcome["trigger"]["eventType"], json!("customers.created"));
    assert_eq!(welcome["output"], json!({ "welcomed": "c1" }));
    let emitted = step(&welcome, "announce")["output"]["id"].clone();
    let audit = dev.wait_executions("audit", 1).await;
    let audit = dev.wait_execution(audit[0]["id"].as_str().unwrap()).await;
    assert_eq!(audit["input"], json!({ "id": "c1", "name": "Anna" }));
    assert_eq!(audit["trigger"]["eventId"], emitted);
    let updates = dev.wait_executions("updates", 1).await;
    let updated = dev.wait_execution(updates[0]["id"].as_str().unwrap()).await;
    assert_eq!(updated["input"]["data"]["verified"], json!(true));

    // A customer elsewhere: the event is routed (all-customers sees it), the filter says no.
    let r = dev
        .post(
            "/workflows/signup/executions?wait=10",
            json!({ "input": { "id": "c2", "name": "Bo", "country": "FR" } }),
        )
        .await;
    r.expect(200);
    dev.wait_executions("all-customers", 2).await;
    dev.wait_executions("updates", 2).await;
    assert_eq!(dev.executions_of("welcome").await.len(), 1);
    // A rerun of the whole signup fails at record.create (the id exists) and emits nothing new.
    let r = dev
        .post(
            &format!(
                "/executions/{}/rerun?wait=10",
                signup["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.expect(200)["status"], json!("failed"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dev.executions_of("all-customers").await.len(), 2);
    assert_eq!(dev.executions_of("audit").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_trigger_is_registered_and_shown_with_its_next_run() {
    // Fires on January 1st only: never during the test (see `a_schedule_fires...` below).
    let dev = DevProcess::new()
        .workflow(json!({
            "id": "yearly",
            "config": { "active": true },
            "steps": [
                { "id": "start", "type": "start", "triggers": [ { "type": "schedule", "cron": "0 0 1 1 *" }, { "type": "manual" } ], "next": "out" },
                { "id": "out", "type": "output", "output": { "at": "{{ input.scheduledTime | default('manual') }}" } }
            ]
        }))
        .start();
    let line = dev.wait_stdout_line(&["schedule", "0 0 1 1 *"]);
    assert!(
        line.contains("next run") && line.contains("-01-01T00:00:00"),
        "{line}"
    );
    dev.wait_stdout_line(&["yearly", "v1 active"]);
    dev.wait_stdout_line(&["manual", "/workflows/yearly/executions"]);
    assert!(dev.executions_of("yearly").await.is_empty());
}

/// The reported loop: a workflow triggered by `loop.tick` that emits `loop.tick` ran 13,498
/// times in 20 s. With `WF_EVENT_MAX_DEPTH=3` it runs exactly 3 times per outside event; the
/// third emit fails naming the limit, and `/metrics` counts the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_re_emitting_its_own_event_stops_at_the_depth_limit() {
    let dev = DevProcess::new()
        .env("WF_EVENT_MAX_DEPTH", "3")
        .workflow(json!({
            "id": "looper",
            "config": { "active": true },
            "steps": [
                { "id": "start", "type": "start", "triggers": [ { "type": "event", "event": "loop.tick" } ], "next": "tick" },
                { "id": "tick", "type": "action", "action": "event.emit", "params": { "type": "loop.tick" } }
            ]
        }))
        .start();
    dev.wait_workflow("looper", "active", |w| {
        w["workflow"]["active"] == json!(true)
    })
    .await;
    dev.post("/events", json!({ "type": "loop.tick" }))
        .await
        .expect(202);
    dev.wait_executions("looper", 3).await;
    // Long enough for a loop that did not stop to show it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs = dev.executions_of("looper").await;
    assert_eq!(runs.len(), 3, "{runs:#?}");
    let mut failed = Vec::new();
    for r in &runs {
        let e = dev.wait_execution(r["id"].as_str().unwrap()).await;
        if e["status"] == json!("failed") {
            failed.push(e);
        }
    }
    assert_eq!(failed.len(), 1, "only the last one fails: {failed:#?}");
    let error = &step(&failed[0], "tick")["error"];
    assert_eq!(error["code"], json!("event.loop"), "{error:#}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("looper -> looper -> looper") && message.contains("depth limit of 3"),
        "{message}"
    );
    let metrics = dev.get("/metrics").await;
    let text = metrics.expect(200).as_str().expect("metrics text");
    assert!(
        text.contains("wf_events_refused_total{reason=\"depth\"} 1"),
        "{text}"
    );
}

/// An event that reaches a subscribed workflow and starts nothing is listed with why
/// (`GET /workflows/{id}/rejected-events`), once per event id, newest first, paged; a false
/// filter is not a rejection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_events_are_listed_with_why() {
    let dev = DevProcess::new()
        .workflow(subscriber(
            "broken-filter",
            "order.created",
            Some("{{ event.detail.customer.tier == 'gold' }}"),
            true,
        ))
        .workflow(subscriber(
            "small-orders",
            "order.created",
            Some("{{ event.detail.amount < 5 }}"),
            true,
        ))
        .workflow({
            let mut w = subscriber("typed", "order.created", None, true);
            w["steps"][0]["inputSchema"] = json!({
                "type": "object", "required": ["amount"],
                "properties": { "amount": { "type": "number" } }
            });
            w
        })
        .workflow(subscriber("marker", "test.marker", None, true))
        .start();

    for (id, amount) in [
        ("evt-a", json!("lots")),
        ("evt-a", json!("lots")),
        ("evt-b", json!(50)),
    ] {
        dev.post(
            "/events",
            json!({ "type": "order.created", "detail": { "amount": amount }, "id": id, "source": "shop" }),
        )
        .await
        .expect(202);
        // Distinct event times: evt-b is the newest.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drain(&dev, 1).await;

    let typed = dev.get("/workflows/typed/rejected-events").await;
    let typed = typed.expect(200);
    let items = typed["items"].as_array().expect("items");
    assert_eq!(
        items.len(),
        1,
        "one per event id (evt-a twice), evt-b started: {typed:#}"
    );
    assert_eq!(items[0]["eventId"], json!("evt-a"));
    assert_eq!(items[0]["eventType"], json!("order.created"));
    assert_eq!(items[0]["source"], json!("shop"));
    assert_eq!(items[0]["reason"], json!("input"));
    let message = items[0]["message"].as_str().expect("message");
    assert!(message.contains("amount"), "names the field: {message}");
    assert!(
        items[0]["eventTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(typed["nextCursor"], json!(null));
    assert_eq!(
        dev.executions_of("typed").await.len(),
        1,
        "evt-b started it"
    );

    // The filter that cannot be evaluated: both events, newest first, one page at a time.
    let first = dev
        .get("/workflows/broken-filter/rejected-events?limit=1")
        .await;
    let first = first.expect(200).clone();
    assert_eq!(first["items"][0]["eventId"], json!("evt-b"));
    assert_eq!(first["items"][0]["reason"], json!("filter"));
    let message = first["items"][0]["message"].as_str().unwrap();
    assert!(message.contains("filter"), "{message}");
    let cursor = first["nextCursor"].as_str().expect("a next page");
    let second = dev
        .get(&format!(
            "/workflows/broken-filter/rejected-events?limit=1&cursor={cursor}"
        ))
        .await;
    let second = second.expect(200);
    assert_eq!(second["items"][0]["eventId"], json!("evt-a"));
    assert_eq!(second["nextCursor"], json!(null));

    // A false filter is not a rejection.
    let small = dev.get("/workflows/small-orders/rejected-events").await;
    assert_eq!(small.expect(200)["items"], json!([]));

    // Errors: unknown workflow, bad cursor, bad limit, unknown parameter.
    dev.get("/workflows/nope/rejected-events")
        .await
        .expect_error(404, "not_found");
    dev.get("/workflows/typed/rejected-events?cursor=zz")
        .await
        .expect_error(400, "invalid_cursor");
    dev.get("/workflows/typed/rejected-events?limit=0")
        .await
        .expect_error(400, "invalid_query");
    dev.get("/workflows/typed/rejected-events?colour=red")
        .await
        .expect_error(400, "invalid_query");
}
