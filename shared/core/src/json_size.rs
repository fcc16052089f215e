//! The size of a value's JSON without building the JSON: serialized into a counter that stops
//! past a limit (a lazily repeated list is never built past it, and nothing is allocated).

use serde::Serialize;

/// The bytes of `value`'s compact JSON: `Ok(None)` when they pass `limit` (counting stops
/// there), `Err` when the value does not serialize.
pub fn serialized_len<T: Serialize + ?Sized>(
    value: &T, limit: usize,
) -> Result<Option<usize>, serde_json::Error> {
    let mut counter = CountingWriter { written: 0, limit };
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => Ok(Some(counter.written)),
        Err(_) if counter.written > limit => Ok(None),
        Err(e) => Err(e),
    }
}

/// Counts serialized bytes and fails the write that passes the limit.
struct CountingWriter {
    written: usize,
    limit: usize,
}

impl std::io::Write for CountingWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.written += data.len();
        if self.written > self.limit {
            return Err(std::io::Error::other("value over the limit"));
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_what_to_vec_would_write_and_stops_past_the_limit() {
        let value = json!({ "a": [1, 2, "three"], "b": null, "c": "é\"" });
        let len = serde_json::to_vec(&value).unwrap().len();
        assert_eq!(serialized_len(&value, usize::MAX).unwrap(), Some(len));
        assert_eq!(serialized_len(&value, len).unwrap(), Some(len));
        assert_eq!(serialized_len(&value, len - 1).unwrap(), None);
        // A map with a key JSON cannot have: an error, not a size.
        let bad: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        assert!(serialized_len(&bad, usize::MAX).is_err());
    }
}
