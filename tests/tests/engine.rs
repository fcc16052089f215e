//! Table-driven end-to-end engine tests: every step type and every failure path, on each
//! backend (a real SQLite file; DynamoDB + SQS + EventBridge on moto_server), real worker loops,
//! and wiremock as the HTTP peer and the LLM.

use serde_json::{Value, json};
use wf_core::execution::{ExecutionStatus, StepStatus};
use wf_tests::harness::{Backend, QueueMode, TestEngine, step};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn wf(steps: Value) -> Value {
    json!({
        "id": "t", "name": "test",
        "config": { "backoffMs": 10, "timeoutMs": 20000, "variables": { "threshold": 100 } },
        "steps": steps
    })
}

fn start(next: &str) -> Value {
    json!({ "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": next })
}

async fn engine(server: &MockServer, backend: Backend) -> TestEngine {
    TestEngine::on(backend, QueueMode::Clean, &server.uri()).await
}

/// Each scenario runs on both backends: `local::<name>` (SQLite) and `aws::<name>` (DynamoDB +
/// SQS + EventBridge on moto_server), with the same assertions.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Local).await
                }
            )*
        }
        mod aws {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Aws).await
                }
            )*
        }
    };
}

async fn condition_routes_to_the_first_true_branch_and_output_completes(backend: Backend) {
    let server = MockServer::start().await;
    let e = engine(&server, backend).await;
    let w = wf(json!([
        start("check"),
        { "id": "check", "type": "condition",
          "branches": [ { "if": "{{ input.amount > vars.threshold }}", "next": "big" } ], "else": "small" },
        { "id": "big", "type": "output", "output": { "size": "big", "amount": "{{ input.amount }}" } },
        { "id": "small", "type": "output", "output": { "size": "small" } }
    ]));
    let big = e.run(w.clone(), json!({ "amount": 150 })).await;
    assert_eq!(big.execution.status, ExecutionStatus::Succeeded);
    assert_eq!(
        big.execution.output,
        json!({ "size": "big", "amount": 150 })
    );
    assert_eq!(step(&big, "check").output, json!({ "branch": 0 }));
    assert_eq!(step(&big, "start").output, json!({ "amount": 150 }));
    assert!(big.steps.iter().all(|s| s.path != "small"));
    let small = e.run(w, json!({ "amount": 5 })).await;
    assert_eq!(small.execution.output, json!({ "size": "small" }));
    assert_eq!(step(&small, "check").output, json!({ "branch": "else" }));
    e.shutdown().await;
}

async fn condition_with_no_match_and_no_else_completes_with_null(backend: Backend) {
    let server = MockServer::start().await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("check"),
                { "id": "check", "type": "condition", "branches": [ { "if": "{{ input.x == 1 }}", "next": "out" } ] },
                { "id": "out", "type": "output", "output": 1 }])),
            json!({ "x": 2 }),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded);
    assert_eq!(v.execution.output, Value::Null);
    assert_eq!(step(&v, "check").output, json!({ "branch": null }));
    e.shutdown().await;
}

async fn http_action_sends_the_rendered_request_with_an_idempotency_key(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sales"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "ok": true })))
        .expect(1)
        .mount(&server)
        .await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("notify"),
                { "id": "notify", "type": "action", "action": "http.request",
                  "params": { "method": "POST", "url": format!("{}/sales", server.uri()),
                              "json": { "text": "Order {{ input.id }}", "amount": "{{ input.amount }}" } },
                  "next": "done" },
                { "id": "done", "type": "output", "output": { "status": "{{ steps.notify.output.status }}" } }])),
            json!({ "id": "A1", "amount": 3 }),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    assert_eq!(v.execution.output, json!({ "status": 200 }));
    let req = &server.received_requests().await.unwrap()[0];
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body, json!({ "text": "Order A1", "amount": 3 }));
    let key = req
        .headers
        .get("idempotency-key")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(key, format!("{}/notify", v.execution.id));
    assert_eq!(step(&v, "notify").input["json"]["amount"], json!(3));
    e.shutdown().await;
}

async fn retry_then_succeed(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(path("/flaky"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(path("/flaky"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(1)))
        .mount(&server)
        .await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("call"),
                { "id": "call", "type": "action", "action": "http.request",
                  "params": { "url": format!("{}/flaky", server.uri()) } }])),
            json!({}),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    let call = step(&v, "call");
    assert_eq!(call.attempts, 3);
    assert_eq!(call.status, StepStatus::Succeeded);
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    e.shutdown().await;
}

async fn retries_exhausted_fails_the_execution_with_the_error(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(path("/down"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("call"),
                { "id": "call", "type": "action", "action": "http.request",
                  "params": { "url": format!("{}/down", server.uri()) },
                  "retry": { "maxRetries": 2, "backoffMs": 5, "backoffMultiplier": 2.0 } }])),
            json!({}),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Failed);
    let call = step(&v, "call");
    assert_eq!((call.attempts, call.status), (3, StepStatus::Failed));
    assert_eq!(call.error.as_ref().unwrap().code, "http.status");
    let err = v.execution.error.as_ref().unwrap();
    assert!(err.message.contains("call"), "{err:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    e.shutdown().await;
}

async fn on_error_routes_after_the_last_attempt_and_exposes_the_error(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(path("/down"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("call"),
                { "id": "call", "type": "action", "action": "http.request",
                  "params": { "url": format!("{}/down", server.uri()) },
                  "retry": { "maxRetries": 1 }, "onError": "fallback", "next": "ok" },
                { "id": "ok", "type": "output", "output": "ok" },
                { "id": "fallback", "type": "output", "output": { "failed": "{{ steps.call.error.code }}" } }])),
            json!({}),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    assert_eq!(v.execution.output, json!({ "failed": "http.status" }));
    assert_eq!(step(&v, "call").attempts, 2);
    e.shutdown().await;
}

async fn timeout_mid_step_times_the_execution_out(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(5)))
        .mount(&server)
        .await;
    let e = engine(&server, backend).await;
    let mut w = wf(json!([start("call"),
        { "id": "call", "type": "action", "action": "http.request", "params": { "url": format!("{}/slow", server.uri()) } }]));
    w["config"]["timeoutMs"] = json!(700);
    let t0 = std::time::Instant::now();
    let v = e.run(w, json!({})).await;
    assert_eq!(v.execution.status, ExecutionStatus::TimedOut, "{v:#?}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(4),
        "the step was not cut at the deadline"
    );
    assert_eq!(step(&v, "call").status, StepStatus::TimedOut);
    assert_eq!(
        v.execution.error.as_ref().unwrap().code,
        "timeout.execution"
    );
    e.shutdown().await;
}

async fn step_timeout_is_a_retryable_failure(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(3)))
        .mount(&server)
        .await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("call"),
                { "id": "call", "type": "action", "action": "http.request", "timeoutMs": 100,
                  "retry": { "maxRetries": 1 }, "params": { "url": format!("{}/slow", server.uri()) } }])),
            json!({}),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Failed, "{v:#?}");
    let call = step(&v, "call");
    assert_eq!(call.attempts, 2);
    assert_eq!(call.error.as_ref().unwrap().code, "timeout");
    e.shutdown().await;
}

fn loop_wf(concurrency: u32, items: &str) -> Value {
    wf(json!([start("each"),
        { "id": "each", "type": "loop", "items": items, "concurrency": concurrency,
          "steps": [
            { "id": "double", "type": "condition", "branches": [ { "if": "{{ item > 2 }}", "next": "big" } ], "else": "small" },
            { "id": "big", "type": "output", "output": { "i": "{{ index }}", "v": "{{ item * 2 }}" } },
            { "id": "small", "type": "output", "output": { "i": "{{ index }}", "v": "{{ item }}" } }
          ], "next": "done" },
        { "id": "done", "type": "output", "output": "{{ steps.each.output }}" }]))
}

async fn loops_keep_item_order_at_any_concurrency(backend: Backend) {
    let server = MockServer::start().await;
    let e = engine(&server, backend).await;
    let items: Vec<i64> = (0..25).collect();
    let expected: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, &x)| json!({ "i": i, "v": if x > 2 { x * 2 } else { x } }))
        .collect();
    for c in [1, 4, 30] {
        let v = e
            .run(loop_wf(c, "{{ input.items }}"), json!({ "items": items }))
            .await;
        assert_eq!(
            v.execution.status,
            ExecutionStatus::Succeeded,
            "c={c} {v:#?}"
        );
        assert_eq!(v.execution.output, Value::Array(expected.clone()), "c={c}");
        assert_eq!(step(&v, "each[24]/big").status, StepStatus::Succeeded);
        assert_eq!(step(&v, "each[1]/small").output, json!({ "i": 1, "v": 1 }));
    }
    e.shutdown().await;
}

/// What a run reads: a step reached inline after a step this task ran is not read before it
/// runs (a pure step's put-if-absent tells whether it was stored), a record this task stored
/// or read is not read again for a template, and a loop's counter is not read after a count
/// (the count answers the state it left; the slot's next iteration, run inline, checks the
/// loop with it). And what it writes for a loop: the counts of a slot's inline iterations
/// together.
async fn a_run_reads_neither_what_it_wrote_nor_an_inline_step_before_running_it(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/order"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "total": 250 })))
        .mount(&server)
        .await;
    let e = engine(&server, backend).await;
    let workflow = wf(json!([start("fetch"),
        { "id": "fetch", "type": "action", "action": "http.request",
          "params": { "url": format!("{}/order", server.uri()) }, "next": "check" },
        { "id": "check", "type": "condition",
          "branches": [ { "if": "{{ steps.fetch.output.body.total > 100 }}", "next": "each" } ] },
        { "id": "each", "type": "loop", "items": "{{ input.items }}", "concurrency": 2,
          "steps": [ { "id": "double", "type": "output", "output": "{{ item * steps.fetch.output.body.total }}" } ],
          "next": "done" },
        { "id": "done", "type": "output",
          "output": { "total": "{{ steps.fetch.output.body.total }}", "lines": "{{ steps.each.output }}" } }]));
    let items: Vec<i64> = (1..=20).collect();
    let v = e.run(workflow, json!({ "items": items })).await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    let lines: Vec<i64> = items.iter().map(|i| i * 250).collect();
    assert_eq!(v.execution.output, json!({ "total": 250, "lines": lines }));

    let step_reads = e.counting.step_reads.lock().unwrap().clone();
    // Three tasks run this: `fetch` (then `check` and `each` inline), and the two slots'
    // first iterations, each running its slot's next nine inline (the last one `done` too).
    // `fetch` is read before its task claims it and once by each slot's task for the
    // iterations' template (then kept); not for `check`, `done` or later iterations.
    assert_eq!(step_reads.get("fetch").copied(), Some(3), "{step_reads:?}");
    // A delivered task reads its step before claiming it; steps reached inline are not read.
    assert_eq!(step_reads.get("each[0]/double").copied(), Some(1));
    assert_eq!(step_reads.get("each[1]/double").copied(), Some(1));
    for p in ["check", "done", "each[2]/double", "each[19]/double"] {
        assert_eq!(step_reads.get(p), None, "{p} was read: {step_reads:?}");
    }
    let loop_reads = e.counting.loop_reads.lock().unwrap().clone();
    let each = loop_reads.get("each").copied().unwrap_or(0);
    // Read once by each slot's first (queued) iteration: a count answers the loop's state it
    // left, which the slot's next iteration, run inline, goes on with. It was twice per
    // iteration (42) before.
    assert_eq!(
        each, 2,
        "loop counter reads for 20 iterations: {loop_reads:?}"
    );
    // Each slot's task holds the counts of the iterations it runs inline and writes its ten
    // in one call (`count_iterations`): 2 calls for 20 iterations (20 before).
    let count_calls = e.counting.count_calls.lock().unwrap().clone();
    assert_eq!(
        count_calls.get("each").copied(),
        Some(2),
        "calls that counted 20 iterations: {count_calls:?}"
    );
    e.shutdown().await;
}

async fn empty_loop_outputs_an_empty_array_and_moves_on(backend: Backend) {
    let server = MockServer::start().await;
    let e = engine(&server, backend).await;
    let v = e
        .run(loop_wf(3, "{{ input.items }}"), json!({ "items": [] }))
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded);
    assert_eq!(v.execution.output, json!([]));
    e.shutdown().await;
}

async fn loop_items_must_be_an_array(backend: Backend) {
    let server = MockServer::start().await;
    let e = engine(&server, backend).await;
    let v = e
        .run(loop_wf(3, "{{ input.items }}"), json!({ "items": 5 }))
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Failed);
    let err = step(&v, "each").error.clone().unwrap();
    assert_eq!(err.code, "loop.items");
    assert!(err.message.contains("number"), "{err:?}");
    e.shutdown().await;
}

async fn nested_loops_see_their_own_item_and_index(backend: Backend) {
    let server = MockServer::start().await;
    let e = engine(&server, backend).await;
    let w = wf(json!([start("rows"),
        { "id": "rows", "type": "loop", "items": "{{ input.rows }}", "concurrency": 2,
          "steps": [
            { "id": "label", "type": "output", "output": "{{ item.name }}" },
          ], "next": "grid" },
        { "id": "grid", "type": "loop", "items": "{{ input.rows }}", "concurrency": 2,
          "steps": [
            { "id": "cells", "type": "loop", "items": "{{ item.cells }}", "concurrency": 3,
              "steps": [ { "id": "cell", "type": "output", "output": "{{ index }}:{{ item }}" } ] }
          ] }
    ]));
    let v = e
        .run(w, json!({ "rows": [ { "name": "a", "cells": [1, 2] }, { "name": "b", "cells": [] }, { "name": "c", "cells": [7] } ] }))
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    assert_eq!(step(&v, "rows").output, json!(["a", "b", "c"]));
    assert_eq!(
        step(&v, "grid").output,
        json!([["0:1", "1:2"], [], ["0:7"]])
    );
    assert_eq!(step(&v, "grid[2]/cells[0]/cell").output, json!("0:7"));
    e.shutdown().await;
}

async fn a_failed_iteration_fails_the_loop_which_follows_on_error(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(path("/item/2"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!("ok")))
        .mount(&server)
        .await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("each"),
                { "id": "each", "type": "loop", "items": "{{ input.items }}", "concurrency": 1, "onError": "recover",
                  "steps": [ { "id": "get", "type": "action", "action": "http.request", "retry": { "maxRetries": 0 },
                               "params": { "url": format!("{}/item/{{{{ item }}}}", server.uri()) } } ],
                  "next": "done" },
                { "id": "done", "type": "output", "output": "all good" },
                { "id": "recover", "type": "output", "output": { "loopError": "{{ steps.each.error.code }}" } }])),
            json!({ "items": [0, 1, 2, 3, 4] }),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    assert_eq!(v.execution.output, json!({ "loopError": "http.status" }));
    assert_eq!(step(&v, "each").status, StepStatus::Failed);
    // concurrency 1: the iterations after the failed one never ran
    assert!(
        v.steps.iter().all(|s| s.path != "each[3]/get"),
        "{:?}",
        v.steps.iter().map(|s| &s.path).collect::<Vec<_>>()
    );
    e.shutdown().await;
}

async fn undefined_variables_fail_the_step_naming_the_variable(backend: Backend) {
    let server = MockServer::start().await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("check"),
                { "id": "check", "type": "condition", "branches": [ { "if": "{{ input.amout > 1 }}", "next": "out" } ] },
                { "id": "out", "type": "output", "output": 1 }])),
            json!({ "amount": 2 }),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Failed);
    let err = step(&v, "check").error.clone().unwrap();
    assert_eq!(err.code, "template.undefined");
    assert!(err.message.contains("input.amout"), "{err:?}");
    assert_eq!(step(&v, "check").attempts, 1, "pure steps are not retried");
    e.shutdown().await;
}

async fn conditions_must_yield_booleans(backend: Backend) {
    let server = MockServer::start().await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("check"),
                { "id": "check", "type": "condition", "branches": [ { "if": "{{ input.amount }}", "next": "out" } ] },
                { "id": "out", "type": "output", "output": 1 }])),
            json!({ "amount": 2 }),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Failed);
    assert_eq!(
        step(&v, "check").error.clone().unwrap().code,
        "template.type"
    );
    e.shutdown().await;
}

async fn secrets_are_used_but_never_recorded(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(path("/echo"))
        .respond_with(|req: &wiremock::Request| {
            let auth = req
                .headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            ResponseTemplate::new(200).set_body_json(json!({ "youSent": auth }))
        })
        .mount(&server)
        .await;
    // SAFETY: set before any worker reads it; the name is unique to this test.
    unsafe { std::env::set_var("WF_TEST_SECRET_TOKEN", "hunter2-very-secret") };
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("call"),
                { "id": "call", "type": "action", "action": "http.request",
                  "params": { "url": format!("{}/echo", server.uri()),
                              "headers": { "Authorization": "Bearer {{ secrets.WF_TEST_SECRET_TOKEN }}" } },
                  "next": "out" },
                { "id": "out", "type": "output", "output": { "echo": "{{ steps.call.output.body.youSent }}" } }])),
            json!({}),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    let all = serde_json::to_string(&v).unwrap();
    assert!(!all.contains("hunter2"), "secret leaked: {all}");
    assert_eq!(
        step(&v, "call").input["headers"]["Authorization"],
        json!("Bearer ***")
    );
    assert_eq!(
        server.received_requests().await.unwrap()[0]
            .headers
            .get("authorization")
            .unwrap(),
        "Bearer hunter2-very-secret"
    );
    e.shutdown().await;
}

async fn a_missing_secret_is_a_clear_step_error(backend: Backend) {
    let server = MockServer::start().await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("out"), { "id": "out", "type": "output", "output": "{{ secrets.WF_TEST_SURELY_UNSET }}" }])),
            json!({}),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Failed);
    let err = step(&v, "out").error.clone().unwrap();
    assert_eq!(err.code, "secret.missing");
    assert!(err.message.contains("WF_TEST_SURELY_UNSET"));
    e.shutdown().await;
}

async fn llm_step_parses_json_and_records_usage(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "tiny", "choices": [ { "message": { "role": "assistant", "content": "{\"category\": \"billing\"}" } } ],
            "usage": { "prompt_tokens": 12, "completion_tokens": 5 }
        })))
        .mount(&server)
        .await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("triage"),
                { "id": "triage", "type": "llm", "model": "tiny", "prompt": "Classify: {{ input.text }}",
                  "responseFormat": "json",
                  "jsonSchema": { "type": "object", "required": ["category"], "properties": { "category": { "type": "string" } } },
                  "next": "route" },
                { "id": "route", "type": "condition",
                  "branches": [ { "if": "{{ steps.triage.output.json.category == 'billing' }}", "next": "billing" } ] },
                { "id": "billing", "type": "output", "output": { "team": "billing", "tokens": "{{ steps.triage.output.usage.inputTokens }}" } }])),
            json!({ "text": "I was charged twice" }),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    assert_eq!(
        v.execution.output,
        json!({ "team": "billing", "tokens": 12 })
    );
    let t = step(&v, "triage");
    assert_eq!(t.input["prompt"], json!("Classify: I was charged twice"));
    assert_eq!(
        t.output["usage"],
        json!({ "inputTokens": 12, "outputTokens": 5 })
    );
    e.shutdown().await;
}

async fn llm_invalid_json_is_retried_with_the_raw_text_kept(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "tiny", "choices": [ { "message": { "content": "not json at all" } } ],
            "usage": { "prompt_tokens": 1, "completion_tokens": 1 }
        })))
        .mount(&server)
        .await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("ask"),
                { "id": "ask", "type": "llm", "model": "tiny", "prompt": "x", "responseFormat": "json", "retry": { "maxRetries": 1 } }])),
            json!({}),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Failed);
    let s = step(&v, "ask");
    assert_eq!(s.attempts, 2);
    let err = s.error.clone().unwrap();
    assert_eq!(err.code, "llm.invalid_json");
    assert_eq!(err.details.unwrap()["raw"], json!("not json at all"));
    e.shutdown().await;
}

async fn records_round_trip_and_create_is_idempotent_per_step(backend: Backend) {
    let server = MockServer::start().await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("create"),
                { "id": "create", "type": "action", "action": "record.create",
                  "params": { "collection": "customers", "id": "{{ input.id }}", "data": { "name": "{{ input.name }}" } }, "next": "update" },
                { "id": "update", "type": "action", "action": "record.update",
                  "params": { "collection": "customers", "id": "{{ input.id }}", "data": { "vip": true } }, "next": "get" },
                { "id": "get", "type": "action", "action": "record.get",
                  "params": { "collection": "customers", "id": "{{ input.id }}" }, "next": "out" },
                { "id": "out", "type": "output", "output": "{{ steps.get.output.data }}" }])),
            json!({ "id": "c1", "name": "Ann" }),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    assert_eq!(v.execution.output, json!({ "name": "Ann", "vip": true }));
    // a second execution creating the same id fails clearly
    let again = e
        .run(
            wf(json!([start("create"),
                { "id": "create", "type": "action", "action": "record.create",
                  "params": { "collection": "customers", "id": "c1", "data": {} } }])),
            json!({}),
        )
        .await;
    assert_eq!(again.execution.status, ExecutionStatus::Failed);
    assert_eq!(
        step(&again, "create").error.clone().unwrap().code,
        "record.exists"
    );
    e.shutdown().await;
}

async fn a_path_without_output_completes_with_null(backend: Backend) {
    let server = MockServer::start().await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("emit"),
                { "id": "emit", "type": "action", "action": "event.emit", "params": { "type": "thing.happened", "detail": { "x": 1 } } }])),
            json!({}),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded);
    assert_eq!(v.execution.output, Value::Null);
    assert_eq!(step(&v, "emit").output["type"], json!("thing.happened"));
    e.shutdown().await;
}

async fn oversized_step_output_fails_cleanly_without_a_half_written_record(backend: Backend) {
    let server = MockServer::start().await;
    let big = "x".repeat(500 * 1024);
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string(big))
        .mount(&server)
        .await;
    let e = engine(&server, backend).await;
    let v = e
        .run(
            wf(json!([start("call"),
                { "id": "call", "type": "action", "action": "http.request", "params": { "url": format!("{}/big", server.uri()) } }])),
            json!({}),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Failed);
    let s = step(&v, "call");
    assert_eq!(s.error.clone().unwrap().code, "payload.too_large");
    assert_eq!(s.output, Value::Null);
    e.shutdown().await;
}

async fn a_loop_larger_than_a_record_stores_a_summary_and_templates_read_every_result(
    backend: Backend,
) {
    let server = MockServer::start().await;
    let e = engine(&server, backend).await;
    // 150 items of ~1 KB: over what a loop record shows in full (64 KB), under the item limit.
    let pad = "x".repeat(1000);
    let items: Vec<Value> = (0..150).map(|i| json!({ "i": i, "pad": pad })).collect();
    let w = wf(json!([start("each"),
        { "id": "each", "type": "loop", "items": "{{ input.items }}", "concurrency": 10,
          "steps": [ { "id": "keep", "type": "output", "output": "{{ item }}" } ], "next": "done" },
        { "id": "done", "type": "output", "output": {
            "count": "{{ steps.each.output | length }}",
            "last": "{{ steps.each.output[149].i }}" } }
    ]));
    let v = e.run(w, json!({ "items": items })).await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    assert_eq!(v.execution.output, json!({ "count": 150, "last": 149 }));
    let each = step(&v, "each");
    assert_eq!(each.input["itemCount"], json!(150));
    assert_eq!(each.output["resultCount"], json!(150));
    assert_eq!(each.output["results"][0]["i"], json!(0));
    e.shutdown().await;
}

on_both_backends!(
    condition_routes_to_the_first_true_branch_and_output_completes,
    condition_with_no_match_and_no_else_completes_with_null,
    http_action_sends_the_rendered_request_with_an_idempotency_key,
    retry_then_succeed,
    retries_exhausted_fails_the_execution_with_the_error,
    on_error_routes_after_the_last_attempt_and_exposes_the_error,
    timeout_mid_step_times_the_execution_out,
    step_timeout_is_a_retryable_failure,
    loops_keep_item_order_at_any_concurrency,
    a_run_reads_neither_what_it_wrote_nor_an_inline_step_before_running_it,
    empty_loop_outputs_an_empty_array_and_moves_on,
    a_loop_larger_than_a_record_stores_a_summary_and_templates_read_every_result,
    loop_items_must_be_an_array,
    nested_loops_see_their_own_item_and_index,
    a_failed_iteration_fails_the_loop_which_follows_on_error,
    undefined_variables_fail_the_step_naming_the_variable,
    conditions_must_yield_booleans,
    secrets_are_used_but_never_recorded,
    a_missing_secret_is_a_clear_step_error,
    llm_step_parses_json_and_records_usage,
    llm_invalid_json_is_retried_with_the_raw_text_kept,
    records_round_trip_and_create_is_idempotent_per_step,
    a_path_without_output_completes_with_null,
    oversized_step_output_fails_cleanly_without_a_half_written_record,
);
