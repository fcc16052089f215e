//! `wf dev` across restarts: definitions, versions, activation, tokens and executions survive a
//! graceful stop and a `kill -9`; an execution interrupted by a kill resumes and finishes after
//! the restart; the sweeper deletes executions older than WF_RETENTION_DAYS.

mod dev_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dev_support::{DevProcess, step};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wf_core::execution::{ExecutionView, StepStatus};
use wf_core::ports::ExecutionStore;

fn manual(id: &str, label: &str) -> Value {
    json!({
        "id": id,
        "config": { "active": true },
        "steps": [
            { "id": "start", "type": "start", "triggers": [ { "type": "manual" }, { "type": "webhook", "scheme": "none" } ], "next": "out" },
            { "id": "out", "type": "output", "output": { "label": label, "n": "{{ input.n | default(0) }}" } }
        ]
    })
}

/// What the API says about everything, with the port (which changes on restart) taken out.
async fn snapshot(dev: &DevProcess) -> Value {
    let mut workflows = dev.get("/workflows").await.expect(200).clone();
    let mut versions = serde_json::Map::new();
    for w in workflows.as_array_mut().unwrap() {
        let id = w["id"].as_str().unwrap().to_string();
        if let Some(url) = w["webhookUrl"].as_str() {
            w["webhookUrl"] = json!(url.trim_start_matches(dev.url.as_str()));
        }
        let v = dev
            .get(&format!("/workflows/{id}/versions"))
            .await
            .expect(200)
            .clone();
        let mut defs = Vec::new();
        for n in v["versions"].as_array().unwrap() {
            defs.push(
                dev.get(&format!("/workflows/{id}/versions/{}", n["version"]))
                    .await
                    .expect(200)
                    .clone(),
            );
        }
        let draft = dev.get(&format!("/workflows/{id}")).await.expect(200)["draft"].clone();
        versions.insert(
            id,
            json!({ "versions": v, "definitions": defs, "draft": draft }),
        );
    }
    let mut executions = Vec::new();
    for e in dev.list_all("/executions?limit=2").await {
        executions.push(dev.execution(e["id"].as_str().unwrap()).await);
    }
    json!({ "workflows": workflows, "versions": versions, "executions": executions })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_and_versions_survive_a_graceful_stop_and_a_kill() {
    let mut dev = DevProcess::new()
        .workflow(manual("filed", "from-file"))
        .start();
    // An API workflow with two versions, rolled back to the first, and a draft in progress.
    dev.post("/workflows", manual("api", "one"))
        .await
        .expect(201);
    dev.post_empty("/workflows/api/publish").await.expect(201);
    dev.put("/workflows/api", manual("api", "two"))
        .await
        .expect(200);
    dev.post_empty("/workflows/api/publish").await.expect(201);
    dev.post("/workflows/api/activate", json!({ "version": 1 }))
        .await
        .expect(200);
    dev.put("/workflows/api", manual("api", "three (draft)"))
        .await
        .expect(200);
    for n in 1..=2 {
        let r = dev
            .post(
                "/workflows/api/executions?wait=10",
                json!({ "input": { "n": n } }),
            )
            .await;
        assert_eq!(r.expect(200)["output"], json!({ "label": "one", "n": n }));
    }
    let hook = dev.hook_path("filed").await;
    dev.post(&format!("{hook}?wait=10"), json!({ "n": 9 }))
        .await
        .expect(200);
    let before = snapshot(&dev).await;
    assert_eq!(before["executions"].as_array().unwrap().len(), 3);

    // A graceful stop exits 0.
    let status = dev.terminate();
    assert!(status.success(), "wf dev exited with {status}");
    dev.launch();
    let after = snapshot(&dev).await;
    assert_eq!(after, before, "everything survives a restart");
    // The unchanged file is not published again; the webhook token is the same.
    assert_eq!(
        dev.stderr()
            .matches("filed.json: published version")
            .count(),
        1,
        "{}",
        dev.stderr()
    );
    let r = dev
        .post(&format!("{hook}?wait=10"), json!({ "n": 10 }))
        .await;
    assert_eq!(
        r.expect(200)["output"],
        json!({ "label": "from-file", "n": 10 })
    );
    let r = dev
        .post(
            "/workflows/api/executions?wait=10",
            json!({ "input": { "n": 3 } }),
        )
        .await;
    assert_eq!(r.expect(200)["version"], json!(1), "still rolled back");

    // kill -9: nothing is lost either.
    let before = snapshot(&dev).await;
    dev.restart();
    assert_eq!(snapshot(&dev).await, before);
    // A file edited while the server was down is published at start.
    dev.kill();
    dev.write_workflow(&manual("filed", "edited offline"));
    dev.launch();
    dev.wait_stdout_line(&["filed", "v2 active"]);
    let r = dev.post(&format!("{hook}?wait=10"), json!({})).await;
    assert_eq!(r.expect(200)["output"]["label"], json!("edited offline"));
}

/// A tiny HTTP server: holds every request open until `answer` is set, then answers 200 JSON.
struct Upstream {
    port: u16,
    answer: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

async fn upstream() -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let (a, n) = (answer.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (a, n) = (a.clone(), n.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                n.fetch_add(1, Ordering::SeqCst);
                if !a.load(Ordering::SeqCst) {
                    // Hang: the caller's own timeout (or its death) ends this request.
                    let _ = socket.read(&mut chunk).await;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let body = br#"{"done":true}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Upstream {
        port,
        answer,
        requests,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_interrupted_by_a_kill_resumes_and_finishes_after_restart() {
    let up = upstream().await;
    let mut dev = DevProcess::new()
        .args(&["--visibility-secs", "1"])
        .workflow(json!({
            "id": "interrupted",
            "config": { "active": true },
            "steps": [
                { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ], "next": "call" },
                { "id": "call", "type": "action", "action": "http.request",
                  "params": { "url": format!("http://127.0.0.1:{}/work", up.port) },
                  "timeoutMs": 1500, "retry": { "maxRetries": 2, "backoffMs": 100 }, "next": "out" },
                { "id": "out", "type": "output", "output": "{{ steps.call.output.body }}" }
            ]
        }))
        .start();
    let r = dev
        .post("/workflows/interrupted/executions", json!({ "input": {} }))
        .await;
    let id = r.expect(202)["executionId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.requests.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the step never called upstream");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Mid-step: the step is claimed and its request in flight.
    let e = dev.execution(&id).await;
    assert_eq!(e["status"], json!("running"), "{e:#}");
    assert_eq!(step(&e, "call")["status"], json!("running"), "{e:#}");
    dev.kill();
    up.answer.store(true, Ordering::SeqCst);

    let killed_at = Instant::now();
    dev.launch();
    let e = dev.wait_execution_secs(&id, 30).await;
    assert_eq!(e["status"], json!("succeeded"), "{e:#}");
    assert_eq!(e["output"], json!({ "done": true }));
    let call = step(&e, "call");
    assert_eq!(call["status"], json!("succeeded"));
    assert!(up.requests.load(Ordering::SeqCst) >= 2);
    assert!(
        killed_at.elapsed() < Duration::from_secs(15),
        "resumed within the lease (1.5 s + 5 s) and the visibility timeout: {:?}",
        killed_at.elapsed()
    );
    assert_eq!(
        dev.executions_of("interrupted").await.len(),
        1,
        "the same execution, not a new one"
    );
}

/// The case of issue 10: a step without `timeoutMs` (a 10-minute deadline) interrupted by
/// `kill -9`, with the default settings (30 s lease renewed while the step runs, 30 s
/// visibility). The restarted process takes it over when the lease runs out, not at the
/// deadline. Prints the time from the kill to the finished execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_without_timeout_resumes_after_a_kill_within_the_default_lease() {
    let up = upstream().await;
    let mut dev = DevProcess::new()
        .workflow(json!({
            "id": "no-timeout",
            "config": { "active": true, "timeoutMs": 600000 },
            "steps": [
                { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ], "next": "call" },
                { "id": "call", "type": "action", "action": "http.request",
                  "params": { "url": format!("http://127.0.0.1:{}/work", up.port) }, "next": "out" },
                { "id": "out", "type": "output", "output": "{{ steps.call.output.body }}" }
            ]
        }))
        .start();
    let r = dev
        .post("/workflows/no-timeout/executions", json!({ "input": {} }))
        .await;
    let id = r.expect(202)["executionId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.requests.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the step never called upstream");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = dev.execution(&id).await;
    let call = step(&e, "call");
    assert_eq!(call["status"], json!("running"), "{e:#}");
    dev.kill();
    up.answer.store(true, Ordering::SeqCst);

    let killed_at = Instant::now();
    dev.launch();
    let e = dev.wait_execution_secs(&id, 90).await;
    let resumed = killed_at.elapsed();
    eprintln!("resume time after kill -9 (default lease 30 s, visibility 30 s): {resumed:?}");
    assert_eq!(e["status"], json!("succeeded"), "{e:#}");
    assert_eq!(e["output"], json!({ "done": true }));
    let call = step(&e, "call");
    assert_eq!(
        call["attempts"],
        json!(1),
        "a lost lease is not an attempt: {call:#}"
    );
    assert_eq!(
        call["leaseLost"],
        json!(1),
        "the crash is on the step: {call:#}"
    );
    assert!(
        resumed < Duration::from_secs(45),
        "resumed within lease + visibility, not at the 10-minute deadline: {resumed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_deletes_executions_older_than_the_retention() {
    let mut dev = DevProcess::new()
        .env("WF_RETENTION_DAYS", "2")
        .args(&["--sweep-secs", "1"])
        .workflow(manual("kept", "x"))
        .start();
    let r = dev
        .post(
            "/workflows/kept/executions?wait=10",
            json!({ "input": { "n": 1 } }),
        )
        .await;
    let recent: ExecutionView = serde_json::from_value(r.expect(200).clone()).unwrap();
    assert!(dev.terminate().success());

    // Age copies of it in the store while the server is down: 3 days old (past the 2-day
    // retention) and 1 day old (within it).
    const DAY: i64 = 24 * 3600 * 1000;
    let store = wf_local::SqliteStore::open(dev.db_path()).unwrap();
    let mut aged = Vec::new();
    for (name, age) in [("old", 3 * DAY), ("young", DAY)] {
        let mut v = recent.clone();
        let shift = age;
        v.execution.id =
            wf_app::app::executions::new_execution_id(recent.execution.started_at - shift);
        v.execution.started_at -= shift;
        v.execution.deadline_at -= shift;
        v.execution.finished_at = v.execution.finished_at.map(|t| t - shift);
        store.create_execution(&v.execution, None).await.unwrap();
        for s in &v.steps {
            let mut claim = s.clone();
            claim.status = StepStatus::Running;
            claim.lease_until = Some(0);
            store.claim_step(&v.execution.id, &claim, 0).await.unwrap();
            assert!(store.finish_step(&v.execution.id, s).await.unwrap());
        }
        assert_eq!(store.list_steps(&v.execution.id).await.unwrap().len(), 2);
        aged.push((name, v.execution.id.clone()));
    }
    drop(store);

    dev.launch();
    let (old, young) = (&aged[0].1, &aged[1].1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = dev.get(&format!("/executions/{old}")).await;
        if r.status.as_u16() == 404 {
            r.expect_error(404, "not_found");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old execution was not swept: {}",
            dev.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<Value> = dev
        .executions_of("kept")
        .await
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(recent.execution.id), json!(young)]);
    assert_eq!(
        dev.execution(young).await["steps"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(dev.terminate().success());
    // Its step records went with it.
    let store = wf_local::SqliteStore::open(dev.db_path()).unwrap();
    assert!(store.get_execution(old).await.unwrap().is_none());
    assert!(store.list_steps(old).await.unwrap().is_empty());
    drop(store);

    // A retention that is not a whole number of days is a usage error (exit 64).
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_wf"))
        .args(["dev", "--addr", "127.0.0.1:0", "--db"])
        .arg(dev.db_path())
        .arg("--workflows")
        .arg(dev.workflows_dir())
        .env("WF_RETENTION_DAYS", "0")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("WF_RETENTION_DAYS"));
}
