//! The `wf` binary as a user runs it: output and exit codes of validate, run and schema.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn wf(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wf"))
        .args(args)
        .current_dir(dir)
        .env_remove("WF_RUN_DB")
        .output()
        .expect("run wf")
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn write(dir: &Path, name: &str, v: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p.display().to_string()
}

fn simple(output: Value) -> Value {
    json!({
        "id": "simple",
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }],
              "inputSchema": { "type": "object", "required": ["n"], "properties": { "n": { "type": "integer" } } },
              "next": "out" },
            { "id": "out", "type": "output", "output": output }
        ]
    })
}

#[test]
fn run_prints_the_execution_and_exits_0_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "simple.json",
        &simple(json!({ "double": "{{ input.n * 2 }}", "t": "{{ vars.t }}" })),
    );
    let out = wf(
        &["run", &file, "--input", r#"{"n": 21}"#, "--var", "t=7"],
        dir.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], json!("succeeded"));
    assert_eq!(v["output"], json!({ "double": 42, "t": 7 }));
    assert_eq!(v["steps"].as_array().unwrap().len(), 2);
    assert!(v["durationMs"].is_number());
}

#[test]
fn run_reads_input_from_a_file_and_keeps_state_with_db() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "simple.json", &simple(json!("{{ input.n }}")));
    std::fs::write(dir.path().join("in.json"), r#"{"n": 5}"#).unwrap();
    let db = dir.path().join("state.db");
    for _ in 0..2 {
        let out = wf(
            &[
                "run",
                &file,
                "--input",
                "@in.json",
                "--db",
                db.to_str().unwrap(),
            ],
            dir.path(),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // the second run published version 2 into the kept database
    let out = wf(
        &[
            "run",
            &file,
            "--input",
            "@in.json",
            "--db",
            db.to_str().unwrap(),
        ],
        dir.path(),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], json!(3));
}

#[test]
fn run_exits_1_when_the_execution_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "simple.json",
        &simple(json!("{{ input.missing }}")),
    );
    let out = wf(&["run", &file, "--input", r#"{"n": 1}"#], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], json!("failed"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input.missing"),
        "{v}"
    );
}

#[test]
fn run_exits_2_when_the_execution_times_out() {
    // A peer that accepts connections (kernel backlog) and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hang", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let w = json!({
        "id": "hangs", "config": { "timeoutMs": 500 },
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "call" },
            { "id": "call", "type": "action", "action": "http.request", "params": { "url": url } }
        ]
    });
    let file = write(dir.path(), "hangs.json", &w);
    let out = wf(&["run", &file], dir.path());
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], json!("timed_out"));
    drop(listener);
}

#[test]
fn run_exits_3_on_invalid_input_listing_every_violation_and_creating_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = simple(json!(1));
    w["steps"][0]["inputSchema"]["required"] = json!(["n", "name"]);
    let file = write(dir.path(), "simple.json", &w);
    let db = dir.path().join("state.db");
    let out = wf(
        &[
            "run",
            &file,
            "--input",
            r#"{"n": "x"}"#,
            "--db",
            db.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/n") && err.contains("name"), "{err}");
    assert!(out.stdout.is_empty());
    let out = wf(&["run", &file, "--input", "{not json"], dir.path());
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
}

#[test]
fn run_exits_3_on_an_invalid_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = simple(json!(1));
    w["steps"][0]["next"] = json!("nowhere");
    let file = write(dir.path(), "simple.json", &w);
    let out = wf(&["run", &file], dir.path());
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/steps/0/next"));
}

#[test]
fn usage_errors_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(wf(&["run"], dir.path()).status.code(), Some(64));
    assert_eq!(wf(&["frobnicate"], dir.path()).status.code(), Some(64));
    let file = write(dir.path(), "simple.json", &simple(json!(1)));
    assert_eq!(
        wf(&["run", &file, "--var", "novalue"], dir.path())
            .status
            .code(),
        Some(64)
    );
    assert_eq!(wf(&["--help"], dir.path()).status.code(), Some(0));
    // `wf dev` needs a request thread; the error names the flag before anything is opened.
    let db = dir.path().join("dev.db");
    for threads in ["0", "many"] {
        let out = wf(
            &["dev", "--threads", threads, "--db", db.to_str().unwrap()],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(64), "--threads {threads}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--threads"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!db.exists(), "a usage error opens no store");
}

#[test]
fn validate_accepts_the_examples_and_reports_problems_with_positions() {
    let out = wf(&["validate"], repo());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = "{\n  \"id\": \"bad\",\n  \"steps\": [\n    { \"id\": \"start\", \"type\": \"start\", \"triggers\": [{\"type\": \"manual\"}], \"next\": \"nope\" }\n  ]\n}\n";
    std::fs::write(dir.path().join("bad.json"), bad).unwrap();
    let out = wf(&["validate", "bad.json"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bad.json:4:"), "{text}");
    assert!(text.contains("/steps/0/next"), "{text}");
    let out = wf(&["validate", "--json", "bad.json"], dir.path());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["pointer"], json!("/steps/0/next"));
    assert_eq!(v[0]["line"], json!(4));
}

#[test]
fn validate_prints_warnings_without_failing() {
    let dir = tempfile::tempdir().unwrap();
    // 5 retries from 2 s doubling: 62 s of backoff against a 60 s timeout.
    let slow = json!({
        "id": "slow",
        "config": { "timeoutMs": 60000 },
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "notify" },
            { "id": "notify", "type": "action", "action": "message.send",
              "params": { "url": "https://hooks.example.com/x", "text": "hi" },
              "retry": { "maxRetries": 5, "backoffMs": 2000, "backoffMultiplier": 2 } }
        ]
    });
    write(dir.path(), "slow.json", &slow);
    let out = wf(&["validate", "slow.json"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "only a warning: {text}");
    assert!(text.contains("ok   slow.json"), "{text}");
    let warning = text
        .lines()
        .find(|l| l.starts_with("warning: slow.json:"))
        .unwrap_or_else(|| panic!("no warning line: {text}"));
    assert!(
        warning.contains("/steps/1/retry")
            && warning.contains("62000 ms")
            && warning.contains("60000 ms"),
        "{warning}"
    );
    assert!(text.contains("1 warning(s)"), "{text}");
    let out = wf(&["validate", "--json", "slow.json"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v[0]["severity"], json!("warning"));
    assert_eq!(v[0]["code"], json!("retry.outlasts_timeout"));
    assert_eq!(v[0]["pointer"], json!("/steps/1/retry"));
    assert_eq!(v[0]["file"], json!("slow.json"));
}

#[test]
fn validate_refuses_a_workflow_id_the_api_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let mut long = simple(json!(1));
    long["id"] = json!("a".repeat(70));
    write(dir.path(), "long.json", &long);
    let out = wf(&["validate", "--json", "long.json"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["pointer"], json!("/id"), "{v:#}");
    assert_eq!(v[0]["severity"], json!("error"));
    assert!(
        v[0]["message"].as_str().unwrap().contains("too long"),
        "{v:#}"
    );
}

#[test]
fn schema_prints_what_workflows_schema_json_holds() {
    let out = wf(&["schema"], repo());
    assert_eq!(out.status.code(), Some(0));
    let file = std::fs::read_to_string(repo().join("workflows/schema.json")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), file);
}
