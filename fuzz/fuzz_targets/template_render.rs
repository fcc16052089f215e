//! Templates and expressions, rendered with the real limits (fuel, output bound, repetition
//! check) against a context.
//!
//! Input: `template` alone, or `template` NUL `context JSON` (an object of the roots templates
//! see: input, vars, steps, secrets, ...). Without a usable context, a fixed one with every root.
//!
//! Properties besides "no panic, nothing over 1 s": a rendered string is within
//! `MAX_RENDERED_BYTES`; redacting a result leaves no secret value in it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use wf_core::expr::{
    self, ExprContext, MAX_RENDERED_BYTES, check_expression, check_template, referenced_variables,
};

fn default_context() -> Map<String, Value> {
    let v = json!({
        "input": {"amount": 120, "email": "a@example.com", "items": [1, 2, 3], "name": "Ada",
                  "nested": {"a": {"b": [true, null, 1.5]}}, "text": "héllo {{ x }}"},
        "vars": {"threshold": 100, "channel": "#alerts", "list": ["x", "y"]},
        "steps": {"fetch": {"output": {"status": 200, "body": {"ok": true, "rows": [{"id": 1}]}}},
                  "classify": {"output": "urgent"}},
        "execution": {"id": "01JEXEC", "workflowId": "order-alert", "startedAt": "2026-01-01T00:00:00Z"},
        "item": {"sku": "A-1", "qty": 3},
        "index": 2,
        "event": {"id": "e1", "type": "order.created", "detail": {"total": 5}},
        "secrets": {"API_KEY": "sk_live_secret", "TOKEN": "tok-123"}
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn secrets_of(ctx: &Map<String, Value>) -> Vec<String> {
    match ctx.get("secrets") {
        Some(Value::Object(m)) => m
            .values()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// No secret value is left in `v` (skipped for secrets made of `*`, which the `***` mask
/// itself spells).
fn assert_redacted(v: &Value, secrets: &[String]) {
    match v {
        Value::String(s) => {
            for secret in secrets {
                if !secret.chars().all(|c| c == '*') {
                    assert!(!s.contains(secret.as_str()), "secret left after redaction");
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| assert_redacted(x, secrets)),
        Value::Object(o) => o.values().for_each(|x| assert_redacted(x, secrets)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let (template, context) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(template) = std::str::from_utf8(template) else {
        return;
    };
    let json = context
        .and_then(|c| wf_core::webhook::body::parse_json(c).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_else(default_context);
    let secrets = secrets_of(&json);
    let ctx = ExprContext::new(json);

    let _ = check_template(template);
    let _ = check_expression(template);
    let _ = referenced_variables(template);
    let _ = expr::is_template(template);

    if let Ok(out) = ctx.render_str(template) {
        if let Value::String(s) = &out {
            assert!(s.len() <= MAX_RENDERED_BYTES, "rendered {} bytes", s.len());
        }
        assert_redacted(&ctx.redact(&out), &secrets);
    }
    if let Ok(b) = ctx.eval_bool(template) {
        let _ = b;
    }
    // The same template inside a JSON value (how step params are rendered). Once: every
    // evaluation may take up to its bounds (fuel, the walk bound), and the input's 1 s holds
    // them all.
    let _ = ctx.render(&json!({ "a": [{ "b": template }] }));
});
