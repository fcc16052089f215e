//! `wf deploy`: sync a folder of workflow files to a management API (a deployed stack's api
//! function URL, or `wf dev`). Every file is validated first (as `wf validate` does; any
//! problem and nothing is sent); then each workflow is created or its draft replaced and
//! published when its content differs from the latest published version, and activated or
//! deactivated per `config.active`. A second run with the same files writes nothing.

mod api;
mod auth;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use wf_core::model::Workflow;

use self::api::{Api, Failure, FailureKind};
use self::auth::{Auth, AuthError, Signer};
use super::validate::{
    Checked, display_paths, files_or_usage, print_checks, problems_json, read_and_check,
};
use crate::EXIT_USAGE;

#[derive(clap::Args)]
#[command(after_long_help = "\
Per workflow file, after every file was validated (any problem: nothing is sent, exit 1):
  unknown to the API          created (POST /workflows), published (version 1)
  content differs from the    draft replaced (PUT /workflows/{id}), published (a new version)
    latest published version
  same content                unchanged: nothing is written
  then, per config.active     activated (its latest version) or deactivated
Content is compared without config.active: activation is state, not versioned content.
Workflows the API has and the folder does not are left alone (deploy never deletes).

Authentication: --token or WF_API_TOKEN sends `Authorization: Bearer <token>` (an api with
ApiAuthType=NONE). Otherwise requests are signed with AWS SigV4, service `lambda` (a function URL
with AWS_IAM auth), with the default AWS credential chain (environment, AWS_PROFILE, SSO, ...);
the region is --region, else AWS_REGION, else the one in the function URL's host
(<id>.lambda-url.<region>.on.aws). --no-sign sends plain requests (`wf dev`).

Requests time out after --timeout seconds; 429, 5xx and connection failures are retried (4
attempts, backoff from 250 ms), which is safe because every step above is idempotent.

Exit codes: 0 everything in sync, 1 an invalid workflow (nothing sent) or a failed API call
(the workflow, the request and the API's error are printed), 64 usage error (also: no way to
authenticate).")]
pub struct Args {
    /// The management API: the stack's `ApiUrl` output (a Lambda function URL), or `wf dev`'s
    /// http://127.0.0.1:3000 (with --no-sign).
    #[arg(long, value_name = "URL")]
    pub api_url: String,
    /// Folder of workflow files (every `*.json` but schema.json).
    #[arg(long, default_value = "workflows")]
    pub dir: PathBuf,
    /// Send `Authorization: Bearer <TOKEN>` instead of signing with AWS credentials.
    #[arg(long, env = "WF_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// AWS region for SigV4 (default: AWS_REGION, else the function URL's region).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Send unsigned requests without a token (e.g. to `wf dev` on 127.0.0.1).
    #[arg(long)]
    pub no_sign: bool,
    /// Read the API's state and print what would change, changing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Deploy only these workflow ids (space- or comma-separated).
    #[arg(long, value_name = "ID", num_args = 1.., value_delimiter = ',')]
    pub only: Vec<String>,
    /// Print a JSON report instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Seconds before one request is given up (then retried).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
}

/// A valid workflow file: its typed definition and the JSON sent as the draft (the file as
/// written, so the stored draft is the file).
struct Local {
    file: PathBuf,
    workflow: Workflow,
    draft: Value,
}

/// What the API says about a workflow (`GET /workflows`).
#[derive(Clone, Default)]
struct Remote {
    exists: bool,
    active: bool,
    active_version: Option<u32>,
    latest_version: u32,
}

/// What happened to one workflow.
struct Outcome {
    id: String,
    file: PathBuf,
    /// In the order done: created | updated, deactivated, published, activated. Empty =
    /// unchanged.
    actions: Vec<&'static str>,
    /// The latest version after the sync (0: never published).
    version: u32,
    active: bool,
    error: Option<Failure>,
}

impl Outcome {
    fn action(&self) -> String {
        let done = self.actions.join("+");
        match (&self.error, done.is_empty()) {
            (Some(_), true) => "failed".into(),
            (Some(_), false) => format!("{done}+failed"),
            (None, true) => "unchanged".into(),
            (None, false) => done,
        }
    }

    fn category(&self) -> &'static str {
        if self.error.is_some() {
            "failed"
        } else if self.actions.contains(&"created") {
            "created"
        } else if self.actions.contains(&"published") || self.actions.contains(&"updated") {
            "updated"
        } else if self.actions.is_empty() {
            "unchanged"
        } else {
            "activationChanged"
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("wf deploy: {msg}");
    ExitCode::from(EXIT_USAGE)
}

pub fn run(args: Args) -> ExitCode {
    let base = match Url::parse(&args.api_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        Ok(_) => return usage("--api-url must be an http:// or https:// URL"),
        Err(e) => return usage(&format!("--api-url {:?} is not a URL: {e}", args.api_url)),
    };
    if base.query().is_some() || base.fragment().is_some() {
        return usage("--api-url must not have a query or a fragment");
    }
    let token = args.token.clone().filter(|t| !t.trim().is_empty());
    if let Some(t) = &token
        && reqwest::header::HeaderValue::from_str(&format!("Bearer {}", t.trim())).is_err()
    {
        return usage("the token (--token or WF_API_TOKEN) has characters a header cannot carry");
    }
    if !args.dir.is_dir() {
        return usage(&format!("--dir {}: not a folder", args.dir.display()));
    }
    let files = match files_or_usage("deploy", std::slice::from_ref(&args.dir)) {
        Ok(f) => f,
        Err(code) => return code,
    };

    // Every file is read and validated once; the text validated is the text sent.
    let mut checked = Vec::new();
    let mut texts = Vec::new();
    for file in files {
        let (text, result) = match read_and_check(&file) {
            Ok((text, report)) => (text, Ok(report)),
            Err(e) => (String::new(), Err(e)),
        };
        texts.push(text);
        checked.push(Checked { file, result });
    }
    let id_of = |c: &Checked| -> String {
        match &c.result {
            Ok(wf_core::validate::Report {
                workflow: Some(w), ..
            }) => w.id.clone(),
            _ => c
                .file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    };
    let mut selected: Vec<usize> = (0..checked.len()).collect();
    if !args.only.is_empty() {
        let known: Vec<String> = checked.iter().map(id_of).collect();
        let only: Vec<&str> = args
            .only
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(missing) = only.iter().find(|o| !known.iter().any(|k| k == *o)) {
            return usage(&format!(
                "--only {missing}: no workflow file with that id in {} (found: {})",
                args.dir.display(),
                known.join(", ")
            ));
        }
        selected.retain(|&i| only.contains(&known[i].as_str()));
    }

    let invalid = selected.iter().any(|&i| !checked[i].is_valid());
    let mut by_id: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for &i in &selected {
        by_id
            .entry(id_of(&checked[i]))
            .or_default()
            .push(checked[i].file.clone());
    }
    let duplicates: Vec<(String, Vec<PathBuf>)> =
        by_id.into_iter().filter(|(_, f)| f.len() > 1).collect();
    if invalid || !duplicates.is_empty() {
        let chosen: Vec<Checked> = checked
            .into_iter()
            .enumerate()
            .filter(|(i, _)| selected.contains(i))
            .map(|(_, c)| c)
            .collect();
        let dup_messages: Vec<String> = duplicates
            .iter()
            .map(|(id, files)| {
                format!(
                    "workflow {id:?} is defined by more than one file: {}",
                    display_paths(files)
                )
            })
            .collect();
        if args.json {
            let mut problems = problems_json(&chosen);
            for (m, (_, files)) in dup_messages.iter().zip(&duplicates) {
                problems.push(json!({ "file": files[0].display().to_string(), "message": m }));
            }
            let report = json!({
                "apiUrl": base.as_str(), "dir": args.dir.display().to_string(),
                "dryRun": args.dry_run, "ok": false, "problems": problems, "workflows": [],
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
        } else if invalid {
            print_checks(&chosen);
        }
        for m in &dup_messages {
            eprintln!("wf deploy: {m}");
        }
        eprintln!("wf deploy: nothing was sent: fix the problems above and deploy again");
        return ExitCode::FAILURE;
    }

    let mut locals = Vec::new();
    for &i in &selected {
        let c = &checked[i];
        let Some(workflow) = c.result.as_ref().ok().and_then(|r| r.workflow.clone()) else {
            continue; // not reached: every selected file is valid here
        };
        let text = texts[i].strip_prefix('\u{feff}').unwrap_or(&texts[i]);
        let draft = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return usage(&format!("{}: {e}", c.file.display())),
        };
        locals.push(Local {
            file: c.file.clone(),
            workflow,
            draft,
        });
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wf deploy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(deploy(args, base, token, locals))
}

/// How requests authenticate: the token, else nothing with --no-sign, else SigV4.
async fn authentication(args: &Args, base: &Url, token: Option<String>) -> Result<Auth, ExitCode> {
    if let Some(t) = token {
        return Ok(Auth::Bearer(t.trim().to_string()));
    }
    if args.no_sign {
        return Ok(Auth::None);
    }
    let region = args.region.clone().filter(|r| !r.trim().is_empty());
    match Signer::from_environment(region, base.host_str().unwrap_or_default()).await {
        Ok(s) => Ok(Auth::SigV4(s)),
        Err(AuthError::NoRegion) => Err(usage(&format!(
            "no AWS region to sign requests to {base} with: pass --region or set AWS_REGION \
             (a function URL, <id>.lambda-url.<region>.on.aws, names its own)"
        ))),
        Err(AuthError::NoCredentials(why)) => Err(usage(&format!(
            "no AWS credentials to sign requests to {base} with ({why}).\n\
             Choose one:\n  \
             - AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, \
             `aws sso login`, ...): requests are signed with SigV4 (an api with \
             ApiAuthType=AWS_IAM, the default)\n  \
             - --token TOKEN or WF_API_TOKEN: `Authorization: Bearer` (an api with \
             ApiAuthType=NONE)\n  \
             - --no-sign: plain requests (`wf dev` on http://127.0.0.1:3000)"
        ))),
    }
}

async fn deploy(args: Args, base: Url, token: Option<String>, locals: Vec<Local>) -> ExitCode {
    let auth = match authentication(&args, &base, token).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    let api = match Api::new(&base, auth, Duration::from_secs(args.timeout.max(1))) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wf deploy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sigv4 = api.auth().is_sigv4();
    if !args.json {
        println!(
            "wf deploy: {} workflow(s) from {} to {} ({}){}",
            locals.len(),
            args.dir.display(),
            base,
            api.auth().describe(),
            if args.dry_run {
                "; dry run: nothing is changed"
            } else {
                ""
            }
        );
    }
    let remotes = match read_remotes(&api).await {
        Ok(r) => r,
        Err(f) => {
            let lines = f.lines(sigv4);
            eprintln!("wf deploy: cannot read the API's workflows, nothing was changed");
            for l in &lines {
                eprintln!("wf deploy: {l}");
            }
            if args.json {
                let report = json!({
                    "apiUrl": base.as_str(), "dir": args.dir.display().to_string(),
                    "dryRun": args.dry_run, "auth": api.auth().describe(), "ok": false,
                    "problems": [], "workflows": [], "error": f.to_json(sigv4),
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            }
            return ExitCode::FAILURE;
        }
    };

    let mut outcomes = Vec::new();
    for local in &locals {
        let outcome = sync_one(&api, local, remotes.get(&local.workflow.id), args.dry_run).await;
        if !args.json {
            print_outcome(&outcome, args.dry_run);
        }
        if let Some(f) = &outcome.error {
            let mut lines = f.lines(sigv4).into_iter();
            if let Some(first) = lines.next() {
                eprintln!("wf deploy: {}: {first}", outcome.id);
            }
            for l in lines {
                eprintln!("{l}");
            }
        }
        outcomes.push(outcome);
    }

    let mut counts: BTreeMap<&str, usize> = [
        "created",
        "updated",
        "activationChanged",
        "unchanged",
        "failed",
    ]
    .into_iter()
    .map(|k| (k, 0))
    .collect();
    for o in &outcomes {
        *counts.entry(o.category()).or_default() += 1;
    }
    let failed = counts["failed"];
    if args.json {
        let workflows: Vec<Value> = outcomes
            .iter()
            .map(|o| {
                json!({
                    "id": o.id, "file": o.file.display().to_string(), "action": o.action(),
                    "actions": o.actions, "version": o.version, "active": o.active,
                    "error": o.error.as_ref().map(|f| f.to_json(sigv4)),
                })
            })
            .collect();
        let report = json!({
            "apiUrl": base.as_str(), "dir": args.dir.display().to_string(),
            "dryRun": args.dry_run, "auth": api.auth().describe(), "ok": failed == 0,
            "problems": [], "workflows": workflows, "summary": counts,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "{}{} workflow(s): {} created, {} updated, {} activation changed, {} unchanged, {} failed",
            if args.dry_run { "dry run: " } else { "" },
            outcomes.len(),
            counts["created"],
            counts["updated"],
            counts["activationChanged"],
            counts["unchanged"],
            failed
        );
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_outcome(o: &Outcome, dry_run: bool) {
    let action = if dry_run && o.error.is_none() && !o.actions.is_empty() {
        format!("would be {}", o.action())
    } else {
        o.action()
    };
    let state = match (&o.error, o.version, o.active) {
        (Some(_), _, _) => "(see below)".to_string(),
        (None, 0, _) => "never published".to_string(),
        (None, v, true) => format!("v{v} active"),
        (None, v, false) => format!("v{v} inactive"),
    };
    println!("  {:<28} {:<40} {state}", o.id, action);
}

/// Every workflow the API knows, by id (`GET /workflows`).
async fn read_remotes(api: &Api) -> Result<HashMap<String, Remote>, Failure> {
    let list = api.get("/workflows").await?;
    let not_a_list = || Failure {
        request: "GET /workflows".into(),
        kind: FailureKind::BadAnswer(format!(
            "the answer is not a list of workflows (is --api-url the management API?): {}",
            truncate(&list.to_string(), 200)
        )),
    };
    let items = list.as_array().ok_or_else(not_a_list)?;
    let mut out = HashMap::new();
    for item in items {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(not_a_list)?;
        let version = |k: &str| {
            item.get(k)
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
        };
        out.insert(
            id.to_string(),
            Remote {
                exists: true,
                active: item.get("active").and_then(Value::as_bool).unwrap_or(false),
                active_version: version("activeVersion"),
                latest_version: version("latestVersion").unwrap_or(0),
            },
        );
    }
    Ok(out)
}

fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The same definition, `config.active` aside (activation is state; it is applied apart).
fn same_content(local: &Workflow, remote: &Workflow) -> bool {
    let mut remote = remote.clone();
    remote.config.active = local.config.active;
    *local == remote
}

async fn sync_one(api: &Api, local: &Local, remote: Option<&Remote>, dry_run: bool) -> Outcome {
    let mut state = remote.cloned().unwrap_or_default();
    let mut actions = Vec::new();
    let error = sync_steps(api, local, &mut state, &mut actions, dry_run)
        .await
        .err();
    Outcome {
        id: local.workflow.id.clone(),
        file: local.file.clone(),
        actions,
        version: state.latest_version,
        active: state.active,
        error,
    }
}

/// The calls for one workflow; `state` follows what they did (or, dry, would do).
async fn sync_steps(
    api: &Api, local: &Local, state: &mut Remote, actions: &mut Vec<&'static str>, dry_run: bool,
) -> Result<(), Failure> {
    let wf = &local.workflow;
    let path = format!("/workflows/{}", wf.id);
    let unchanged = if state.latest_version > 0 {
        let latest = api
            .get(&format!("{path}/versions/{}", state.latest_version))
            .await?;
        // A version this CLI cannot read (a newer server's format) counts as different: the
        // server's publish then decides, and answers `unchanged` when they are equal.
        serde_json::from_value::<Workflow>(latest).is_ok_and(|remote| same_content(wf, &remote))
    } else {
        false
    };

    // Deactivate before publishing: publishing a live workflow activates the new version at
    // once, and a version meant to be off must not start anything, even for a moment.
    if !wf.config.active && state.active {
        if !dry_run {
            api.post(&format!("{path}/deactivate"), None).await?;
        }
        state.active = false;
        actions.push("deactivated");
    }

    if !unchanged {
        if state.exists {
            if !dry_run {
                api.put(&path, &local.draft).await?;
            }
            actions.push("updated");
        } else {
            if !dry_run {
                match api.post("/workflows", Some(&local.draft)).await {
                    Ok(_) => {}
                    // Created meanwhile, or by our own attempt whose answer was lost.
                    Err(f) if f.is(StatusCode::CONFLICT, "exists") => {
                        api.put(&path, &local.draft).await?;
                    }
                    Err(f) => return Err(f),
                }
            }
            state.exists = true;
            actions.push("created");
        }
        if dry_run {
            state.latest_version += 1;
            if state.active {
                state.active_version = Some(state.latest_version);
            }
            actions.push("published");
        } else {
            let request = format!("{path}/publish");
            let answer = api.post(&request, None).await?;
            let version = answer
                .get("version")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| Failure {
                    request: format!("POST {request}"),
                    kind: FailureKind::BadAnswer(format!(
                        "the answer has no version: {}",
                        truncate(&answer.to_string(), 200)
                    )),
                })?;
            // `unchanged` with a version newer than we saw: our own earlier attempt made it.
            if version > state.latest_version {
                actions.push("published");
            }
            state.latest_version = version;
            // Publishing a live workflow activates the new version: the answer says so.
            if let Some(w) = answer.get("workflow") {
                if let Some(a) = w.get("active").and_then(Value::as_bool) {
                    state.active = a;
                }
                if let Some(v) = w.get("activeVersion") {
                    state.active_version = v.as_u64().and_then(|v| u32::try_from(v).ok());
                }
            }
        }
    }

    if wf.config.active && (!state.active || state.active_version != Some(state.latest_version)) {
        if !dry_run {
            let body = json!({ "version": state.latest_version });
            api.post(&format!("{path}/activate"), Some(&body)).await?;
        }
        state.active = true;
        state.active_version = Some(state.latest_version);
        actions.push("activated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(active: bool, name: &str) -> Workflow {
        serde_json::from_value(json!({
            "id": "a", "name": name, "config": { "active": active },
            "steps": [ { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ] } ]
        }))
        .unwrap()
    }

    #[test]
    fn content_is_compared_without_config_active() {
        assert!(same_content(&workflow(true, "x"), &workflow(false, "x")));
        assert!(same_content(&workflow(false, "x"), &workflow(true, "x")));
        assert!(!same_content(&workflow(true, "x"), &workflow(true, "y")));
    }

    #[test]
    fn actions_read_in_the_order_done() {
        let mut o = Outcome {
            id: "a".into(),
            file: PathBuf::from("a.json"),
            actions: vec![],
            version: 1,
            active: true,
            error: None,
        };
        assert_eq!(
            (o.action().as_str(), o.category()),
            ("unchanged", "unchanged")
        );
        o.actions = vec!["activated"];
        assert_eq!(o.category(), "activationChanged");
        o.actions = vec!["created", "published", "activated"];
        assert_eq!(
            (o.action().as_str(), o.category()),
            ("created+published+activated", "created")
        );
        o.actions = vec!["deactivated", "updated", "published"];
        assert_eq!(o.category(), "updated");
        o.actions = vec!["created"];
        o.error = Some(Failure {
            request: "POST /workflows/a/publish".into(),
            kind: FailureKind::BadAnswer("x".into()),
        });
        assert_eq!(
            (o.action().as_str(), o.category()),
            ("created+failed", "failed")
        );
    }
}
