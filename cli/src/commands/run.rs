//! `wf run <file|id> --input JSON|@file [--var k=v]`: run to completion on a SQLite file and
//! print the execution record. Exit 0 succeeded, 1 failed, 2 timed out, 3 invalid input/workflow.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;
use wf_app::app::AppError;
use wf_app::app::executions::StartRequest;
use wf_app::local::{LocalApp, LocalOptions, exit_code};
use wf_core::execution::{
    ExecutionRecord, ExecutionStatus, ExecutionView, StepRecord, TriggerInfo,
};

use crate::EXIT_INVALID;
use crate::commands::validate::check_file;

#[derive(clap::Args)]
pub struct Args {
    /// A workflow file, or the id of one in workflows/ (workflows/<id>.json).
    pub workflow: String,
    /// The input: inline JSON, or @path to read it from a file (default {}).
    #[arg(long, short)]
    pub input: Option<String>,
    /// Override a config variable: key=value (value parsed as JSON, else taken as a string).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// Keep state in this SQLite file (default: a temporary file, deleted afterwards).
    #[arg(long, env = "WF_RUN_DB")]
    pub db: Option<PathBuf>,
    /// Worker loops.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
}

fn resolve(workflow: &str) -> PathBuf {
    let p = Path::new(workflow);
    if p.exists() || workflow.ends_with(".json") {
        p.to_path_buf()
    } else {
        Path::new("workflows").join(format!("{workflow}.json"))
    }
}

fn read_input(input: Option<&str>) -> Result<Value, String> {
    let text = match input {
        None => return Ok(Value::Object(Default::default())),
        Some(s) => match s.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read input file {file}: {e}"))?,
            None => s.to_string(),
        },
    };
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "--input is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        )
    })
}

fn invalid(msg: &str) -> ExitCode {
    eprintln!("wf run: {msg}");
    ExitCode::from(EXIT_INVALID)
}

pub fn run(args: Args) -> ExitCode {
    let path = resolve(&args.workflow);
    let report = match check_file(&path) {
        Ok(r) => r,
        Err(e) => return invalid(&e),
    };
    let Some(mut workflow) = report.workflow else {
        eprint!(
            "{}",
            wf_core::validate::format_problems(&path.display().to_string(), &report.problems)
        );
        return invalid(&format!(
            "{} is not a valid workflow ({} problem(s))",
            path.display(),
            report.problems.len()
        ));
    };
    for kv in &args.vars {
        let Some((k, v)) = kv.split_once('=') else {
            eprintln!("wf run: --var {kv:?} must be KEY=VALUE");
            return ExitCode::from(crate::EXIT_USAGE);
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        workflow.config.variables.insert(k.to_string(), value);
    }
    let input = match read_input(args.input.as_deref()) {
        Ok(v) => v,
        Err(e) => return invalid(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wf run: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let tmp;
        let db = match &args.db {
            Some(p) => p.clone(),
            None => {
                tmp = match tempfile::tempdir() {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("wf run: cannot make a temporary directory: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                tmp.path().join("run.db")
            }
        };
        let options = LocalOptions {
            workers: args.workers,
            ..LocalOptions::default()
        };
        let app = match LocalApp::open(&db, options) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("wf run: cannot open {}: {e}", db.display());
                return ExitCode::FAILURE;
            }
        };
        let compiled = match app.publish(workflow).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("wf run: cannot store the workflow: {e}");
                return ExitCode::FAILURE;
            }
        };
        let pool = app.start_workers();
        let request = StartRequest::new(input, TriggerInfo::new("manual"));
        let started = match app.app.start(&compiled, request).await {
            Ok(s) => s,
            Err(e) if e.code() == "invalid_input" => {
                eprintln!("wf run: the input does not match the workflow's inputSchema:");
                for v in e.details()["violations"].as_array().into_iter().flatten() {
                    let at = v["pointer"].as_str().unwrap_or_default();
                    eprintln!(
                        "  {}: {}",
                        if at.is_empty() { "/" } else { at },
                        v["message"].as_str().unwrap_or_default()
                    );
                }
                pool.shutdown().await;
                return ExitCode::from(EXIT_INVALID);
            }
            Err(e) => {
                eprintln!("wf run: cannot start: {e}");
                pool.shutdown().await;
                return ExitCode::FAILURE;
            }
        };
        let printed = print_finished(&app, &started.execution_id).await;
        pool.shutdown().await;
        match printed {
            Ok(status) => ExitCode::from(exit_code(status) as u8),
            Err(e) => {
                eprintln!("wf run: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Wait until the execution is terminal and print it with every step record, page by page.
async fn print_finished(app: &LocalApp, id: &str) -> anyhow::Result<ExecutionStatus> {
    let Some(view) = app.app.wait_finished(id, None).await? else {
        return Err(
            AppError::retryable("not_finished", format!("execution {id} did not finish")).into(),
        );
    };
    let mut out = PrettyView::start(std::io::stdout().lock(), &view.execution)?;
    app.app
        .for_each_step_page(id, |records| {
            out.steps(&records)
                .map_err(|e| anyhow::anyhow!("cannot print the execution: {e}"))
        })
        .await?;
    out.finish()?;
    Ok(view.execution.status)
}

/// Writes what `serde_json::to_string_pretty` of an [`ExecutionView`] with every step record
/// would, a page of records at a time (the view itself would hold them all).
struct PrettyView<W: Write> {
    out: BufWriter<W>,
    /// What follows the steps array (`,\n  "stepsCursor": null\n}`).
    tail: String,
    first: bool,
}

impl<W: Write> PrettyView<W> {
    fn start(out: W, execution: &ExecutionRecord) -> std::io::Result<Self> {
        let head = ExecutionView {
            execution: execution.clone(),
            steps: Vec::new(),
            steps_cursor: None,
        };
        let text = serde_json::to_string_pretty(&head)?;
        // The view's own key is the last one of that text: the record's fields come first.
        let Some((before, after)) = text.rsplit_once("\"steps\": []") else {
            return Err(std::io::Error::other("the view has no steps key"));
        };
        let mut out = BufWriter::new(out);
        out.write_all(before.as_bytes())?;
        out.write_all(b"\"steps\": [")?;
        Ok(Self {
            out,
            tail: after.to_string(),
            first: true,
        })
    }

    fn steps(&mut self, records: &[StepRecord]) -> std::io::Result<()> {
        for record in records {
            self.out
                .write_all(if self.first { b"\n" } else { b",\n" })?;
            self.first = false;
            let text = serde_json::to_string_pretty(record)?;
            for (i, line) in text.lines().enumerate() {
                if i > 0 {
                    self.out.write_all(b"\n")?;
                }
                self.out.write_all(b"    ")?;
                self.out.write_all(line.as_bytes())?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<()> {
        if !self.first {
            self.out.write_all(b"\n  ")?;
        }
        self.out.write_all(b"]")?;
        self.out.write_all(self.tail.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wf_core::execution::{ExecutionStatus, StepStatus};

    use super::*;

    fn record() -> ExecutionRecord {
        ExecutionRecord {
            id: "01J".into(),
            workflow_id: "w".into(),
            version: 1,
            status: ExecutionStatus::Succeeded,
            trigger: TriggerInfo::new("manual"),
            // A key of the input named like the view's own must not confuse the splice.
            input: json!({ "steps": [], "nested": { "steps": [] }, "text": "\"steps\": []" }),
            output: json!({ "ok": true }),
            error: None,
            started_at: 1_700_000_000_000,
            finished_at: Some(1_700_000_000_500),
            duration_ms: Some(500),
            deadline_at: 1_700_000_060_000,
            rerun_of: None,
            handoff: Vec::new(),
        }
    }

    fn step(path: &str) -> StepRecord {
        StepRecord {
            path: path.into(),
            step_type: "output".into(),
            status: StepStatus::Succeeded,
            attempts: 1,
            input: json!({ "a": [1, 2, { "b": null }] }),
            output: json!("x\ny"),
            error: None,
            started_at: 1_700_000_000_000,
            finished_at: Some(1_700_000_000_001),
            duration_ms: Some(1),
            lease_until: None,
            next: None,
            lease_lost: 0,
        }
    }

    #[test]
    fn prints_what_the_whole_view_would_page_by_page() {
        for pages in [
            vec![],
            vec![vec![step("start")]],
            vec![vec![step("a"), step("b")], vec![], vec![step("c")]],
        ] {
            let mut buf = Vec::new();
            let mut view = PrettyView::start(&mut buf, &record()).unwrap();
            for page in &pages {
                view.steps(page).unwrap();
            }
            view.finish().unwrap();
            let whole = ExecutionView {
                execution: record(),
                steps: pages.concat(),
                steps_cursor: None,
            };
            let expected = format!("{}\n", serde_json::to_string_pretty(&whole).unwrap());
            assert_eq!(String::from_utf8(buf).unwrap(), expected);
        }
    }
}
