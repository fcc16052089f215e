//! `wf validate [paths…]`: every problem of every file, readably; non-zero exit on any.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wf_core::validate::{Problem, format_problems, validate_source};

#[derive(clap::Args)]
pub struct Args {
    /// Workflow files or folders (default: workflows/). `schema.json` is skipped.
    pub paths: Vec<PathBuf>,
    /// Print the problems as JSON (an array of {file, pointer, message, hint, line, column}).
    #[arg(long)]
    pub json: bool,
}

/// The workflow files under `paths` (folders expand to their `*.json`, sorted).
pub fn workflow_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension().is_some_and(|x| x == "json")
                        && f.file_name().is_some_and(|n| n != "schema.json")
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// Validate one file: the validator's problems plus "the file name must be `<id>.json`".
pub fn check_file(path: &Path) -> Result<wf_core::validate::Report, String> {
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
    Ok(report)
}

pub fn run(args: Args) -> ExitCode {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("workflows")]
    } else {
        args.paths
    };
    let files = match workflow_files(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("wf validate: {e}");
            return ExitCode::from(crate::EXIT_USAGE);
        }
    };
    if files.is_empty() {
        eprintln!(
            "wf validate: no workflow files found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::from(crate::EXIT_USAGE);
    }
    let mut bad_files = 0;
    let mut total = 0;
    let mut json_out = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        match check_file(file) {
            Ok(report) if report.problems.is_empty() => {
                if !args.json {
                    println!("ok   {name}");
                }
            }
            Ok(report) => {
                bad_files += 1;
                total += report.problems.len();
                if args.json {
                    for p in &report.problems {
                        let mut v = serde_json::to_value(p).unwrap_or_default();
                        v["file"] = name.clone().into();
                        json_out.push(v);
                    }
                } else {
                    println!("FAIL {name}");
                    print!("{}", format_problems(&name, &report.problems));
                }
            }
            Err(e) => {
                bad_files += 1;
                total += 1;
                eprintln!("{e}");
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_out).unwrap_or_default()
        );
    } else if bad_files > 0 {
        println!(
            "\n{total} problem(s) in {bad_files} of {} file(s)",
            files.len()
        );
    } else {
        println!("\nall {} file(s) valid", files.len());
    }
    if bad_files > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
