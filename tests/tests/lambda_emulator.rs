//! End to end on the Lambda emulator: the real `webhook`, `api`, `trigger` and `worker` binaries
//! under `cargo lambda watch`, against moto_server, with the local bridge playing SQS's event
//! source and the firing of schedules (moto stores them but never fires). Everything is started by the documented command
//! (`scripts/lambda-local`) and driven by the documented script (`scripts/lambda/e2e.py`); then
//! DynamoDB is read directly to see every step recorded there.
//!
//! Needs `cargo lambda` (scripts/lambda-local installs it from PyPI when missing) and
//! moto_server. The function binaries are the ones this test run's build made (each function
//! package has an integration test, so `cargo test`/`nextest` leave `target/debug/<name>`); the
//! emulator serves only the Runtime API (`--only-lambda-apis`) and the script starts them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wf_aws::{Config, DynamoStore};
use wf_core::execution::{ExecutionStatus, StepStatus};
use wf_core::ports::ExecutionStore;
use wf_tests::local_llm::free_port;
use wf_tests::moto::Moto;

/// Where the build of this test left the function binaries (target/debug/).
fn functions_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug/deps/..");
    for f in ["webhook", "api", "trigger", "worker"] {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: build the functions' tests too (cargo test --workspace)",
            dir.join(f).display()
        );
    }
    dir.to_path_buf()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// `scripts/lambda-local` on a free port, stopped (with everything it started) on drop.
struct LocalLambdas {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl LocalLambdas {
    fn start(moto: &Moto) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut child = Command::new("bash")
            .arg(repo_root().join("scripts/lambda-local"))
            .arg(port.to_string())
            .current_dir(repo_root())
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("WF_LOCAL_DIR", dir.path())
            .env("WF_LOCAL_PREFIX", wf_tests::moto::unique_prefix("lm"))
            .env("WF_LOCAL_EXIT_WITH_PID", std::process::id().to_string())
            .env("WF_LOCAL_FUNCTIONS_DIR", functions_dir())
            .env("WF_LOCAL_BRIDGE_BIN", env!("CARGO_BIN_EXE_lambda_bridge"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // A file, not this test's stderr: processes the script starts must not hold the
            // test's output open after it ends.
            .stderr(std::fs::File::create(dir.path().join("script.err")).expect("script.err"))
            .spawn()
            .expect("run scripts/lambda-local");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("lambda-local: {line}");
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let lambdas = LocalLambdas { child, port, dir };
        // Installing cargo-lambda on a fresh machine is the slow part.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match ready.recv_timeout(left) {
                Ok(line) if line.starts_with("== ready") => return lambdas,
                Ok(_) => {}
                Err(e) => panic!(
                    "scripts/lambda-local did not get ready ({e}); logs in {}:\n{}",
                    lambdas.dir.path().display(),
                    lambdas.logs()
                ),
            }
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every log, for a failure's message.
    fn logs(&self) -> String {
        [
            "watch.log",
            "bridge.log",
            "webhook.log",
            "api.log",
            "trigger.log",
            "worker.log",
        ]
        .iter()
        .map(|n| format!("--- {n}\n{}", self.log(n)))
        .collect()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// The functions' environment the script wrote (KEY=VALUE lines).
    fn functions_env(&self) -> HashMap<String, String> {
        self.log("functions.env")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Stop everything; the bridge's invocation counts.
    fn stop(mut self) -> Value {
        self.terminate();
        let counts = self.log("bridge.out");
        serde_json::from_str(counts.trim()).unwrap_or_else(|e| {
            panic!(
                "bridge.out is not the counts ({e}): {counts:?}\n{}",
                self.log("bridge.log")
            )
        })
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalLambdas {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

async fn call(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, url)
        .timeout(Duration::from_secs(300));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the emulator answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Invoke a function through the emulator's Lambda invoke endpoint (what EventBridge does).
async fn invoke(base: &str, function: &str, payload: Value) -> Value {
    let url = format!("{base}/2015-03-31/functions/{function}/invocations");
    let (status, answer) = call(reqwest::Method::POST, &url, Some(payload)).await;
    assert_eq!(status, 200, "invoke {function}: {answer}");
    answer
}

async fn wait_until_done(api: &str, execution_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (status, view) = call(
            reqwest::Method::GET,
            &format!("{api}/executions/{execution_id}"),
            None,
        )
        .await;
        if status == 200 && !matches!(view["status"].as_str(), Some("queued" | "running")) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "{execution_id} never finished: {view}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_a_schedule_and_an_event_run_through_the_real_functions_under_cargo_lambda_watch()
 {
    let moto = Moto::start();
    let lambdas = LocalLambdas::start(&moto);
    let base = lambdas.base();
    let api = format!("{base}/lambda-url/api");

    // 1. order-alert through the api and webhook functions, the worker fed by the bridge
    //    (scripts/lambda/e2e.py: publish, activate, secret, signed webhook, redelivery, forgery).
    let e2e = Command::new("python3")
        .arg(repo_root().join("scripts/lambda/e2e.py"))
        .arg(&base)
        .current_dir(repo_root())
        .output()
        .expect("run scripts/lambda/e2e.py");
    let summary_text = String::from_utf8_lossy(&e2e.stdout);
    assert!(
        e2e.status.success(),
        "e2e.py failed: {}\n{summary_text}\n{}",
        String::from_utf8_lossy(&e2e.stderr),
        lambdas.logs()
    );
    let summary: Value = serde_json::from_str(summary_text.trim()).expect("e2e.py prints JSON");
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(
        summary["output"],
        json!({ "alerted": true, "orderId": "A-42" })
    );
    assert_eq!(summary["salesMessages"], 1, "one Slack message: {summary}");
    let execution_id = summary["executionId"].as_str().expect("an execution id");
    assert_eq!(summary["duplicateDelivery"]["executionId"], execution_id);

    // Every step is recorded in DynamoDB itself (not just in what the api shows).
    let env = lambdas.functions_env();
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("the functions' config");
    let store = DynamoStore::new(
        moto.clients(None).await.dynamodb.clone(),
        &Config {
            endpoint_url: Some(moto.endpoint()),
            ..config
        },
    );
    let record = store
        .get_execution(execution_id)
        .await
        .expect("read the execution")
        .expect("the execution is in DynamoDB");
    assert_eq!(record.status, ExecutionStatus::Succeeded);
    let mut steps: Vec<(String, StepStatus)> = store
        .list_steps(execution_id)
        .await
        .expect("read the steps")
        .into_iter()
        .map(|s| (s.path, s.status))
        .collect();
    steps.sort_by(|a, b| a.0.cmp(&b.0));
    let expected: Vec<(String, StepStatus)> = ["alerted", "check", "notify", "start"]
        .into_iter()
        .map(|p| (p.to_string(), StepStatus::Succeeded))
        .collect();
    assert_eq!(steps, expected);

    // 2. A schedule's input into the real trigger function: the execution id derives from
    //    the scheduled time, so EventBridge's retried delivery starts nothing new.
    let workflow = json!({
        "id": "lambda-tick", "name": "Tick",
        "config": { "active": true },
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [ { "type": "schedule", "cron": "0 9 * * 1-5" } ], "next": "done" },
            { "id": "done", "type": "output", "output": { "ticked": true } }
        ]
    });
    let (status, answer) = call(
        reqwest::Method::POST,
        &format!("{api}/workflows"),
        Some(workflow),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    for action in ["publish", "activate"] {
        let url = format!("{api}/workflows/lambda-tick/{action}");
        let (status, answer) = call(reqwest::Method::POST, &url, Some(json!({}))).await;
        assert!(
            status == 200 || status == 201,
            "{action}: {status} {answer}"
        );
    }
    let fire = json!({ "workflowId": "lambda-tick", "scheduledTime": "2026-11-24T09:00:00Z" });
    let first = invoke(&base, "trigger", fire.clone()).await;
    let again = invoke(&base, "trigger", fire).await;
    let started = &first["started"][0];
    assert_eq!(started["duplicate"], false, "{first}");
    assert_eq!(again["started"][0]["duplicate"], true, "{again}");
    assert_eq!(again["started"][0]["executionId"], started["executionId"]);
    let tick_id = started["executionId"].as_str().expect("an execution id");
    let view = wait_until_done(&api, tick_id).await;
    assert_eq!(view["status"], "succeeded", "{view}");

    // 3. The sweep rule's input, and an input no rule sends (ignored, not retried forever).
    let sweep = invoke(&base, "trigger", json!({ "sweep": true })).await;
    assert_eq!(sweep["sweep"]["timedOut"], 0, "{sweep}");
    let odd = invoke(&base, "trigger", json!({ "hello": 1 })).await;
    assert!(odd["ignored"].as_str().is_some(), "{odd}");

    // 4. A platform event through the api function's POST /events: EventBridge (moto) delivers it
    //    by rule to the bridge's queue, the trigger function routes it (filter evaluated,
    //    execution id from the event id): a repeat of the id and a filtered-out event start nothing.
    let workflow = json!({
        "id": "lambda-paid", "name": "Paid",
        "config": { "active": true },
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [ { "type": "event", "event": "order.paid",
                              "filter": "{{ event.detail.amount > 10 }}" } ], "next": "done" },
            { "id": "done", "type": "output", "output": { "amount": "{{ input.amount }}" } }
        ]
    });
    let (status, answer) = call(
        reqwest::Method::POST,
        &format!("{api}/workflows"),
        Some(workflow),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    for action in ["publish", "activate"] {
        let url = format!("{api}/workflows/lambda-paid/{action}");
        let (status, answer) = call(reqwest::Method::POST, &url, Some(json!({}))).await;
        assert!(
            status == 200 || status == 201,
            "{action}: {status} {answer}"
        );
    }
    for event in [
        json!({ "type": "order.paid", "id": "evt-paid-1", "detail": { "amount": 50 } }),
        json!({ "type": "order.paid", "id": "evt-paid-1", "detail": { "amount": 50 } }),
        json!({ "type": "order.paid", "id": "evt-paid-2", "detail": { "amount": 1 } }),
    ] {
        let (status, answer) =
            call(reqwest::Method::POST, &format!("{api}/events"), Some(event)).await;
        assert_eq!(status, 202, "{answer}");
    }
    let list = format!("{api}/executions?workflowId=lambda-paid");
    let deadline = Instant::now() + Duration::from_secs(120);
    let items = loop {
        let (status, page) = call(reqwest::Method::GET, &list, None).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.iter().any(|e| e["status"] == "succeeded") {
            break items;
        }
        assert!(
            Instant::now() < deadline,
            "the event started nothing: {page}\n{}",
            lambdas.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // The other two deliveries have been handled by now or will start nothing: give them time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, page) = call(reqwest::Method::GET, &list, None).await;
    let all = page["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), 1, "one execution for evt-paid-1 only: {page}");
    assert_eq!(items[0]["output"], json!({ "amount": 50 }), "{page}");

    // The bridge invoked the worker with real SQS batches and deleted what it acknowledged.
    let counts = lambdas.stop();
    assert!(counts["worker"].as_u64() >= Some(2), "{counts}");
    assert!(
        counts["tasks"].as_u64() >= counts["worker"].as_u64(),
        "{counts}"
    );
    eprintln!("bridge invocations: {counts}");
}
