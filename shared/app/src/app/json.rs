//! Reading JSON that a user sent (request bodies, webhook bodies): every failure is an
//! [`AppError`] that says where the document is wrong.

use serde_json::{Value, json};
use wf_core::json_depth::{MAX_JSON_DEPTH, TooDeep, check_depth};

use super::AppError;

/// Parse a JSON document, naming the line and column of a syntax error. Documents nested
/// deeper than [`MAX_JSON_DEPTH`] are refused (`too_deep`) before parsing: whatever is accepted
/// can always be stored and read back.
///
/// Duplicate keys in an object: the last one wins (serde_json's behaviour, and RFC 8259 leaves
/// it to the parser).
pub fn parse_json(body: &[u8]) -> Result<Value, AppError> {
    if body.is_empty() {
        return Err(AppError::invalid(
            "invalid_json",
            "the request body is empty; send a JSON document",
        ));
    }
    check_depth(body, MAX_JSON_DEPTH).map_err(|e| too_deep("the request body", &e))?;
    serde_json::from_slice(body).map_err(|e| {
        AppError::invalid(
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        )
        .with_details(json!({ "line": e.line(), "column": e.column() }))
    })
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

/// Parse a JSON document into a type, naming the field that is wrong.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    let v = parse_json(body)?;
    serde_json::from_value(v)
        .map_err(|e| AppError::invalid("invalid_request", format!("invalid request body: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;

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
