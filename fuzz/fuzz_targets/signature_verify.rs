//! Webhook signatures, every scheme (`wf_core::webhook::signature`): verify must answer with an
//! error, never panic, whatever the headers, body, secrets and clock.
//!
//! Input (text framing, so the corpus holds readable sample requests):
//! ```text
//! <scheme: standard|github|stripe|slack|none>\n
//! <now: Unix seconds>\n
//! <secrets list, as Secrets::parse reads an environment variable>\n
//! <header-name>: <value>\n ...      (any number; invalid names or values are skipped)
//! \n
//! <body bytes>
//! ```
//! Properties besides "no panic": no error message holds a secret or a header value; a request
//! signed by `sign` with one of the secrets (at `now`, over this body) verifies, and the same
//! request with one more body byte does not.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use wf_core::model::WebhookScheme;
use wf_core::webhook::signature::{Secrets, SignatureError, idempotency_key, sign, verify};

const SCHEMES: [(&str, WebhookScheme); 5] = [
    ("standard", WebhookScheme::Standard),
    ("github", WebhookScheme::Github),
    ("stripe", WebhookScheme::Stripe),
    ("slack", WebhookScheme::Slack),
    ("none", WebhookScheme::None),
];

fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn headers_of(pairs: &[(&'static str, String)]) -> Option<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).ok()?);
    }
    Some(map)
}

/// Error messages are built from fixed text, header names and numbers only: never a secret,
/// never a header value. Checked for the secrets and header values that contain `~` or `|`
/// (characters no fixed text of the module uses, so a hit cannot be the fuzzer spelling fixed
/// text as a "secret") and are at least 8 bytes long.
fn check_message(e: &SignatureError, sensitive: &[String]) {
    let message = e.to_string();
    for s in sensitive {
        assert!(
            !message.contains(s.as_str()),
            "an error message contains a secret or a header value: {message}"
        );
    }
    assert!(!e.reason().is_empty());
}

fuzz_target!(|data: &[u8]| {
    let (scheme_line, rest) = split_line(data);
    let (now_line, rest) = split_line(rest);
    let (secrets_line, mut rest) = split_line(rest);
    let scheme_name = String::from_utf8_lossy(scheme_line);
    let scheme = SCHEMES
        .iter()
        .find(|(n, _)| *n == scheme_name.trim())
        .map_or(WebhookScheme::Github, |(_, s)| *s);
    let now: i64 = String::from_utf8_lossy(now_line)
        .trim()
        .parse()
        .unwrap_or(1_700_000_000);
    let secrets_text = String::from_utf8_lossy(secrets_line).into_owned();
    let secrets = Secrets::parse(&secrets_text);
    let secret_parts: Vec<&str> = secrets_text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect();

    let mut headers = HeaderMap::new();
    loop {
        let (line, after) = split_line(rest);
        rest = after;
        if line.is_empty() {
            break;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &[][..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    let body = rest;
    let traceable = |s: &str| s.len() >= 8 && s.contains(['~', '|']);
    let sensitive: Vec<String> = secret_parts
        .iter()
        .copied()
        .chain(headers.values().filter_map(|v| v.to_str().ok()))
        .filter(|s| traceable(s))
        .map(str::to_owned)
        .collect();

    // The request as received, under its scheme and under every other one.
    for (_, s) in SCHEMES {
        match verify(s, &secrets, &headers, body, now) {
            Ok(verified) => {
                let _ = idempotency_key(&headers, &verified);
            }
            Err(e) => check_message(&e, &sensitive),
        }
    }

    // Sign with one of the secrets, then verify: accepted; with the body changed: refused.
    let Some(secret) = secret_parts.first() else {
        return;
    };
    if scheme == WebhookScheme::None || !(0..1_000_000_000_000).contains(&now) {
        return; // timestamps are 1 to 12 decimal digits, no sign
    }
    let msg_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("msg_1");
    let Ok(pairs) = sign(scheme, secret, body, now, msg_id) else {
        return; // a standard secret that is not base64, or a body that is not UTF-8
    };
    let Some(signed) = headers_of(&pairs) else {
        return;
    };
    if let Err(e) = verify(scheme, &secrets, &signed, body, now) {
        panic!("a request signed with a configured secret is refused: {e}");
    }
    let mut longer = body.to_vec();
    longer.push(b'x');
    match verify(scheme, &secrets, &signed, &longer, now) {
        Err(SignatureError::Mismatch) => {}
        // Standard Webhooks signs text: a body made non-UTF-8 is malformed, not a mismatch.
        Err(SignatureError::Malformed(_)) if std::str::from_utf8(&longer).is_err() => {}
        other => panic!("a changed body is not a mismatch: {other:?}"),
    }
});
