//! A real `wf dev` for end-to-end tests: the binary under test, started on a free loopback port
//! with a temporary SQLite file and a temporary workflows folder, killed when dropped.
//!
//! Every workflow the tests write reaches only 127.0.0.1 (wiremock or a local listener).

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wf_app::webhooks::signature::sign;
use wf_core::model::WebhookScheme;

/// Variables of the parent environment that would change what `wf dev` does.
const SCRUBBED_ENV: &[&str] = &[
    "WF_DEV_ADDR",
    "WF_DEV_DB",
    "WF_QUEUE_VISIBILITY_SECS",
    "WF_LEASE_SECS",
    "WF_EVENT_MAX_DEPTH",
    "WF_RETENTION_DAYS",
    "WF_LOG",
    "RUST_LOG",
    "WF_LLM_BASE_URL",
    "WF_LLM_API_KEY",
    "OPENAI_API_KEY",
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// Statuses after which an execution never changes.
pub const TERMINAL: &[&str] = &["succeeded", "failed", "timed_out", "cancelled"];

/// A `wf dev` process (or the files of one that is stopped: a temp dir with `workflows/` and
/// `dev.db`, kept across restarts).
pub struct DevProcess {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` of the running process.
    pub url: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    pub http: reqwest::Client,
    /// How many times the process was started.
    pub starts: u32,
}

/// A response: status and body (JSON when it parses, else a JSON string of the text).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub content_type: String,
}

impl Reply {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {:#}",
            self.body
        );
        &self.body
    }

    /// Asserts an API error: the status, `{"error": {"code", "message", "details"}}`, the code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Value {
        self.expect(status);
        assert!(
            self.content_type.starts_with("application/json"),
            "errors are JSON, got {:?}: {}",
            self.content_type,
            self.body
        );
        let error = &self.body["error"];
        assert_eq!(
            error["code"],
            json!(code),
            "error code; body: {:#}",
            self.body
        );
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error message; body: {:#}",
            self.body
        );
        assert!(
            error.as_object().is_some_and(|o| o.contains_key("details")),
            "errors carry `details` (null when there are none); body: {:#}",
            self.body
        );
        assert_eq!(
            self.body.as_object().map(|o| o.len()),
            Some(1),
            "the error object is the whole body: {:#}",
            self.body
        );
        error
    }
}

impl Default for DevProcess {
    fn default() -> Self {
        Self::new()
    }
}

impl DevProcess {
    /// Files for a `wf dev` (not started yet): `start` runs it.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("workflows")).expect("workflows dir");
        Self {
            dir,
            child: None,
            url: String::new(),
            args: Vec::new(),
            env: Vec::new(),
            stdout: Arc::default(),
            stderr: Arc::default(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(45))
                .build()
                .expect("http client"),
            starts: 0,
        }
    }

    /// An environment variable for the process (kept across restarts).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.set_env(key, value);
        self
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Extra command-line arguments of `wf dev` (kept across restarts).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Writes `workflows/<id>.json`.
    pub fn workflow(self, workflow: Value) -> Self {
        self.write_workflow(&workflow);
        self
    }

    pub fn write_workflow(&self, workflow: &Value) -> PathBuf {
        let id = workflow["id"].as_str().expect("workflow id");
        let path = self.workflows_dir().join(format!("{id}.json"));
        write_file(&path, &serde_json::to_string_pretty(workflow).unwrap());
        path
    }

    pub fn workflows_dir(&self) -> PathBuf {
        self.dir.path().join("workflows")
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("dev.db")
    }

    /// Starts `wf dev` and waits for its first line, `wf dev listening on http://...`.
    pub fn start(mut self) -> Self {
        self.launch();
        self
    }

    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wf"));
        cmd.arg("dev")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(self.db_path())
            .arg("--workflows")
            .arg(self.workflows_dir())
            .arg("--workers")
            .arg("2")
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for k in SCRUBBED_ENV {
            cmd.env_remove(k);
        }
        // Nothing here may leave the machine: an llm step would find no server on port 9.
        cmd.env("WF_LLM_BASE_URL", "http://127.0.0.1:9/v1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn wf dev");
        self.starts += 1;
        let start_no = self.starts;

        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let out_buf = self.stdout.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = true;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                out_buf
                    .lock()
                    .unwrap()
                    .push_str(&format!("[start {start_no}] {line}"));
                if first {
                    let _ = tx.send(line.clone());
                    first = false;
                }
                line.clear();
            }
        });
        let stderr = child.stderr.take().unwrap();
        let err_buf = self.stderr.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut chunk = [0u8; 4096];
            loop {
                match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => err_buf
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk[..n])),
                }
            }
        });
        self.child = Some(child);
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let status = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                panic!(
                    "wf dev printed no first line (exit: {status:?}); stderr:\n{}",
                    self.stderr()
                );
            }
        };
        let url = line
            .trim()
            .strip_prefix("wf dev listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        self.url = url.to_string();
    }

    /// `kill -9`: no shutdown, whatever is in flight is left as it is.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the exit (a graceful stop).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill -TERM")
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("wf dev did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill (-9 when still running) and start again on the same DB and workflows folder.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Everything the process(es) wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything the process(es) wrote to stdout so far (each line tagged with the start).
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Wait (at most 10 s) until stdout holds a line containing every one of `needles`.
    pub fn wait_stdout_line(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.stdout();
            if let Some(l) = out.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needles:?} in stdout:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait (at most 10 s) until stderr contains `needle`.
    pub fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not in stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // -----------------------------------------------------------------------------------------
    // HTTP

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request to wf dev");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            body,
            content_type,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.at(path))).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(self.at(path))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(self.at(path)).json(&body)).await
    }

    /// POST with no body at all.
    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(self.http.post(self.at(path))).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.put(self.at(path)).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.patch(self.at(path)).json(&body)).await
    }

    /// POST raw bytes with a content type and extra headers.
    pub async fn post_raw(
        &self, path: &str, content_type: &str, body: Vec<u8>, headers: &[(&str, String)],
    ) -> Reply {
        let mut req = self
            .http
            .post(self.at(path))
            .header("content-type", content_type)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        self.send(req).await
    }

    /// The path of a workflow's webhook (`/hooks/{id}/{token}`), from the API.
    pub async fn hook_path(&self, workflow_id: &str) -> String {
        let r = self.get(&format!("/workflows/{workflow_id}")).await;
        let url = r.expect(200)["workflow"]["webhookUrl"]
            .as_str()
            .unwrap_or_else(|| panic!("no webhook url: {}", r.body))
            .to_string();
        assert!(
            url.starts_with(&self.url),
            "{url} is served by {}",
            self.url
        );
        url[self.url.len()..].to_string()
    }

    /// POST a JSON body to a webhook path, signed under `scheme` with `secret` at `timestamp`
    /// (`msg_id`: see `sign`), plus `extra` headers.
    #[allow(clippy::too_many_arguments)] // mirrors `sign`'s parameters, plus path and headers
    pub async fn post_signed(
        &self, path: &str, scheme: WebhookScheme, secret: &str, body: &[u8], timestamp: i64,
        msg_id: &str, extra: &[(&str, String)],
    ) -> Reply {
        let mut headers: Vec<(&str, String)> = sign(scheme, secret, body, timestamp, msg_id)
            .expect("sign")
            .into_iter()
            .collect();
        headers.extend(extra.iter().cloned());
        self.post_raw(path, "application/json", body.to_vec(), &headers)
            .await
    }

    /// GET /executions/{id}.
    pub async fn execution(&self, id: &str) -> Value {
        self.get(&format!("/executions/{id}"))
            .await
            .expect(200)
            .clone()
    }

    /// Poll an execution until it is terminal (at most `secs`).
    pub async fn wait_execution_secs(&self, id: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let e = self.execution(id).await;
            if TERMINAL.contains(&e["status"].as_str().unwrap_or_default()) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "execution {id} not finished after {secs} s: {e:#}\nstderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    pub async fn wait_execution(&self, id: &str) -> Value {
        self.wait_execution_secs(id, 15).await
    }

    /// Every execution of a workflow, newest first (follows the cursor).
    pub async fn executions_of(&self, workflow_id: &str) -> Vec<Value> {
        self.list_all(&format!("/executions?workflowId={workflow_id}&limit=100"))
            .await
    }

    /// Every item of a list endpoint, page after page.
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let p = match &cursor {
                Some(c) => format!("{path}&cursor={c}"),
                None => path.to_string(),
            };
            let r = self.get(&p).await;
            let body = r.expect(200);
            out.extend(body["items"].as_array().expect("items").iter().cloned());
            match body["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    /// Poll until a workflow has at least `n` executions (at most 15 s); returns them.
    pub async fn wait_executions(&self, workflow_id: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let list = self.executions_of(workflow_id).await;
            if list.len() >= n {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "{workflow_id} has {} execution(s), expected {n}; stderr:\n{}",
                list.len(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    /// Poll `GET /workflows/{id}` until `check` holds (at most 15 s).
    pub async fn wait_workflow(
        &self, id: &str, what: &str, check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = self.get(&format!("/workflows/{id}")).await;
            if r.status == StatusCode::OK && check(&r.body) {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "{id}: {what} did not happen: {:#}\nstderr:\n{}",
                r.body,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of `wf_webhook_signature_failures_total{reason="<reason>"}` (0 when absent).
    pub async fn signature_failures(&self, reason: &str) -> u64 {
        let r = self.get("/metrics").await;
        let text = r.expect(200).as_str().expect("metrics text").to_string();
        let prefix = format!("wf_webhook_signature_failures_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.trim().parse().expect("counter value"))
            .unwrap_or(0)
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- wf dev stdout ----\n{}---- wf dev stderr ----\n{}",
                self.stdout(),
                self.stderr()
            );
        }
    }
}

/// Write a file so that its modification time changes even within one clock tick.
pub fn write_file(path: &std::path::Path, text: &str) {
    let before = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    std::fs::write(path, text).expect("write file");
    if let Some(before) = before {
        let now = std::fs::metadata(path).and_then(|m| m.modified()).unwrap();
        if now <= before {
            let later = before + Duration::from_millis(10);
            std::fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(later))
                .expect("set mtime");
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Names of the step records of an execution view, in order.
pub fn step_paths(execution: &Value) -> Vec<String> {
    execution["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_string())
        .collect()
}

/// The step record at `path`.
pub fn step<'a>(execution: &'a Value, path: &str) -> &'a Value {
    execution["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["path"] == json!(path))
        .unwrap_or_else(|| panic!("no step {path} in {execution:#}"))
}
