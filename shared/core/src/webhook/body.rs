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
/// decoded). `content_type` is the request's `Content-Type` header, when it is text.
pub fn webhook_input(
    content_type: Option<&str>,
    body: &[u8],
    scheme: WebhookScheme,
) -> Result<Value, BodyError> {
    let ct = media_type(content_type);
    if is_json_content_type(content_type) {
        return parse_json(body);
    }
    if ct == "application/x-www-form-urlencoded" && scheme == WebhookScheme::Slack {
        let mut out = Map::new();
        for (k, v) in form_urlencoded::parse(body) {
            let value = if k == "payload" {
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
