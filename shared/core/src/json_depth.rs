//! The nesting bound of JSON that enters the engine (request and webhook bodies, `http.request`
//! responses, an LLM's JSON answer, workflow files).
//!
//! Every stored record wraps the user's values (an execution's `input` sits inside the record,
//! a step's `output` inside the step record), and serde_json refuses to read documents nested
//! deeper than 128 levels. A value accepted at 127 levels could be written but never read back.
//! [`MAX_JSON_DEPTH`] is far enough below that for every wrapper the stores add, so that every
//! value accepted can always be decoded again.
//!
//! The check is a scan of the bytes (no recursion, no allocation): a document nested 100,000
//! deep is refused in linear time and constant stack.

use serde_json::Value;

/// The deepest nesting of arrays and objects accepted in a JSON document: `[[1]]` is 2 deep.
pub const MAX_JSON_DEPTH: usize = 64;

/// A document nested deeper than the limit, and where the limit was passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    /// The limit that was passed.
    pub limit: usize,
    /// Byte offset of the bracket that went one level past the limit.
    pub offset: usize,
    /// 1-based line and column (in characters) of that bracket.
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the JSON document is nested deeper than the limit of {} levels of arrays and objects \
             (level {} starts at line {}, column {})",
            self.limit,
            self.limit + 1,
            self.line,
            self.column
        )
    }
}

impl std::error::Error for TooDeep {}

/// Refuse a JSON document (bytes) whose arrays and objects nest deeper than `limit`.
///
/// Only nesting is checked: brackets inside strings (escapes included) are not counted, and a
/// syntax error is left to the parser that runs next.
pub fn check_depth(bytes: &[u8], limit: usize) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    let (line, column) = line_column(bytes, offset);
                    return Err(TooDeep {
                        limit,
                        offset,
                        line,
                        column,
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The nesting depth of a value (`1` is 0 deep, `[1]` 1, `{"a": [1]}` 2), without recursion.
pub fn value_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Array(items) => {
                deepest = deepest.max(depth + 1);
                stack.extend(items.iter().map(|i| (i, depth + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(depth + 1);
                stack.extend(map.values().map(|i| (i, depth + 1)));
            }
            _ => {}
        }
    }
    deepest
}

fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn at_the_limit_passes_and_one_past_is_refused_where_it_happens() {
        assert!(check_depth(nested(MAX_JSON_DEPTH).as_bytes(), MAX_JSON_DEPTH).is_ok());
        let err = check_depth(nested(MAX_JSON_DEPTH + 1).as_bytes(), MAX_JSON_DEPTH).unwrap_err();
        assert_eq!(err.limit, MAX_JSON_DEPTH);
        assert_eq!(err.offset, MAX_JSON_DEPTH);
        assert_eq!((err.line, err.column), (1, MAX_JSON_DEPTH + 1));
        assert!(err.to_string().contains("limit of 64"), "{err}");
    }

    #[test]
    fn a_hundred_thousand_levels_are_refused_without_recursion() {
        let doc = nested(100_000);
        let err = check_depth(doc.as_bytes(), MAX_JSON_DEPTH).unwrap_err();
        assert_eq!(err.offset, MAX_JSON_DEPTH);
    }

    #[test]
    fn brackets_in_strings_do_not_count() {
        let doc = format!(r#"{{"a": "{}", "b": "\"[[[", "c": "\\"}}"#, "[".repeat(500));
        assert!(check_depth(doc.as_bytes(), 2).is_ok(), "{doc}");
        let err = check_depth(b"{\n  \"a\": [[1]]\n}", 2).unwrap_err();
        assert_eq!((err.line, err.column), (2, 9));
    }

    #[test]
    fn value_depth_counts_containers() {
        assert_eq!(value_depth(&serde_json::json!(1)), 0);
        assert_eq!(value_depth(&serde_json::json!({"a": [1, {"b": []}]})), 4);
        let v: Value = serde_json::from_str(&nested(MAX_JSON_DEPTH)).unwrap();
        assert_eq!(value_depth(&v), MAX_JSON_DEPTH);
    }
}
