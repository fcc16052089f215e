//! `wf validate [paths…]`: every problem of every file, readably; non-zero exit on any.
//! Warnings (valid, but likely not what was meant) are printed too, prefixed `warning:`, and
//! do not change the exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wf_core::validate::{Problem, format_problems, format_warnings, validate_source};

#[derive(clap::Args)]
pub struct Args {
    /// Workflow files or folders (default: workflows/). `schema.json` is skipped.
    pub paths: Vec<PathBuf>,
    /// Print the problems as JSON: an array of {file, severity, code, pointer, message, hint,
    /// line, column}, the errors (`severity` "error") then the warnings ("warning").
    #[arg(long)]
    pub json: bool,
}

/// The workflow files under `paths` (folders expand to their `*.json`, sorted).
pub fn workflow_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(wf_app::dev::workflow_files_in(p)?);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// Validate one file: the validator's problems plus "the file name must be `<id>.json`".
pub fn check_file(path: &Path) -> Result<wf_core::validate::Report, String> {
    read_and_check(path).map(|(_, report)| report)
}

/// [`check_file`], also returning the file's text (what `wf deploy` sends as the draft, so the
/// bytes validated are the bytes sent).
pub fn read_and_check(path: &Path) -> Result<(String, wf_core::validate::Report), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mut report = validate_source(&text);
    if let Some(wf) = &report.workflow
        && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        && stem != wf.id
        && path
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|d| d == "workflows")
    {
        report.problems.push(Problem {
            pointer: "/id".into(),
            message: format!(
                "the id {:?} does not match the file name {stem}.json",
                wf.id
            ),
            hint: format!("rename the file to {}.json or set \"id\": {stem:?}", wf.id),
            code: "id.file_name",
            line: None,
            column: None,
        });
        report.workflow = None;
    }
    Ok((text, report))
}

/// The workflow files under `paths`, or the exit code of a usage error (already printed as
/// `wf <command>: …`): a folder that cannot be read, or no workflow file at all.
pub fn files_or_usage(command: &str, paths: &[PathBuf]) -> Result<Vec<PathBuf>, ExitCode> {
    let files = match workflow_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("wf {command}: {e}");
            return Err(ExitCode::from(crate::EXIT_USAGE));
        }
    };
    if files.is_empty() {
        eprintln!(
            "wf {command}: no workflow files found in {}",
            display_paths(paths)
        );
        return Err(ExitCode::from(crate::EXIT_USAGE));
    }
    Ok(files)
}

/// `paths` as a message lists them: `a.json, b/c.json`.
pub fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One file's check: the validator's report, or why the file could not be read.
pub struct Checked {
    pub file: PathBuf,
    pub result: Result<wf_core::validate::Report, String>,
}

impl Checked {
    pub fn is_valid(&self) -> bool {
        self.result.as_ref().is_ok_and(|r| r.problems.is_empty())
    }
}

/// One problem or warning as JSON: {file, severity, code, pointer, message, hint, line, column}.
fn finding_json(file: &str, p: &Problem, severity: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    v["file"] = file.into();
    v["severity"] = severity.into();
    v
}

/// The problems (errors) of `checked` as `wf validate --json` prints them: {file, severity
/// "error", code, pointer, message, hint, line, column} (a file that cannot be read: {file,
/// message}).
pub fn problems_json(checked: &[Checked]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for c in checked {
        let name = c.file.display().to_string();
        match &c.result {
            Ok(report) => {
                for p in &report.problems {
                    out.push(finding_json(&name, p, "error"));
                }
            }
            Err(e) => out.push(serde_json::json!({ "file": name, "message": e })),
        }
    }
    out
}

/// The warnings of `checked`, shaped as [`problems_json`] with `severity` "warning".
pub fn warnings_json(checked: &[Checked]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for c in checked {
        if let Ok(report) = &c.result {
            let name = c.file.display().to_string();
            for p in &report.warnings {
                out.push(finding_json(&name, p, "warning"));
            }
        }
    }
    out
}

/// Print the checks as `wf validate` does (`ok`/`FAIL` per file, every problem with its
/// position and hint, every warning prefixed `warning:`, the totals) and return the number of
/// files with problems (warnings do not count).
pub fn print_checks(checked: &[Checked]) -> usize {
    let mut bad_files = 0;
    let mut total = 0;
    let mut warnings = 0;
    for c in checked {
        let name = c.file.display().to_string();
        match &c.result {
            Ok(report) => {
                if report.problems.is_empty() {
                    println!("ok   {name}");
                } else {
                    bad_files += 1;
                    total += report.problems.len();
                    println!("FAIL {name}");
                    print!("{}", format_problems(&name, &report.problems));
                }
                warnings += report.warnings.len();
                print!("{}", format_warnings(&name, &report.warnings));
            }
            Err(e) => {
                bad_files += 1;
                total += 1;
                eprintln!("{e}");
            }
        }
    }
    let warned = match warnings {
        0 => String::new(),
        n => format!(", {n} warning(s)"),
    };
    if bad_files > 0 {
        println!(
            "\n{total} problem(s) in {bad_files} of {} file(s){warned}",
            checked.len()
        );
    } else {
        println!("\nall {} file(s) valid{warned}", checked.len());
    }
    bad_files
}

pub fn run(args: Args) -> ExitCode {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("workflows")]
    } else {
        args.paths
    };
    let files = match files_or_usage("validate", &paths) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let checked: Vec<Checked> = files
        .into_iter()
        .map(|file| Checked {
            result: check_file(&file),
            file,
        })
        .collect();
    let bad_files = checked.iter().filter(|c| !c.is_valid()).count();
    if args.json {
        // A file that cannot be read goes to stderr, as in the text form.
        for c in &checked {
            if let Err(e) = &c.result {
                eprintln!("{e}");
            }
        }
        let readable: Vec<Checked> = checked.into_iter().filter(|c| c.result.is_ok()).collect();
        let mut findings = problems_json(&readable);
        findings.extend(warnings_json(&readable));
        println!(
            "{}",
            serde_json::to_string_pretty(&findings).unwrap_or_default()
        );
    } else {
        print_checks(&checked);
    }
    if bad_files > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
