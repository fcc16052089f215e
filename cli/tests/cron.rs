//! `wf cron` as a user runs it: the cron, its EventBridge form, the next runs, exit codes.

use std::process::{Command, Output};

use serde_json::{Value, json};

fn wf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wf"))
        .args(args)
        .output()
        .expect("run wf")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn english_weekday_schedule_prints_cron_eventbridge_and_next_runs() {
    let out = wf(&[
        "cron",
        "every weekday at 9am",
        "--from",
        "2026-11-24T08:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("0 9 * * 1-5"), "{text}");
    assert!(text.contains("cron(0 9 ? * MON-FRI *)"), "{text}");
    // 2026-11-24 is a Tuesday: Tue, Wed, Thu, Fri, then Monday
    let runs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with("2026-") && w.ends_with('Z'))
        .collect();
    assert_eq!(
        runs,
        [
            "2026-11-24T09:00:00.000Z",
            "2026-11-25T09:00:00.000Z",
            "2026-11-26T09:00:00.000Z",
            "2026-11-27T09:00:00.000Z",
            "2026-11-30T09:00:00.000Z"
        ],
        "{text}"
    );
    assert!(text.contains("2026-11-30T09:00:00.000Z  Mon"), "{text}");
}

#[test]
fn unquoted_words_are_joined_and_json_output_is_structured() {
    let out = wf(&[
        "cron",
        "every",
        "monday",
        "at",
        "8:15",
        "--from",
        "2026-11-24T08:00:00Z",
        "--count",
        "3",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        json!({
            "input": "every monday at 8:15",
            "cron": "15 8 * * 1",
            "eventbridge": "cron(15 8 ? * MON *)",
            "next": ["2026-11-30T08:15:00.000Z", "2026-12-07T08:15:00.000Z", "2026-12-14T08:15:00.000Z"]
        })
    );
}

#[test]
fn cron_expressions_presets_and_english_forms() {
    let from = "2026-11-30T23:57:12Z";
    for (schedule, cron, eventbridge, first) in [
        (
            "*/5 * * * *",
            "*/5 * * * *",
            "cron(0/5 * * * ? *)",
            "2026-12-01T00:00:00.000Z",
        ),
        (
            "@every5m",
            "*/5 * * * *",
            "cron(0/5 * * * ? *)",
            "2026-12-01T00:00:00.000Z",
        ),
        (
            "@hourly",
            "0 * * * *",
            "cron(0 * * * ? *)",
            "2026-12-01T00:00:00.000Z",
        ),
        (
            "@daily",
            "0 0 * * *",
            "cron(0 0 * * ? *)",
            "2026-12-01T00:00:00.000Z",
        ),
        (
            "@weekly",
            "0 0 * * 0",
            "cron(0 0 ? * SUN *)",
            "2026-12-06T00:00:00.000Z",
        ),
        (
            "@monthly",
            "0 0 1 * *",
            "cron(0 0 1 * ? *)",
            "2026-12-01T00:00:00.000Z",
        ),
        (
            "every 15 minutes",
            "*/15 * * * *",
            "cron(0/15 * * * ? *)",
            "2026-12-01T00:00:00.000Z",
        ),
        (
            "every 2 hours",
            "0 */2 * * *",
            "cron(0 0/2 * * ? *)",
            "2026-12-01T00:00:00.000Z",
        ),
        (
            "hourly",
            "0 * * * *",
            "cron(0 * * * ? *)",
            "2026-12-01T00:00:00.000Z",
        ),
        (
            "daily at 6",
            "0 6 * * *",
            "cron(0 6 * * ? *)",
            "2026-12-01T06:00:00.000Z",
        ),
        (
            "every weekday at 5:30pm",
            "30 17 * * 1-5",
            "cron(30 17 ? * MON-FRI *)",
            "2026-12-01T17:30:00.000Z",
        ),
        (
            "every Monday at 9:45",
            "45 9 * * 1",
            "cron(45 9 ? * MON *)",
            "2026-12-07T09:45:00.000Z",
        ),
        (
            "on the 1st of every month at 6am",
            "0 6 1 * *",
            "cron(0 6 1 * ? *)",
            "2026-12-01T06:00:00.000Z",
        ),
        (
            "weekly on friday",
            "0 0 * * 5",
            "cron(0 0 ? * FRI *)",
            "2026-12-04T00:00:00.000Z",
        ),
    ] {
        let out = wf(&["cron", schedule, "--from", from, "--count", "1", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{schedule}: {}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["cron"], json!(cron), "{schedule}");
        assert_eq!(v["eventbridge"], json!(eventbridge), "{schedule}");
        assert_eq!(v["next"], json!([first]), "{schedule}");
    }
}

#[test]
fn an_unreadable_phrase_exits_3_listing_the_forms() {
    let out = wf(&["cron", "whenever the moon is full"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("could not read"), "{err}");
    for form in [
        "0 9 * * 1-5",
        "@every5m",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "every 15 minutes",
        "every weekday at 9am",
        "on the 1st of every month at 6am",
    ] {
        assert!(err.contains(form), "{form}: {err}");
    }
    assert!(stdout(&out).is_empty());

    // a bad cron expression says what is wrong, and lists the forms too
    let out = wf(&["cron", "0 25 * * *"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("hour value 25"), "{err}");
    assert!(err.contains("every weekday at 9am"), "{err}");

    // --json puts the error on stdout
    let out = wf(&["cron", "sometimes", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], json!("cron.invalid"));
    assert!(v["error"]["forms"].as_str().unwrap().contains("@every5m"));
}

/// `wf` with the LLM at `base_url` (wiremock on 127.0.0.1), run off the async runtime.
async fn wf_ai(args: &[&str], base_url: &str) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let base_url = base_url.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wf"))
            .args(&args)
            .env("WF_LLM_BASE_URL", base_url)
            .env_remove("WF_LLM_API_KEY")
            .env("WF_AI_MODEL", "test-model")
            .output()
            .expect("run wf")
    })
    .await
    .unwrap()
}

fn completion(content: &str) -> Value {
    json!({ "model": "test-model",
            "choices": [ { "index": 0, "message": { "role": "assistant", "content": content } } ] })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ai_answers_only_when_the_parser_fails() {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(body_string_contains("second tuesday of each month at noon"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            r#"{"cron": "0 12 * * 2#2", "explanation": "At 12:00 UTC on the second Tuesday of every month."}"#,
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(body_string_contains("whenever the moon is full"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            r#"{"cron": null, "explanation": "Full moons do not follow the calendar."}"#,
        )))
        .expect(1)
        .mount(&server)
        .await;

    // the model's reading, validated and shown with its runs
    let out = wf_ai(
        &[
            "cron",
            "second tuesday of each month at noon",
            "--ai",
            "--from",
            "2026-11-24T08:00:00Z",
        ],
        &server.uri(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("cron:        0 12 * * 2#2"), "{text}");
    assert!(text.contains("cron(0 12 ? * 3#2 *)"), "{text}");
    assert!(text.contains("2026-12-08T12:00:00.000Z  Tue"), "{text}");
    assert!(
        stderr(&out).contains("the AI's reading (At 12:00 UTC on the second Tuesday"),
        "{}",
        stderr(&out)
    );

    // not a schedule: the model says why, exit 3
    let out = wf_ai(
        &["cron", "whenever the moon is full", "--ai"],
        &server.uri(),
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("--ai: the model says: Full moons do not follow the calendar."),
        "{}",
        stderr(&out)
    );

    // what the parser reads never goes to the model (the mocks expect one call each)
    let out = wf_ai(
        &[
            "cron",
            "daily at 9am",
            "--ai",
            "--from",
            "2026-11-24T08:00:00Z",
        ],
        &server.uri(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("cron(0 9 * * ? *)"));
    assert!(!stderr(&out).contains("AI"));

    // no provider listening: a clear failure, exit 1
    let out = wf_ai(&["cron", "at moonrise", "--ai"], "http://127.0.0.1:1").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the AI fallback failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_schedule_eventbridge_cannot_run_exits_3_with_the_fix() {
    let out = wf(&["cron", "0 9 1 * 1", "--from", "2026-11-24T08:00:00Z"]);
    assert_eq!(out.status.code(), Some(3));
    // the runs are still shown (standard cron: either day matches)
    assert!(
        stdout(&out).contains("2026-11-30T09:00:00.000Z"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("\"0 9 1 * *\" and \"0 9 * * 1\""), "{err}");
}

#[test]
fn usage_errors_exit_64() {
    for args in [
        vec!["cron"],
        vec!["cron", "@daily", "--from", "yesterday"],
        vec!["cron", "@daily", "--count", "0"],
    ] {
        let out = wf(&args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
    }
}
