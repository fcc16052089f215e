//! The semantic checks on a typed workflow: ids, start step, triggers, edges, cycles,
//! reachability, templates, cron, actions and their params, JSON Schemas, limits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::LazyLock;

use jsonschema::Validator;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::{
    Problem, codes, escape_token, pointer_tokens, subject, suggestion, type_of, unknown_name,
};
use crate::catalog;
use crate::cron::{CronSpec, parse_english};
use crate::expr::{check_expression, check_template, is_template, single_expression};
use crate::model::{
    EffectiveRetry, Step, Trigger, WORKFLOW_ID_MAX_LEN, WebhookScheme, Workflow, check_workflow_id,
    matches_workflow_id_pattern,
};
use crate::schema::JSON_TYPES;

const TEMPLATE_HINT: &str = "templates are Jinja (minijinja): `{{ expr }}` for values, `{% if %}`/`{% for %}` blocks; check the braces and the expression";

/// A step with where it is.
struct Node<'a> {
    step: &'a Step,
    ptr: String,
    scope: usize,
}

/// The top level (scope 0) or the body of one loop.
struct Scope<'a> {
    loop_id: Option<&'a str>,
    nodes: Vec<usize>,
}

impl Scope<'_> {
    fn describe(&self) -> String {
        match self.loop_id {
            None => "the top level".to_string(),
            Some(id) => format!("the body of loop `{id}`"),
        }
    }
}

struct Graph<'a> {
    nodes: Vec<Node<'a>>,
    scopes: Vec<Scope<'a>>,
}

fn collect<'a>(steps: &'a [Step], base: &str, scope: usize, g: &mut Graph<'a>) {
    for (i, step) in steps.iter().enumerate() {
        let ptr = format!("{base}/{i}");
        let idx = g.nodes.len();
        g.nodes.push(Node {
            step,
            ptr: ptr.clone(),
            scope,
        });
        g.scopes[scope].nodes.push(idx);
        if let Step::Loop(l) = step {
            let body = g.scopes.len();
            g.scopes.push(Scope {
                loop_id: Some(&l.id),
                nodes: Vec::new(),
            });
            collect(&l.steps, &format!("{ptr}/steps"), body, g);
        }
    }
}

fn graph(wf: &Workflow) -> Graph<'_> {
    let mut g = Graph {
        nodes: Vec::new(),
        scopes: vec![Scope {
            loop_id: None,
            nodes: Vec::new(),
        }],
    };
    collect(&wf.steps, "/steps", 0, &mut g);
    g
}

pub(super) fn check(wf: &Workflow) -> Vec<Problem> {
    let g = graph(wf);
    let mut out = Vec::new();
    check_workflow(wf, &mut out);
    let start = check_start(&g, &mut out);
    check_ids(&g, &mut out);
    for node in &g.nodes {
        check_step(node, &mut out);
    }
    check_graph(&g, start, &mut out);
    out
}

// ---- warnings ----

/// What makes a workflow behave worse than its author likely meant, without making it invalid:
/// a step whose retry schedule outlasts the workflow's timeout (its `onError` never runs).
pub(super) fn warnings(wf: &Workflow) -> Vec<Problem> {
    let g = graph(wf);
    let mut out = Vec::new();
    for node in &g.nodes {
        if !matches!(node.step, Step::Action(_) | Step::Llm(_)) {
            continue;
        }
        retry_within_timeout(wf, node, &mut out);
    }
    out
}

/// Warn when a step that fails every attempt would still be retrying at the workflow's deadline.
fn retry_within_timeout(wf: &Workflow, node: &Node, out: &mut Vec<Problem>) {
    let step = node.step;
    let retry = EffectiveRetry::of(&wf.config, step);
    let attempt_timeout = step.timeout_ms();
    let worst = retry.worst_case_ms(attempt_timeout);
    let deadline = wf.config.timeout_ms;
    // A zero timeout is a problem of its own (`/config/timeoutMs`): no warning per step on top.
    if worst <= deadline || deadline == 0 {
        return;
    }
    let mut schedule = format!(
        "{} retr{}: {} ms of backoff",
        retry.max_retries,
        if retry.max_retries == 1 { "y" } else { "ies" },
        retry.total_backoff_ms()
    );
    if let Some(t) = attempt_timeout {
        schedule.push_str(&format!(
            " + {} attempt(s) of up to {t} ms (timeoutMs)",
            u64::from(retry.max_retries) + 1
        ));
    }
    let consequence = match step.on_error() {
        Some(route) => format!(
            "if every attempt fails the execution times out first, and its `onError` route ({route:?}) never runs"
        ),
        None => "if every attempt fails the execution times out first instead of failing with the step's error".to_string(),
    };
    let pointer = if step.retry().is_some() {
        format!("{}/retry", node.ptr)
    } else {
        node.ptr.clone()
    };
    out.push(Problem::new(
        codes::RETRY_OUTLASTS_TIMEOUT,
        pointer,
        format!(
            "step {:?} can take {worst} ms retrying ({schedule}), more than the workflow's timeout of {deadline} ms: {consequence}",
            step.id()
        ),
        format!(
            "lower `maxRetries` or `backoffMs` (or `backoffMultiplier`, or cap the delay with `maxBackoffMs`), set a shorter `timeoutMs` on the step, or raise `config.timeoutMs` above {worst}"
        ),
    ));
}

// ---- ids ----

fn valid_step_id(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some('A'..='Z' | 'a'..='z' | '_'))
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

fn step_id_fix(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn check_workflow(wf: &Workflow, out: &mut Vec<Problem>) {
    if check_workflow_id(&wf.id).is_err() {
        let mut example = slug(&wf.id);
        example.truncate(WORKFLOW_ID_MAX_LEN);
        let example = example.trim_end_matches('-');
        let chars = wf.id.chars().count();
        let too_long = (chars > WORKFLOW_ID_MAX_LEN)
            .then(|| format!("too long ({chars} characters, at most {WORKFLOW_ID_MAX_LEN})"));
        let message = match (matches_workflow_id_pattern(&wf.id), too_long) {
            (true, Some(long)) => format!("workflow id {:?} is {long}", wf.id),
            (false, Some(long)) => format!("workflow id {:?} is not URL-safe and {long}", wf.id),
            (_, None) => format!("workflow id {:?} is not URL-safe", wf.id),
        };
        out.push(Problem::new(
            codes::WORKFLOW_ID,
            "/id",
            message,
            format!(
                "use lowercase letters, digits and `-`, starting with a letter or digit (^[a-z0-9][a-z0-9-]*$), at most {WORKFLOW_ID_MAX_LEN} characters{}",
                if example.is_empty() { String::new() } else { format!(", e.g. {example:?}") }
            ),
        ));
    }
    if wf.config.timeout_ms == 0 {
        out.push(Problem::new(
            codes::LIMIT,
            "/config/timeoutMs",
            "`timeoutMs` must be greater than 0",
            "the deadline of an execution in milliseconds, e.g. 300000 (5 minutes)",
        ));
    }
}

fn check_ids(g: &Graph, out: &mut Vec<Problem>) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for node in &g.nodes {
        let id = node.step.id();
        let at = format!("{}/id", node.ptr);
        if !valid_step_id(id) {
            out.push(Problem::new(
                codes::STEP_ID,
                &at,
                format!("step id {id:?} is not a valid identifier"),
                format!(
                    "step ids match ^[A-Za-z_][A-Za-z0-9_]*$ so that `steps.<id>` works in templates, e.g. {:?}",
                    step_id_fix(id)
                ),
            ));
        }
        match seen.get(id) {
            Some(first) => out.push(Problem::new(
                codes::DUPLICATE_ID,
                &at,
                format!("duplicate step id {id:?} (also at {first})"),
                "step ids are unique in the whole workflow, loop bodies included; rename one of them",
            )),
            None => {
                seen.insert(id, &node.ptr);
            }
        }
    }
}

// ---- start step and triggers ----

/// Checks the start steps and triggers; returns the node of the (first) top-level start step.
fn check_start(g: &Graph, out: &mut Vec<Problem>) -> Option<usize> {
    let mut first: Option<usize> = None;
    for (idx, node) in g.nodes.iter().enumerate() {
        let Step::Start(s) = node.step else {
            continue;
        };
        if node.scope != 0 {
            out.push(Problem::new(
                codes::START_IN_LOOP,
                &node.ptr,
                format!("start step {:?} is inside a loop body", s.id),
                "a loop body starts at its first step; the only start step is at the top level: remove this one",
            ));
        } else if let Some(f) = first {
            out.push(Problem::new(
                codes::START_DUPLICATE,
                &node.ptr,
                format!(
                    "a second start step {:?} (the first is {:?} at {})",
                    s.id,
                    g.nodes[f].step.id(),
                    g.nodes[f].ptr
                ),
                "a workflow has exactly one start step: move its triggers to the first one and remove this one",
            ));
        } else {
            first = Some(idx);
        }
        check_triggers(&s.triggers, &node.ptr, out);
    }
    match first {
        None => out.push(Problem::new(
            codes::START_MISSING,
            "/steps",
            "the workflow has no start step",
            r#"add a step {"id": "start", "type": "start", "triggers": [{"type": "manual"}], "next": "<first step>"}"#,
        )),
        Some(f) => {
            if let Step::Start(s) = g.nodes[f].step
                && s.triggers.is_empty()
            {
                out.push(Problem::new(
                    codes::TRIGGER_MISSING,
                    format!("{}/triggers", g.nodes[f].ptr),
                    "the workflow has no trigger: nothing can start it",
                    r#"add a trigger to the start step, e.g. "triggers": [{"type": "manual"}] (or webhook, schedule, event)"#,
                ));
            }
        }
    }
    first
}

fn check_triggers(triggers: &[Trigger], step_ptr: &str, out: &mut Vec<Problem>) {
    let mut webhook: Option<String> = None;
    for (k, trigger) in triggers.iter().enumerate() {
        let at = format!("{step_ptr}/triggers/{k}");
        match trigger {
            Trigger::Webhook(w) => {
                if let Some(first) = &webhook {
                    out.push(Problem::new(
                        codes::WEBHOOK_DUPLICATE,
                        &at,
                        format!("more than one webhook trigger (the first is {first})"),
                        "a workflow has one webhook URL: keep a single webhook trigger",
                    ));
                } else {
                    webhook = Some(at.clone());
                }
                let scheme = serde_json::to_value(w.scheme)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                match &w.secret_env {
                    None if w.scheme != WebhookScheme::None => out.push(Problem::new(
                        codes::WEBHOOK_SECRET,
                        format!("{at}/secretEnv"),
                        format!("the webhook scheme {scheme:?} signs requests but no `secretEnv` names the secret"),
                        r#"set "secretEnv" to the environment variable holding the signing secret, or set "scheme": "none" for an unsigned hook (then only its unguessable URL protects it)"#,
                    )),
                    Some(name) if !valid_step_id(name) => out.push(Problem::new(
                        codes::WEBHOOK_SECRET,
                        format!("{at}/secretEnv"),
                        format!("{name:?} is not an environment variable name"),
                        "use letters, digits and `_`, not starting with a digit, e.g. \"ORDER_ALERT_SECRET\"",
                    )),
                    _ => {}
                }
            }
            Trigger::Schedule(s) => check_cron(&s.cron, &format!("{at}/cron"), out),
            Trigger::Event(e) => {
                not_blank(
                    &e.event,
                    format!("{at}/event"),
                    "the event type",
                    "name the event type that starts the workflow, e.g. \"order.created\"",
                    out,
                );
                if let Some(filter) = &e.filter {
                    expression(
                        filter,
                        &format!("{at}/filter"),
                        "a filter is one `{{ expr }}` over `event` that yields true or false, e.g. \"{{ event.detail.amount > 10 }}\"",
                        out,
                    );
                }
            }
            Trigger::Manual(_) => {}
        }
    }
}

fn check_cron(text: &str, at: &str, out: &mut Vec<Problem>) {
    match CronSpec::parse(text) {
        Ok(spec) => {
            if let Err(e) = spec.to_eventbridge() {
                out.push(Problem::new(
                    codes::CRON,
                    at,
                    e.message,
                    "schedules run on EventBridge on AWS, which needs one of day-of-month / day-of-week unrestricted",
                ));
            }
        }
        Err(e) => {
            let hint = match parse_english(text) {
                Ok(expr) => format!("write it as cron: \"{expr}\""),
                Err(_) => "write 5 fields in UTC: minute hour day-of-month month day-of-week (e.g. \"0 9 * * 1-5\"), or a preset: @every5m, @hourly, @daily, @weekly, @monthly; `wf cron \"every weekday at 9am\"` converts plain English".to_string(),
            };
            out.push(Problem::new(codes::CRON, at, e.message, hint));
        }
    }
}

// ---- per step ----

fn check_step(node: &Node, out: &mut Vec<Problem>) {
    let p = &node.ptr;
    match node.step {
        Step::Start(s) => {
            if let Some(schema) = &s.input_schema {
                check_json_schema(schema, &format!("{p}/inputSchema"), "inputSchema", out);
            }
        }
        Step::Action(a) => {
            match catalog::action(&a.action) {
                None => {
                    let names: Vec<&str> = catalog::actions().iter().map(|a| a.name).collect();
                    out.push(Problem::new(
                        codes::UNKNOWN_ACTION,
                        format!("{p}/action"),
                        format!(
                            "unknown action {:?}{}",
                            a.action,
                            suggestion(&a.action, names.iter().copied())
                        ),
                        format!("the actions are: {}", names.join(", ")),
                    ));
                }
                Some(spec) => check_params(&spec, &a.params, &format!("{p}/params"), out),
            }
            templates(&a.params, &format!("{p}/params"), out);
            timeout(a.timeout_ms, p, out);
        }
        Step::Llm(l) => {
            not_blank(
                &l.model,
                format!("{p}/model"),
                "the model",
                "name the model, e.g. \"openai/gpt-4o-mini\"",
                out,
            );
            template(&l.prompt, &format!("{p}/prompt"), out);
            if let Some(system) = &l.system {
                template(system, &format!("{p}/system"), out);
            }
            if let Some(schema) = &l.json_schema {
                check_json_schema(schema, &format!("{p}/jsonSchema"), "jsonSchema", out);
            }
            timeout(l.timeout_ms, p, out);
        }
        Step::Condition(c) => {
            for (i, b) in c.branches.iter().enumerate() {
                expression(
                    &b.condition,
                    &format!("{p}/branches/{i}/if"),
                    "a condition is one `{{ expr }}` that yields true or false, e.g. \"{{ input.amount > 100 }}\"",
                    out,
                );
            }
        }
        Step::Loop(l) => {
            expression(
                &l.items,
                &format!("{p}/items"),
                "`items` is one `{{ expr }}` that yields an array, e.g. \"{{ input.lines }}\"",
                out,
            );
            if !(1..=100).contains(&l.concurrency) {
                out.push(Problem::new(
                    codes::LIMIT,
                    format!("{p}/concurrency"),
                    format!("`concurrency` is {}, outside 1..=100", l.concurrency),
                    "how many iterations run at once: 1 (one after the other, the default) up to 100",
                ));
            }
            if l.steps.is_empty() {
                out.push(Problem::new(
                    codes::LIMIT,
                    format!("{p}/steps"),
                    format!("loop {:?} has an empty body", l.id),
                    "add the steps to run for each item to `steps` (the first one is the entry)",
                ));
            }
        }
        Step::Output(o) => templates(&o.output, &format!("{p}/output"), out),
    }
}

/// A name the step or trigger needs (`what`, e.g. "the model") must not be blank.
fn not_blank(text: &str, at: String, what: &str, hint: &str, out: &mut Vec<Problem>) {
    if text.trim().is_empty() {
        out.push(Problem::new(
            codes::BAD_VALUE,
            at,
            format!("{what} is empty"),
            hint,
        ));
    }
}

fn timeout(ms: Option<u64>, p: &str, out: &mut Vec<Problem>) {
    if ms == Some(0) {
        out.push(Problem::new(
            codes::LIMIT,
            format!("{p}/timeoutMs"),
            "`timeoutMs` must be greater than 0",
            "the bound of one attempt in milliseconds, e.g. 30000; leave it out to use the workflow deadline",
        ));
    }
}

fn template(s: &str, at: &str, out: &mut Vec<Problem>) {
    if let Err(e) = check_template(s) {
        out.push(Problem::new(codes::TEMPLATE, at, e.message, TEMPLATE_HINT));
    }
}

fn expression(s: &str, at: &str, hint: &str, out: &mut Vec<Problem>) {
    if let Err(e) = check_expression(s) {
        out.push(Problem::new(codes::TEMPLATE, at, e.message, hint));
    }
}

/// Every string inside a JSON value.
fn templates(v: &Value, at: &str, out: &mut Vec<Problem>) {
    match v {
        Value::String(s) => template(s, at, out),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                templates(x, &format!("{at}/{i}"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                templates(x, &format!("{at}/{}", escape_token(k)), out);
            }
        }
        _ => {}
    }
}

// ---- action params ----

static PARAM_VALIDATORS: LazyLock<HashMap<&'static str, Validator>> = LazyLock::new(|| {
    catalog::actions()
        .into_iter()
        .map(|a| {
            let v = catalog::params_validator(&a.params_schema)
                .unwrap_or_else(|e| panic!("params schema of {} compiles: {e}", a.name));
            (a.name, v)
        })
        .collect()
});

/// Whether the value at `tokens` (or one of its ancestors) is a single `{{ expr }}`: its value,
/// and so its type, is only known when the step runs.
fn known_at_run_time(params: &Value, tokens: &[String]) -> bool {
    let mut cur = params;
    for t in std::iter::once(None).chain(tokens.iter().map(Some)) {
        if let Some(t) = t {
            let next = match cur {
                Value::Object(m) => m.get(t.as_str()),
                Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
            match next {
                Some(n) => cur = n,
                None => return false,
            }
        }
        if cur.as_str().is_some_and(|s| single_expression(s).is_some()) {
            return true;
        }
    }
    false
}

fn check_params(spec: &catalog::ActionSpec, params: &Value, base: &str, out: &mut Vec<Problem>) {
    let Some(validator) = PARAM_VALIDATORS.get(spec.name) else {
        return;
    };
    let schema = &spec.params_schema;
    let action = spec.name;
    for err in validator.iter_errors(params) {
        let path = err.instance_path.as_str();
        let tokens = pointer_tokens(path);
        if known_at_run_time(params, &tokens) {
            continue;
        }
        // A template with text around it renders to a string: its type is known, its content
        // is not.
        let content_check = matches!(
            err.kind,
            ValidationErrorKind::Pattern { .. }
                | ValidationErrorKind::MinLength { .. }
                | ValidationErrorKind::MaxLength { .. }
                | ValidationErrorKind::Enum { .. }
                | ValidationErrorKind::Constant { .. }
                | ValidationErrorKind::Format { .. }
        );
        if content_check && err.instance.as_str().is_some_and(is_template) {
            continue;
        }
        let at = format!("{base}{path}");
        let subject = subject(&tokens, "`params`");
        let sub = param_schema_at(schema, &tokens);
        match &err.kind {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known: Vec<&str> = sub
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object)
                    .map(|m| m.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                for name in unexpected {
                    out.push(unknown_name(
                        codes::ACTION_PARAMS,
                        &at,
                        name,
                        format!("unknown parameter `{name}` for {action}"),
                        &known,
                        if tokens.is_empty() {
                            format!("the parameters of {action} are: {}", known.join(", "))
                        } else {
                            format!("the fields here are: {}", known.join(", "))
                        },
                    ));
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let prop = sub
                    .and_then(|s| s.get("properties"))
                    .and_then(|p| p.get(name));
                let desc = prop
                    .and_then(|p| p.get("description"))
                    .and_then(Value::as_str)
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                let ty = prop
                    .and_then(|p| p.get("type"))
                    .and_then(Value::as_str)
                    .map(|t| format!(" (a {t})"))
                    .unwrap_or_default();
                out.push(Problem::new(
                    codes::ACTION_PARAMS,
                    format!("{at}/{}", escape_token(name)),
                    format!("missing required parameter `{name}` for {action}"),
                    format!("add `{name}`{ty}{desc}"),
                ));
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => t.to_string(),
                    TypeKind::Multiple(set) => set
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                };
                out.push(Problem::new(
                    codes::ACTION_PARAMS,
                    at,
                    format!(
                        "{subject} must be {} {expected}, found {}",
                        article(&expected),
                        type_of(&err.instance)
                    ),
                    format!(
                        "write {subject} as {} {expected}, or as one \"{{{{ expr }}}}\" that yields it at run time",
                        article(&expected)
                    ),
                ));
            }
            ValidationErrorKind::Not { schema: not } => {
                let message = match not.get("required").and_then(Value::as_array) {
                    Some(names) => {
                        let names: Vec<String> = names
                            .iter()
                            .filter_map(Value::as_str)
                            .map(|n| format!("`{n}`"))
                            .collect();
                        format!(
                            "{} cannot be used together in {action}",
                            names.join(" and ")
                        )
                    }
                    None => format!("{action} params: {err}"),
                };
                out.push(Problem::new(
                    codes::ACTION_PARAMS,
                    at,
                    message,
                    "keep only one of them",
                ));
            }
            _ => out.push(Problem::new(
                codes::ACTION_PARAMS,
                at,
                format!("{subject}: {err}"),
                format!("see the params schema of {action} (`wf actions` / the catalog)"),
            )),
        }
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn param_schema_at<'a>(schema: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut s = schema;
    for t in tokens {
        s = s
            .get("properties")
            .and_then(|p| p.get(t.as_str()))
            .or_else(|| s.get("items"))
            .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))?;
    }
    Some(s)
}

// ---- JSON Schemas (inputSchema, llm jsonSchema) ----

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// The drafts whose meta-schemas come bundled with jsonschema (nothing is fetched).
const META_URIS: [&str; 5] = [
    DRAFT_2020_12,
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema",
    "http://json-schema.org/draft-06/schema",
    "http://json-schema.org/draft-04/schema",
];

/// The meta-schema validator of a `$schema` URI (without a trailing `#`): jsonschema's own,
/// each a process-wide static built on first use. The same ones jsonschema meta-validates with
/// when it compiles a schema (`validator_for` below, `InputValidator`), so checking a schema
/// here and compiling it builds one meta-schema validator, not two (the 2020-12 one costs
/// megabytes, and most workflows only use one draft).
fn meta_for(uri: &str) -> Option<&'static Validator> {
    let meta: &'static Validator = match META_URIS.iter().position(|u| *u == uri)? {
        0 => &jsonschema::draft202012::meta::VALIDATOR,
        1 => &jsonschema::draft201909::meta::VALIDATOR,
        2 => &jsonschema::draft7::meta::VALIDATOR,
        3 => &jsonschema::draft6::meta::VALIDATOR,
        _ => &jsonschema::draft4::meta::VALIDATOR,
    };
    Some(meta)
}

fn check_json_schema(schema: &Value, at: &str, field: &str, out: &mut Vec<Problem>) {
    let hint = format!(
        "`{field}` is a JSON Schema (draft 2020-12 unless `$schema` says otherwise), e.g. \
         {{\"type\": \"object\", \"required\": [\"amount\"], \"properties\": {{\"amount\": {{\"type\": \"number\"}}}}}}"
    );
    match schema {
        Value::Bool(_) => return,
        Value::Object(_) => {}
        other => {
            out.push(Problem::new(
                codes::JSON_SCHEMA,
                at,
                format!(
                    "`{field}` must be a JSON Schema (an object), found {}",
                    type_of(other)
                ),
                hint,
            ));
            return;
        }
    }
    let uri = schema
        .get("$schema")
        .and_then(Value::as_str)
        .unwrap_or(DRAFT_2020_12)
        .trim_end_matches('#');
    // a schema plainly valid needs no meta-schema (which costs megabytes): only compiling
    if let Some(meta) = meta_for(uri).filter(|_| !crate::schema::plainly_valid(schema)) {
        let mut seen = HashSet::new();
        for err in meta.iter_errors(schema) {
            let path = err.instance_path.as_str().to_string();
            if !seen.insert(path.clone()) {
                continue;
            }
            let last = pointer_tokens(&path).pop();
            let message = match (last.as_deref(), err.instance.as_ref()) {
                (Some("type"), Value::String(t)) => format!(
                    "{t:?} is not a JSON Schema type{}",
                    suggestion(t, JSON_TYPES.iter().copied())
                ),
                (Some("type"), other) if !other.is_array() => format!(
                    "`type` must name a type ({}) or list them, found {}",
                    JSON_TYPES.join(", "),
                    type_of(other)
                ),
                _ => format!("invalid JSON Schema: {err}"),
            };
            out.push(Problem::new(
                codes::JSON_SCHEMA,
                format!("{at}{path}"),
                message,
                &hint,
            ));
        }
        if !seen.is_empty() {
            return;
        }
    }
    if let Err(e) = crate::schema::user_schema_validator(schema) {
        out.push(Problem::new(
            codes::JSON_SCHEMA,
            format!("{at}{}", e.instance_path.as_str()),
            format!("invalid JSON Schema: {e}"),
            hint,
        ));
    }
}

// ---- graph: edges, cycles, reachability ----

fn check_graph(g: &Graph, start: Option<usize>, out: &mut Vec<Problem>) {
    let mut global: HashMap<&str, usize> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        global.entry(n.step.id()).or_insert(i);
    }
    // adjacency: (target, pointer of the edge)
    let mut adj: Vec<Vec<(usize, String)>> = vec![Vec::new(); g.nodes.len()];
    for scope in &g.scopes {
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for &i in &scope.nodes {
            ids.entry(g.nodes[i].step.id()).or_insert(i);
        }
        let mut names: Vec<&str> = scope.nodes.iter().map(|&i| g.nodes[i].step.id()).collect();
        names.dedup();
        for &i in &scope.nodes {
            let node = &g.nodes[i];
            for (suffix, target) in node.step.edges() {
                let at = format!("{}{}", node.ptr, suffix);
                let field = suffix.rsplit('/').next().unwrap_or("next");
                if let Some(&t) = ids.get(target) {
                    adj[i].push((t, at));
                } else if let Some(&t) = global.get(target) {
                    let other = &g.scopes[g.nodes[t].scope];
                    let hint = if scope.loop_id.is_some() {
                        "inside a loop body, edges name steps of the same body; an iteration ends at a step without `next`, and the loop step's own `next` continues after the loop".to_string()
                    } else {
                        format!(
                            "a loop body is entered only through its loop step: point `{field}` at the loop step `{}` instead",
                            other.loop_id.unwrap_or_default()
                        )
                    };
                    out.push(Problem::new(
                        codes::CROSS_SCOPE,
                        at,
                        format!(
                            "`{field}` points to step {target:?} in {}, but this step is in {}",
                            other.describe(),
                            scope.describe()
                        ),
                        hint,
                    ));
                } else {
                    let shown: Vec<&str> = names
                        .iter()
                        .copied()
                        .filter(|n| *n != node.step.id())
                        .take(12)
                        .collect();
                    out.push(Problem::new(
                        codes::UNKNOWN_STEP,
                        at,
                        format!(
                            "unknown step id {target:?}{}",
                            suggestion(target, names.iter().copied())
                        ),
                        if shown.is_empty() {
                            format!("`{field}` must name another step of {}", scope.describe())
                        } else {
                            format!(
                                "`{field}` must name a step of {}: {}",
                                scope.describe(),
                                shown.join(", ")
                            )
                        },
                    ));
                }
            }
        }
    }
    for scope in &g.scopes {
        cycles(g, scope, &adj, out);
    }
    for scope in &g.scopes {
        let entry = match scope.loop_id {
            None => start,
            Some(_) => scope.nodes.first().copied(),
        };
        let Some(entry) = entry else {
            continue;
        };
        let mut reached = HashSet::from([entry]);
        let mut queue = VecDeque::from([entry]);
        while let Some(u) = queue.pop_front() {
            for (v, _) in &adj[u] {
                if reached.insert(*v) {
                    queue.push_back(*v);
                }
            }
        }
        for &i in &scope.nodes {
            let node = &g.nodes[i];
            if reached.contains(&i) || matches!(node.step, Step::Start(_)) {
                continue;
            }
            let from = match scope.loop_id {
                None => "the start step".to_string(),
                Some(l) => format!("the first step of loop `{l}`"),
            };
            out.push(Problem::new(
                codes::UNREACHABLE,
                &node.ptr,
                format!(
                    "step {:?} is unreachable: no path from {from} leads to it",
                    node.step.id()
                ),
                "point a `next`, a branch, `else` or `onError` at it, or remove it",
            ));
        }
    }
}

/// Report every cycle of a scope once, at the edge that closes it (iterative DFS).
fn cycles(g: &Graph, scope: &Scope, adj: &[Vec<(usize, String)>], out: &mut Vec<Problem>) {
    // 0 = unvisited, 1 = on the stack, 2 = done
    let mut state: HashMap<usize, u8> = HashMap::new();
    for &root in &scope.nodes {
        if state.get(&root).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        state.insert(root, 1);
        while let Some(&mut (u, ref mut next_edge)) = stack.last_mut() {
            if let Some((v, at)) = adj[u].get(*next_edge) {
                *next_edge += 1;
                match state.get(v).copied().unwrap_or(0) {
                    0 => {
                        state.insert(*v, 1);
                        stack.push((*v, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|(n, _)| n == v).unwrap_or(0);
                        let mut path: Vec<&str> = stack[from..]
                            .iter()
                            .map(|(n, _)| g.nodes[*n].step.id())
                            .collect();
                        path.push(g.nodes[*v].step.id());
                        out.push(Problem::new(
                            codes::CYCLE,
                            at,
                            format!("cycle: {}", path.join(" -> ")),
                            "the graph outside loops must be acyclic: to repeat work use a loop step over a list; to retry use `retry`",
                        ));
                    }
                    _ => {}
                }
            } else {
                state.insert(u, 2);
                stack.pop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The workflow-id rule is `check_workflow_id` (wf-core's one definition).
    fn valid_workflow_id(s: &str) -> bool {
        check_workflow_id(s).is_ok()
    }

    #[test]
    fn id_rules() {
        assert!(valid_workflow_id("order-alert") && valid_workflow_id("9lives"));
        assert!(!valid_workflow_id("Order") && !valid_workflow_id("-x") && !valid_workflow_id(""));
        assert!(valid_step_id("send_email") && valid_step_id("_x1") && valid_step_id("A"));
        assert!(!valid_step_id("send-email") && !valid_step_id("1x") && !valid_step_id(""));
        assert_eq!(slug("Order Alert!"), "order-alert");
        assert_eq!(step_id_fix("send-email"), "send_email");
        assert_eq!(step_id_fix("1st"), "_1st");
    }

    #[test]
    fn run_time_values_are_found_at_or_above_the_error() {
        let p =
            json!({"a": "{{ x }}", "b": {"c": "{{ y }}", "d": "text {{ z }}"}, "e": ["{{ q }}"]});
        let t = |s: &str| pointer_tokens(s);
        assert!(known_at_run_time(&p, &t("/a")));
        assert!(known_at_run_time(&p, &t("/a/deeper")));
        assert!(known_at_run_time(&p, &t("/b/c")));
        assert!(!known_at_run_time(&p, &t("/b/d")));
        assert!(!known_at_run_time(&p, &t("/b")));
        assert!(known_at_run_time(&p, &t("/e/0")));
        assert!(known_at_run_time(&json!("{{ input.params }}"), &t("/url")));
    }

    #[test]
    fn meta_schemas_are_bundled() {
        for uri in META_URIS {
            assert!(meta_for(uri).is_some(), "{uri} is not bundled");
        }
    }
}
