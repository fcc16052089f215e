//! Webhook and API bodies (`wf_core::webhook::body`): JSON with its depth limit, `Content-Type`
//! parsing, Slack's form-encoded bodies.
//!
//! Input: `<Content-Type value>\n<scheme: slack|github|...>\n<body bytes>`.
//!
//! Properties besides "no panic, nothing over 1 s": whatever is accepted is within
//! `MAX_JSON_DEPTH` and can be stored inside a record and read back (serde_json refuses to read
//! past 128 levels); a JSON media type is recognised the same from its essence.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use wf_core::json_depth::{MAX_JSON_DEPTH, value_depth};
use wf_core::model::WebhookScheme;
use wf_core::webhook::body::{is_json_content_type, media_type, parse_json, webhook_input};

fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Accepted input is within the limit and survives being stored inside a record.
fn check_storable(v: &Value) {
    assert!(
        value_depth(v) <= MAX_JSON_DEPTH,
        "accepted a value {} deep (limit {MAX_JSON_DEPTH})",
        value_depth(v)
    );
    // The deepest wrapping the stores add is a few levels (execution record > input).
    let record = json!({ "record": { "execution": { "input": v } } });
    let bytes = serde_json::to_vec(&record).expect("a Value serializes");
    if let Err(e) = serde_json::from_slice::<Value>(&bytes) {
        panic!("an accepted body, stored in a record, does not read back: {e}");
    }
}

fuzz_target!(|data: &[u8]| {
    let (ct_line, rest) = split_line(data);
    let (scheme_line, body) = split_line(rest);
    let content_type = std::str::from_utf8(ct_line).ok();
    let scheme = match scheme_line {
        b"slack" => WebhookScheme::Slack,
        b"standard" => WebhookScheme::Standard,
        b"stripe" => WebhookScheme::Stripe,
        b"none" => WebhookScheme::None,
        _ => WebhookScheme::Github,
    };

    let essence = media_type(content_type);
    assert_eq!(
        is_json_content_type(content_type),
        is_json_content_type(Some(&essence)),
        "{content_type:?}"
    );

    if let Ok(v) = webhook_input(content_type, body, scheme) {
        check_storable(&v);
    }
    // The whole input as one JSON document (API request bodies).
    if let Ok(v) = parse_json(data) {
        check_storable(&v);
    }
});
