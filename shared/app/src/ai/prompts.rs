//! The prompts, kept as files in `shared/app/prompts/` (Markdown with `<!-- insert:NAME -->`
//! markers) and compiled in with `include_str!`:
//!
//! | file | role |
//! |---|---|
//! | `system.md` | system prompt of generate and chat: answer format, format rules, template rules; the JSON Schema, the action catalog and two examples are inserted |
//! | `generate.md` | the request of a new workflow (id, name, description) |
//! | `chat.md` | a change to a draft (the conversation so far, the draft, its problems, the request) |
//! | `repair.md` | appended to a request after an unusable answer: the answer and its problems |
//! | `cron.md` | plain English to cron |
//! | `examples/*.json` | the two example workflows of the system prompt (a test validates them) |

use std::sync::OnceLock;

use serde_json::Value;

pub const SYSTEM: &str = include_str!("../../prompts/system.md");
pub const GENERATE: &str = include_str!("../../prompts/generate.md");
pub const CHAT: &str = include_str!("../../prompts/chat.md");
pub const REPAIR: &str = include_str!("../../prompts/repair.md");
pub const CRON: &str = include_str!("../../prompts/cron.md");

/// The example workflows shown to the model: (file name, JSON text).
pub const EXAMPLES: [(&str, &str); 2] = [
    (
        "big-order-alert.json",
        include_str!("../../prompts/examples/big-order-alert.json"),
    ),
    (
        "daily-ticket-digest.json",
        include_str!("../../prompts/examples/daily-ticket-digest.json"),
    ),
];

const OPEN: &str = "<!-- insert:";
const CLOSE: &str = " -->";

/// Replace every `<!-- insert:NAME -->` of `template` by its value, in one pass (inserted text
/// is never scanned for markers, so user text cannot inject one). A marker without a value is
/// left as it is (a test checks every template against the values its caller gives).
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find(CLOSE) else {
            break;
        };
        let name = &after[..end];
        out.push_str(&rest[..start]);
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(&rest[start..start + OPEN.len() + end + CLOSE.len()]),
        }
        rest = &after[end + CLOSE.len()..];
    }
    out.push_str(rest);
    out
}

/// The marker names of a template, in order.
pub fn markers(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find(CLOSE) else {
            break;
        };
        names.push(&after[..end]);
        rest = &after[end + CLOSE.len()..];
    }
    names
}

/// The system prompt of generate and chat (built once: the schema and catalog are fixed).
pub fn system() -> &'static str {
    static PROMPT: OnceLock<String> = OnceLock::new();
    PROMPT.get_or_init(|| {
        let schema = serde_json::to_string(&wf_core::schema::workflow_schema())
            .unwrap_or_else(|_| "{}".into());
        fill(
            SYSTEM,
            &[
                ("schema", &schema),
                ("actions", &actions()),
                ("examples", &examples()),
            ],
        )
    })
}

/// The action catalog as Markdown: name, description, params schema.
pub fn actions() -> String {
    wf_core::catalog::actions()
        .iter()
        .map(|a| {
            format!(
                "### `{}`\n{}\nparams: {}\n",
                a.name,
                a.description,
                serde_json::to_string(&a.params_schema).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The examples, one pretty-printed JSON document each.
pub fn examples() -> String {
    EXAMPLES
        .iter()
        .map(|(name, text)| {
            let pretty = serde_json::from_str::<Value>(text)
                .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
                .unwrap_or_else(|_| text.to_string());
            format!("### {name}\n\n{pretty}\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_has_the_markers_its_caller_fills() {
        assert_eq!(markers(SYSTEM), ["schema", "actions", "examples"]);
        assert_eq!(markers(GENERATE), ["id", "name", "description"]);
        assert_eq!(
            markers(CHAT),
            ["id", "history", "draft", "problems", "message"]
        );
        assert_eq!(markers(REPAIR), ["answer", "problems"]);
        assert_eq!(markers(CRON), ["text"]);
    }

    #[test]
    fn fill_is_one_pass() {
        let t = "a <!-- insert:x --> b <!-- insert:y --> c <!-- insert:z -->";
        let out = fill(t, &[("x", "<!-- insert:y -->"), ("y", "Y")]);
        assert_eq!(out, "a <!-- insert:y --> b Y c <!-- insert:z -->");
    }

    #[test]
    fn the_system_prompt_has_schema_actions_and_examples() {
        let s = system();
        assert!(markers(s).is_empty(), "no marker left");
        assert!(s.contains("\"$defs\""), "the schema");
        for a in wf_core::catalog::actions() {
            assert!(s.contains(&format!("### `{}`", a.name)), "{}", a.name);
        }
        assert!(s.contains("big-order-alert") && s.contains("daily-ticket-digest"));
        assert!(s.contains("## Templates and expressions"));
    }

    #[test]
    fn the_examples_are_valid_workflows() {
        for (name, text) in EXAMPLES {
            let report = wf_core::validate::validate_source(text);
            assert!(
                report.is_valid(),
                "{name}:\n{}",
                wf_core::validate::format_problems(name, &report.problems)
            );
        }
    }
}
