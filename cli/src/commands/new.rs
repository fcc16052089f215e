//! `wf new <id>`: an empty workflow file (a start step with a manual trigger).
//! `wf new --describe "..." [id]`: the configured LLM writes the workflow (the same use case as
//! `POST /workflows/generate`, in-process on the local store); the draft is saved there and
//! written to `workflows/<id>.json`. Existing files are never overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value};
use wf_app::AppError;
use wf_app::ai::generate::{GenerateRequest, Generated, empty_draft};
use wf_app::ai::{AiSettings, check_id};
use wf_app::local::{LocalApp, LocalOptions};
use wf_core::validate::format_problems;

use crate::{EXIT_INVALID, EXIT_USAGE};

#[derive(clap::Args)]
pub struct Args {
    /// The workflow id: the file is <dir>/<id>.json. With --describe it may be left out (derived
    /// from --name, else from the description).
    pub id: Option<String>,
    /// What the workflow should do, in plain words: the configured LLM (WF_LLM_BASE_URL,
    /// WF_LLM_API_KEY, WF_AI_MODEL) writes it, the engine validates it (up to 3 repair rounds).
    #[arg(long, value_name = "TEXT")]
    pub describe: Option<String>,
    /// The workflow's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Where workflow files live.
    #[arg(long, default_value = "workflows")]
    pub dir: PathBuf,
    /// With --describe: the local store the draft is saved in (the one `wf dev` uses).
    #[arg(long, env = "WF_DEV_DB", default_value = ".wf/dev.db")]
    pub db: PathBuf,
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("wf new: {msg}");
    ExitCode::from(EXIT_USAGE)
}

fn failed(msg: &str) -> ExitCode {
    eprintln!("wf new: {msg}");
    ExitCode::FAILURE
}

fn file_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

pub fn run(args: Args) -> ExitCode {
    if let Some(id) = &args.id {
        if let Err(e) = check_id(id) {
            return usage(&e.to_string());
        }
        let path = file_of(&args.dir, id);
        if path.exists() {
            return failed(&format!(
                "{} exists; refusing to overwrite it",
                path.display()
            ));
        }
    }
    match args.describe.as_deref().map(str::trim) {
        Some("") => usage("--describe needs a description"),
        Some(description) => {
            let description = description.to_owned();
            describe(args, description)
        }
        None => {
            let Some(id) = args.id.as_deref() else {
                return usage(
                    "name the workflow (`wf new <id>`) or describe it (`wf new --describe \"...\"`)",
                );
            };
            let path = file_of(&args.dir, id);
            let draft = empty_draft(id, args.name.as_deref());
            if let Err(e) = write_new(&args.dir, &path, &draft) {
                return failed(&e);
            }
            println!(
                "wrote {} (a start step with a manual trigger)",
                path.display()
            );
            println!(
                "next: add steps (format: workflows/README.md, schema: `wf schema`), then run \
                 `wf validate {}`",
                path.display()
            );
            ExitCode::SUCCESS
        }
    }
}

fn describe(args: Args, description: String) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return failed(&format!("cannot start the runtime: {e}")),
    };
    if let Some(parent) = args.db.parent().filter(|p| !p.as_os_str().is_empty())
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        return failed(&format!("cannot create {}: {e}", parent.display()));
    }
    let app = match LocalApp::open(&args.db, LocalOptions::default()) {
        Ok(a) => a,
        Err(e) => return failed(&format!("cannot open {}: {e}", args.db.display())),
    };
    let request = GenerateRequest {
        name: args.name.clone(),
        description: Some(description),
        id: args.id.clone(),
    };
    let dir = args.dir.clone();
    let taken = move |id: &str| file_of(&dir, id).exists();
    let settings = AiSettings::from_env();
    eprintln!("wf new: asking {} ...", settings.model);
    let result = runtime.block_on(app.app.generate_workflow(&settings, request, &taken));
    let generated = match result {
        Ok(g) => g,
        Err(e) => return report_error(e, &args.db),
    };
    let path = file_of(&args.dir, &generated.id);
    if let Err(e) = write_new(&args.dir, &path, &generated.draft) {
        return failed(&e);
    }
    print_report(&generated, &path, &args.db);
    ExitCode::SUCCESS
}

fn print_report(g: &Generated, path: &Path, db: &Path) {
    println!(
        "wrote {} (a draft, also saved in {}: not published, not active)",
        path.display(),
        db.display()
    );
    if let Some(explanation) = &g.explanation {
        println!("the model: {explanation}");
    }
    if g.validation.valid {
        println!("validation: valid");
    } else {
        print!(
            "{}",
            format_problems(&path.display().to_string(), &g.validation.problems)
        );
    }
    if !g.rejected.is_empty() {
        println!(
            "took {} answers: the engine sent {} back for repair",
            g.rounds,
            g.rejected.len()
        );
        for r in &g.rejected {
            print!(
                "{}",
                format_problems(&format!("  answer {}", r.round), &r.problems)
            );
        }
    }
    println!(
        "next: read it, then `wf validate {}`; `wf dev` publishes it (set config.active to true to \
         turn its triggers on)",
        path.display()
    );
}

fn report_error(e: AppError, db: &Path) -> ExitCode {
    match e.code() {
        "ai_invalid_workflow" => {
            let problems = e.details()["problems"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for p in &problems {
                let at = p["pointer"].as_str().unwrap_or_default();
                eprintln!(
                    "(the model's workflow): {}: {}",
                    if at.is_empty() { "/" } else { at },
                    p["message"].as_str().unwrap_or_default()
                );
                if let Some(hint) = p["hint"].as_str().filter(|h| !h.is_empty()) {
                    eprintln!("  hint: {hint}");
                }
            }
            eprintln!(
                "wf new: the model's workflow still has {} problem(s) after {} answer(s); \
                 nothing was written or saved. Describe it differently, or start from \
                 `wf new <id>`.",
                problems.len(),
                e.details()["rounds"]
            );
            ExitCode::from(EXIT_INVALID)
        }
        "llm_timeout" | "llm_unavailable" | "llm_error" => failed(&format!(
            "the LLM provider failed ({}): {} (configure WF_LLM_BASE_URL, WF_LLM_API_KEY, \
             WF_AI_MODEL)",
            e.details()["providerCode"].as_str().unwrap_or(e.code()),
            e.message()
        )),
        "exists" => failed(&format!("{} (in {})", e.message(), db.display())),
        _ if e.kind() == wf_app::ErrorKind::Invalid => usage(e.message()),
        _ => failed(&e.to_string()),
    }
}

/// Write `draft` to `path` (with `"$schema"` first when the directory has schema.json),
/// refusing to overwrite.
fn write_new(dir: &Path, path: &Path, draft: &Value) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut doc = Map::new();
    if dir.join("schema.json").exists() {
        doc.insert("$schema".into(), Value::String("./schema.json".into()));
    }
    if let Value::Object(m) = draft {
        for (k, v) in m {
            if k != "$schema" {
                doc.insert(k.clone(), v.clone());
            }
        }
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default();
    text.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!("{} exists; refusing to overwrite it", path.display())
            }
            _ => format!("cannot write {}: {e}", path.display()),
        })?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
