//! Reading JSON that a user sent (request bodies, webhook bodies): every failure is an
//! [`AppError`] that says where the document is wrong. The parsing itself is pure and lives in
//! wf-core (`wf_core::webhook::body`, which the fuzz target `webhook_body` drives); this maps its
//! errors.

use serde_json::{Value, json};
use wf_core::json_depth::TooDeep;
use wf_core::webhook::body::BodyError;
pub use wf_core::webhook::body::{is_json_content_type, media_type};

use super::AppError;

/// Parse a JSON document, naming the line and column of a syntax error. Documents nested
/// deeper than [`wf_core::json_depth::MAX_JSON_DEPTH`] are refused (`too_deep`) before parsing:
/// whatever is accepted can always be stored and read back.
///
/// Duplicate keys in an object: the last one wins (serde_json's behaviour, and RFC 8259 leaves
/// it to the parser).
pub fn parse_json(body: &[u8]) -> Result<Value, AppError> {
    wf_core::webhook::body::parse_json(body).map_err(body_error)
}

/// The answer to a body that could not be read: 400 `invalid_json` / `too_deep`, or
/// `unsupported_media_type` (415 over HTTP).
pub fn body_error(e: BodyError) -> AppError {
    match e {
        BodyError::Empty => AppError::invalid("invalid_json", e.to_string()),
        BodyError::TooDeep { what, at } => too_deep(what, &at),
        BodyError::Syntax { line, column, .. } => AppError::invalid("invalid_json", e.to_string())
            .with_details(json!({ "line": line, "column": column })),
        BodyError::UnsupportedMediaType { .. } => {
            AppError::invalid("unsupported_media_type", e.to_string())
        }
    }
}

/// The answer to a document nested past the limit: 400 `too_deep`, naming the limit and where.
pub fn too_deep(what: &str, e: &TooDeep) -> AppError {
    AppError::invalid(
        "too_deep",
        format!(
            "{what} is nested deeper than the limit of {} levels of arrays and objects \
             (level {} starts at line {}, column {}); flatten it",
            e.limit,
            e.limit + 1,
            e.line,
            e.column
        ),
    )
    .with_details(json!({ "limit": e.limit, "line": e.line, "column": e.column }))
}

/// Parse a JSON document into a type, naming the field that is wrong: `details.pointer` is its
/// JSON pointer (for a missing field, where it belongs: `/expression`).
///
/// Every request body is a JSON object: another document is refused, although serde would
/// read a struct from an array.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    let v = parse_json(body)?;
    if !v.is_object() {
        return Err(AppError::invalid(
            "invalid_request",
            "invalid request body: send a JSON object",
        )
        .with_details(json!({ "pointer": "" })));
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        let pointer = field_pointer(e.path(), &e.inner().to_string());
        AppError::invalid(
            "invalid_request",
            format!("invalid request body at {pointer:?}: {}", e.inner()),
        )
        .with_details(json!({ "pointer": pointer }))
    })
}

/// The JSON pointer of a deserialization error: the path it reached, and the field a
/// "missing field `x`" error names (serde's wording for a required field left out).
fn field_pointer(path: &serde_path_to_error::Path, message: &str) -> String {
    use serde_path_to_error::Segment;
    let escape = |s: &str| s.replace('~', "~0").replace('/', "~1");
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push('/');
                pointer.push_str(&escape(key));
            }
            Segment::Unknown => {}
        }
    }
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field);
    if let Some(field) = missing {
        pointer.push('/');
        pointer.push_str(&escape(field));
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_core::json_depth::MAX_JSON_DEPTH;

    fn nested(d: usize) -> Vec<u8> {
        format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes()
    }

    #[test]
    fn nesting_is_bounded_before_parsing() {
        assert!(parse_json(&nested(MAX_JSON_DEPTH)).is_ok());
        for d in [MAX_JSON_DEPTH + 1, 100_000] {
            let e = parse_json(&nested(d)).unwrap_err();
            assert_eq!(e.code(), "too_deep");
            assert!(e.message().contains("limit of 64"), "{}", e.message());
            assert_eq!(e.details()["limit"], json!(MAX_JSON_DEPTH));
            assert_eq!(e.details()["column"], json!(MAX_JSON_DEPTH + 1));
        }
    }

    #[test]
    fn duplicate_keys_last_wins_and_huge_numbers_are_refused() {
        assert_eq!(
            parse_json(br#"{"a": 1, "a": 2}"#).unwrap(),
            json!({ "a": 2 })
        );
        let e = parse_json(b"1e999999").unwrap_err();
        assert_eq!(e.code(), "invalid_json");
        assert!(parse_json(b"{\"a\": \"\xff\"}").is_err());
    }
}
