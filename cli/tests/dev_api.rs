//! `wf dev` management API end to end: every route (as listed by /openapi.json), drafts,
//! validation, publish with its diff, activation and rollback, config, manual and test runs,
//! the executions list (filters, cursor pages, newest first), detail, cancel, rerun, API writes
//! refused for file-backed workflows, and file edits while running.

mod dev_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dev_support::{DevProcess, step, step_paths, write_file};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// start -> check (n > 0) -> pos | neg. `label` marks the version in the output.
fn signs(id: &str, label: &str) -> Value {
    json!({
        "id": id,
        "name": "Signs",
        "config": { "variables": { "label": label } },
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [ { "type": "manual" }, { "type": "webhook", "scheme": "none" } ],
              "inputSchema": { "type": "object", "required": ["n"], "properties": { "n": { "type": "number" } } },
              "next": "check" },
            { "id": "check", "type": "condition",
              "branches": [ { "if": "{{ input.n > 0 }}", "next": "pos" } ], "else": "neg" },
            { "id": "pos", "type": "output", "output": { "sign": "positive", "label": "{{ vars.label }}" } },
            { "id": "neg", "type": "output", "output": { "sign": "negative", "label": "{{ vars.label }}" } }
        ]
    })
}

async fn run_wait(dev: &DevProcess, id: &str, input: Value) -> Value {
    let r = dev
        .post(
            &format!("/workflows/{id}/executions?wait=10"),
            json!({ "input": input }),
        )
        .await;
    r.expect(200).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_and_unknown_routes_answer_api_errors() {
    let dev = DevProcess::new().start();
    let doc = dev.get("/openapi.json").await;
    let doc = doc.expect(200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let mut listed = BTreeSet::new();
    for (p, ops) in doc["paths"].as_object().expect("paths") {
        for m in ops.as_object().unwrap().keys() {
            listed.insert(format!("{} {p}", m.to_uppercase()));
        }
    }
    let expected: BTreeSet<String> = [
        "POST /hooks/{workflowId}/{token}",
        "POST /events",
        "GET /workflows",
        "POST /workflows",
        "GET /workflows/{id}",
        "PUT /workflows/{id}",
        "DELETE /workflows/{id}",
        "POST /workflows/{id}/validate",
        "POST /workflows/{id}/publish",
        "POST /workflows/{id}/activate",
        "POST /workflows/{id}/deactivate",
        "GET /workflows/{id}/config",
        "PATCH /workflows/{id}/config",
        "GET /workflows/{id}/versions",
        "GET /workflows/{id}/versions/{version}",
        "GET /workflows/{id}/rejected-events",
        "GET /executions/{id}/steps",
        "POST /workflows/{id}/webhook/rotate",
        "PUT /workflows/{id}/webhook/secrets",
        "POST /workflows/{id}/executions",
        "GET /workflows/{id}/executions",
        "GET /executions",
        "GET /executions/{id}",
        "POST /executions/{id}/cancel",
        "POST /executions/{id}/rerun",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let missing: Vec<&String> = expected.difference(&listed).collect();
    assert!(missing.is_empty(), "not in /openapi.json: {missing:?}");

    // Every listed route is served (none answers "no such route" or 405).
    for route in &listed {
        let (m, p) = route.split_once(' ').unwrap();
        let p = p
            .replace("{workflowId}", "nope")
            .replace("{id}", "nope")
            .replace("{token}", "t")
            .replace("{version}", "1");
        let req = dev
            .http
            .request(m.parse().unwrap(), dev.at(&p))
            .header("content-type", "application/json")
            .body("{}");
        let r = dev.send(req).await;
        assert!(
            r.status.as_u16() != 405 && !r.body.to_string().contains("no such route"),
            "{route}: {} {}",
            r.status,
            r.body
        );
    }

    dev.get("/nowhere").await.expect_error(404, "not_found");
    dev.get("/health").await.expect(200);
    // Path parameters that cannot be read are API errors too.
    dev.get("/workflows/%FF")
        .await
        .expect_error(400, "invalid_path");
    dev.post("/hooks/%FF/token", json!({}))
        .await
        .expect_error(400, "invalid_path");
    // A known path with a method it does not take: 405, still in the API's error shape, with
    // the methods the document gives it in `Allow`.
    let r = dev.delete("/executions").await;
    r.expect_error(405, "method_not_allowed");
    for (method, path, allow) in [
        ("DELETE", "/executions", "GET, HEAD"),
        ("POST", "/workflows/nope", "GET, HEAD, PUT, DELETE"),
        ("GET", "/cron", "POST"),
    ] {
        let r = dev
            .http
            .request(method.parse().unwrap(), dev.at(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
    }
    // A body that is not JSON: 415 in the error shape, as webhooks answer.
    let req = dev
        .http
        .post(dev.at("/cron"))
        .header("content-type", "text/plain")
        .body("every day at 9am");
    dev.send(req)
        .await
        .expect_error(415, "unsupported_media_type");
    // A URI over 8 KiB: 414 in the error shape, through the real HTTP server.
    dev.get(&format!("/executions?cursor={}", "a".repeat(9000)))
        .await
        .expect_error(414, "uri_too_long");
    // A required field left out is named by its JSON pointer.
    let r = dev.post("/cron", json!({})).await;
    assert_eq!(
        r.expect_error(400, "invalid_request")["details"]["pointer"],
        "/expression"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_publish_with_a_diff_and_activation_can_roll_back() {
    let dev = DevProcess::new().start();

    // Create: 201 with the draft's validation. The id must be valid and new.
    let r = dev.post("/workflows", signs("signs", "v1")).await;
    let body = r.expect(201);
    assert_eq!(body["validation"]["valid"], json!(true), "{body:#}");
    assert_eq!(body["workflow"]["latestVersion"], json!(0));
    assert_eq!(
        body["workflow"]["webhookUrl"],
        Value::Null,
        "the token comes with the first publish"
    );
    dev.post("/workflows", signs("signs", "v1"))
        .await
        .expect_error(409, "exists");
    dev.post("/workflows", signs("Bad Id", "v1"))
        .await
        .expect_error(422, "invalid_id");
    dev.post("/workflows", json!({ "steps": [] }))
        .await
        .expect_error(422, "missing_id");
    let r = dev
        .post_raw("/workflows", "application/json", b"{\"id\": ".to_vec(), &[])
        .await;
    assert!(r.expect_error(400, "invalid_json")["details"]["line"].is_number());
    let list = dev.get("/workflows").await;
    assert_eq!(list.expect(200).as_array().unwrap().len(), 1);
    assert_eq!(list.body[0]["name"], json!("Signs"));

    // Never published: no activation, no manual run (the draft can be tested).
    dev.post_empty("/workflows/signs/activate")
        .await
        .expect_error(409, "not_published");
    dev.patch("/workflows/signs/config", json!({ "active": true }))
        .await
        .expect_error(409, "not_published");
    dev.post(
        "/workflows/signs/executions",
        json!({ "input": { "n": 1 } }),
    )
    .await
    .expect_error(409, "not_published");
    dev.post_empty("/workflows/nope/activate")
        .await
        .expect_error(404, "not_found");

    // Validation reports every problem with a pointer; an invalid draft is kept but not published.
    let mut broken = signs("signs", "v1");
    broken["steps"][1]["else"] = json!("nowhere");
    broken["steps"][2]["output"]["label"] = json!("{{ vars.label ");
    let r = dev.post("/workflows/signs/validate", broken.clone()).await;
    let v = r.expect(200);
    assert_eq!(v["valid"], json!(false));
    let pointers: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pointer"].as_str().unwrap())
        .collect();
    assert!(pointers.len() >= 2, "every problem at once: {v:#}");
    assert!(
        pointers.iter().any(|p| p.starts_with("/steps/1"))
            && pointers.iter().any(|p| p.starts_with("/steps/2")),
        "{pointers:?}"
    );
    let r = dev.put("/workflows/signs", broken).await;
    assert_eq!(r.expect(200)["validation"]["valid"], json!(false));
    let r = dev.post_empty("/workflows/signs/publish").await;
    let err = r.expect_error(422, "invalid_workflow");
    assert!(
        err["details"]["problems"].as_array().unwrap().len() >= 2,
        "{err:#}"
    );
    let r = dev.post_empty("/workflows/signs/validate").await;
    assert_eq!(
        r.expect(200)["valid"],
        json!(false),
        "validates the stored draft"
    );
    dev.put("/workflows/signs", signs("other", "v1"))
        .await
        .expect_error(422, "id_mismatch");
    dev.put("/workflows/nope", signs("nope", "v1"))
        .await
        .expect_error(404, "not_found");

    // Version 1: every step is new.
    dev.put("/workflows/signs", signs("signs", "v1"))
        .await
        .expect(200);
    let r = dev.post_empty("/workflows/signs/publish").await;
    let p = r.expect(201);
    assert_eq!(p["version"], json!(1));
    assert_eq!(
        p["diff"]["addedSteps"],
        json!(["start", "check", "pos", "neg"])
    );
    assert_eq!(p["diff"]["changedSteps"], json!([]));
    assert!(p["workflow"]["webhookUrl"].as_str().is_some());
    // Publishing an unchanged draft makes no version.
    let r = dev.post_empty("/workflows/signs/publish").await;
    assert_eq!(r.expect(200)["unchanged"], json!(true));
    assert_eq!(r.body["version"], json!(1));

    // Version 2: one step and one config key changed.
    let mut v2 = signs("signs", "v2");
    v2["steps"][2]["output"]["extra"] = json!(true);
    dev.put("/workflows/signs", v2).await.expect(200);
    let p = dev.post_empty("/workflows/signs/publish").await;
    let p = p.expect(201);
    assert_eq!(p["version"], json!(2));
    assert_eq!(
        p["diff"],
        json!({ "addedSteps": [], "removedSteps": [], "changedSteps": ["pos"], "changedConfig": ["variables"] })
    );
    // Version 3: `neg` renamed (so `check` changes).
    let mut v3 = signs("signs", "v3");
    v3["steps"][3]["id"] = json!("negative");
    v3["steps"][1]["else"] = json!("negative");
    dev.put("/workflows/signs", v3).await.expect(200);
    let p = dev.post_empty("/workflows/signs/publish").await;
    let p = p.expect(201);
    assert_eq!(p["version"], json!(3));
    assert_eq!(
        p["diff"],
        json!({ "addedSteps": ["negative"], "removedSteps": ["neg"], "changedSteps": ["check", "pos"], "changedConfig": ["variables"] })
    );

    // Activate the latest; then roll back to version 1.
    let r = dev.post_empty("/workflows/signs/activate").await;
    let s = r.expect(200);
    assert_eq!(
        (s["active"].clone(), s["activeVersion"].clone()),
        (json!(true), json!(3))
    );
    assert_eq!(s["name"], json!("Signs"), "every summary carries the name");
    let e = run_wait(&dev, "signs", json!({ "n": 1 })).await;
    assert_eq!(
        (e["version"].clone(), e["output"]["label"].clone()),
        (json!(3), json!("v3"))
    );
    let r = dev
        .post("/workflows/signs/activate", json!({ "version": 1 }))
        .await;
    assert_eq!(r.expect(200)["activeVersion"], json!(1));
    let e = run_wait(&dev, "signs", json!({ "n": -1 })).await;
    assert_eq!(e["version"], json!(1));
    assert_eq!(e["output"], json!({ "sign": "negative", "label": "v1" }));
    let hook = dev.hook_path("signs").await;
    let r = dev
        .post(&format!("{hook}?wait=10"), json!({ "n": 2 }))
        .await;
    assert_eq!(
        r.expect(200)["version"],
        json!(1),
        "webhooks start the active version"
    );
    dev.post("/workflows/signs/activate", json!({ "version": 9 }))
        .await
        .expect_error(422, "unknown_version");
    dev.post("/workflows/signs/activate", json!({ "version": "x" }))
        .await
        .expect_error(400, "invalid_request");

    // Versions: listed with the active one marked; each is immutable and readable.
    let r = dev.get("/workflows/signs/versions").await;
    assert_eq!(
        r.expect(200)["versions"],
        json!([ { "version": 1, "active": true }, { "version": 2, "active": false }, { "version": 3, "active": false } ])
    );
    let r = dev.get("/workflows/signs/versions/2").await;
    assert_eq!(r.expect(200)["config"]["variables"]["label"], json!("v2"));
    dev.get("/workflows/signs/versions/9")
        .await
        .expect_error(404, "not_found");
    dev.get("/workflows/signs/versions/two")
        .await
        .expect_error(400, "invalid_path");

    // Publishing while active moves the live workflow to the new version.
    dev.put("/workflows/signs", signs("signs", "v4"))
        .await
        .expect(200);
    let p = dev.post_empty("/workflows/signs/publish").await;
    assert_eq!(p.expect(201)["workflow"]["activeVersion"], json!(4));

    // Deactivate: the webhook is gone; the API still runs the latest version by hand.
    let r = dev.post_empty("/workflows/signs/deactivate").await;
    assert_eq!(r.expect(200)["active"], json!(false));
    dev.post(&hook, json!({ "n": 1 }))
        .await
        .expect_error(404, "not_found");
    let e = run_wait(&dev, "signs", json!({ "n": 1 })).await;
    assert_eq!(e["version"], json!(4));

    // Delete: gone from the API (its executions stay until retention).
    let before = dev.executions_of("signs").await.len();
    assert_eq!(dev.delete("/workflows/signs").await.status.as_u16(), 204);
    dev.get("/workflows/signs")
        .await
        .expect_error(404, "not_found");
    dev.delete("/workflows/signs")
        .await
        .expect_error(404, "not_found");
    assert_eq!(dev.executions_of("signs").await.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_is_read_and_patched_on_the_draft_and_applies_when_published() {
    let dev = DevProcess::new().start();
    dev.post("/workflows", signs("cfg", "first"))
        .await
        .expect(201);
    dev.post_empty("/workflows/cfg/publish").await.expect(201);
    dev.post_empty("/workflows/cfg/activate").await.expect(200);

    let r = dev.get("/workflows/cfg/config").await;
    assert_eq!(
        r.expect(200),
        &json!({ "variables": { "label": "first" }, "active": true })
    );
    let r = dev
        .patch(
            "/workflows/cfg/config",
            json!({ "variables": { "label": "second" }, "timeoutMs": 20000 }),
        )
        .await;
    let b = r.expect(200);
    assert_eq!(
        b["config"],
        json!({ "variables": { "label": "second" }, "timeoutMs": 20000, "active": true })
    );
    assert_eq!(b["validation"]["valid"], json!(true));
    // Not live until published.
    let e = run_wait(&dev, "cfg", json!({ "n": 1 })).await;
    assert_eq!(e["output"]["label"], json!("first"));
    let p = dev.post_empty("/workflows/cfg/publish").await;
    let p = p.expect(201);
    assert_eq!(
        p["diff"]["changedConfig"],
        json!(["timeoutMs", "variables"])
    );
    let e = run_wait(&dev, "cfg", json!({ "n": 1 })).await;
    assert_eq!(
        (e["version"].clone(), e["output"]["label"].clone()),
        (json!(2), json!("second"))
    );

    // `active` applies at once.
    let r = dev
        .patch("/workflows/cfg/config", json!({ "active": false }))
        .await;
    assert_eq!(r.expect(200)["config"]["active"], json!(false));
    let r = dev.get("/workflows/cfg").await;
    assert_eq!(r.expect(200)["workflow"]["active"], json!(false));
    let r = dev
        .patch("/workflows/cfg/config", json!({ "active": true }))
        .await;
    assert_eq!(r.expect(200)["config"]["active"], json!(true));
    dev.patch("/workflows/cfg/config", json!({ "active": "yes" }))
        .await
        .expect_error(422, "invalid_config");
    dev.patch("/workflows/cfg/config", json!(["timeoutMs"]))
        .await
        .expect_error(400, "invalid_request");
    dev.patch("/workflows/nope/config", json!({ "timeoutMs": 1 }))
        .await
        .expect_error(404, "not_found");
    dev.get("/workflows/nope/config")
        .await
        .expect_error(404, "not_found");
    // An invalid config value is kept in the draft and reported, and publishing refuses it.
    let r = dev
        .patch("/workflows/cfg/config", json!({ "timeoutMs": "soon" }))
        .await;
    assert_eq!(r.expect(200)["validation"]["valid"], json!(false));
    dev.post_empty("/workflows/cfg/publish")
        .await
        .expect_error(422, "invalid_workflow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_runs_and_test_runs_of_the_draft() {
    let dev = DevProcess::new().start();
    dev.post("/workflows", signs("man", "published"))
        .await
        .expect(201);
    dev.post_empty("/workflows/man/publish").await.expect(201);
    // Not active: a manual run uses the latest published version.
    let r = dev
        .post("/workflows/man/executions", json!({ "input": { "n": 5 } }))
        .await;
    let id = r.expect(202)["executionId"].as_str().unwrap().to_string();
    let e = dev.wait_execution(&id).await;
    assert_eq!(
        e["output"],
        json!({ "sign": "positive", "label": "published" })
    );
    assert_eq!(e["trigger"], json!({ "type": "manual" }));

    // A changed draft runs only as a test run (?draft=true), pinned to a snapshot.
    dev.put("/workflows/man", signs("man", "draft"))
        .await
        .expect(200);
    let e = run_wait(&dev, "man", json!({ "n": 5 })).await;
    assert_eq!(e["output"]["label"], json!("published"));
    let r = dev
        .post(
            "/workflows/man/executions?draft=true&wait=10",
            json!({ "input": { "n": 5 } }),
        )
        .await;
    let e = r.expect(200);
    assert_eq!(e["output"]["label"], json!("draft"));
    assert_eq!(e["trigger"], json!({ "type": "test", "draft": true }));
    let snapshot = e["version"].as_u64().unwrap();
    assert!(
        snapshot >= 1 << 31,
        "a draft snapshot is not a published version: {snapshot}"
    );
    let r = dev.get("/workflows/man/versions").await;
    assert_eq!(r.expect(200)["versions"].as_array().unwrap().len(), 1);
    dev.get(&format!("/workflows/man/versions/{snapshot}"))
        .await
        .expect_error(404, "not_found");
    let e2 = dev.execution(&id).await;
    assert_eq!(e2["version"], json!(1));

    // An invalid draft cannot be tested; the published version still runs.
    let mut broken = signs("man", "broken");
    broken["steps"][1]["else"] = json!("nowhere");
    dev.put("/workflows/man", broken).await.expect(200);
    let r = dev
        .post(
            "/workflows/man/executions?draft=true",
            json!({ "input": { "n": 1 } }),
        )
        .await;
    assert!(
        !r.expect_error(422, "invalid_workflow")["details"]["problems"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    run_wait(&dev, "man", json!({ "n": 1 })).await;

    // Errors start nothing.
    let before = dev.executions_of("man").await.len();
    let r = dev
        .post(
            "/workflows/man/executions",
            json!({ "input": { "n": "five", "m": 1 } }),
        )
        .await;
    let err = r.expect_error(422, "invalid_input");
    assert_eq!(err["details"]["violations"][0]["pointer"], json!("/n"));
    let r = dev
        .post("/workflows/man/executions", json!({ "input": {} }))
        .await;
    r.expect_error(422, "invalid_input");
    let r = dev
        .post_raw(
            "/workflows/man/executions",
            "application/json",
            b"{input}".to_vec(),
            &[],
        )
        .await;
    r.expect_error(400, "invalid_json");
    dev.post("/workflows/man/executions", json!({ "inputs": {} }))
        .await
        .expect_error(400, "invalid_request");
    dev.post("/workflows/nope/executions", json!({ "input": {} }))
        .await
        .expect_error(404, "not_found");
    dev.post(
        "/workflows/man/executions?draft=maybe",
        json!({ "input": {} }),
    )
    .await
    .expect_error(400, "invalid_query");
    let big = json!({ "input": { "n": 1, "pad": "x".repeat(300 * 1024) } });
    dev.post("/workflows/man/executions", big)
        .await
        .expect_error(413, "too_large");
    assert_eq!(dev.executions_of("man").await.len(), before);
}

/// start -> out: fails (undefined name) when the input has no `n`.
fn doubler(id: &str) -> Value {
    json!({
        "id": id,
        "config": { "active": true },
        "steps": [
            { "id": "start", "type": "start", "triggers": [ { "type": "manual" }, { "type": "webhook", "scheme": "none" } ], "next": "out" },
            { "id": "out", "type": "output", "output": { "double": "{{ input.n * 2 }}" } }
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executions_list_filters_and_pages_newest_first() {
    let dev = DevProcess::new().workflow(doubler("other")).start();
    dev.post("/workflows", doubler("dbl")).await.expect(201);
    dev.post_empty("/workflows/dbl/publish").await.expect(201);
    dev.post_empty("/workflows/dbl/activate").await.expect(200);

    let mut ids = Vec::new(); // oldest first
    let run = |input: Value| {
        let dev = &dev;
        async move {
            let r = dev
                .post(
                    "/workflows/dbl/executions?wait=10",
                    json!({ "input": input }),
                )
                .await;
            let e = r.expect(200).clone();
            tokio::time::sleep(Duration::from_millis(3)).await;
            e
        }
    };
    for n in 1..=3 {
        ids.push(run(json!({ "n": n })).await["id"].clone());
    }
    let failed = run(json!({})).await;
    assert_eq!(failed["status"], json!("failed"));
    assert!(
        failed["error"]["message"].as_str().unwrap().contains('n'),
        "{failed:#}"
    );
    ids.push(failed["id"].clone());
    let hook = dev.hook_path("dbl").await;
    let r = dev
        .post(&format!("{hook}?wait=10"), json!({ "n": 10 }))
        .await;
    ids.push(r.expect(200)["id"].clone());
    tokio::time::sleep(Duration::from_millis(3)).await;
    let mut v2 = doubler("dbl");
    v2["steps"][1]["output"]["v"] = json!(2);
    dev.put("/workflows/dbl", v2).await.expect(200);
    dev.post_empty("/workflows/dbl/publish").await.expect(201);
    for n in 4..=5 {
        ids.push(run(json!({ "n": n })).await["id"].clone());
    }
    let other = run_wait(&dev, "other", json!({ "n": 1 })).await;
    let newest_first: Vec<Value> = ids.iter().rev().cloned().collect();
    let id_list = |items: &[Value]| items.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();

    // Pages of 2, newest first, every execution once.
    let mut pages = 0;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = match &cursor {
            Some(c) => format!("/executions?workflowId=dbl&limit=2&cursor={c}"),
            None => "/executions?workflowId=dbl&limit=2".to_string(),
        };
        let r = dev.get(&p).await;
        let body = r.expect(200);
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(id_list(items));
        pages += 1;
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
    assert!(pages >= 4, "{pages} pages");
    // The workflow's own route is the same list.
    let r = dev.get("/workflows/dbl/executions?limit=100").await;
    assert_eq!(
        id_list(r.expect(200)["items"].as_array().unwrap()),
        newest_first
    );
    // Without a workflow: everything, other workflows included.
    let all = dev.list_all("/executions?limit=3").await;
    assert_eq!(all.len(), ids.len() + 1);
    assert_eq!(all[0]["id"], other["id"]);

    let count = |q: &'static str| {
        let dev = &dev;
        async move {
            dev.list_all(&format!("/executions?workflowId=dbl&limit=2&{q}"))
                .await
        }
    };
    assert_eq!(id_list(&count("status=failed").await), vec![ids[3].clone()]);
    assert_eq!(count("status=succeeded").await.len(), 6);
    assert!(count("status=running").await.is_empty());
    assert_eq!(
        id_list(&count("trigger=webhook").await),
        vec![ids[4].clone()]
    );
    assert_eq!(count("trigger=manual").await.len(), 6);
    assert_eq!(
        id_list(&count("version=2").await),
        vec![ids[6].clone(), ids[5].clone()]
    );
    assert_eq!(count("version=1").await.len(), 5);
    assert_eq!(
        count("version=1&status=succeeded&trigger=manual")
            .await
            .len(),
        3
    );

    // startedAfter is inclusive, startedBefore exclusive: together they split the list.
    let third = dev.execution(ids[2].as_str().unwrap()).await;
    let at = third["startedAt"].as_str().unwrap().to_string();
    let after = dev
        .list_all(&format!(
            "/executions?workflowId=dbl&limit=2&startedAfter={at}"
        ))
        .await;
    let before = dev
        .list_all(&format!(
            "/executions?workflowId=dbl&limit=2&startedBefore={at}"
        ))
        .await;
    assert_eq!(id_list(&after), newest_first[..5].to_vec());
    assert_eq!(id_list(&before), newest_first[5..].to_vec());
    let window = dev
        .list_all(&format!(
            "/executions?workflowId=dbl&limit=2&startedAfter={at}&startedBefore={}",
            dev.execution(ids[5].as_str().unwrap()).await["startedAt"]
                .as_str()
                .unwrap()
        ))
        .await;
    assert_eq!(
        id_list(&window),
        vec![ids[4].clone(), ids[3].clone(), ids[2].clone()]
    );

    // Bad filters are 400s in the API's shape.
    for q in [
        "status=done",
        "startedAfter=yesterday",
        "limit=0",
        "limit=5000",
        "cursor=not-a-cursor",
        "version=latest",
        "colour=blue",
    ] {
        let r = dev.get(&format!("/executions?{q}")).await;
        // A cursor that is not one is named as such (the documented code).
        let code = if q.starts_with("cursor=") {
            "invalid_cursor"
        } else {
            "invalid_query"
        };
        r.expect_error(400, code);
    }
}

/// An execution with more step records than an answer carries: `GET /executions/{id}` (and
/// `?wait`) answer the first 200 in start order with `stepsCursor`; `GET
/// /executions/{id}/steps?cursor=` pages through the rest, and the pages add up to every record
/// once, in start order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_records_are_paged_in_start_order() {
    let dev = DevProcess::new()
        .workflow(json!({
            "id": "many",
            "config": { "active": true },
            "steps": [
                { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ], "next": "each" },
                { "id": "each", "type": "loop", "items": "{{ range(260) | list }}", "concurrency": 20,
                  "steps": [ { "id": "line", "type": "output", "output": "{{ item }}" } ],
                  "next": "done" },
                { "id": "done", "type": "output", "output": "{{ steps.each.output | length }}" }
            ]
        }))
        .start();
    let e = run_wait(&dev, "many", json!({})).await;
    assert_eq!(e["status"], json!("succeeded"), "{e:#}");
    assert_eq!(e["output"], json!(260));
    let first = e["steps"].as_array().expect("steps");
    assert_eq!(first.len(), 200, "?wait answers the first page");
    let cursor = e["stepsCursor"].as_str().expect("a cursor to the rest");
    let id = e["id"].as_str().unwrap();
    let detail = dev.get(&format!("/executions/{id}")).await;
    let detail = detail.expect(200);
    assert_eq!(
        &detail["steps"], &e["steps"],
        "the detail answers the same first page"
    );
    assert_eq!(detail["stepsCursor"], json!(cursor));

    let mut all: Vec<Value> = first.clone();
    let mut next = Some(cursor.to_string());
    let mut pages = 0;
    while let Some(c) = next {
        let page = dev
            .get(&format!("/executions/{id}/steps?limit=25&cursor={c}"))
            .await;
        let page = page.expect(200);
        let items = page["items"].as_array().expect("items");
        assert!(!items.is_empty() && items.len() <= 25, "{page:#}");
        all.extend(items.iter().cloned());
        next = page["nextCursor"].as_str().map(str::to_string);
        pages += 1;
        assert!(pages < 10, "the pages end");
    }
    // start, each, 260 iterations, done.
    assert_eq!(all.len(), 263, "every record once");
    let paths: Vec<&str> = all.iter().map(|s| s["path"].as_str().unwrap()).collect();
    assert_eq!(paths[..2], ["start", "each"]);
    let done = paths.iter().position(|p| *p == "done").expect("done");
    assert!(
        done > 200,
        "done started after (or with) the last iterations: {done}"
    );
    let distinct: std::collections::BTreeSet<&str> = paths.iter().copied().collect();
    assert_eq!(distinct.len(), 263, "no record twice");
    let starts: Vec<String> = all
        .iter()
        .map(|s| s["startedAt"].as_str().unwrap().to_string())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "in start order");
    // A first page of the steps route is the detail's.
    let again = dev.get(&format!("/executions/{id}/steps?limit=200")).await;
    assert_eq!(&again.expect(200)["items"], &e["steps"]);

    // Errors: bad cursor, bad limit, unknown execution, unknown parameter.
    dev.get(&format!("/executions/{id}/steps?cursor=zz"))
        .await
        .expect_error(400, "invalid_cursor");
    let other = dev.get("/executions/nope/steps").await;
    other.expect_error(404, "not_found");
    dev.get(&format!("/executions/{id}/steps?limit=0"))
        .await
        .expect_error(400, "invalid_query");
    dev.get(&format!("/executions/{id}/steps?colour=red"))
        .await
        .expect_error(400, "invalid_query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_detail_has_every_step_record() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/flaky"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/flaky"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "price": 7 })))
        .mount(&server)
        .await;
    let dev = DevProcess::new()
        .workflow(json!({
            "id": "detail",
            "config": { "active": true },
            "steps": [
                { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ], "next": "fetch" },
                { "id": "fetch", "type": "action", "action": "http.request",
                  "params": { "url": format!("{}/flaky", server.uri()) },
                  "retry": { "maxRetries": 2, "backoffMs": 50 }, "next": "each" },
                { "id": "each", "type": "loop", "items": "{{ input.items }}", "concurrency": 2,
                  "steps": [ { "id": "line", "type": "output", "output": { "sku": "{{ item }}", "i": "{{ index }}" } } ],
                  "next": "check" },
                { "id": "check", "type": "condition",
                  "branches": [ { "if": "{{ steps.fetch.output.body.price > 5 }}", "next": "done" } ] },
                { "id": "done", "type": "output",
                  "output": { "lines": "{{ steps.each.output }}", "price": "{{ steps.fetch.output.body.price }}" } }
            ]
        }))
        .start();
    let e = run_wait(&dev, "detail", json!({ "items": ["a", "b"] })).await;
    assert_eq!(e["status"], json!("succeeded"), "{e:#}");
    let id = e["id"].as_str().unwrap();
    // The detail route answers the same record as ?wait did.
    let detail = dev.execution(id).await;
    assert_eq!(detail, e);
    for key in [
        "id",
        "workflowId",
        "version",
        "status",
        "trigger",
        "input",
        "output",
        "error",
        "startedAt",
        "finishedAt",
        "durationMs",
        "steps",
    ] {
        assert!(
            detail.get(key).is_some(),
            "execution field {key}: {detail:#}"
        );
    }
    assert_eq!(detail["workflowId"], json!("detail"));
    assert_eq!(
        detail["output"],
        json!({ "lines": [ { "sku": "a", "i": 0 }, { "sku": "b", "i": 1 } ], "price": 7 })
    );
    let paths: BTreeSet<String> = step_paths(&detail).into_iter().collect();
    let want: BTreeSet<String> = [
        "start",
        "fetch",
        "each",
        "each[0]/line",
        "each[1]/line",
        "check",
        "done",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(paths, want);
    for s in detail["steps"].as_array().unwrap() {
        assert_eq!(s["status"], json!("succeeded"), "{s:#}");
        for key in [
            "path",
            "type",
            "status",
            "attempts",
            "input",
            "output",
            "error",
            "startedAt",
            "finishedAt",
            "durationMs",
        ] {
            assert!(s.get(key).is_some(), "step field {key}: {s:#}");
        }
    }
    let fetch = step(&detail, "fetch");
    assert_eq!(
        fetch["attempts"],
        json!(2),
        "one retry after the 503: {fetch:#}"
    );
    assert_eq!(fetch["type"], json!("action"));
    assert_eq!(fetch["output"]["status"], json!(200));
    assert_eq!(step(&detail, "check")["output"], json!({ "branch": 0 }));
    assert_eq!(
        step(&detail, "each")["output"],
        json!([ { "sku": "a", "i": 0 }, { "sku": "b", "i": 1 } ])
    );
    assert_eq!(step(&detail, "each[1]/line")["type"], json!("output"));
    dev.get("/executions/01JD0000000000000000000000")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_an_execution_after_its_running_step() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({}))
                .set_delay(Duration::from_millis(1200)),
        )
        .mount(&server)
        .await;
    Mock::given(path("/after"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .named("the step after a cancelled one")
        .mount(&server)
        .await;
    let dev = DevProcess::new()
        .workflow(json!({
            "id": "cancellable",
            "config": { "active": true },
            "steps": [
                { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ], "next": "slow" },
                { "id": "slow", "type": "action", "action": "http.request", "params": { "url": format!("{}/slow", server.uri()) }, "next": "after" },
                { "id": "after", "type": "action", "action": "http.request", "params": { "url": format!("{}/after", server.uri()) } }
            ]
        }))
        .start();
    let r = dev
        .post("/workflows/cancellable/executions", json!({ "input": {} }))
        .await;
    let id = r.expect(202)["executionId"].as_str().unwrap().to_string();
    // Wait until `slow` runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.received_requests().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the slow step never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = dev.post_empty(&format!("/executions/{id}/cancel")).await;
    let e = r.expect(200);
    assert_eq!(e["status"], json!("cancelled"));
    assert_eq!(e["error"]["code"], json!("cancelled"));
    assert!(e["finishedAt"].is_string());
    dev.post_empty(&format!("/executions/{id}/cancel"))
        .await
        .expect_error(409, "finished");
    dev.post_empty("/executions/01JD0000000000000000000000/cancel")
        .await
        .expect_error(404, "not_found");
    // The running step finishes; nothing follows it, and the execution stays cancelled.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let e = dev.execution(&id).await;
    assert_eq!(e["status"], json!("cancelled"), "{e:#}");
    assert!(!step_paths(&e).contains(&"after".to_string()), "{e:#}");
    let listed = dev
        .list_all("/executions?workflowId=cancellable&status=cancelled")
        .await;
    assert_eq!(listed.len(), 1);
    server.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_from_a_step_with_new_input_links_to_the_original() {
    let server = MockServer::start().await;
    Mock::given(path("/fetch"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "stock": 3 })))
        .mount(&server)
        .await;
    let dev = DevProcess::new()
        .workflow(json!({
            "id": "rerunnable",
            "config": { "active": true },
            "steps": [
                { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ],
                  "inputSchema": { "type": "object", "required": ["sku"] }, "next": "fetch" },
                { "id": "fetch", "type": "action", "action": "http.request", "params": { "url": format!("{}/fetch", server.uri()) }, "next": "out" },
                { "id": "out", "type": "output", "output": { "sku": "{{ input.sku }}", "stock": "{{ steps.fetch.output.body.stock }}" } }
            ]
        }))
        .start();
    let first = run_wait(&dev, "rerunnable", json!({ "sku": "A" })).await;
    let first_id = first["id"].as_str().unwrap().to_string();
    assert_eq!(first["output"], json!({ "sku": "A", "stock": 3 }));
    let hits = || async { server.received_requests().await.unwrap().len() };
    assert_eq!(hits().await, 1);

    // From `out` with a new input: `fetch` is copied, not called again.
    let r = dev
        .post(
            &format!("/executions/{first_id}/rerun?wait=10"),
            json!({ "fromStep": "out", "input": { "sku": "B" } }),
        )
        .await;
    let e = r.expect(200);
    assert_eq!(e["status"], json!("succeeded"), "{e:#}");
    assert_ne!(e["id"], json!(first_id));
    assert_eq!(e["rerunOf"], json!(first_id));
    assert_eq!(
        e["trigger"],
        json!({ "type": "rerun", "rerunOf": first_id, "fromStep": "out" })
    );
    assert_eq!(e["input"], json!({ "sku": "B" }));
    assert_eq!(e["output"], json!({ "sku": "B", "stock": 3 }));
    assert_eq!(step(e, "fetch")["output"], step(&first, "fetch")["output"]);
    assert_eq!(hits().await, 1, "steps before fromStep are not run again");

    // No body: from the start with the original input.
    let r = dev
        .post_empty(&format!("/executions/{first_id}/rerun"))
        .await;
    let id = r.expect(202)["executionId"].as_str().unwrap().to_string();
    let e = dev.wait_execution(&id).await;
    assert_eq!(e["output"], json!({ "sku": "A", "stock": 3 }));
    assert_eq!(e["rerunOf"], json!(first_id));
    assert_eq!(hits().await, 2);
    let reruns = dev
        .list_all("/executions?workflowId=rerunnable&trigger=rerun")
        .await;
    assert_eq!(reruns.len(), 2);

    // Errors start nothing.
    let before = dev.executions_of("rerunnable").await.len();
    let r = dev
        .post(
            &format!("/executions/{first_id}/rerun"),
            json!({ "fromStep": "nowhere" }),
        )
        .await;
    assert!(
        r.expect_error(422, "unknown_step")["message"]
            .as_str()
            .unwrap()
            .contains("fetch")
    );
    dev.post(
        &format!("/executions/{first_id}/rerun"),
        json!({ "fromStep": "each[0]/x" }),
    )
    .await
    .expect_error(422, "unknown_step");
    dev.post(
        &format!("/executions/{first_id}/rerun"),
        json!({ "fromStep": "out", "input": { "no": "sku" } }),
    )
    .await
    .expect_error(422, "invalid_input");
    dev.post(
        &format!("/executions/{first_id}/rerun"),
        json!({ "input": [] }),
    )
    .await
    .expect_error(422, "invalid_input");
    dev.post(
        &format!("/executions/{first_id}/rerun"),
        json!({ "from": "out" }),
    )
    .await
    .expect_error(400, "invalid_request");
    dev.post_empty("/executions/01JD0000000000000000000000/rerun")
        .await
        .expect_error(404, "not_found");
    assert_eq!(dev.executions_of("rerunnable").await.len(), before);
}

fn greeter(greeting: &str, active: bool) -> Value {
    json!({
        "id": "greeter",
        "config": { "active": active },
        "steps": [
            { "id": "start", "type": "start", "triggers": [ { "type": "manual" }, { "type": "webhook", "scheme": "none" } ], "next": "out" },
            { "id": "out", "type": "output", "output": { "greeting": greeting } }
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_backed_workflow_refuses_api_writes() {
    let dev = DevProcess::new().workflow(greeter("hello", true)).start();
    let r = dev.get("/workflows/greeter").await;
    let w = r.expect(200)["workflow"].clone();
    let source = w["source"].as_str().unwrap();
    assert!(
        source.starts_with("file:") && source.ends_with("greeter.json"),
        "{source}"
    );
    assert_eq!(
        (w["active"].clone(), w["activeVersion"].clone()),
        (json!(true), json!(1))
    );

    for r in [
        dev.put("/workflows/greeter", greeter("bye", true)).await,
        dev.post_empty("/workflows/greeter/publish").await,
        dev.delete("/workflows/greeter").await,
        dev.patch("/workflows/greeter/config", json!({ "timeoutMs": 1000 }))
            .await,
    ] {
        let err = r.expect_error(409, "file_backed");
        assert!(
            err["message"].as_str().unwrap().contains("greeter.json"),
            "{err}"
        );
    }
    dev.post("/workflows", greeter("again", true))
        .await
        .expect_error(409, "exists");
    // Nothing changed.
    let r = dev.get("/workflows/greeter/versions").await;
    assert_eq!(
        r.expect(200)["versions"],
        json!([ { "version": 1, "active": true } ])
    );
    let e = run_wait(&dev, "greeter", json!({})).await;
    assert_eq!(e["output"], json!({ "greeting": "hello" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_edits_while_running_publish_new_versions_and_invalid_edits_keep_the_last_one() {
    let dev = DevProcess::new().workflow(greeter("v1", true)).start();
    let file = dev.workflows_dir().join("greeter.json");
    let e = run_wait(&dev, "greeter", json!({})).await;
    assert_eq!(
        (e["version"].clone(), e["output"]["greeting"].clone()),
        (json!(1), json!("v1"))
    );

    // A valid edit becomes version 2, live.
    dev.write_workflow(&greeter("v2", true));
    dev.wait_workflow("greeter", "version 2", |w| {
        w["workflow"]["activeVersion"] == json!(2)
    })
    .await;
    let e = run_wait(&dev, "greeter", json!({})).await;
    assert_eq!(
        (e["version"].clone(), e["output"]["greeting"].clone()),
        (json!(2), json!("v2"))
    );
    assert!(
        dev.stderr().contains("published version 2"),
        "{}",
        dev.stderr()
    );

    // An invalid edit is reported with the problem's pointer; version 2 keeps running.
    let mut bad = greeter("v3", true);
    bad["steps"][0]["next"] = json!("nowhere");
    write_file(&file, &serde_json::to_string_pretty(&bad).unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dev.stderr().contains("/steps/0/next") {
        assert!(
            Instant::now() < deadline,
            "the invalid edit was not reported: {}",
            dev.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dev.stderr().contains("previous version"),
        "{}",
        dev.stderr()
    );
    let r = dev.get("/workflows/greeter").await;
    assert_eq!(r.expect(200)["workflow"]["latestVersion"], json!(2));
    assert_eq!(r.body["workflow"]["activeVersion"], json!(2));
    let e = run_wait(&dev, "greeter", json!({})).await;
    assert_eq!(e["output"]["greeting"], json!("v2"));
    // Not even JSON: reported, nothing changes.
    write_file(&file, "{ \"id\": \"greeter\", ");
    let reported = dev.stderr().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dev.stderr().len() == reported {
        assert!(
            Instant::now() < deadline,
            "the broken file was not reported"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hook = dev.hook_path("greeter").await;
    let r = dev.post(&format!("{hook}?wait=10"), json!({})).await;
    assert_eq!(r.expect(200)["version"], json!(2));

    // Fixed: version 3. Then `config.active: false` in the file deactivates it.
    dev.write_workflow(&greeter("v3", true));
    dev.wait_workflow("greeter", "version 3", |w| {
        w["workflow"]["activeVersion"] == json!(3)
    })
    .await;
    dev.write_workflow(&greeter("v3", false));
    dev.wait_workflow("greeter", "deactivation", |w| {
        w["workflow"]["active"] == json!(false)
    })
    .await;
    dev.post(&hook, json!({}))
        .await
        .expect_error(404, "not_found");
    // Saving the same content again publishes nothing new.
    let latest = dev.get("/workflows/greeter").await.body["workflow"]["latestVersion"].clone();
    dev.write_workflow(&greeter("v3", false));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        dev.get("/workflows/greeter").await.body["workflow"]["latestVersion"],
        latest
    );
    // A new file appears: published (and activated) while running.
    let mut extra = greeter("new", true);
    extra["id"] = json!("late-comer");
    dev.write_workflow(&extra);
    dev.wait_workflow("late-comer", "first publish", |w| {
        w["workflow"]["activeVersion"] == json!(1)
    })
    .await;
}
