//! Workflow validation: every problem at once, each with a JSON pointer, a fix hint and (from
//! source text) a line and column.
//!
//! The pipeline:
//! 1. parse the JSON text (a syntax error is one problem with its line and column);
//! 2. a structural pass against our own generated schema ([`crate::schema`]), done per step and
//!    per trigger: serde's internally tagged `Step`/`Trigger` enums lose positions and a failed
//!    top-level `oneOf` says nothing useful, so each step object is checked against the schema
//!    of the variant its `type` selects (loop bodies recursively), each trigger likewise;
//! 3. only when the structure is sound: deserialize into [`Workflow`] and run the semantic
//!    checks ([`validate_workflow`]): ids, start step, triggers, edges, cycles, reachability,
//!    templates, cron, actions and their params, JSON Schemas, limits.
//!
//! Problem codes are listed in [`codes`]. Besides the problems (errors), a report carries
//! warnings ([`Report::warnings`], [`workflow_warnings`]): findings that leave the workflow valid.

mod locate;
mod semantic;
mod structure;

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::json_depth::{MAX_JSON_DEPTH, check_depth, value_depth};
use crate::model::Workflow;

pub use locate::{Located, Locator, Position, locate};

/// One thing wrong with a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// JSON pointer (RFC 6901) of the offending value, e.g. `/steps/3/next`. A missing field is
    /// pointed at where it should be (`/steps/2/action`); the whole document is `""`.
    pub pointer: String,
    pub message: String,
    /// How to fix it.
    pub hint: String,
    /// Stable machine-readable code (see [`codes`]).
    pub code: &'static str,
    /// 1-based line in the source text (filled by [`validate_source`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column (in characters) in the source text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl Problem {
    pub fn new(
        code: &'static str, pointer: impl Into<String>, message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
            hint: hint.into(),
            code,
            line: None,
            column: None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.pointer, self.message)
        }
    }
}

/// The outcome of validating a workflow document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The typed workflow; `Some` only when `problems` is empty.
    pub workflow: Option<Workflow>,
    /// The errors: any of them makes the workflow invalid.
    pub problems: Vec<Problem>,
    /// Findings that do not make the workflow invalid (it can be published and run) but that
    /// likely make it behave other than meant, e.g. a retry schedule longer than the timeout
    /// ([`codes::RETRY_OUTLASTS_TIMEOUT`]). Same shape as `problems`; reported whenever the
    /// document reads as a typed workflow, even one with problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Problem>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty() && self.workflow.is_some()
    }
}

/// The problem codes.
pub mod codes {
    /// The text is not JSON.
    pub const JSON_SYNTAX: &str = "json.syntax";
    /// Arrays and objects nested deeper than `json_depth::MAX_JSON_DEPTH`.
    pub const JSON_TOO_DEEP: &str = "json.too_deep";
    /// The document is not a JSON object.
    pub const NOT_OBJECT: &str = "json.not_object";
    /// A field the format does not have (typo?).
    pub const UNKNOWN_FIELD: &str = "schema.unknown_field";
    /// A required field is missing.
    pub const MISSING_FIELD: &str = "schema.missing_field";
    /// A value of the wrong JSON type.
    pub const WRONG_TYPE: &str = "schema.type";
    /// A value outside an enumeration or a constraint (pattern, range, ...).
    pub const BAD_VALUE: &str = "schema.value";
    /// The document matches the schema but not the Rust types (e.g. a number out of range).
    pub const DESERIALIZE: &str = "schema.deserialize";
    /// A step whose `type` is missing or unknown.
    pub const STEP_TYPE: &str = "step.type";
    /// A trigger whose `type` is missing or unknown.
    pub const TRIGGER_TYPE: &str = "trigger.type";
    /// A workflow id that is not URL-safe.
    pub const WORKFLOW_ID: &str = "workflow.id";
    /// A step id that does not match `^[A-Za-z_][A-Za-z0-9_]*$`.
    pub const STEP_ID: &str = "step.id";
    /// Two steps with the same id.
    pub const DUPLICATE_ID: &str = "step.duplicate_id";
    /// No start step at top level.
    pub const START_MISSING: &str = "start.missing";
    /// More than one start step.
    pub const START_DUPLICATE: &str = "start.duplicate";
    /// A start step inside a loop body.
    pub const START_IN_LOOP: &str = "start.in_loop";
    /// No trigger on the start step.
    pub const TRIGGER_MISSING: &str = "trigger.missing";
    /// An edge naming a step that does not exist in its scope.
    pub const UNKNOWN_STEP: &str = "edge.unknown_step";
    /// An edge that leaves or enters a loop body.
    pub const CROSS_SCOPE: &str = "edge.cross_scope";
    /// A cycle outside loops.
    pub const CYCLE: &str = "graph.cycle";
    /// A step no path reaches.
    pub const UNREACHABLE: &str = "step.unreachable";
    /// A template or expression that does not parse.
    pub const TEMPLATE: &str = "template.syntax";
    /// An invalid schedule (or one EventBridge cannot run).
    pub const CRON: &str = "cron.invalid";
    /// An action name not in the catalog.
    pub const UNKNOWN_ACTION: &str = "action.unknown";
    /// Action params that do not match the action's schema.
    pub const ACTION_PARAMS: &str = "action.params";
    /// An `inputSchema` / `jsonSchema` that is not a valid JSON Schema.
    pub const JSON_SCHEMA: &str = "schema.invalid";
    /// A limit out of range (`concurrency`, `timeoutMs`, an empty loop body, ...).
    pub const LIMIT: &str = "value.range";
    /// More than one webhook trigger.
    pub const WEBHOOK_DUPLICATE: &str = "webhook.duplicate";
    /// A signed webhook scheme without `secretEnv` (or a bad variable name).
    pub const WEBHOOK_SECRET: &str = "webhook.secret";

    // Warnings ([`super::Report::warnings`]): valid, but likely not what was meant.

    /// A step's worst-case retry schedule (its backoffs, plus `timeoutMs` per attempt when set)
    /// outlasts the workflow's `timeoutMs`: when every attempt fails the execution times out
    /// before the step gives up, so its `onError` route never runs.
    pub const RETRY_OUTLASTS_TIMEOUT: &str = "retry.outlasts_timeout";
}

fn too_deep_problem(limit: usize) -> Problem {
    Problem::new(
        codes::JSON_TOO_DEEP,
        "",
        format!(
            "the document is nested deeper than the limit of {limit} levels of arrays and objects"
        ),
        "flatten the deepest values (a workflow never needs that much nesting)",
    )
}

/// Validate workflow JSON text: every problem, each with its line and column.
pub fn validate_source(text: &str) -> Report {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Err(e) = check_depth(text.as_bytes(), MAX_JSON_DEPTH) {
        let mut p = too_deep_problem(e.limit);
        p.line = Some(e.line);
        p.column = Some(e.column);
        return Report {
            workflow: None,
            problems: vec![p],
            warnings: Vec::new(),
        };
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full);
            let mut p = Problem::new(
                codes::JSON_SYNTAX,
                "",
                format!("invalid JSON: {message}"),
                "fix the JSON syntax (a missing comma, quote or bracket, or a trailing comma, is the usual cause)",
            );
            p.line = Some(e.line().max(1));
            p.column = Some(e.column().max(1));
            return Report {
                workflow: None,
                problems: vec![p],
                warnings: Vec::new(),
            };
        }
    };
    let mut report = validate_value(&value);
    let mut locator = Locator::new(text);
    for list in [&mut report.problems, &mut report.warnings] {
        for p in list.iter_mut() {
            if p.line.is_some() {
                continue;
            }
            if let Some(loc) = locator.locate(&p.pointer) {
                let pos = match (p.code, loc.key) {
                    (codes::UNKNOWN_FIELD, Some(key)) if loc.exact => key,
                    _ => loc.value,
                };
                p.line = Some(pos.line);
                p.column = Some(pos.column);
            }
        }
        list.sort_by_key(|p| (p.line.unwrap_or(0), p.column.unwrap_or(0)));
    }
    report
}

/// Validate a parsed workflow document.
pub fn validate_value(value: &Value) -> Report {
    if value_depth(value) > MAX_JSON_DEPTH {
        return Report {
            workflow: None,
            problems: vec![too_deep_problem(MAX_JSON_DEPTH)],
            warnings: Vec::new(),
        };
    }
    let issues = structure::check(value);
    if issues.iter().any(|i| i.blocking) {
        return Report {
            workflow: None,
            problems: issues.into_iter().map(|i| i.problem).collect(),
            warnings: Vec::new(),
        };
    }
    let soft: Vec<Problem> = issues.into_iter().map(|i| i.problem).collect();
    let workflow: Workflow = match serde_json::from_value(value.clone()) {
        Ok(wf) => wf,
        Err(e) => {
            // The soft problems (a negative number, a value out of range) explain it best.
            let mut problems = soft;
            if problems.is_empty() {
                problems.push(Problem::new(
                    codes::DESERIALIZE,
                    "",
                    format!("the workflow does not match the format: {e}"),
                    "compare it with workflows/schema.json",
                ));
            }
            return Report {
                workflow: None,
                problems,
                warnings: Vec::new(),
            };
        }
    };
    let mut problems = validate_workflow(&workflow);
    // Keep structural findings the semantic pass did not already report at the same place.
    let extra: Vec<Problem> = soft
        .into_iter()
        .filter(|s| !problems.iter().any(|p| p.pointer == s.pointer))
        .collect();
    problems.splice(0..0, extra);
    let warnings = workflow_warnings(&workflow);
    Report {
        workflow: problems.is_empty().then_some(workflow),
        problems,
        warnings,
    }
}

/// The semantic checks on a typed workflow (everything but the JSON structure): the errors.
pub fn validate_workflow(wf: &Workflow) -> Vec<Problem> {
    semantic::check(wf)
}

/// The warnings of a typed workflow ([`Report::warnings`]): findings that leave it valid.
pub fn workflow_warnings(wf: &Workflow) -> Vec<Problem> {
    semantic::warnings(wf)
}

/// Warnings as [`format_problems`] prints problems, each line prefixed `warning: `:
/// `warning: workflows/x.json:43:7: /steps/2/retry: step "notify" can take …`.
pub fn format_warnings(file: &str, warnings: &[Problem]) -> String {
    format_problems(file, warnings)
        .lines()
        .map(|line| {
            if line.starts_with("    ") {
                format!("{line}\n")
            } else {
                format!("warning: {line}\n")
            }
        })
        .collect()
}

/// Problems as readable lines:
/// `workflows/x.json:12:15: /steps/3/next: unknown step id "notfy" (did you mean "notify"?)`
/// followed by an indented `hint:` line.
pub fn format_problems(file: &str, problems: &[Problem]) -> String {
    let mut out = String::new();
    for p in problems {
        out.push_str(file);
        if let Some(line) = p.line {
            out.push_str(&format!(":{line}"));
            if let Some(col) = p.column {
                out.push_str(&format!(":{col}"));
            }
        }
        out.push_str(": ");
        if !p.pointer.is_empty() {
            out.push_str(&p.pointer);
            out.push_str(": ");
        }
        out.push_str(&p.message);
        out.push('\n');
        if !p.hint.is_empty() {
            out.push_str("    hint: ");
            out.push_str(&p.hint);
            out.push('\n');
        }
    }
    out
}

// ---- helpers shared by the passes ----

/// Escape one JSON pointer token (`~` -> `~0`, `/` -> `~1`).
pub(crate) fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Split a JSON pointer into unescaped tokens (`""` -> no tokens).
pub(crate) fn pointer_tokens(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer
        .strip_prefix('/')
        .unwrap_or(pointer)
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The closest candidate to `word` when it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(
    word: &str, candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let w = word.to_lowercase();
    let limit = (w.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (levenshtein(&w, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// How a message names the value at pointer `tokens`: "`field`", "this item" in an array, or
/// `root` (e.g. "the value") at the top.
pub(crate) fn subject(tokens: &[String], root: &str) -> String {
    match tokens.last() {
        Some(t) if t.parse::<usize>().is_err() => format!("`{t}`"),
        Some(_) => "this item".to_string(),
        None => root.to_string(),
    }
}

/// `name` at `{at}/name`, which is not one of `known`: `message` says what it is (e.g.
/// "unknown field `x`"), followed by the closest known name when one is close.
pub(crate) fn unknown_name(
    code: &'static str, at: &str, name: &str, message: String, known: &[&str], hint: String,
) -> Problem {
    Problem::new(
        code,
        format!("{at}/{}", escape_token(name)),
        format!("{message}{}", suggestion(name, known.iter().copied())),
        hint,
    )
}

/// ` (did you mean "x"?)` or empty.
pub(crate) fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match did_you_mean(word, candidates) {
        Some(c) => format!(" (did you mean {c:?}?)"),
        None => String::new(),
    }
}

/// Edit distance counting an adjacent transposition as one edit (optimal string alignment):
/// "nmae" is one edit from "name".
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// JSON type name of a value, for messages.
pub(crate) fn type_of(v: &Value) -> &'static str {
    crate::expr::type_name(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let c = ["next", "onError", "name"];
        assert_eq!(did_you_mean("nxt", c), Some("next"));
        assert_eq!(did_you_mean("onerror", c), Some("onError"));
        assert_eq!(did_you_mean("completely", c), None);
        assert_eq!(did_you_mean("notfy", ["notify", "done"]), Some("notify"));
        assert_eq!(did_you_mean("nmae", c), Some("name"));
        assert_eq!(
            suggestion("http.reqest", ["http.request", "record.get"]),
            " (did you mean \"http.request\"?)"
        );
    }

    #[test]
    fn pointers_escape_and_split() {
        assert_eq!(escape_token("a/b~c"), "a~1b~0c");
        assert_eq!(pointer_tokens("/a~1b/0/c~0"), vec!["a/b", "0", "c~"]);
        assert!(pointer_tokens("").is_empty());
    }

    #[test]
    fn formats_problems_readably() {
        let mut p = Problem::new(
            codes::UNKNOWN_STEP,
            "/steps/3/next",
            "unknown step id \"notfy\" (did you mean \"notify\"?)",
            "`next` names a step of the same scope",
        );
        p.line = Some(12);
        p.column = Some(15);
        let root = Problem::new(codes::JSON_SYNTAX, "", "invalid JSON", "");
        assert_eq!(
            format_problems("workflows/x.json", &[p, root]),
            "workflows/x.json:12:15: /steps/3/next: unknown step id \"notfy\" (did you mean \"notify\"?)\n    hint: `next` names a step of the same scope\nworkflows/x.json: invalid JSON\n"
        );
    }
}
