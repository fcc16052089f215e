//! `wf cron "<expression or plain English>"`: the 5-field cron (UTC), its EventBridge form and
//! the next runs.

use std::process::ExitCode;

use serde_json::json;
use wf_app::ai::cron::{Resolved, resolve};
use wf_app::ai::{AiError, AiSettings};
use wf_app::llm::OpenAiCompatible;
use wf_core::cron::{CronSpec, FORMS_HELP, parse_any};
use wf_core::error::InvalidText;
use wf_core::ports::{Clock, SystemClock};
use wf_core::time_fmt::{format_ms, parse_ms};

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

#[derive(clap::Args)]
pub struct Args {
    /// The schedule: a 5-field cron expression in UTC ("0 9 * * 1-5"), a preset (@every5m,
    /// @hourly, @daily, @weekly, @monthly) or plain English ("every weekday at 9am"). Several
    /// words are joined with spaces, so quotes are optional for English.
    #[arg(required = true, num_args = 1.., value_name = "SCHEDULE")]
    pub expression: Vec<String>,
    /// How many upcoming runs to list.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: u16,
    /// List the runs after this time (RFC 3339, e.g. 2026-11-24T08:00:00Z) instead of now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_from)]
    pub from: Option<i64>,
    /// Print {"input", "cron", "eventbridge", "next"} as JSON.
    #[arg(long)]
    pub json: bool,
    /// When the parser cannot read the schedule, let the configured LLM try (WF_LLM_BASE_URL,
    /// WF_LLM_API_KEY, WF_AI_MODEL); its answer is validated as cron and shown with its runs.
    #[arg(long)]
    pub ai: bool,
}

fn parse_from(s: &str) -> Result<i64, String> {
    parse_ms(s).ok_or_else(|| format!("{s:?} is not an RFC 3339 time (e.g. 2026-11-24T08:00:00Z)"))
}

/// `Thu` .. `Wed` for a time (the epoch was a Thursday).
fn weekday(ms: i64) -> &'static str {
    WEEKDAYS[ms.div_euclid(86_400_000).rem_euclid(7) as usize]
}

pub fn run(args: Args) -> ExitCode {
    let input = args.expression.join(" ");
    let from = args.from.unwrap_or_else(|| SystemClock.now_ms());
    let (spec, ai) = match parse_any(&input) {
        Ok(spec) => (spec, None),
        Err(_) if args.ai => match ai_fallback(&input, args.json) {
            Ok(resolved) => (resolved.spec.clone(), Some(resolved)),
            Err(code) => return code,
        },
        Err(e) => return parse_failed(&input, &e.message, args.json, None),
    };
    let next = spec.next_n(from, usize::from(args.count));
    let eventbridge = spec.to_eventbridge();
    if args.json {
        let mut out = json!({
            "input": input,
            "cron": spec.expression(),
            "eventbridge": eventbridge.as_ref().ok(),
            "next": next.iter().copied().map(format_ms).collect::<Vec<_>>(),
        });
        if let Some(ai) = &ai {
            out["source"] = json!("ai");
            out["explanation"] = json!(ai.explanation);
        }
        if let Err(e) = &eventbridge {
            out["error"] = json!({ "code": "cron.eventbridge", "message": e.message });
        }
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print_text(&spec, &eventbridge, &next, from);
        if let Some(ai) = &ai {
            // The model's reading is a suggestion: the runs above are what it means.
            eprintln!(
                "wf cron: the parser could not read {input:?}; this cron is the AI's reading ({}): \
                 check the runs above before using it",
                ai.explanation.as_deref().unwrap_or("no explanation given")
            );
        }
    }
    match eventbridge {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wf cron: {e}");
            ExitCode::from(crate::EXIT_INVALID)
        }
    }
}

fn print_text(spec: &CronSpec, eventbridge: &Result<String, InvalidText>, next: &[i64], from: i64) {
    println!("cron:        {}", spec.expression());
    match eventbridge {
        Ok(eb) => println!("eventbridge: {eb}"),
        Err(_) => println!("eventbridge: (cannot be expressed; see below)"),
    }
    if next.is_empty() {
        println!("no runs after {}", format_ms(from));
        return;
    }
    println!("next {} runs (UTC) after {}:", next.len(), format_ms(from));
    for t in next {
        println!("  {}  {}", format_ms(*t), weekday(*t));
    }
}

/// The AI fallback (`--ai`): the configured LLM (`WF_LLM_BASE_URL`, `WF_LLM_API_KEY`,
/// `WF_AI_MODEL`) reads what the parser could not; its answer is validated as cron.
fn ai_fallback(input: &str, json: bool) -> Result<Resolved, ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("wf cron: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })?;
    let llm = OpenAiCompatible::from_env().map_err(|e| {
        eprintln!("wf cron: cannot build the HTTP client: {e}");
        ExitCode::FAILURE
    })?;
    let settings = AiSettings::from_env();
    match runtime.block_on(resolve(input, Some(&llm), &settings)) {
        Ok(resolved) => Ok(resolved),
        Err(AiError::Cron(failure)) => Err(parse_failed(
            input,
            &failure.message,
            json,
            Some(failure.explanation.as_deref().unwrap_or("no usable cron")),
        )),
        Err(e) => {
            let message = match &e {
                AiError::Provider(p) => format!(
                    "the AI fallback failed: the LLM provider at {} answered: {}",
                    llm.config().base_url,
                    p.message
                ),
                other => format!("the AI fallback failed: {other}"),
            };
            if json {
                let out = json!({ "input": input, "error": { "code": "llm.unavailable", "message": message } });
                println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            } else {
                eprintln!("wf cron: {message}");
            }
            Err(ExitCode::FAILURE)
        }
    }
}

fn parse_failed(input: &str, error: &str, json: bool, ai_note: Option<&str>) -> ExitCode {
    if json {
        let out = json!({
            "input": input,
            "error": {
                "code": "cron.invalid",
                "message": error,
                "forms": FORMS_HELP,
                "ai": ai_note,
            }
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        eprintln!("wf cron: {error}");
        if !error.contains(FORMS_HELP) {
            eprintln!("accepted: {FORMS_HELP}");
        }
        if let Some(note) = ai_note {
            eprintln!("--ai: the model says: {note}");
        }
    }
    ExitCode::from(crate::EXIT_INVALID)
}
