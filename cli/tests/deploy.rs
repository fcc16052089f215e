//! `wf deploy` end to end: the real binary syncing a folder of workflows to a real `wf dev`
//! (same router as the api function) with `--no-sign`: create, publish, activate per config,
//! idempotence (a second run writes nothing), one changed file, activation changes, dry runs,
//! `--only`, invalid files (nothing sent), API errors and an unreachable API. Authentication and
//! transport (bearer, SigV4 from the credential chain, retries, time outs, error bodies that
//! `wf dev` never answers) against wiremock, SigV4 checked with an independent implementation.

mod dev_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use dev_support::{DevProcess, write_file};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wf_core::model::Workflow;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The example workflows of the repository (`workflows/*.json`): id -> `config.active`.
const EXAMPLES: &[(&str, bool)] = &[
    ("customer-checkup", false),
    ("order-alert", true),
    ("restock", true),
    ("support-triage", true),
    ("weekday-report", true),
];

fn repo_workflows() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../workflows")).to_path_buf()
}

/// A project folder with `workflows/` (what is deployed) and an empty AWS configuration.
struct Project {
    dir: tempfile::TempDir,
}

/// A finished `wf deploy`.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// The report line of workflow `id` (`  <id>  <action>  <state>`).
    #[track_caller]
    fn line(&self, id: &str) -> String {
        self.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no line for {id} in:\n{}", self.stdout))
            .to_string()
    }

    /// The action column of workflow `id`'s line.
    #[track_caller]
    fn action(&self, id: &str) -> String {
        let line = self.line(id);
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields[1..fields.len() - 2].join(" ")
    }
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        std::fs::write(dir.path().join("aws-config"), "").unwrap();
        Self { dir }
    }

    /// The repository's example workflows.
    fn examples() -> Self {
        let p = Self::new();
        for (id, _) in EXAMPLES {
            let file = format!("{id}.json");
            std::fs::copy(repo_workflows().join(&file), p.workflows().join(&file)).unwrap();
        }
        p
    }

    fn workflows(&self) -> PathBuf {
        self.dir.path().join("workflows")
    }

    fn file(&self, id: &str) -> PathBuf {
        self.workflows().join(format!("{id}.json"))
    }

    fn read(&self, id: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.file(id)).unwrap()).unwrap()
    }

    fn write(&self, workflow: &Value) {
        let id = workflow["id"].as_str().unwrap();
        write_file(
            &self.file(id),
            &serde_json::to_string_pretty(workflow).unwrap(),
        );
    }

    fn edit(&self, id: &str, change: impl FnOnce(&mut Value)) {
        let mut v = self.read(id);
        change(&mut v);
        self.write(&v);
    }

    /// `wf deploy ARGS` in the project folder. The child sees no AWS settings of this machine:
    /// no `AWS_*` variables, empty config and credentials files, no instance metadata; `env`
    /// adds to that.
    async fn deploy(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wf"));
        cmd.arg("deploy")
            .args(args)
            .current_dir(self.dir.path())
            .kill_on_drop(true);
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") || k.to_ascii_lowercase().ends_with("_proxy") {
                cmd.env_remove(k);
            }
        }
        let aws_config = self.dir.path().join("aws-config");
        cmd.env_remove("WF_API_TOKEN")
            .env_remove("WF_LOG")
            .env_remove("RUST_LOG")
            .env("HOME", self.dir.path())
            .env("AWS_CONFIG_FILE", &aws_config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &aws_config)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_PROXY", "127.0.0.1,localhost");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("wf deploy finished within 60 s")
            .expect("run wf deploy");
        Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `wf deploy --api-url URL --no-sign ARGS`.
    async fn deploy_unsigned(&self, url: &str, args: &[&str]) -> Out {
        let mut all = vec!["--api-url", url, "--no-sign"];
        all.extend_from_slice(args);
        self.deploy(&all, &[]).await
    }
}

/// `GET /workflows/{id}`'s summary (`workflow`), or `None` on 404.
async fn summary(dev: &DevProcess, id: &str) -> Option<Value> {
    let r = dev.get(&format!("/workflows/{id}")).await;
    if r.status.as_u16() == 404 {
        return None;
    }
    Some(r.expect(200)["workflow"].clone())
}

/// Every workflow's summary, by id.
async fn summaries(dev: &DevProcess) -> Vec<Value> {
    let r = dev.get("/workflows").await;
    r.expect(200).as_array().unwrap().clone()
}

fn typed(v: &Value) -> Workflow {
    serde_json::from_value(v.clone()).expect("a workflow")
}

// ---------------------------------------------------------------------------------------------
// Against `wf dev`

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_the_examples_then_changes_nothing_then_only_the_changed_one() {
    let dev = DevProcess::new().start();
    let project = Project::examples();

    let out = project.deploy_unsigned(&dev.url, &[]).await;
    out.expect(0);
    for (id, active) in EXAMPLES {
        let expected = if *active {
            "created+published+activated"
        } else {
            "created+published"
        };
        assert_eq!(out.action(id), expected, "{}", out.stdout);
        let s = summary(&dev, id).await.expect("created");
        assert_eq!(s["latestVersion"], json!(1), "{s}");
        assert_eq!(s["active"], json!(active), "{s}");
        assert_eq!(
            s["activeVersion"],
            if *active { json!(1) } else { Value::Null },
            "{s}"
        );
        // The draft is the file as written; version 1 is its content.
        let r = dev.get(&format!("/workflows/{id}")).await;
        assert_eq!(r.expect(200)["draft"], project.read(id));
        let v1 = dev.get(&format!("/workflows/{id}/versions/1")).await;
        assert_eq!(typed(v1.expect(200)), typed(&project.read(id)));
    }
    assert!(
        out.stdout.contains(
            "5 workflow(s): 5 created, 0 updated, 0 activation changed, 0 unchanged, 0 failed"
        ),
        "{}",
        out.stdout
    );
    let before = summaries(&dev).await;

    // Again: nothing to do, nothing written (`updatedAt` moves on any write).
    let out = project.deploy_unsigned(&dev.url, &[]).await;
    out.expect(0);
    for (id, _) in EXAMPLES {
        assert_eq!(out.action(id), "unchanged", "{}", out.stdout);
    }
    assert!(
        out.stdout.contains("5 unchanged, 0 failed"),
        "{}",
        out.stdout
    );
    assert_eq!(summaries(&dev).await, before);

    // One file changes: only it gets a new version, which goes live.
    project.edit("order-alert", |w| {
        w["config"]["variables"]["threshold"] = json!(250)
    });
    let out = project.deploy_unsigned(&dev.url, &["--json"]).await;
    out.expect(0);
    let report = out.json();
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["dryRun"], json!(false));
    assert_eq!(report["auth"], json!("unsigned"));
    assert_eq!(
        report["summary"],
        json!({ "activationChanged": 0, "created": 0, "failed": 0, "unchanged": 4, "updated": 1 })
    );
    for w in report["workflows"].as_array().unwrap() {
        let id = w["id"].as_str().unwrap();
        if id == "order-alert" {
            assert_eq!(w["action"], json!("updated+published"), "{w}");
            assert_eq!(w["actions"], json!(["updated", "published"]), "{w}");
            assert_eq!(w["version"], json!(2), "{w}");
            assert_eq!(w["active"], json!(true), "{w}");
            assert_eq!(w["file"], json!("workflows/order-alert.json"), "{w}");
        } else {
            assert_eq!(w["action"], json!("unchanged"), "{w}");
            assert_eq!(w["version"], json!(1), "{w}");
        }
        assert_eq!(w["error"], Value::Null, "{w}");
    }
    for s in summaries(&dev).await {
        let id = s["id"].as_str().unwrap();
        if id == "order-alert" {
            assert_eq!(
                (&s["latestVersion"], &s["activeVersion"], &s["active"]),
                (&json!(2), &json!(2), &json!(true)),
                "{s}"
            );
            let v2 = dev.get("/workflows/order-alert/versions/2").await;
            assert_eq!(
                v2.expect(200)["config"]["variables"]["threshold"],
                json!(250)
            );
        } else {
            let old = before.iter().find(|b| b["id"] == s["id"]).unwrap();
            assert_eq!(&s, old, "{id} was not touched");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_active_activates_and_deactivates_without_a_new_version() {
    let dev = DevProcess::new().start();
    let project = Project::examples();
    project.deploy_unsigned(&dev.url, &[]).await.expect(0);

    // Only `config.active` changes: activation state, not versioned content.
    project.edit("customer-checkup", |w| w["config"]["active"] = json!(true));
    project.edit("order-alert", |w| w["config"]["active"] = json!(false));
    let out = project.deploy_unsigned(&dev.url, &[]).await;
    out.expect(0);
    assert_eq!(out.action("customer-checkup"), "activated");
    assert_eq!(out.action("order-alert"), "deactivated");
    assert!(
        out.line("order-alert").ends_with("v1 inactive"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("2 activation changed, 3 unchanged"),
        "{}",
        out.stdout
    );
    let s = summary(&dev, "customer-checkup").await.unwrap();
    assert_eq!(
        (&s["active"], &s["activeVersion"], &s["latestVersion"]),
        (&json!(true), &json!(1), &json!(1))
    );
    let s = summary(&dev, "order-alert").await.unwrap();
    assert_eq!(
        (&s["active"], &s["latestVersion"]),
        (&json!(false), &json!(1))
    );

    // Content and activation at once: switched off first, then the new version published
    // (publishing a live workflow would have put the new version live).
    project.edit("restock", |w| {
        w["config"]["active"] = json!(false);
        w["name"] = json!("Restock (paused)");
    });
    // A changed inactive workflow is published and stays inactive.
    project.edit("order-alert", |w| w["name"] = json!("Order alert, quiet"));
    // Rolled back through the API: deploy puts the latest version back live.
    dev.post("/workflows/support-triage/deactivate", json!({}))
        .await
        .expect(200);
    let out = project.deploy_unsigned(&dev.url, &[]).await;
    out.expect(0);
    assert_eq!(out.action("restock"), "deactivated+updated+published");
    assert_eq!(out.action("order-alert"), "updated+published");
    assert_eq!(out.action("support-triage"), "activated");
    let s = summary(&dev, "restock").await.unwrap();
    assert_eq!(
        (&s["active"], &s["latestVersion"]),
        (&json!(false), &json!(2)),
        "{s}"
    );
    let s = summary(&dev, "order-alert").await.unwrap();
    assert_eq!(
        (&s["active"], &s["latestVersion"]),
        (&json!(false), &json!(2)),
        "{s}"
    );
    let s = summary(&dev, "support-triage").await.unwrap();
    assert_eq!(
        (&s["active"], &s["activeVersion"]),
        (&json!(true), &json!(1)),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_changes_nothing() {
    let dev = DevProcess::new().start();
    let project = Project::examples();

    let out = project.deploy_unsigned(&dev.url, &["--dry-run"]).await;
    out.expect(0);
    assert!(
        out.stdout.contains("dry run: nothing is changed"),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.action("order-alert"),
        "would be created+published+activated"
    );
    assert_eq!(out.action("customer-checkup"), "would be created+published");
    assert!(
        out.line("order-alert").ends_with("v1 active"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("dry run: 5 workflow(s): 5 created"),
        "{}",
        out.stdout
    );
    assert_eq!(summaries(&dev).await, Vec::<Value>::new());

    project.deploy_unsigned(&dev.url, &[]).await.expect(0);
    let before = summaries(&dev).await;
    project.edit("weekday-report", |w| w["name"] = json!("Weekday report v2"));
    project.edit("customer-checkup", |w| w["config"]["active"] = json!(true));
    let out = project
        .deploy_unsigned(&dev.url, &["--dry-run", "--json"])
        .await;
    out.expect(0);
    let report = out.json();
    assert_eq!(report["dryRun"], json!(true));
    let by_id = |id: &str| {
        report["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["id"] == json!(id))
            .cloned()
            .unwrap()
    };
    assert_eq!(
        by_id("weekday-report")["action"],
        json!("updated+published")
    );
    assert_eq!(by_id("weekday-report")["version"], json!(2));
    assert_eq!(by_id("customer-checkup")["action"], json!("activated"));
    assert_eq!(by_id("order-alert")["action"], json!("unchanged"));
    assert_eq!(summaries(&dev).await, before, "a dry run writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_means_nothing_is_sent() {
    let dev = DevProcess::new().start();
    let project = Project::examples();
    project.deploy_unsigned(&dev.url, &[]).await.expect(0);
    let before = summaries(&dev).await;

    // A valid change next to an invalid file: neither reaches the API.
    project.edit("order-alert", |w| w["name"] = json!("Changed"));
    let broken = "{\n  \"id\": \"broken\",\n  \"steps\": [\n    { \"id\": \"start\", \"type\": \"start\", \"triggers\": [{\"type\": \"manual\"}], \"next\": \"nope\" }\n  ]\n}\n";
    std::fs::write(project.file("broken"), broken).unwrap();

    let out = project.deploy_unsigned(&dev.url, &[]).await;
    // `wf validate`'s exit code and output for the same files.
    out.expect(1);
    assert!(
        out.stdout.contains("FAIL workflows/broken.json"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("workflows/broken.json:4:") && out.stdout.contains("/steps/0/next"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("hint:"), "{}", out.stdout);
    assert!(
        out.stdout.contains("ok   workflows/order-alert.json"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("problem(s) in 1 of 6 file(s)"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("nothing was sent"), "{}", out.stderr);
    let validate = std::process::Command::new(env!("CARGO_BIN_EXE_wf"))
        .args(["validate", "workflows"])
        .current_dir(project.dir.path())
        .output()
        .unwrap();
    assert_eq!(validate.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&validate.stdout), out.stdout);

    let out = project.deploy_unsigned(&dev.url, &["--json"]).await;
    out.expect(1);
    let report = out.json();
    assert_eq!(report["ok"], json!(false));
    assert_eq!(report["workflows"], json!([]));
    assert_eq!(
        report["problems"][0]["file"],
        json!("workflows/broken.json")
    );
    assert_eq!(report["problems"][0]["pointer"], json!("/steps/0/next"));
    assert_eq!(report["problems"][0]["line"], json!(4));

    assert_eq!(summaries(&dev).await, before, "nothing changed");
    assert!(summary(&dev, "broken").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_deploys_the_named_workflows() {
    let dev = DevProcess::new().start();
    let project = Project::examples();
    // Not selected: does not stop the others.
    std::fs::write(project.file("broken"), "{ \"id\": \"broken\", ").unwrap();

    let out = project
        .deploy_unsigned(&dev.url, &["--only", "order-alert,restock"])
        .await;
    out.expect(0);
    assert!(
        out.stdout.contains("2 workflow(s) from workflows"),
        "{}",
        out.stdout
    );
    let ids: Vec<Value> = summaries(&dev)
        .await
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("order-alert"), json!("restock")]);

    let out = project
        .deploy_unsigned(&dev.url, &["--only", "weekday-report", "customer-checkup"])
        .await;
    out.expect(0);
    assert_eq!(summaries(&dev).await.len(), 4);

    // Selected and invalid: stops.
    let out = project
        .deploy_unsigned(&dev.url, &["--only", "broken"])
        .await;
    out.expect(1);
    assert!(
        out.stdout.contains("FAIL workflows/broken.json"),
        "{}",
        out.stdout
    );

    // An id without a file is a usage error; nothing is sent.
    let out = project
        .deploy_unsigned(&dev.url, &["--only", "support-triage,nope"])
        .await;
    out.expect(64);
    assert!(
        out.stderr
            .contains("--only nope: no workflow file with that id"),
        "{}",
        out.stderr
    );
    assert!(summary(&dev, "support-triage").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_error_names_the_workflow_and_the_request_and_the_others_go_on() {
    // `wf dev` serves restock from its own file: the API refuses to replace it (409).
    let mut restock: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_workflows().join("restock.json")).unwrap(),
    )
    .unwrap();
    restock["name"] = json!("Restock, as wf dev has it");
    let dev = DevProcess::new().workflow(restock).start();
    let project = Project::examples();

    let out = project.deploy_unsigned(&dev.url, &[]).await;
    out.expect(1);
    assert_eq!(out.action("restock"), "failed");
    assert!(
        out.stderr.contains(
            "wf deploy: restock: PUT /workflows/restock: 409 Conflict: file_backed: workflow restock comes from"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("edit that file"), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("4 created, 0 updated, 0 activation changed, 0 unchanged, 1 failed"),
        "{}",
        out.stdout
    );
    assert_eq!(
        summary(&dev, "order-alert").await.unwrap()["latestVersion"],
        json!(1)
    );

    let out = project.deploy_unsigned(&dev.url, &["--json"]).await;
    out.expect(1);
    let report = out.json();
    assert_eq!(report["ok"], json!(false));
    assert_eq!(report["summary"]["failed"], json!(1));
    assert_eq!(report["summary"]["unchanged"], json!(4));
    let failed = report["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == json!("restock"))
        .unwrap();
    let e = &failed["error"];
    assert_eq!(e["request"], json!("PUT /workflows/restock"));
    assert_eq!(e["status"], json!(409));
    assert_eq!(e["code"], json!("file_backed"));
    assert!(
        e["apiMessage"].as_str().unwrap().contains("edit that file"),
        "{e}"
    );
    assert_eq!(e["attempts"], json!(1), "a 409 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_is_a_clear_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let project = Project::examples();
    let out = project.deploy_unsigned(&url, &[]).await;
    out.expect(1);
    assert!(
        out.stderr
            .contains("cannot read the API's workflows, nothing was changed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "GET /workflows: no answer after 4 attempt(s): cannot reach {url}"
        )),
        "{}",
        out.stderr
    );
    let out = project.deploy_unsigned(&url, &["--json"]).await;
    out.expect(1);
    let report = out.json();
    assert_eq!(report["ok"], json!(false));
    assert_eq!(report["error"]["request"], json!("GET /workflows"));
    assert_eq!(report["error"]["attempts"], json!(4));
    assert_eq!(report["error"]["timedOut"], json!(false));
}

// ---------------------------------------------------------------------------------------------
// Against wiremock: authentication, retries, time outs, error bodies

/// A project with one inactive workflow `a`.
fn one_workflow() -> Project {
    let p = Project::new();
    p.write(&json!({
        "id": "a", "name": "A",
        "steps": [ { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ] } ]
    }));
    p
}

/// What the API answers when `a` is new: an empty list, the create, the publish.
async fn fake_api() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/workflows"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/workflows"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({ "workflow": { "id": "a" } })),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/workflows/a/publish"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "version": 1,
            "workflow": { "id": "a", "active": false, "activeVersion": null, "latestVersion": 1 }
        })))
        .mount(&server)
        .await;
    server
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers.get(name).map(|v| v.to_str().unwrap())
}

fn requests(list: &[Request]) -> Vec<String> {
    list.iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect()
}

const FLOW: [&str; 3] = [
    "GET /workflows",
    "POST /workflows",
    "POST /workflows/a/publish",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_sent_as_bearer_and_no_sign_sends_nothing() {
    let project = one_workflow();

    let server = fake_api().await;
    let out = project
        .deploy(&["--api-url", &server.uri(), "--token", "t0k3n"], &[])
        .await;
    out.expect(0);
    assert!(out.stdout.contains("(bearer token)"), "{}", out.stdout);
    assert_eq!(out.action("a"), "created+published");
    let list = received(&server).await;
    assert_eq!(requests(&list), FLOW);
    for r in &list {
        assert_eq!(header(r, "authorization"), Some("Bearer t0k3n"), "{r:?}");
        assert_eq!(header(r, "x-amz-date"), None, "{r:?}");
    }
    let create = &list[1];
    assert_eq!(header(create, "content-type"), Some("application/json"));
    assert_eq!(create.body_json::<Value>().unwrap(), project.read("a"));

    // From the environment, even with AWS credentials around.
    let server = fake_api().await;
    let out = project
        .deploy(
            &["--api-url", &server.uri()],
            &[
                ("WF_API_TOKEN", "from-env"),
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
            ],
        )
        .await;
    out.expect(0);
    for r in &received(&server).await {
        assert_eq!(header(r, "authorization"), Some("Bearer from-env"), "{r:?}");
    }

    let server = fake_api().await;
    project
        .deploy(&["--api-url", &server.uri(), "--no-sign"], &[])
        .await
        .expect(0);
    let list = received(&server).await;
    assert_eq!(requests(&list), FLOW);
    for r in &list {
        assert_eq!(header(r, "authorization"), None, "{r:?}");
    }
}

/// Checks a SigV4 `Authorization` header the way AWS does (an implementation of the
/// documented algorithm, independent of the `aws-sigv4` crate): returns the credential scope
/// (`date/region/service/aws4_request`) and the signed header names.
fn verify_sigv4(req: &Request, access_key: &str, secret: &str) -> (String, Vec<String>) {
    let auth = header(req, "authorization").expect("authorization header");
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .unwrap_or_else(|| panic!("{auth}"));
    let mut credential = "";
    let mut signed = "";
    let mut signature = "";
    for part in rest.split(", ") {
        let (k, v) = part.split_once('=').unwrap();
        match k {
            "Credential" => credential = v,
            "SignedHeaders" => signed = v,
            "Signature" => signature = v,
            other => panic!("unexpected {other} in {auth}"),
        }
    }
    let (key, scope) = credential.split_once('/').unwrap();
    assert_eq!(key, access_key, "{auth}");
    let amz_date = header(req, "x-amz-date").expect("x-amz-date");
    assert_eq!(&amz_date[..8], scope.split('/').next().unwrap());
    let names: Vec<String> = signed.split(';').map(str::to_string).collect();
    let canonical_headers: String = names
        .iter()
        .map(|n| {
            let value = match n.as_str() {
                // The client sends the authority it connected to.
                "host" => header(req, "host").map(str::to_string).unwrap_or_else(|| {
                    format!(
                        "{}:{}",
                        req.url.host_str().unwrap(),
                        req.url.port().unwrap()
                    )
                }),
                other => header(req, other)
                    .unwrap_or_else(|| panic!("signed header {other} not sent"))
                    .trim()
                    .to_string(),
            };
            format!("{n}:{value}\n")
        })
        .collect();
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.url.path(),
        req.url.query().unwrap_or(""),
        canonical_headers,
        signed,
        hex::encode(Sha256::digest(&req.body))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    let parts: Vec<&str> = scope.split('/').collect();
    let mut k = hmac(format!("AWS4{secret}").as_bytes(), parts[0].as_bytes());
    for p in &parts[1..] {
        k = hmac(&k, p.as_bytes());
    }
    let expected = hex::encode(hmac(&k, string_to_sign.as_bytes()));
    assert_eq!(
        signature, expected,
        "signature of {} {}",
        req.method, req.url
    );
    (scope.to_string(), names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_requests_are_signed_with_sigv4_from_the_credential_chain() {
    let project = one_workflow();
    let creds = [
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
    ];

    let server = fake_api().await;
    let out = project
        .deploy(
            &["--api-url", &server.uri(), "--region", "eu-west-1"],
            &creds,
        )
        .await;
    out.expect(0);
    assert!(
        out.stdout
            .contains("(AWS SigV4, service lambda, region eu-west-1)"),
        "{}",
        out.stdout
    );
    let list = received(&server).await;
    assert_eq!(requests(&list), FLOW);
    for r in &list {
        let auth = header(r, "authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/"),
            "{auth}"
        );
        assert!(header(r, "x-amz-date").is_some(), "{r:?}");
        let (scope, signed) = verify_sigv4(r, "AKID", "s3cr3t");
        assert!(scope.ends_with("/eu-west-1/lambda/aws4_request"), "{scope}");
        assert!(signed.contains(&"host".to_string()), "{signed:?}");
        assert!(signed.contains(&"x-amz-date".to_string()), "{signed:?}");
        if !r.body.is_empty() {
            assert!(signed.contains(&"content-type".to_string()), "{signed:?}");
        }
    }

    // Region from AWS_REGION; temporary credentials carry their session token, signed too.
    let server = fake_api().await;
    let mut env = creds.to_vec();
    env.push(("AWS_SESSION_TOKEN", "SESSION"));
    env.push(("AWS_REGION", "us-east-2"));
    project
        .deploy(&["--api-url", &server.uri()], &env)
        .await
        .expect(0);
    for r in &received(&server).await {
        assert_eq!(header(r, "x-amz-security-token"), Some("SESSION"), "{r:?}");
        let (scope, signed) = verify_sigv4(r, "AKID", "s3cr3t");
        assert!(scope.ends_with("/us-east-2/lambda/aws4_request"), "{scope}");
        assert!(
            signed.contains(&"x-amz-security-token".to_string()),
            "{signed:?}"
        );
    }

    // A wrong secret does not verify (the check above checks something).
    let list = received(&server).await;
    let r = list[0].clone();
    let wrong = std::panic::catch_unwind(move || verify_sigv4(&r, "AKID", "other"));
    assert!(wrong.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_token_credentials_or_no_sign_the_error_lists_the_three_ways() {
    let project = one_workflow();
    let server = fake_api().await;
    let out = project
        .deploy(&["--api-url", &server.uri(), "--region", "eu-west-1"], &[])
        .await;
    out.expect(64);
    for needle in [
        "no AWS credentials to sign requests to",
        "AWS_ACCESS_KEY_ID",
        "--token TOKEN or WF_API_TOKEN",
        "--no-sign",
    ] {
        assert!(
            out.stderr.contains(needle),
            "{needle:?} in:\n{}",
            out.stderr
        );
    }
    assert_eq!(received(&server).await.len(), 0);

    // Credentials but no region: the URL is not a function URL, nothing names one.
    let out = project
        .deploy(
            &["--api-url", &server.uri()],
            &[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ],
        )
        .await;
    out.expect(64);
    assert!(out.stderr.contains("no AWS region"), "{}", out.stderr);
    assert!(out.stderr.contains("--region"), "{}", out.stderr);
    assert_eq!(received(&server).await.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_server_errors_and_lost_connections_are_retried() {
    let project = one_workflow();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/workflows"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/workflows"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/workflows"))
        .respond_with(ResponseTemplate::new(502).set_body_string("Bad Gateway"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    // Then it answers as for a new workflow.
    Mock::given(method("GET"))
        .and(path("/workflows"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    // A create repeated after a lost answer finds the workflow: it becomes a PUT.
    Mock::given(method("POST"))
        .and(path("/workflows"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "error": { "code": "exists", "message": "workflow a exists", "details": null }
        })))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/workflows/a"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "workflow": { "id": "a" } })),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/workflows/a/publish"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "version": 1,
            "workflow": { "id": "a", "active": false, "activeVersion": null, "latestVersion": 1 }
        })))
        .mount(&server)
        .await;

    let started = std::time::Instant::now();
    let out = project
        .deploy(&["--api-url", &server.uri(), "--no-sign"], &[])
        .await;
    out.expect(0);
    assert_eq!(out.action("a"), "created+published");
    assert_eq!(
        requests(&received(&server).await),
        [
            "GET /workflows",
            "GET /workflows",
            "GET /workflows",
            "POST /workflows",
            "POST /workflows",
            "PUT /workflows/a",
            "POST /workflows/a/publish",
        ]
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_failures_show_the_status_the_error_body_and_a_hint() {
    let project = one_workflow();

    // 5xx every time: given up after 4 attempts, the API's error shown.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/workflows"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "error": { "code": "unavailable", "message": "the store is busy; try again", "details": null }
        })))
        .mount(&server)
        .await;
    let out = project
        .deploy(&["--api-url", &server.uri(), "--no-sign"], &[])
        .await;
    out.expect(1);
    assert!(
        out.stderr.contains(
            "GET /workflows: 503 Service Unavailable: unavailable: the store is busy; try again (after 4 attempts)"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(received(&server).await.len(), 4);

    // A refusal that is not our shape (Lambda's own 403) is shown as it is, once, with a hint.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/workflows"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({ "Message": "Forbidden" })))
        .mount(&server)
        .await;
    let out = project
        .deploy(&["--api-url", &server.uri(), "--no-sign"], &[])
        .await;
    out.expect(1);
    assert!(
        out.stderr
            .contains(r#"GET /workflows: 403 Forbidden: {"Message":"Forbidden"}"#),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("hint: a function URL with AWS_IAM auth takes SigV4-signed requests"),
        "{}",
        out.stderr
    );
    assert_eq!(received(&server).await.len(), 1, "a 4xx is not retried");
    let out = project
        .deploy(
            &["--api-url", &server.uri(), "--region", "eu-west-1"],
            &[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ],
        )
        .await;
    out.expect(1);
    assert!(
        out.stderr.contains("lambda:InvokeFunctionUrl"),
        "{}",
        out.stderr
    );

    // The bearer middleware's 401.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/workflows"))
        .respond_with(ResponseTemplate::new(401).insert_header("www-authenticate", "Bearer").set_body_json(json!({
            "error": { "code": "unauthorized", "message": "a bearer token is required", "details": null }
        })))
        .mount(&server)
        .await;
    let out = project
        .deploy(&["--api-url", &server.uri(), "--token", "wrong"], &[])
        .await;
    out.expect(1);
    assert!(
        out.stderr
            .contains("401 Unauthorized: unauthorized: a bearer token is required"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("pass --token or set WF_API_TOKEN"),
        "{}",
        out.stderr
    );

    // Not the management API at all.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/workflows"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "hello": "world" })))
        .mount(&server)
        .await;
    let out = project
        .deploy(&["--api-url", &server.uri(), "--no-sign"], &[])
        .await;
    out.expect(1);
    assert!(
        out.stderr.contains("the answer is not a list of workflows"),
        "{}",
        out.stderr
    );
    let server = MockServer::start().await;
    let out = project
        .deploy(
            &[
                "--api-url",
                &format!("{}/prefix", server.uri()),
                "--no-sign",
            ],
            &[],
        )
        .await;
    out.expect(1);
    assert!(
        out.stderr.contains("GET /workflows: 404 Not Found"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("is --api-url the management API"),
        "{}",
        out.stderr
    );
    assert_eq!(
        requests(&received(&server).await),
        ["GET /prefix/workflows"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_publish_shows_every_problem_with_its_hint() {
    let project = one_workflow();
    let server = fake_api().await;
    // Takes precedence over fake_api's 201 (priority 5).
    Mock::given(method("POST"))
        .and(path("/workflows/a/publish"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "error": { "code": "invalid_workflow", "message": "the draft has 1 problem(s); fix them and publish again",
                       "details": { "problems": [ { "pointer": "/steps/0/next", "message": "no step \"x\"", "hint": "use one of: start" } ] } }
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    let out = project
        .deploy(&["--api-url", &server.uri(), "--no-sign"], &[])
        .await;
    out.expect(1);
    assert_eq!(out.action("a"), "created+failed");
    assert!(
        out.stderr.contains(
            "wf deploy: a: POST /workflows/a/publish: 422 Unprocessable Entity: invalid_workflow: the draft has 1 problem(s)"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("  /steps/0/next: no step \"x\"\n    hint: use one of: start"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("1 failed"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_an_answer_times_out_and_is_retried() {
    let project = one_workflow();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/workflows"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([]))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let out = project
        .deploy(
            &["--api-url", &server.uri(), "--no-sign", "--timeout", "1"],
            &[],
        )
        .await;
    out.expect(1);
    assert!(
        out.stderr.contains(&format!(
            "GET /workflows: no answer after 4 attempt(s): {} did not answer within 1 s",
            server.uri()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(received(&server).await.len(), 4);
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_64_and_send_nothing() {
    let project = one_workflow();
    let server = MockServer::start().await;
    let url = server.uri();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--no-sign"], "--api-url"),
        (
            vec!["--api-url", "ftp://example.com", "--no-sign"],
            "http:// or https://",
        ),
        (vec!["--api-url", "not a url", "--no-sign"], "is not a URL"),
        (
            vec!["--api-url", &url, "--no-sign", "--dir", "missing"],
            "--dir missing: not a folder",
        ),
        (
            vec!["--api-url", &url, "--token", "a\nb"],
            "characters a header cannot carry",
        ),
        (vec!["--api-url", &url, "--no-sign", "--bogus"], "--bogus"),
    ];
    for (args, needle) in cases {
        let out = project.deploy(&args, &[]).await;
        out.expect(64);
        assert!(
            out.stderr.contains(needle),
            "{args:?}: {needle:?} in:\n{}",
            out.stderr
        );
    }
    std::fs::create_dir_all(project.dir.path().join("empty")).unwrap();
    let out = project
        .deploy(&["--api-url", &url, "--no-sign", "--dir", "empty"], &[])
        .await;
    out.expect(64);
    assert!(
        out.stderr.contains("no workflow files found in empty"),
        "{}",
        out.stderr
    );

    // Two files, one id (a folder not named `workflows` allows any file name): invalid input.
    let flows = project.dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    for name in ["one.json", "two.json"] {
        std::fs::copy(project.file("a"), flows.join(name)).unwrap();
    }
    let out = project
        .deploy(&["--api-url", &url, "--no-sign", "--dir", "flows"], &[])
        .await;
    out.expect(1);
    assert!(
        out.stderr.contains(
            "workflow \"a\" is defined by more than one file: flows/one.json, flows/two.json"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(received(&server).await.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_workflow_gets_only_reads() {
    // `wf dev`'s API cannot show a draft rewritten with the same content; the requests can.
    let project = one_workflow();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/workflows"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            { "id": "a", "name": "A", "active": false, "activeVersion": null, "latestVersion": 3 }
        ])))
        .mount(&server)
        .await;
    // The version as the API stores it: defaults written out, and an `active` that differs
    // (activation is compared apart, against the workflow's state).
    let mut stored = serde_json::to_value(typed(&project.read("a"))).unwrap();
    stored["config"]["active"] = json!(true);
    Mock::given(method("GET"))
        .and(path("/workflows/a/versions/3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stored))
        .mount(&server)
        .await;
    let out = project
        .deploy(&["--api-url", &server.uri(), "--no-sign"], &[])
        .await;
    out.expect(0);
    assert_eq!(out.action("a"), "unchanged");
    assert!(out.line("a").ends_with("v3 inactive"), "{}", out.stdout);
    assert_eq!(
        requests(&received(&server).await),
        ["GET /workflows", "GET /workflows/a/versions/3"]
    );
}
