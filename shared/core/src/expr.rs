//! Templates and expressions (minijinja), sandboxed.
//!
//! * A string that is exactly one `{{ expr }}` is an expression: it keeps the JSON type of its
//!   value. Any other string containing `{{`/`{%` renders to a string.
//! * Undefined values are errors (strict mode) except under `is defined` / `default(...)`;
//!   the error names the variable.
//! * No loader, no env, no network: the environment has only minijinja's builtins. Fuel bounds
//!   the instructions of one evaluation ([`FUEL`]); output is bounded *while* it is written
//!   ([`MAX_RENDERED_BYTES`]: rendering goes into a writer that fails past it, so a loop that
//!   prints gigabytes stops at the limit).
//! * Every string a template *builds* is bounded too, before it is allocated: `~`, `+` and `*`
//!   on strings, capture buffers (`{% set x %}…{% endset %}`, `{% filter %}`, macro output and
//!   `caller()`), and the filters that can make a string much larger than their input (`join`,
//!   `replace`, `indent`, `tojson`, `format`, `string`, `pprint`, …). Sequences built by `*`/`+`
//!   and `batch`/`slice` counts are bounded to as many items. minijinja has no such bound (its
//!   maintainers' answer is OS limits), so we build a patched copy
//!   (`third_party/minijinja`, see its `PATCHED.md`) with `Environment::set_max_string_size`,
//!   set here to [`MAX_RENDERED_BYTES`]; a template that would pass it fails with
//!   `template.too_large`. Measured before the patch: `range(1000) | join("x" * 1000000)` took
//!   1.9 GB, a loop of 1 MB literals inside a capture tens of GB, all within [`FUEL`].
//! * What one evaluation builds *in all* is bounded too ([`MAX_EVALUATION_BYTES`], 64 MiB): every
//!   string and list above, plus `upper`, `lower`, `title`, `capitalize`, `trim`, `reverse`,
//!   string slicing and the lists built by `list`, `sort`, `split`, `lines`, `map`, `select`,
//!   `batch`, `slice`, `+`, … (an item counts as the 24 bytes of a minijinja value), is charged
//!   to a per-evaluation budget before it is allocated, and nothing is refunded; past it the
//!   evaluation fails with `template.too_large`. Without it, a loop appending a fresh 1 MiB
//!   string to a list held about 8,000 of them (8 GB) within [`FUEL`]. One evaluation is one
//!   string rendered or one expression evaluated, macros and all (`Environment::
//!   set_max_evaluation_bytes` in the patched minijinja).
//! * What one evaluation walks is bounded too ([`MAX_ITERATED_ITEMS`]): fuel counts
//!   instructions, and one instruction (`x in list`, a filter such as `sum` or `join`) walks a
//!   whole list; past the bound the evaluation fails with `template.limit`
//!   (`Environment::set_max_iterated_items` in the patched minijinja).
//! * A string literal repeated past [`MAX_RENDERED_BYTES`] (`"x" * 100000000`), or by a count
//!   that is not a literal, is still refused before the template is compiled
//!   (`check_repetition`): `wf validate` reports it, not only a run.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use minijinja::{
    AutoEscape, Environment, ErrorKind, Expression, UndefinedBehavior, Value as JValue,
};
use serde_json::{Map, Value};

use crate::error::{InvalidText, StepError, TextRule};

/// Instructions one evaluation may execute (bounds loops in templates).
pub const FUEL: u64 = 100_000;
/// Largest rendered string, in bytes (also the largest value one expression may produce, and
/// the largest string literal repetition a template may spell).
pub const MAX_RENDERED_BYTES: usize = 1024 * 1024;
/// Bytes of strings and lists one evaluation (one string rendered, one expression evaluated)
/// may build in all, cumulatively: what it can hold at once is at most this much.
pub const MAX_EVALUATION_BYTES: usize = 64 * 1024 * 1024;
/// Items one evaluation may walk in all: items of lists, maps and strings taken by `for`, `in`
/// and the filters that go over their input (`join`, `sum`, `select`, `sort`, ...); measuring,
/// indexing, slicing or searching a string counts one per 64 bytes of it. Fuel alone let a
/// loop of 20,000 rounds test `x in list` against a million-item list (2·10^10 comparisons:
/// minutes of CPU).
pub const MAX_ITERATED_ITEMS: usize = 2_000_000;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_recursion_limit(64);
    // The patched minijinja (third_party/minijinja): no string it builds may pass this.
    env.set_max_string_size(Some(MAX_RENDERED_BYTES));
    // ... and all the strings and lists one evaluation builds may not pass this together.
    env.set_max_evaluation_bytes(Some(MAX_EVALUATION_BYTES));
    // ... and one evaluation may not walk more items than this (fuel counts instructions,
    // and one instruction, `x in list`, can walk a whole list).
    env.set_max_iterated_items(Some(MAX_ITERATED_ITEMS));
    env
});

/// An expression compiled once.
type Compiled = Arc<Expression<'static, 'static>>;

/// Expressions compiled by [`ExprContext::eval`], by source: a workflow's expressions are
/// evaluated over and over with new values (every webhook runs its conditions and outputs), and
/// compiling one (lexing, parsing, code generation, and the repetition scan before them) cost
/// more than evaluating it. At most [`MAX_COMPILED`] are kept; past it the map starts over.
static COMPILED: LazyLock<Mutex<HashMap<Box<str>, Compiled>>> = LazyLock::new(Default::default);

/// Expressions [`COMPILED`] keeps at most.
const MAX_COMPILED: usize = 4096;

/// `expr` (the expression inside `src`) compiled, after the repetition scan of `src`; from
/// [`COMPILED`] when it was compiled before. Only expressions that compile are kept.
fn compiled_expression(src: &str, expr: &str) -> Result<Compiled, StepError> {
    let lock = || COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = lock().get(expr) {
        return Ok(c.clone());
    }
    check_repetition(src).map_err(too_large_error)?;
    let compiled = ENV
        .compile_expression_owned(expr.to_string())
        .map(Arc::new)
        .map_err(|e| StepError::new("template.syntax", syntax_message(&e, src)))?;
    let mut map = lock();
    if map.len() >= MAX_COMPILED {
        map.clear();
    }
    map.insert(expr.into(), compiled.clone());
    Ok(compiled)
}

/// If `s` is exactly one `{{ expr }}`, the expression inside (whitespace markers removed).
pub fn single_expression(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#")
    {
        return None;
    }
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    let inner = inner.trim();
    if inner.is_empty() { None } else { Some(inner) }
}

/// A template or expression that does not compile, with the message to show.
fn template_invalid(message: impl Into<String>) -> InvalidText {
    InvalidText::new(TextRule::Template, message)
}

/// Whether a string contains template syntax at all.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Check the syntax of a template string (or single expression). The error says what is wrong
/// and quotes the offending text.
pub fn check_template(s: &str) -> Result<(), InvalidText> {
    if is_template(s) {
        check_repetition(s)?;
    }
    if let Some(expr) = single_expression(s) {
        return ENV
            .compile_expression(expr)
            .map(|_| ())
            .map_err(|e| template_invalid(syntax_message(&e, s)));
    }
    if !is_template(s) {
        return Ok(());
    }
    ENV.template_from_str(s)
        .map(|_| ())
        .map_err(|e| template_invalid(syntax_message(&e, s)))
}

/// Check a field that must be exactly one `{{ expr }}` (condition `if`, trigger `filter`,
/// loop `items`).
pub fn check_expression(s: &str) -> Result<(), InvalidText> {
    if is_template(s) {
        check_repetition(s)?;
    }
    match single_expression(s) {
        Some(expr) => ENV
            .compile_expression(expr)
            .map(|_| ())
            .map_err(|e| template_invalid(syntax_message(&e, s))),
        None => Err(template_invalid(format!(
            "{s:?} must be exactly one expression in double braces, like \"{{{{ input.amount > 100 }}}}\""
        ))),
    }
}

/// Refuse a string literal repeated past [`MAX_RENDERED_BYTES`] (`"x" * 100000000`), and a
/// string literal repeated by a count that is not a literal (`"x" * input.n`): a run would
/// fail on them (the patched minijinja refuses to build the string), this says so at
/// validation. A scan of minijinja's own tokens (its lexer: strings and comments are told
/// apart exactly), before anything is compiled.
// `SyntaxConfig` is a unit struct unless minijinja's `custom_syntax` feature is on (a
// dependency may turn it on): `default()` compiles either way.
#[allow(clippy::default_constructed_unit_structs)]
fn check_repetition(src: &str) -> Result<(), InvalidText> {
    use minijinja::machinery::{Token, WhitespaceConfig, tokenize};
    use minijinja::syntax::SyntaxConfig;
    let mut tokens = Vec::new();
    for token in tokenize(
        src,
        false,
        SyntaxConfig::default(),
        WhitespaceConfig::default(),
    ) {
        match token {
            Ok((t, _)) => tokens.push(t),
            // A lexer error: the tokens before it are still scanned (the expression compiler
            // may accept what the template lexer refuses, e.g. a control character: found by
            // the template_render fuzz target); compiling reports the error itself.
            Err(_) => break,
        }
    }
    let literal_len = |t: &Token| match t {
        Token::Str(s) => Some(s.len()),
        Token::String(s) => Some(s.len()),
        _ => None,
    };
    let count = |t: &Token| match t {
        Token::Int(n) => Some(u128::from(*n)),
        Token::Int128(n) => Some(**n),
        _ => None,
    };
    for (i, t) in tokens.iter().enumerate() {
        if !matches!(t, Token::Mul) || i == 0 || i + 1 >= tokens.len() {
            continue;
        }
        let (left, right) = (&tokens[i - 1], &tokens[i + 1]);
        let (len, times) = match (literal_len(left), literal_len(right)) {
            (Some(len), _) => (len, count(right)),
            (None, Some(len)) => (len, count(left)),
            (None, None) => continue,
        };
        let Some(times) = times else {
            return Err(template_invalid(format!(
                "a string literal is repeated by a count that is not a number \
                 literal in {src:?}; repeat strings only by a literal count (the result may be at \
                 most {MAX_RENDERED_BYTES} bytes)"
            )));
        };
        let bytes = (len as u128).saturating_mul(times);
        if bytes > MAX_RENDERED_BYTES as u128 {
            return Err(template_invalid(format!(
                "a string literal repeated {times} times is {bytes} bytes, \
                 over the limit of {MAX_RENDERED_BYTES} bytes (MAX_RENDERED_BYTES) in {src:?}"
            )));
        }
    }
    Ok(())
}

/// Whether minijinja refused to build a string (or sequence) past [`MAX_RENDERED_BYTES`]: the
/// patched minijinja's `max_string_size` error, an `InvalidOperation` whose detail names it.
fn is_string_size_error(e: &minijinja::Error) -> bool {
    is_limit_error(e, "(max_string_size)")
}

/// Whether minijinja refused to build more than [`MAX_EVALUATION_BYTES`] in one evaluation: the
/// patched minijinja's `max_evaluation_bytes` error.
fn is_evaluation_budget_error(e: &minijinja::Error) -> bool {
    is_limit_error(e, "(max_evaluation_bytes)")
}

/// Whether minijinja stopped an evaluation that walked more than [`MAX_ITERATED_ITEMS`]: the
/// patched minijinja's `max_iterated_items` error.
fn is_iteration_bound_error(e: &minijinja::Error) -> bool {
    is_limit_error(e, "(max_iterated_items)")
}

/// Whether `e` (or an error it wraps) is the patched minijinja's error for the limit `name`.
fn is_limit_error(e: &minijinja::Error, name: &str) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let refused = err.downcast_ref::<minijinja::Error>().is_some_and(|e| {
            e.kind() == ErrorKind::InvalidOperation && e.detail().is_some_and(|d| d.contains(name))
        });
        if refused {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The step error of a template refused by [`check_repetition`].
fn too_large_error(refused: InvalidText) -> StepError {
    StepError::new("template.too_large", refused.message)
        .with_details(serde_json::json!({ "limitBytes": MAX_RENDERED_BYTES }))
}

/// An `io::Write` that keeps at most `limit` bytes and fails the write that would pass it: the
/// render stops there, whatever the template still had to print.
struct BoundedWriter {
    buf: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl std::io::Write for BoundedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("rendered output over the limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn syntax_message(e: &minijinja::Error, src: &str) -> String {
    let detail = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    format!("template syntax error: {detail} in {src:?}")
}

/// Every variable path a template or expression reads, nested (`input.amount`, `steps.x.output`).
pub fn referenced_variables(s: &str) -> BTreeSet<String> {
    if let Some(expr) = single_expression(s) {
        if let Ok(e) = ENV.compile_expression(expr) {
            return e.undeclared_variables(true).into_iter().collect();
        }
        return BTreeSet::new();
    }
    if !is_template(s) {
        return BTreeSet::new();
    }
    match ENV.template_from_str(s) {
        Ok(t) => t.undeclared_variables(true).into_iter().collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Every variable path read by any string inside a JSON value.
pub fn referenced_variables_in(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => out.extend(referenced_variables(s)),
        Value::Array(a) => a.iter().for_each(|x| referenced_variables_in(x, out)),
        Value::Object(o) => o.values().for_each(|x| referenced_variables_in(x, out)),
        _ => {}
    }
}

/// The evaluation context: `input`, `vars`, `steps`, `execution`, `item`, `index`, `event`,
/// `secrets`. Built once per step and reused for all of its strings.
pub struct ExprContext {
    json: Map<String, Value>,
    value: JValue,
    secret_values: Vec<String>,
}

impl ExprContext {
    pub fn new(json: Map<String, Value>) -> Self {
        let secret_values = match json.get("secrets") {
            Some(Value::Object(m)) => m
                .values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .filter(|s| !s.is_empty())
                .collect(),
            _ => Vec::new(),
        };
        let value = JValue::from_serialize(&json);
        Self {
            json,
            value,
            secret_values,
        }
    }

    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }

    /// Replace every secret value used by this context with `***`.
    pub fn redact(&self, v: &Value) -> Value {
        redact(v, &self.secret_values)
    }

    /// Evaluate a field that must be exactly one `{{ expr }}` and keep the type of its value.
    pub fn eval(&self, src: &str) -> Result<Value, StepError> {
        let expr = single_expression(src).ok_or_else(|| {
            StepError::new(
                "template.syntax",
                format!("{src:?} must be exactly one expression in double braces"),
            )
        })?;
        let compiled = compiled_expression(src, expr)?;
        let out = compiled.eval(&self.value).map_err(|e| {
            self.eval_error(e, src, || {
                compiled.undeclared_variables(true).into_iter().collect()
            })
        })?;
        // The value is serialized into a counter first: a lazily repeated list (`[s] * n`)
        // is never built past the limit.
        if let Ok(None) = crate::json_size::serialized_len(&out, MAX_RENDERED_BYTES) {
            return Err(StepError::new(
                "template.too_large",
                format!(
                    "{} produced a value over the limit of {MAX_RENDERED_BYTES} bytes \
                     (MAX_RENDERED_BYTES)",
                    short_src(src)
                ),
            )
            .with_details(serde_json::json!({ "limitBytes": MAX_RENDERED_BYTES })));
        }
        to_json(&out, src)
    }

    /// Evaluate a condition/filter: exactly one `{{ expr }}` that must yield a boolean.
    pub fn eval_bool(&self, src: &str) -> Result<bool, StepError> {
        match self.eval(src)? {
            Value::Bool(b) => Ok(b),
            other => Err(StepError::new(
                "template.type",
                format!(
                    "{src:?} must yield a boolean, got {} ({})",
                    type_name(&other),
                    short(&other)
                ),
            )),
        }
    }

    /// Render a string: a single expression keeps its type, other templates become strings,
    /// plain strings are returned as they are.
    pub fn render_str(&self, src: &str) -> Result<Value, StepError> {
        if single_expression(src).is_some() {
            return self.eval(src);
        }
        if !is_template(src) {
            return Ok(Value::String(src.to_string()));
        }
        check_repetition(src).map_err(too_large_error)?;
        let tmpl = ENV
            .template_from_str(src)
            .map_err(|e| StepError::new("template.syntax", syntax_message(&e, src)))?;
        // Rendered into a writer that fails past the limit: the render stops there.
        let mut out = BoundedWriter {
            buf: Vec::new(),
            limit: MAX_RENDERED_BYTES,
            exceeded: false,
        };
        let rendered = tmpl.render_captured_to(&self.value, &mut out);
        if out.exceeded {
            return Err(StepError::new(
                "template.too_large",
                format!(
                    "{} rendered more than the limit of {MAX_RENDERED_BYTES} bytes \
                     (MAX_RENDERED_BYTES); rendering was stopped there",
                    short_src(src)
                ),
            )
            .with_details(serde_json::json!({ "limitBytes": MAX_RENDERED_BYTES })));
        }
        rendered.map_err(|e| {
            self.eval_error(e, src, || {
                tmpl.undeclared_variables(true).into_iter().collect()
            })
        })?;
        // Every write was a whole `str` from minijinja, so the bytes are UTF-8.
        Ok(Value::String(String::from_utf8(out.buf).unwrap_or_else(
            |e| String::from_utf8_lossy(e.as_bytes()).into_owned(),
        )))
    }

    /// Render every string inside a JSON value (object keys are kept as they are).
    pub fn render(&self, v: &Value) -> Result<Value, StepError> {
        Ok(match v {
            Value::String(s) => self.render_str(s)?,
            Value::Array(a) => {
                Value::Array(a.iter().map(|x| self.render(x)).collect::<Result<_, _>>()?)
            }
            Value::Object(o) => {
                let mut out = Map::with_capacity(o.len());
                for (k, x) in o {
                    out.insert(k.clone(), self.render(x)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    fn eval_error(
        &self, e: minijinja::Error, src: &str, vars: impl FnOnce() -> BTreeSet<String>,
    ) -> StepError {
        match e.kind() {
            ErrorKind::UndefinedError => {
                let missing = vars()
                    .into_iter()
                    .find_map(|path| self.first_missing(&path))
                    .unwrap_or_else(|| "a value".to_string());
                StepError::new(
                    "template.undefined",
                    format!(
                        "{missing} is undefined in {src:?} (use `is defined` or `default(...)` for optional values)"
                    ),
                )
                .with_details(serde_json::json!({ "variable": missing }))
            }
            ErrorKind::OutOfFuel => StepError::new(
                "template.limit",
                format!(
                    "{} ran too long (more than {FUEL} instructions, FUEL)",
                    short_src(src)
                ),
            )
            .with_details(serde_json::json!({ "fuel": FUEL })),
            _ if is_iteration_bound_error(&e) => StepError::new(
                "template.limit",
                format!(
                    "{} walks more than {MAX_ITERATED_ITEMS} items of lists, maps and strings \
                     in one evaluation (MAX_ITERATED_ITEMS); it was stopped there. Walk large \
                     lists in a `loop` step, one item per iteration, instead of in one template",
                    short_src(src)
                ),
            )
            .with_details(serde_json::json!({ "maxIteratedItems": MAX_ITERATED_ITEMS })),
            _ if is_string_size_error(&e) => StepError::new(
                "template.too_large",
                format!(
                    "{} builds a string or list over the limit of {MAX_RENDERED_BYTES} bytes \
                     (MAX_RENDERED_BYTES); it was stopped before building it",
                    short_src(src)
                ),
            )
            .with_details(serde_json::json!({ "limitBytes": MAX_RENDERED_BYTES })),
            _ if is_evaluation_budget_error(&e) => StepError::new(
                "template.too_large",
                format!(
                    "{} builds more than the limit of {MAX_EVALUATION_BYTES} bytes of strings and \
                     lists in one evaluation (MAX_EVALUATION_BYTES); it was stopped before \
                     building more",
                    short_src(src)
                ),
            )
            .with_details(serde_json::json!({ "limitBytes": MAX_EVALUATION_BYTES })),
            _ => {
                let detail = e
                    .detail()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.kind().to_string());
                StepError::new("template.error", format!("{detail} in {src:?}"))
            }
        }
    }

    /// The first prefix of `path` (`a.b.c`) that the context does not define, e.g. `input.b`.
    fn first_missing(&self, path: &str) -> Option<String> {
        let mut parts = path.split('.');
        let root = parts.next()?;
        let mut cur = match self.json.get(root) {
            Some(v) => v,
            None => return Some(root.to_string()),
        };
        let mut walked = root.to_string();
        for part in parts {
            walked.push('.');
            walked.push_str(part);
            cur = match cur {
                Value::Object(m) => match m.get(part) {
                    Some(v) => v,
                    None => return Some(walked),
                },
                _ => return None,
            };
        }
        None
    }
}

/// A template's source for messages, cut to 200 characters.
fn short_src(src: &str) -> String {
    match src.char_indices().nth(200) {
        Some((i, _)) => format!("{:?}…", &src[..i]),
        None => format!("{src:?}"),
    }
}

fn to_json(v: &JValue, src: &str) -> Result<Value, StepError> {
    if v.is_undefined() {
        return Err(StepError::new(
            "template.undefined",
            format!("{src:?} evaluated to an undefined value"),
        ));
    }
    serde_json::to_value(v).map_err(|e| {
        StepError::new(
            "template.error",
            format!("{src:?} produced a value that is not JSON: {e}"),
        )
    })
}

/// Replace every occurrence of any secret inside strings of `v` with `***`.
pub fn redact(v: &Value, secrets: &[String]) -> Value {
    if secrets.is_empty() {
        return v.clone();
    }
    match v {
        Value::String(s) => {
            let mut out = s.clone();
            for secret in secrets {
                if out.contains(secret.as_str()) {
                    out = out.replace(secret.as_str(), "***");
                }
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| redact(x, secrets)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), redact(x, secrets)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// JSON type name for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(77).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> ExprContext {
        ExprContext::new(v.as_object().unwrap().clone())
    }

    #[test]
    fn a_repeated_literal_before_a_lexer_error_is_still_refused() {
        // Found by the template_render fuzz target: a control character after the repetition
        // made the template lexer fail, the scan gave up, and compiling folded the 100 MB
        // string.
        let src = "{{ \r'%x' \r-'x' *99999999-'x'  *-'x'\u{10} }}";
        let err = check_template(src).unwrap_err();
        assert!(err.message.contains("over the limit"), "{err}");
        assert!(check_expression(src).is_err());
    }

    #[test]
    fn an_empty_sequence_repeated_any_number_of_times_is_empty_at_once() {
        // Found by the template_render fuzz target (its input is in fuzz/corpus): minijinja's
        // lazy repetition walked its n rounds on every iteration, producing nothing, so
        // `'x' in [] * 10**18` never ended. Run on a thread so that a regression fails here
        // instead of hanging the test run (the fixed evaluation takes microseconds).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let c = ctx(json!({ "input": { "n": 1_000_000_000_000_000_000u64 } }));
            let answers: Vec<_> = [
                "{{ 'x' in [] * 1000000000000000000 }}",
                "{{ 'x' in [] * input.n }}",
                "{{ ([] * input.n) | list | length }}",
                "{{ 'x' in '3' | selectattr('99 99\\r2') * 222222222 }}",
                "{{ ([1, 2] * 0) | list | length }}",
                "{{ ([1, 2] * 3) | list | length }}",
            ]
            .into_iter()
            .map(|src| c.eval(src).map_err(|e| e.code))
            .collect();
            let _ = tx.send(answers);
        });
        let answers = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("an empty repetition is still being walked after 60 s");
        assert_eq!(
            answers,
            vec![
                Ok(json!(false)),
                Ok(json!(false)),
                Ok(json!(0)),
                Ok(json!(false)),
                Ok(json!(0)),
                Ok(json!(6)),
            ]
        );
    }

    #[test]
    fn a_compiled_expression_is_kept_and_evaluated_against_each_context() {
        let src = "{{ input.kept_expression_probe + 1 }}";
        let first = ctx(json!({ "input": { "kept_expression_probe": 1 } }));
        let second = ctx(json!({ "input": { "kept_expression_probe": 41 } }));
        assert_eq!(first.eval(src).unwrap(), json!(2));
        assert!(
            COMPILED
                .lock()
                .unwrap()
                .contains_key("input.kept_expression_probe + 1")
        );
        assert_eq!(second.eval(src).unwrap(), json!(42));
        // One that does not compile is not kept, and fails the same way every time.
        let bad = "{{ input.kept_expression_probe + }}";
        let e1 = first.eval(bad).unwrap_err();
        assert_eq!(e1.code, "template.syntax");
        assert!(
            !COMPILED
                .lock()
                .unwrap()
                .contains_key("input.kept_expression_probe +")
        );
        assert_eq!(first.eval(bad).unwrap_err().message, e1.message);
        // Nor does one refused by the repetition scan.
        let repeated = r#"{{ "x" * input.kept_expression_probe }}"#;
        assert_eq!(first.eval(repeated).unwrap_err().code, "template.too_large");
        assert_eq!(
            second.eval(repeated).unwrap_err().code,
            "template.too_large"
        );
    }

    #[test]
    fn single_expression_keeps_type_and_other_strings_render() {
        let c = ctx(
            json!({"input": {"amount": 150, "tags": ["a"], "name": "Ann"}, "vars": {"t": 100}}),
        );
        assert_eq!(c.render_str("{{ input.amount }}").unwrap(), json!(150));
        assert_eq!(c.render_str("{{ input.tags }}").unwrap(), json!(["a"]));
        assert_eq!(
            c.render_str("{{ input.amount > vars.t }}").unwrap(),
            json!(true)
        );
        assert_eq!(
            c.render_str("Hi {{ input.name }}: {{ input.amount }}")
                .unwrap(),
            json!("Hi Ann: 150")
        );
        assert_eq!(c.render_str("plain").unwrap(), json!("plain"));
        assert_eq!(c.render_str("{{- input.amount -}}").unwrap(), json!(150));
        assert_eq!(
            c.render_str("{{ input | tojson }}").unwrap(),
            json!(r#"{"amount":150,"name":"Ann","tags":["a"]}"#)
        );
    }

    #[test]
    fn two_expressions_are_a_string_template() {
        assert!(single_expression("{{ a }} and {{ b }}").is_none());
        let c = ctx(json!({"a": 1, "b": 2}));
        assert_eq!(c.render_str("{{ a }}{{ b }}").unwrap(), json!("12"));
    }

    #[test]
    fn undefined_is_an_error_naming_the_variable() {
        let c = ctx(json!({"input": {"amount": 1}, "steps": {}}));
        let e = c.render_str("{{ input.missing > 3 }}").unwrap_err();
        assert_eq!(e.code, "template.undefined");
        assert!(e.message.contains("input.missing"), "{}", e.message);
        let e = c.render_str("Total: {{ nothing }}").unwrap_err();
        assert!(e.message.contains("nothing"), "{}", e.message);
        let e = c
            .eval_bool("{{ steps.notify.output.status == 200 }}")
            .unwrap_err();
        assert!(e.message.contains("steps.notify"), "{}", e.message);
        // but `is defined` and `default` are allowed
        assert_eq!(
            c.eval("{{ steps.notify is defined }}").unwrap(),
            json!(false)
        );
        assert_eq!(
            c.eval("{{ input.missing | default(7) }}").unwrap(),
            json!(7)
        );
    }

    #[test]
    fn conditions_must_be_boolean() {
        let c = ctx(json!({"input": {"amount": 1}}));
        assert!(c.eval_bool("{{ input.amount > 0 }}").unwrap());
        let e = c.eval_bool("{{ input.amount }}").unwrap_err();
        assert_eq!(e.code, "template.type");
        assert!(e.message.contains("number"));
        let e = c.eval_bool("input.amount > 0").unwrap_err();
        assert_eq!(e.code, "template.syntax");
    }

    #[test]
    fn syntax_errors_quote_the_text() {
        let e = check_template("Hello {{ input.name ").unwrap_err();
        assert!(e.message.contains("Hello {{ input.name"), "{e}");
        assert!(check_template("{{ input.amount > }}").is_err());
        assert!(check_template("{% for x in input %}{{ x }}{% endfor %}").is_ok());
        assert!(check_expression("input.amount").is_err());
        assert!(check_expression("{{ a }} {{ b }}").is_err());
    }

    #[test]
    fn loops_are_bounded_by_fuel_and_nothing_reaches_the_outside() {
        let c = ctx(json!({"n": 1}));
        let e = c
            .render_str(
                "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
            )
            .unwrap_err();
        assert_eq!(e.code, "template.limit", "{e:?}");
        // no loader: include/import fail
        assert!(c.render_str("{% include '/etc/passwd' %}").is_err());
        // no env access function exists
        assert!(c.render_str("{{ env('HOME') }}").is_err());
    }

    #[test]
    fn what_one_evaluation_walks_is_bounded_and_the_work_under_it_is_unaffected() {
        // Each of these is a few thousand instructions of fuel, but walks a million-item list
        // or string thousands of times: minutes of CPU without the bound. Run on a thread so
        // that a regression fails here instead of hanging the test run.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let c = ctx(json!({ "input": { "ids": (0..100_000).collect::<Vec<_>>() } }));
            let over: Vec<_> = [
                "{% set l = [1] * 1000000 %}{% for i in range(20000) %}{{ 2 in l }}{% endfor %}",
                "{% set l = [1] * 1000000 %}{% for i in range(20000) %}{{ l | sum }}{% endfor %}",
                "{% for i in range(20000) %}{{ input.ids | join(',') | length }}{% endfor %}",
                "{% for i in range(20000) %}{{ input.ids | max }}{% endfor %}",
                // Measuring, indexing, slicing and searching a 1 MiB string walk it.
                "{% set s = 'x' * 1000000 %}{% for i in range(20000) %}{{ s | length }}{% endfor %}",
                "{% set s = 'x' * 1000000 %}{% for i in range(20000) %}{{ s[-1] }}{% endfor %}",
                "{% set s = 'x' * 1000000 %}{% for i in range(20000) %}{{ s[-2:] }}{% endfor %}",
                "{% set s = 'x' * 1000000 %}{% for i in range(20000) %}{{ 'y' in s }}{% endfor %}",
            ]
            .into_iter()
            .map(|src| {
                c.render_str(src)
                    .map(|_| ())
                    .map_err(|e| (e.code, e.details.map(|d| *d)))
            })
            .collect();
            // One expression, no loop: eleven walks of a million items.
            let walks = ["-1 not in (input.ids * 10)"; 11].join(" and ");
            let expr = c.eval(&format!("{{{{ {walks} }}}}"));
            // Under the bound: a 100,000-item list walked 5 times, and a loop over part of it.
            let under = (
                c.render_str(
                    "{% for i in range(5) %}{% if 99999 in input.ids %}y{% endif %}{% endfor %}",
                )
                .map(|v| v.as_str().map(str::len)),
                c.eval("{{ input.ids | sum }}"),
                c.render_str("{% for i in input.ids[:20000] %}{% endfor %}ok"),
                c.render_str(
                    "{% set s = 'x' * 1000000 %}{% for i in range(100) %}{{ s | length }}{% endfor %}",
                )
                .map(|v| v.as_str().map(str::len)),
            );
            let _ = tx.send((over, expr, under));
        });
        let (over, expr, under) = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("an evaluation is still walking after 120 s");
        let limit = Err((
            "template.limit".to_string(),
            Some(json!({ "maxIteratedItems": MAX_ITERATED_ITEMS })),
        ));
        assert_eq!(over, vec![limit.clone(); 8]);
        assert_eq!(
            expr.map_err(|e| (e.code, e.details.map(|d| *d))),
            limit.map(|()| Value::Null)
        );
        assert_eq!(under.0.unwrap(), Some(5));
        assert_eq!(under.1.unwrap(), json!(4_999_950_000u64));
        assert_eq!(under.2.unwrap(), json!("ok"));
        // A 1 MiB string measured 100 times: 100 walks of 16,384 items each.
        assert_eq!(under.3.unwrap(), Some(700));
        // The bound is per evaluation: the next one starts from zero.
        let c = ctx(json!({ "input": { "ids": (0..100_000).collect::<Vec<_>>() } }));
        for _ in 0..3 {
            assert_eq!(
                c.eval("{{ input.ids | sum }}").unwrap(),
                json!(4_999_950_000u64)
            );
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let c = ctx(json!({"secrets": {"TOKEN": "s3cr3t"}}));
        let rendered = c
            .render(&json!({"h": "Bearer {{ secrets.TOKEN }}"}))
            .unwrap();
        assert_eq!(rendered, json!({"h": "Bearer s3cr3t"}));
        assert_eq!(c.redact(&rendered), json!({"h": "Bearer ***"}));
    }

    /// Allocation accounting for the tests of the string bound: per thread (a render runs on
    /// its test's thread, so tests running side by side do not count each other), the bytes
    /// allocated and not yet freed, and their peak.
    mod alloc {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static LIVE: Cell<isize> = const { Cell::new(0) };
            static PEAK: Cell<isize> = const { Cell::new(0) };
        }

        fn add(bytes: isize) {
            // `try_with`: nothing to count while the thread's locals are torn down.
            let _ = LIVE.try_with(|live| {
                let now = live.get() + bytes;
                live.set(now);
                let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
            });
        }

        struct Counting;

        // SAFETY: every call is passed on to the system allocator unchanged.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                add(layout.size() as isize);
                unsafe { System.alloc(layout) }
            }
            unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
                add(layout.size() as isize);
                unsafe { System.alloc_zeroed(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                add(-(layout.size() as isize));
                unsafe { System.dealloc(ptr, layout) }
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                add(new_size as isize - layout.size() as isize);
                unsafe { System.realloc(ptr, layout, new_size) }
            }
        }

        #[global_allocator]
        static COUNTING: Counting = Counting;

        /// Runs `f`: its result, and the most bytes it had allocated at one time.
        pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
            let base = LIVE.with(Cell::get);
            PEAK.with(|peak| peak.set(base));
            let out = f();
            let peak = PEAK.with(Cell::get) - base;
            (out, peak.max(0) as usize)
        }
    }

    /// The most a refused template may allocate: a few strings of [`MAX_RENDERED_BYTES`]. Each
    /// template below took from 40 MB to many GB before minijinja was patched.
    const PEAK_LIMIT: usize = 16 * MAX_RENDERED_BYTES;

    /// `src` fails with `template.too_large`, naming the limit, and allocates little on the way.
    fn assert_too_large(src: &str) {
        let c = ctx(json!({"input": {}}));
        let (out, peak) = alloc::peak_during(|| c.render_str(src));
        let e = out.expect_err(src);
        assert_refused_by(
            &e,
            src,
            "template.too_large",
            "MAX_RENDERED_BYTES",
            json!({ "limitBytes": MAX_RENDERED_BYTES }),
        );
        assert!(
            peak < PEAK_LIMIT,
            "{src} allocated {peak} bytes at one time"
        );
        // and it passes validation: only running it builds the string
        check_template(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    }

    #[test]
    fn strings_built_by_operators_and_filters_are_bounded_before_they_are_built() {
        let forty = format!(
            "{{% set s = \"x\" * 1000000 %}}{{{{ {} }}}}",
            vec!["s"; 40].join(" ~ ")
        );
        for src in [
            r#"{{ range(1000) | join("x" * 1000000) }}"#,
            r#"{{ range(100000) | join("x" * 1000000) }}"#,
            r#"{{ ("a" * 300) | replace("a", "x" * 1000000) }}"#,
            r#"{{ ("a" * 1000) | replace("", "x" * 10000) }}"#,
            r#"{{ "a\nb" | indent(300000000) }}"#,
            r#"{{ "x" | indent(300000000) }}"#,
            &forty,
            // doubling: by a chain of sets, loop-carried namespace state, a recursive macro
            r#"{% set s = "x" * 1000 %}{% set a = s ~ s %}{% set b = a ~ a %}{% set c = b ~ b %}{% set d = c ~ c %}{% set e = d ~ d %}{% set f = e ~ e %}{% set g = f ~ f %}{% set h = g ~ g %}{% set i = h ~ h %}{% set j = i ~ i %}{% set k = j ~ j %}{{ k | length }}"#,
            r#"{% set ns = namespace(s="x") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"#,
            r#"{% macro d(s, n) %}{% if n > 0 %}{{ d(s ~ s, n - 1) }}{% else %}{{ s | length }}{% endif %}{% endmacro %}{{ d("x" * 100000, 10) }}"#,
            r#"{% set s = "x" * 1000000 %}{{ (s + s) | length }}"#,
            // `*` on a variable (minijinja itself allows 100 MB)
            r#"{% set s = "ab" %}{% set n = 50000000 %}{{ (s * n) | length }}"#,
            r#"{{ "x" | tojson(indent=10**9) }}"#,
            r#"{{ "%1000000000s" | format("x") }}"#,
            r#"{{ "%.1000000000f" | format(1.5) }}"#,
            r#"{{ ("%1000000s" * 100) | format(*range(100)) | length }}"#,
        ] {
            assert_too_large(src);
        }
    }

    #[test]
    fn capture_buffers_and_macro_output_are_bounded_while_written() {
        for src in [
            r#"{% set x %}{% for i in range(1000) %}{{ "x" * 1000000 }}{% endfor %}{% endset %}{{ x | length }}"#,
            r#"{% filter upper %}{% for i in range(1000) %}{{ "x" * 1000000 }}{% endfor %}{% endfilter %}"#,
            r#"{% macro m() %}{{ caller() | length }}{% endmacro %}{% call m() %}{% for i in range(1000) %}{{ "x" * 1000000 }}{% endfor %}{% endcall %}"#,
            r#"{% macro m() %}{% for i in range(1000) %}{{ "x" * 1000000 }}{% endfor %}{% endmacro %}{{ m() | length }}"#,
        ] {
            assert_too_large(src);
        }
    }

    #[test]
    fn lists_built_by_repetition_are_bounded_and_so_is_every_string_made_of_them() {
        let big = r#"{% set l = ["x" * 1000000] * 100 %}"#;
        for tail in [
            "{{ l | join | length }}",
            "{{ l | string | length }}",
            "{{ l | tojson | length }}",
            "{{ l | pprint | length }}",
            "{{ debug(l) | length }}",
            "{{ (l ~ '') | length }}",
            "{{ l | upper | length }}",
            "{{ '%s' | format(l) | length }}",
        ] {
            assert_too_large(&format!("{big}{tail}"));
        }
        for src in [
            "{% set l = [1] %}{{ (l * 1000000000000) | list | length }}",
            "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}",
            "{{ [1] | batch(1000000000000) | length }}",
            "{{ [1] | slice(1000000000000) | length }}",
        ] {
            assert_too_large(src);
        }
    }

    #[test]
    fn constant_folding_does_not_build_large_strings_at_validation() {
        // Each `"x" * 1000000` is allowed (at most MAX_RENDERED_BYTES); minijinja used to fold
        // every one at compile time, i.e. in `wf validate`: 100 MB for this template.
        let src = r#"{{ "x" * 1000000 }}"#.repeat(100);
        let (checked, peak) = alloc::peak_during(|| check_template(&src));
        checked.unwrap();
        assert!(peak < PEAK_LIMIT, "validation allocated {peak} bytes");
        // Rendered, the output passes the limit.
        let e = ctx(json!({})).render_str(&src).unwrap_err();
        assert_eq!(e.code, "template.too_large", "{e:?}");
    }

    #[test]
    fn filters_minijinja_does_not_have_are_refused() {
        let c = ctx(json!({}));
        for src in [
            r#"{{ "x" | center(1000000000) }}"#,
            r#"{{ "x" | wordwrap(1, wrapstring="y" * 1000000) }}"#,
        ] {
            let e = c.render_str(src).unwrap_err();
            assert_eq!(e.code, "template.error", "{src}: {e:?}");
            assert!(e.message.contains("is unknown"), "{src}: {e:?}");
        }
    }

    #[test]
    fn strings_up_to_the_limit_are_still_built() {
        let c = ctx(json!({"input": {"a": 1}}));
        for (src, want) in [
            (r#"{{ ("x" * 1000000) | length }}"#, json!(1000000)),
            (
                r#"{% set s = "x" * 500000 %}{{ (s ~ s) | length }}"#,
                json!("1000000"),
            ),
            (
                r#"{% set s = "x" * 500000 %}{{ (s + s) | length }}"#,
                json!("1000000"),
            ),
            (
                r#"{{ range(1000) | join("x" * 1000) | length }}"#,
                json!(1000 * 999 + 10 + 90 * 2 + 900 * 3),
            ),
            (
                r#"{% set x %}{% for i in range(1000) %}{{ "x" * 1000 }}{% endfor %}{% endset %}{{ x | length }}"#,
                json!("1000000"),
            ),
            (r#"{{ "a\nb" | indent(2) }}"#, json!("a\n  b")),
            (r#"{{ "a-b" | replace("-", "--") }}"#, json!("a--b")),
            (
                r#"{{ input | tojson(indent=2) }}"#,
                json!("{\n  \"a\": 1\n}"),
            ),
            (r#"{{ "%3s|%.2f" | format("x", 1.5) }}"#, json!("  x|1.50")),
            (r#"{{ [1, 2, 3] | batch(2) | list }}"#, json!([[1, 2], [3]])),
            (r#"{{ ([1, 2] * 2) | list }}"#, json!([1, 2, 1, 2])),
            (r#"{{ "-" * 3 ~ "|" }}"#, json!("---|")),
        ] {
            assert_eq!(c.render_str(src).unwrap(), want, "{src}");
        }
    }

    /// The most a template refused by [`MAX_EVALUATION_BYTES`] may hold at one time.
    const BUDGET_PEAK_LIMIT: usize = 100 * 1024 * 1024;

    /// `src` fails with `template.too_large` naming [`MAX_EVALUATION_BYTES`], and holds little
    /// memory at one time on the way.
    fn assert_over_budget(src: &str) {
        assert_over_budget_in(&ctx(json!({"input": {}})), src);
    }

    fn assert_over_budget_in(c: &ExprContext, src: &str) {
        let e = refused_within_peak(c, src);
        assert_refused_by(
            &e,
            src,
            "template.too_large",
            "MAX_EVALUATION_BYTES",
            json!({ "limitBytes": MAX_EVALUATION_BYTES }),
        );
    }

    /// Lists built by walking something (`list`, `sort`, `map`, ...) walk an item for each
    /// item they build: the walk bound stops them before the budget would.
    fn assert_over_walk_bound(src: &str) {
        let e = refused_within_peak(&ctx(json!({"input": {}})), src);
        assert_refused_by(
            &e,
            src,
            "template.limit",
            "MAX_ITERATED_ITEMS",
            json!({ "maxIteratedItems": MAX_ITERATED_ITEMS }),
        );
    }

    /// `e` (of `src`) is the error of the bound `name`: its code, its name in the message,
    /// its details.
    fn assert_refused_by(e: &StepError, src: &str, code: &str, name: &str, details: Value) {
        assert_eq!(e.code, code, "{src}: {e:?}");
        assert!(e.message.contains(name), "{src}: {e:?}");
        assert_eq!(e.details.as_deref(), Some(&details), "{src}");
    }

    fn refused_within_peak(c: &ExprContext, src: &str) -> StepError {
        let (out, peak) = alloc::peak_during(|| c.render_str(src));
        let e = out.expect_err(src);
        assert!(
            peak < BUDGET_PEAK_LIMIT,
            "{src} allocated {peak} bytes at one time"
        );
        e
    }

    #[test]
    fn what_one_evaluation_builds_in_all_is_bounded() {
        // Each of these kept ~8,000 copies of a 1 MiB string (8 GB and more) alive within FUEL.
        let keep = |copy: &str| {
            format!(
                "{{% set ns = namespace(l=[]) %}}{{% set s = \"x\" * 1000000 %}}\
                 {{% for i in range(8000) %}}{{% set ns.l = ns.l + [{copy}] %}}{{% endfor %}}\
                 {{{{ ns.l | length }}}}"
            )
        };
        for copy in [
            "s ~ i",
            "s | upper",
            "s | lower",
            "s | title",
            "s | capitalize",
            "s | trim",
            "s | reverse",
            "s | safe",
            "s | string ~ ''",
            "s[1:]",
            "s[::-1]",
            "s | split",
            "s | lines",
            "s | replace('x', 'y')",
            "s | indent(2)",
            "s | tojson",
            "s | e",
            "'%s' | format(s)",
            "[s] | join",
            "range(100000) | batch(10)",
        ] {
            assert_over_budget(&keep(copy));
        }
        for copy in [
            "s | list",
            "(range(100000) | list) | sort",
            "range(100000) | map('abs')",
            "range(100000) | select('even')",
        ] {
            assert_over_walk_bound(&keep(copy));
        }
        for src in [
            // The same in a capture and in macro calls (nested evaluations share the budget).
            r#"{% set s = "x" * 1000000 %}{% macro m(s) %}{{ s | upper | length }}{% endmacro %}{% for i in range(1000) %}{{ m(s) }}{% endfor %}"#,
            r#"{% set s = "x" * 500000 %}{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set x %}{{ s }}{{ s }}{% endset %}{% set ns.l = ns.l + [x] %}{% endfor %}"#,
        ] {
            assert_over_budget(src);
        }
        // A 1,000,000-item list, copied again and again.
        assert_over_walk_bound(
            r#"{% set ns = namespace(l=[]) %}{% set s = "x" * 1000000 %}{% for i in range(100) %}{% set ns.l = ns.l + [s | list] %}{% endfor %}"#,
        );
        // Copies of a 20,000-entry map from the input.
        let m: Map<String, Value> = (0..20_000).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_over_budget_in(
            &ctx(json!({ "input": { "m": m } })),
            "{% set ns = namespace(l=[]) %}{% for i in range(8000) %}{% set ns.l = ns.l + [dict(input.m)] %}{% endfor %}{{ ns.l | length }}",
        );
        // An expression is one evaluation too.
        let c = ctx(json!({}));
        let copies = ["(\"x\" * 1000000) | upper"; 70].join(", ");
        let e = c
            .eval(&format!("{{{{ [{copies}] | length }}}}"))
            .unwrap_err();
        assert_eq!(e.code, "template.too_large", "{e:?}");
        assert!(e.message.contains("MAX_EVALUATION_BYTES"), "{e:?}");
        let e = c
            .eval("{{ (\"x\" * 1000000) | list | list | list | length }}")
            .unwrap_err();
        assert_eq!(e.code, "template.limit", "{e:?}");
        assert!(e.message.contains("MAX_ITERATED_ITEMS"), "{e:?}");
    }

    #[test]
    fn lazy_lists_doubled_by_plus_are_bounded_whatever_their_length() {
        // `reverse` of a list is lazy and unsized: `+` cannot count its items, but the lazy
        // structure it builds is bounded (and so is its flattening).
        assert_too_large(
            "{% set ns = namespace(l=[1] | reverse) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | list | length }}",
        );
    }

    #[test]
    fn evaluations_under_the_budget_are_unaffected_and_each_has_its_own() {
        let c = ctx(json!({"input": {"s": "ab"}}));
        // 40 strings of 1 MB kept at once, 40 MB built: under the budget, and every render
        // (every string of a step) starts again from zero, even after one that failed.
        let src = r#"{% set ns = namespace(l=[]) %}{% set s = "x" * 1000000 %}{% for i in range(40) %}{% set ns.l = ns.l + [s | upper] %}{% endfor %}{{ ns.l | length }}"#;
        for _ in 0..2 {
            assert_eq!(c.render_str(src).unwrap(), json!("40"));
            let e = c
                .render_str(&src.replace("range(40)", "range(100)"))
                .unwrap_err();
            assert_eq!(e.code, "template.too_large", "{e:?}");
        }
        for (src, want) in [
            (
                r#"{{ "Hello World" | upper ~ "|" ~ ("ab" | title) ~ ("aB" | capitalize) }}"#,
                json!("HELLO WORLD|AbAb"),
            ),
            (
                r#"{{ ("a,b" | split(",")) + ("c
d" | lines) }}"#,
                json!(["a", "b", "c", "d"]),
            ),
            (
                r#"{{ (range(5) | list | reverse | sort | batch(2) | list)[-1] }}"#,
                json!([4]),
            ),
            (r#"{{ input.s[::-1] ~ input.s[1:] }}"#, json!("bab")),
            (
                r#"{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = ns.l + [i ~ ""] %}{% endfor %}{{ ns.l | length }}"#,
                json!("5000"),
            ),
        ] {
            assert_eq!(c.render_str(src).unwrap(), want, "{src}");
        }
    }

    #[test]
    fn references_are_listed_nested() {
        let r = referenced_variables("{{ steps.check.output.branch == 0 and input.x }}");
        assert!(r.contains("steps.check.output.branch"), "{r:?}");
        assert!(r.contains("input.x"));
    }
}
