//! The structural pass: the document against our own generated JSON Schema, piece by piece.
//!
//! A whole-document validation would fail at `Step`'s `oneOf` with a message that names no
//! field, so the top level, each step (against the schema of the variant its `type` selects)
//! and each trigger are validated separately, and every error keeps its JSON pointer. Loop
//! bodies and triggers are cut out of their parent's schema (`"steps": {"type": "array"}`) and
//! checked on their own.

use std::collections::HashMap;
use std::sync::LazyLock;

use jsonschema::Validator;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::{Map, Value, json};

use super::{
    Problem, codes, escape_token, pointer_tokens, subject, suggestion, type_of, unknown_name,
};
use crate::model::{STEP_TYPES, TRIGGER_TYPES};

/// A structural finding. Non-blocking ones (patterns, ranges) do not stop deserialization:
/// the semantic pass reports them with better messages, or they are kept as they are.
pub(super) struct Issue {
    pub problem: Problem,
    pub blocking: bool,
}

/// A compiled piece of the schema and the schema itself (for field lookups).
struct Piece {
    validator: Validator,
    schema: Value,
}

struct Pieces {
    defs: Value,
    workflow: Piece,
    steps: HashMap<String, Piece>,
    triggers: HashMap<String, Piece>,
}

static PIECES: LazyLock<Pieces> = LazyLock::new(build);

/// The `$defs` entries `schema` reaches through `#/$defs/...` references, transitively.
fn referenced_defs(schema: &Value, defs: &Value) -> Value {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref")
                    && let Some(name) = r.strip_prefix("#/$defs/")
                {
                    out.push(name.to_string());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut todo = Vec::new();
    refs(schema, &mut todo);
    let mut used = serde_json::Map::new();
    while let Some(name) = todo.pop() {
        if used.contains_key(&name) {
            continue;
        }
        if let Some(def) = defs.get(&name) {
            refs(def, &mut todo);
            used.insert(name, def.clone());
        }
    }
    Value::Object(used)
}

fn build() -> Pieces {
    let mut full = crate::schema::workflow_schema();
    nullable_to_if_else(&mut full);
    let defs = full["$defs"].clone();
    let compile = |mut schema: Value| -> Piece {
        // Only the definitions this piece references: jsonschema meta-validates every schema
        // it compiles, and doing that for the whole `$defs` in each of ~15 pieces cost ~60 MB
        // of (transient, but never returned) heap at start-up.
        let used = referenced_defs(&schema, &defs);
        if let Value::Object(m) = &mut schema {
            m.insert("$defs".into(), used);
            m.insert(
                "$schema".into(),
                "http://json-schema.org/draft-07/schema#".into(),
            );
        }
        // draft 7, not meta-validated at run time (why: `schema::draft7_validator_unchecked`;
        // a test meta-validates every piece)
        let validator = crate::schema::draft7_validator_unchecked(&schema)
            .expect("the generated workflow schema compiles");
        Piece { validator, schema }
    };

    let mut top = full.clone();
    if let Value::Object(m) = &mut top {
        m.remove("$defs");
    }
    top["properties"]["steps"] = json!({ "type": "array" });
    let workflow = compile(top);

    let variants = |def: &str, cut: &[&str]| -> HashMap<String, Piece> {
        let mut out = HashMap::new();
        for variant in defs[def]["oneOf"].as_array().into_iter().flatten() {
            let Some(name) = variant["properties"]["type"]["const"].as_str() else {
                continue;
            };
            let mut v = variant.clone();
            for field in cut {
                if v["properties"].get(*field).is_some() {
                    v["properties"][*field] = json!({ "type": "array" });
                }
            }
            out.insert(name.to_string(), compile(v));
        }
        out
    };
    let steps = variants("Step", &["steps", "triggers"]);
    let triggers = variants("Trigger", &[]);
    debug_assert_eq!(steps.len(), STEP_TYPES.len());
    debug_assert_eq!(triggers.len(), TRIGGER_TYPES.len());
    Pieces {
        defs,
        workflow,
        steps,
        triggers,
    }
}

/// `anyOf: [X, {"type": "null"}]` (schemars' `Option<Struct>`) fails with a message that says
/// nothing; `if null then ok else X` reports X's own errors with their pointers.
fn nullable_to_if_else(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let rewrite = m.get("anyOf").and_then(Value::as_array).and_then(|alts| {
                if alts.len() != 2 {
                    return None;
                }
                let is_null = |s: &Value| s == &json!({ "type": "null" });
                match (is_null(&alts[0]), is_null(&alts[1])) {
                    (false, true) => Some(alts[0].clone()),
                    (true, false) => Some(alts[1].clone()),
                    _ => None,
                }
            });
            if let Some(other) = rewrite {
                m.remove("anyOf");
                m.insert("if".into(), json!({ "type": "null" }));
                m.insert("else".into(), other);
            }
            m.values_mut().for_each(nullable_to_if_else);
        }
        Value::Array(a) => a.iter_mut().for_each(nullable_to_if_else),
        _ => {}
    }
}

/// Every structural issue of a workflow document.
pub(super) fn check(doc: &Value) -> Vec<Issue> {
    let p = &*PIECES;
    let mut out = Vec::new();
    let Value::Object(top) = doc else {
        out.push(blocking(Problem::new(
            codes::NOT_OBJECT,
            "",
            format!("a workflow must be a JSON object, found {}", type_of(doc)),
            "start from an example in workflows/ (an object with `id`, `config` and `steps`)",
        )));
        return out;
    };
    run(&p.workflow, doc, "", &mut out);
    if let Some(Value::Array(steps)) = top.get("steps") {
        check_steps(steps, "/steps", &mut out);
    }
    out
}

fn check_steps(steps: &[Value], base: &str, out: &mut Vec<Issue>) {
    let p = &*PIECES;
    for (i, step) in steps.iter().enumerate() {
        let ptr = format!("{base}/{i}");
        let Value::Object(obj) = step else {
            out.push(blocking(Problem::new(
                codes::WRONG_TYPE,
                &ptr,
                format!("a step must be an object, found {}", type_of(step)),
                "write the step as {\"id\": \"...\", \"type\": \"...\", ...}",
            )));
            continue;
        };
        let Some(ty) = variant_type(obj, &ptr, "step", &STEP_TYPES, codes::STEP_TYPE, out) else {
            continue;
        };
        let Some(piece) = p.steps.get(ty) else {
            continue;
        };
        run(piece, step, &ptr, out);
        if ty == "loop"
            && let Some(Value::Array(body)) = obj.get("steps")
        {
            check_steps(body, &format!("{ptr}/steps"), out);
        }
        if ty == "start"
            && let Some(Value::Array(triggers)) = obj.get("triggers")
        {
            for (k, trigger) in triggers.iter().enumerate() {
                check_trigger(trigger, &format!("{ptr}/triggers/{k}"), out);
            }
        }
    }
}

fn check_trigger(trigger: &Value, ptr: &str, out: &mut Vec<Issue>) {
    let Value::Object(obj) = trigger else {
        out.push(blocking(Problem::new(
            codes::WRONG_TYPE,
            ptr,
            format!("a trigger must be an object, found {}", type_of(trigger)),
            "write the trigger as {\"type\": \"manual\"} (or webhook, schedule, event)",
        )));
        return;
    };
    let Some(ty) = variant_type(
        obj,
        ptr,
        "trigger",
        &TRIGGER_TYPES,
        codes::TRIGGER_TYPE,
        out,
    ) else {
        return;
    };
    if let Some(piece) = PIECES.triggers.get(ty) {
        run(piece, trigger, ptr, out);
    }
}

/// The `type` of a step or trigger, or a problem at `<ptr>/type`.
fn variant_type<'a>(
    obj: &'a Map<String, Value>, ptr: &str, what: &str, types: &[&str], code: &'static str,
    out: &mut Vec<Issue>,
) -> Option<&'a str> {
    let valid = types.join(", ");
    match obj.get("type") {
        Some(Value::String(t)) if types.contains(&t.as_str()) => Some(t.as_str()),
        Some(Value::String(t)) => {
            out.push(blocking(Problem::new(
                code,
                format!("{ptr}/type"),
                format!(
                    "unknown {what} type {t:?}{}",
                    suggestion(t, types.iter().copied())
                ),
                format!("the {what} types are: {valid}"),
            )));
            None
        }
        Some(other) => {
            out.push(blocking(Problem::new(
                code,
                format!("{ptr}/type"),
                format!(
                    "the {what} `type` must be a string, found {}",
                    type_of(other)
                ),
                format!("the {what} types are: {valid}"),
            )));
            None
        }
        None => {
            out.push(blocking(Problem::new(
                code,
                format!("{ptr}/type"),
                format!("the {what} has no `type`"),
                format!("add \"type\": one of {valid}"),
            )));
            None
        }
    }
}

fn blocking(problem: Problem) -> Issue {
    Issue {
        problem,
        blocking: true,
    }
}

/// A value of the right type outside the schema's bounds (range, pattern, length, format): a
/// `BAD_VALUE` that does not block the rest of the checks.
fn out_of_bounds(at: String, message: String, hint: impl Into<String>) -> Issue {
    Issue {
        problem: Problem::new(codes::BAD_VALUE, at, message, hint),
        blocking: false,
    }
}

fn run(piece: &Piece, instance: &Value, base: &str, out: &mut Vec<Issue>) {
    for err in piece.validator.iter_errors(instance) {
        let path = err.instance_path.as_str();
        let tokens = pointer_tokens(path);
        let at = format!("{base}{path}");
        let subject = subject(&tokens, "the value");
        match &err.kind {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let allowed = allowed_fields(&piece.schema, &tokens);
                let allowed_refs: Vec<&str> = allowed.iter().map(String::as_str).collect();
                for name in unexpected {
                    out.push(blocking(unknown_name(
                        codes::UNKNOWN_FIELD,
                        &at,
                        name,
                        format!("unknown field `{name}`"),
                        &allowed_refs,
                        if allowed.is_empty() {
                            "remove it".to_string()
                        } else {
                            format!(
                                "remove or rename it; the fields here are: {}",
                                allowed.join(", ")
                            )
                        },
                    )));
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let mut sub = tokens.clone();
                sub.push(name.to_string());
                let hint = match subschema_at(&piece.schema, &sub) {
                    Some(s) => match (
                        expected_types(s),
                        s.get("description")
                            .and_then(Value::as_str)
                            .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" ")),
                    ) {
                        (Some(t), Some(d)) => format!("add `{name}` ({t}): {d}"),
                        (Some(t), None) => format!("add `{name}` ({t})"),
                        (None, Some(d)) => format!("add `{name}`: {d}"),
                        (None, None) => format!("add `{name}`"),
                    },
                    None => format!("add `{name}`"),
                };
                out.push(blocking(Problem::new(
                    codes::MISSING_FIELD,
                    format!("{at}/{}", escape_token(name)),
                    format!("missing required field `{name}`"),
                    hint,
                )));
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => t.to_string(),
                    TypeKind::Multiple(set) => {
                        let names: Vec<String> = set
                            .iter()
                            .map(|t| t.to_string())
                            .filter(|t| t != "null")
                            .collect();
                        names.join(" or ")
                    }
                };
                out.push(blocking(Problem::new(
                    codes::WRONG_TYPE,
                    at,
                    format!(
                        "{subject} must be {} {expected}, found {}",
                        article(&expected),
                        type_of(&err.instance)
                    ),
                    format!("write {subject} as {} {expected}", article(&expected)),
                )));
            }
            ValidationErrorKind::Enum { options } => {
                out.push(blocking(not_allowed(&subject, at, &err.instance, options)));
            }
            ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. }
                if constants(&piece.schema, &tokens).is_some() =>
            {
                let options = constants(&piece.schema, &tokens).unwrap_or_default();
                out.push(blocking(not_allowed(&subject, at, &err.instance, &options)));
            }
            ValidationErrorKind::Minimum { limit } => out.push(out_of_bounds(
                at,
                format!("{subject} is {}, below the minimum {limit}", err.instance),
                format!("use a value of at least {limit}"),
            )),
            ValidationErrorKind::Maximum { limit } => out.push(out_of_bounds(
                at,
                format!("{subject} is {}, above the maximum {limit}", err.instance),
                format!("use a value of at most {limit}"),
            )),
            ValidationErrorKind::Pattern { pattern } => out.push(out_of_bounds(
                at,
                format!("{subject} {} does not match {pattern}", err.instance),
                "see the field's description in workflows/schema.json",
            )),
            ValidationErrorKind::ExclusiveMinimum { .. }
            | ValidationErrorKind::ExclusiveMaximum { .. }
            | ValidationErrorKind::MinLength { .. }
            | ValidationErrorKind::MaxLength { .. }
            | ValidationErrorKind::MinItems { .. }
            | ValidationErrorKind::MaxItems { .. }
            | ValidationErrorKind::MultipleOf { .. }
            | ValidationErrorKind::Format { .. } => out.push(out_of_bounds(
                at,
                format!("{subject}: {err}"),
                "see workflows/schema.json",
            )),
            _ => out.push(blocking(Problem::new(
                codes::BAD_VALUE,
                at,
                format!("{subject}: {err}"),
                "compare with workflows/schema.json",
            ))),
        }
    }
}

/// "`scheme` is "githb", which is not allowed (did you mean "github"?)".
fn not_allowed(subject: &str, at: String, instance: &Value, options: &Value) -> Problem {
    let opts: Vec<&str> = options
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let found = instance
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| instance.to_string());
    Problem::new(
        codes::BAD_VALUE,
        at,
        format!(
            "{subject} is {found:?}, which is not allowed{}",
            suggestion(&found, opts.iter().copied())
        ),
        format!("use one of: {}", options_list(options)),
    )
}

/// When the schema at `tokens` is a `oneOf`/`anyOf` of constants (an enum whose variants have
/// descriptions): those constants.
fn constants(schema: &Value, tokens: &[String]) -> Option<Value> {
    let sub = subschema_at(schema, tokens)?;
    let alts = sub.get("oneOf").or_else(|| sub.get("anyOf"))?.as_array()?;
    let mut out = Vec::new();
    for alt in alts {
        let alt = resolve(alt);
        if let Some(c) = alt.get("const") {
            out.push(c.clone());
        } else if let Some(Value::Array(e)) = alt.get("enum") {
            out.extend(e.iter().cloned());
        } else {
            return None;
        }
    }
    Some(Value::Array(out))
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn options_list(options: &Value) -> String {
    options
        .as_array()
        .map(|a| {
            a.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Follow `$ref` into `$defs` and our `if null / else` wrapper.
fn resolve(mut s: &Value) -> &Value {
    let defs = &PIECES.defs;
    for _ in 0..16 {
        if let Some(name) = s
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            && let Some(d) = defs.get(name)
        {
            s = d;
            continue;
        }
        if let Some(e) = s.get("else") {
            s = e;
            continue;
        }
        break;
    }
    s
}

/// The subschema describing the instance at `tokens` (relative to `schema`).
fn subschema_at<'a>(schema: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut s = resolve(schema);
    for t in tokens {
        s = if let Some(p) = s.get("properties").and_then(|p| p.get(t.as_str())) {
            resolve(p)
        } else if let Some(items) = s.get("items").filter(|_| t.parse::<usize>().is_ok()) {
            resolve(items)
        } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
            resolve(ap)
        } else {
            return None;
        };
    }
    Some(s)
}

/// The field names the object at `tokens` may have.
fn allowed_fields(schema: &Value, tokens: &[String]) -> Vec<String> {
    subschema_at(schema, tokens)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// "a string", "an integer" ... from a schema's `type`.
fn expected_types(s: &Value) -> Option<String> {
    let names: Vec<String> = match s.get("type")? {
        Value::String(t) => vec![t.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .map(str::to_string)
            .collect(),
        _ => return None,
    };
    if names.is_empty() {
        return None;
    }
    let joined = names.join(" or ");
    Some(format!("{} {joined}", article(&joined)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_piece() {
        assert_eq!(PIECES.steps.len(), STEP_TYPES.len());
        assert_eq!(PIECES.triggers.len(), TRIGGER_TYPES.len());
    }

    /// The pieces compile without meta-validation (`schema::draft7_validator_unchecked`): here
    /// each is checked against the draft 7 meta-schema instead, and answers like a validator
    /// compiled the ordinary way (meta-validated, the schema as the root document).
    #[test]
    fn every_piece_is_a_valid_draft_7_schema_and_answers_as_compiled_directly() {
        let pieces = PIECES
            .steps
            .values()
            .chain(PIECES.triggers.values())
            .chain([&PIECES.workflow]);
        let samples = [
            json!({}),
            json!(null),
            json!({ "id": 1, "type": "loop", "next": ["x"], "config": { "active": "yes" },
                    "steps": {}, "retry": { "maxAttempts": -1 }, "extra": true }),
            json!({ "id": "a", "type": "action", "action": "x", "params": [], "timeoutMs": 0,
                    "triggers": [{ "type": "webhook", "secret": 3 }], "inputSchema": 1 }),
        ];
        for piece in pieces {
            let errors: Vec<String> = jsonschema::draft7::meta::VALIDATOR
                .iter_errors(&piece.schema)
                .map(|e| format!("{}: {e}", e.instance_path))
                .collect();
            assert!(errors.is_empty(), "{errors:?}");
            let direct = jsonschema::draft7::new(&piece.schema).expect("compiles");
            for sample in &samples {
                let answer = |v: &Validator| {
                    v.iter_errors(sample)
                        .map(|e| (e.instance_path.to_string(), e.to_string()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(answer(&piece.validator), answer(&direct), "on {sample}");
            }
        }
    }

    #[test]
    fn nullable_becomes_if_else() {
        let mut v = json!({"anyOf": [{"$ref": "#/$defs/X"}, {"type": "null"}]});
        nullable_to_if_else(&mut v);
        assert_eq!(
            v,
            json!({"if": {"type": "null"}, "else": {"$ref": "#/$defs/X"}})
        );
    }
}
