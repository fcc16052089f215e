//! `wf new`: an empty workflow file, or one the LLM writes (wiremock on 127.0.0.1 as the
//! provider); existing files are never overwritten.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn wf(args: &[&str], dir: &Path, base_url: &str) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (dir, base_url) = (dir.to_path_buf(), base_url.to_owned());
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wf"))
            .args(&args)
            .current_dir(dir)
            .env("WF_LLM_BASE_URL", base_url)
            .env_remove("WF_LLM_API_KEY")
            .env_remove("WF_DEV_DB")
            .env("WF_AI_MODEL", "test-model")
            .output()
            .expect("run wf")
    })
    .await
    .unwrap()
}

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn completion(content: &str) -> Value {
    json!({ "model": "test-model",
            "choices": [ { "index": 0, "message": { "role": "assistant", "content": content } } ] })
}

fn workflow(action: &str) -> Value {
    json!({
        "id": "anything", "name": "Nightly ping",
        "steps": [
            { "id": "start", "type": "start", "triggers": [ { "type": "schedule", "cron": "@daily" } ], "next": "ping" },
            { "id": "ping", "type": "action", "action": action, "params": { "url": "https://status.example.com/ping" } }
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_writes_an_empty_workflow_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let no_llm = "http://127.0.0.1:1";
    let out = wf(&["new", "hello", "--name", "Hello"], tmp.path(), no_llm).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let file = tmp.path().join("workflows/hello.json");
    assert_eq!(
        read(&file),
        json!({ "id": "hello", "name": "Hello",
                "steps": [ { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ] } ] })
    );
    let out = wf(&["validate", "workflows/hello.json"], tmp.path(), no_llm).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let out = wf(&["new", "hello"], tmp.path(), no_llm).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("refusing to overwrite"),
        "{}",
        stderr(&out)
    );
    for args in [
        vec!["new"],
        vec!["new", "Bad_Id"],
        vec!["new", "x", "--describe", " "],
    ] {
        let out = wf(&args, tmp.path(), no_llm).await;
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
    }
    // with a schema.json beside it, the file points editors at it
    std::fs::write(tmp.path().join("workflows/schema.json"), "{}").unwrap();
    let out = wf(&["new", "second"], tmp.path(), no_llm).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        read(&tmp.path().join("workflows/second.json"))["$schema"],
        "./schema.json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_describe_writes_what_the_model_made_valid() {
    let server = MockServer::start().await;
    let content = json!({ "workflow": workflow("http.request"),
                          "explanation": "Pings the status page every day at 00:00 UTC." })
    .to_string();
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(&content)))
        .expect(2)
        .mount(&server)
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "new",
        "--describe",
        "ping the status page every night",
        "--name",
        "Nightly ping",
    ];
    let out = wf(&args, tmp.path(), &server.uri()).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("wrote workflows/nightly-ping.json"), "{text}");
    assert!(
        text.contains("the model: Pings the status page every day at 00:00 UTC."),
        "{text}"
    );
    assert!(text.contains("validation: valid"), "{text}");
    let wf_file = read(&tmp.path().join("workflows/nightly-ping.json"));
    assert_eq!(wf_file["id"], "nightly-ping");
    assert_eq!(wf_file["steps"][1]["action"], "http.request");
    assert!(
        tmp.path().join(".wf/dev.db").exists(),
        "the draft is in the local store"
    );
    let out = wf(
        &["validate", "workflows/nightly-ping.json"],
        tmp.path(),
        &server.uri(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // the same name again: the next free id, the first file untouched
    let out = wf(&args, tmp.path(), &server.uri()).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("wrote workflows/nightly-ping-2.json"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        read(&tmp.path().join("workflows/nightly-ping.json")),
        wf_file
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_describe_that_never_validates_writes_nothing() {
    let server = MockServer::start().await;
    let content = json!({ "workflow": workflow("status.ping"), "explanation": "x" }).to_string();
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(&content)))
        .expect(4)
        .mount(&server)
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = wf(
        &["new", "pinger", "--describe", "ping it"],
        tmp.path(),
        &server.uri(),
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("/steps/1/action"), "{err}");
    assert!(err.contains("nothing was written or saved"), "{err}");
    assert!(!tmp.path().join("workflows/pinger.json").exists());

    // a provider that is down: exit 1 with its reason
    let out = wf(
        &["new", "pinger", "--describe", "ping it"],
        tmp.path(),
        "http://127.0.0.1:1",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the LLM provider failed"),
        "{}",
        stderr(&out)
    );
}
