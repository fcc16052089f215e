//! `wf`: validate, run, serve and deploy workflows. All logic lives in the libraries; this binary
//! parses arguments, wires adapters and maps results to exit codes.

mod allocator;
mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for usage errors (BSD sysexits EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit code for an invalid workflow or input.
pub const EXIT_INVALID: u8 = 3;

#[derive(Parser)]
#[command(
    name = "wf",
    version,
    about = "Workflow automation you can run on a laptop and deploy to AWS",
    long_about = "Workflow automation you can run on a laptop and deploy to AWS.\n\n\
        Workflows are JSON files in workflows/ (format: workflows/README.md, schema: `wf schema`).\n\
        `wf deploy --api-url URL` syncs them to a deployed stack (or to `wf dev`).\n\
        Exit codes: 0 ok, 1 failed, 2 timed out, 3 invalid workflow or input, 64 usage error\n\
        (`wf validate` and `wf deploy` exit 1 on an invalid workflow; see each command's --help)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve everything locally: webhooks, schedules, events, the management API and
    /// execution history, on a SQLite file; publishes workflows/*.json as they change.
    Dev(commands::dev::Args),
    /// Check workflow files and report every problem (file:line:column: pointer: message).
    Validate(commands::validate::Args),
    /// Create workflows/<id>.json: an empty one (a start step), or with --describe "..." one
    /// the configured LLM writes and the engine validates (saved as a draft, never activated).
    New(commands::new::Args),
    /// Run a workflow to completion in-process and print the execution record as JSON.
    Run(commands::run::Args),
    /// Print the JSON Schema of the workflow file format (workflows/schema.json is its output).
    Schema,
    /// Show a schedule (cron, preset or plain English) as 5-field cron, its EventBridge form
    /// and its next runs in UTC.
    Cron(commands::cron::Args),
    /// Sync workflows/*.json to a deployed stack's management API (or `wf dev`): validate all,
    /// then create, publish what changed and (de)activate per config.active; idempotent.
    Deploy(commands::deploy::Args),
}

fn main() -> ExitCode {
    allocator::return_freed_memory_at_once();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing();
    match cli.command {
        Command::Dev(args) => commands::dev::run(args),
        Command::Validate(args) => commands::validate::run(args),
        Command::New(args) => commands::new::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Cron(args) => commands::cron::run(args),
        Command::Deploy(args) => commands::deploy::run(args),
        Command::Schema => {
            print!("{}", wf_core::schema::workflow_schema_pretty());
            ExitCode::SUCCESS
        }
    }
}

/// Logs go to stderr (stdout carries results), scrubbed of the secrets steps resolved;
/// `WF_LOG` or `RUST_LOG` sets the filter.
fn init_tracing() {
    let filter = std::env::var("WF_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(wf_app::logs::ScrubbingWriter(std::io::stderr))
        .try_init();
}
