//! Checks every Lambda function binary (functions/*) passes: its integration test calls these
//! with `env!("CARGO_BIN_EXE_<name>")`. Building those tests also leaves the binaries in the
//! target directory, where the emulator test (tests/tests/lambda_emulator.rs) runs them.

use std::process::Command;

/// Run `bin` with only `vars` in its environment (no Runtime API: it must fail in init).
fn run_with(bin: &str, vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(bin)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run {bin}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// A missing or invalid setting stops init with exit code 1 and one JSON log line that says
/// which setting and what is wrong with it (not a Debug dump, not a panic).
pub fn init_failures_name_the_setting(bin: &str) {
    let (code, text) = run_with(bin, &[("AWS_REGION", "us-east-1")]);
    assert_eq!(code, Some(1), "{bin} without WF_QUEUE_URL: {text}");
    let line: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{bin}: one JSON log line expected ({e}): {text}"));
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["fields"]["message"], "init failed", "{line}");
    assert_eq!(line["fields"]["error"], "WF_QUEUE_URL is not set", "{line}");

    let (code, text) = run_with(
        bin,
        &[
            ("AWS_REGION", "us-east-1"),
            ("WF_QUEUE_URL", "http://127.0.0.1:9/q"),
            ("WF_RETENTION_DAYS", "soon"),
        ],
    );
    assert_eq!(code, Some(1), "{bin} with a bad WF_RETENTION_DAYS: {text}");
    assert!(
        text.contains(r#"WF_RETENTION_DAYS is invalid: \"soon\" is not a positive number of days"#),
        "{bin}: {text}"
    );
    assert!(!text.contains("panicked"), "{bin}: {text}");
}
