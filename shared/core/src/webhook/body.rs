//! Reading a body a user sent (API request bodies, webhook bodies), without I/O: JSON bounded in
//! depth before it is parsed, the media type of a `Content-Type`, and a webhook's input (JSON, or
//! Slack's form-encoded bodies). wf-app maps [`BodyError`] to its `AppError` (`app/json.rs`).

use serde_json::{Map, Value};

use crate::json_depth::{MAX_JSON_DEPTH, TooDeep, check_depth};
use crate::model::WebhookScheme;

/// Why a body was refused. Every variant is the sender's mistake (a 400 or 415 over HTTP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// No bytes at all where a JSON document was expected.
    #[error("the request body is empty; send a JSON document")]
    Empty,
    /// `what` (e.g. "the request body") nests arrays and objects past the limit.
    #[error("{what} is nested too deep: {at}")]
    TooDeep { what: &'static str, at: TooDeep },
    /// Not JSON; `message` is serde_json's, which ends with the line and column.
    #[error("the request body is not valid JSON: {message}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    /// A `Content-Type` this body cannot be read as (`media_type` is `""` when there was none).
    #[error(
        "Content-Type {:?} is not accepted: send the body as JSON with Content-Type: application/json",
        if media_type.is_empty() { "(none)" } else { media_type.as_str() }
    )]
    UnsupportedMediaType { media_type: String },
}

/// Parse a JSON document. Documents nested deeper than [`MAX_JSON_DEPTH`] are refused before
/// parsing: whatever is accepted can always be stored and read back.
///
/// Duplicate keys in an object: the last one wins (serde_json's behaviour, and RFC 8259 leaves
/// it to the parser).
pub fn parse_json(body: &[u8]) -> Result<Value, BodyError> {
    if body.is_empty() {
        return Err(BodyError::Empty);
    }
    check_depth(body, MAX_JSON_DEPTH).map_err(|at| BodyError::TooDeep {
        what: "the request body",
        at,
    })?;
    serde_json::from_slice(body).map_err(|e| BodyError::Syntax {
        message: e.to_string(),
        line: e.line(),
        column: e.column(),
    })
}

/// Whether a `Content-Type` value is JSON (`application/json`, `application/*+json`), parameters
/// such as `; charset=utf-8` ignored.
pub fn is_json_content_type(value: Option<&str>) -> bool {
    let essence = media_type(value);
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The media type of a `Content-Type` value, lower-cased, without parameters (`""` for none).
pub fn media_type(value: Option<&str>) -> String {
    value
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The input of a webhook body: JSON (`application/json`, `*+json`), or for Slack form-encoded
/// bodies (slash commands, interactivity), a JSON object (a `payload` field holding JSON is
/// decoded; one nested past the limit, counting the object around it, is refused like a JSON
/// body). `content_type` is the request's `Content-Type` header, when it is text.
pub fn webhook_input(
    content_type: Option<&str>, body: &[u8], scheme: WebhookScheme,
) -> Result<Value, BodyError> {
    let ct = media_type(content_type);
    if is_json_content_type(content_type) {
        return parse_json(body);
    }
    if ct == "application/x-www-form-urlencoded" && scheme == WebhookScheme::Slack {
        let mut out = Map::new();
        for (k, v) in form_urlencoded::parse(body) {
            let value = if k == "payload" {
                // Bounded like a JSON body: the object around it is one more level. (Unbounded,
                // a payload 65 to 127 deep was accepted and stored, then could not be read back
                // inside its record: found by the `webhook_body` fuzz target.)
                check_depth(v.as_bytes(), MAX_JSON_DEPTH - 1).map_err(|at| BodyError::TooDeep {
                    what: "the form field `payload`",
                    at,
                })?;
                serde_json::from_str(&v).unwrap_or(Value::String(v.into_owned()))
            } else {
                Value::String(v.into_owned())
            };
            out.insert(k.into_owned(), value);
        }
        return Ok(Value::Object(out));
    }
    Err(BodyError::UnsupportedMediaType { media_type: ct })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_depth::value_depth;
    use serde_json::json;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    fn nested(d: usize) -> String {
        format!("{}1{}", "[".repeat(d), "]".repeat(d))
    }

    #[test]
    fn json_bodies_are_bounded_and_located() {
        assert_eq!(parse_json(b""), Err(BodyError::Empty));
        assert!(parse_json(nested(MAX_JSON_DEPTH).as_bytes()).is_ok());
        let Err(BodyError::TooDeep { what, at }) =
            parse_json(nested(MAX_JSON_DEPTH + 1).as_bytes())
        else {
            panic!("not refused as too deep");
        };
        assert_eq!((what, at.limit, at.column), ("the request body", 64, 65));
        let Err(BodyError::Syntax { line, column, .. }) = parse_json(b"{\n  \"a\": }") else {
            panic!("not a syntax error");
        };
        assert_eq!((line, column), (2, 8));
    }

    #[test]
    fn media_types() {
        assert!(is_json_content_type(Some(
            "Application/JSON; charset=utf-8"
        )));
        assert!(is_json_content_type(Some("application/cloudevents+json")));
        assert!(!is_json_content_type(Some("text/json")));
        assert!(!is_json_content_type(None));
        assert_eq!(media_type(Some(" Text/Plain ;q=1")), "text/plain");
        let e = webhook_input(None, b"{}", WebhookScheme::Github).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Content-Type \"(none)\" is not accepted: send the body as JSON with Content-Type: \
             application/json"
        );
        // Form bodies are Slack's only.
        assert!(webhook_input(FORM, b"a=1", WebhookScheme::Github).is_err());
    }

    #[test]
    fn slack_forms_decode_a_json_payload() {
        let v = webhook_input(
            FORM,
            b"command=%2Fdeploy&text=a+b&payload=%7B%22x%22%3A%5B1%5D%7D",
            WebhookScheme::Slack,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"command": "/deploy", "text": "a b", "payload": {"x": [1]}})
        );
        let v = webhook_input(FORM, b"payload=not+json", WebhookScheme::Slack).unwrap();
        assert_eq!(v, json!({"payload": "not json"}));
    }

    /// Regression (fuzz target `webhook_body`): a `payload` nested 70 deep was accepted as a
    /// value 71 deep, past `MAX_JSON_DEPTH`, which the stores cannot read back in a record.
    #[test]
    fn slack_payload_nesting_is_bounded() {
        let ok = format!("payload={}", nested(MAX_JSON_DEPTH - 1));
        let v = webhook_input(FORM, ok.as_bytes(), WebhookScheme::Slack).unwrap();
        assert_eq!(value_depth(&v), MAX_JSON_DEPTH);
        for d in [MAX_JSON_DEPTH, 70, 100_000] {
            let body = format!("payload={}", nested(d));
            match webhook_input(FORM, body.as_bytes(), WebhookScheme::Slack) {
                Err(BodyError::TooDeep { what, at }) => {
                    assert_eq!(what, "the form field `payload`");
                    assert_eq!(at.limit, MAX_JSON_DEPTH - 1);
                }
                other => panic!("payload {d} deep: {other:?}"),
            }
        }
    }
}
