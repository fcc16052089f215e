//! JSON pointer -> line/column in the source text.
//!
//! serde_json keeps no positions in a `Value`, and no well-kept crate maps an RFC 6901 pointer
//! to a span of the original text (the span-keeping JSON parsers are either unmaintained or
//! bring their own value types), so this is a small scanner: it walks the text along the
//! pointer, skipping the values it does not descend into. It only reads text that already
//! parsed as JSON, but it never panics on anything else (it returns `None`).

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Where a pointer lands in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The start of the value (or of the deepest existing ancestor when `exact` is false).
    pub value: Position,
    /// The start of the member's key when the last token named an object member.
    pub key: Option<Position>,
    /// Whether the whole pointer resolved (false: a missing member or index; `value` is then
    /// the deepest ancestor that exists).
    pub exact: bool,
}

/// Locate the value at `pointer` in JSON `text`. A pointer that goes past what exists lands on
/// the deepest existing ancestor (`exact: false`). With duplicate keys, the last one wins (as in
/// serde_json).
pub fn locate(text: &str, pointer: &str) -> Option<Located> {
    let tokens = super::pointer_tokens(pointer);
    let mut sc = Scanner {
        s: text.as_bytes(),
        i: 0,
    };
    sc.skip_bom();
    sc.skip_ws();
    if sc.i >= sc.s.len() {
        return None;
    }
    let mut value_at = sc.i;
    let mut key_at = None;
    let mut exact = true;
    for token in &tokens {
        sc.i = value_at;
        let found = match sc.peek()? {
            b'{' => sc.find_member(token)?,
            b'[' => match token.parse::<usize>() {
                Ok(index) if !token.starts_with('+') => sc.find_element(index)?.map(|v| (None, v)),
                _ => None,
            },
            _ => None,
        };
        match found {
            Some((key, value)) => {
                key_at = key;
                value_at = value;
            }
            None => {
                exact = false;
                break;
            }
        }
    }
    Some(Located {
        value: position(text, value_at),
        key: if exact {
            key_at.map(|k| position(text, k))
        } else {
            None
        },
        exact,
    })
}

fn position(text: &str, byte: usize) -> Position {
    let before = &text.as_bytes()[..byte.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = text
        .get(line_start..byte.min(text.len()))
        .map_or(1, |s| s.chars().count() + 1);
    Position { line, column }
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_bom(&mut self) {
        if self.s.starts_with("\u{feff}".as_bytes()) {
            self.i = 3;
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == b).then(|| self.i += 1)
    }

    /// In the object at `i`: the (key start, value start) of the last member named `key`.
    fn find_member(&mut self, key: &str) -> Option<Option<(Option<usize>, usize)>> {
        self.expect(b'{')?;
        let mut found = None;
        self.skip_ws();
        if self.peek()? == b'}' {
            return Some(None);
        }
        loop {
            self.skip_ws();
            let key_start = self.i;
            let name = self.read_string()?;
            self.expect(b':')?;
            self.skip_ws();
            let value_start = self.i;
            if name == key {
                found = Some((Some(key_start), value_start));
            }
            self.skip_value()?;
            self.skip_ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => return Some(found),
                _ => return None,
            }
        }
    }

    /// In the array at `i`: the start of element `index`.
    fn find_element(&mut self, index: usize) -> Option<Option<usize>> {
        self.expect(b'[')?;
        self.skip_ws();
        if self.peek()? == b']' {
            return Some(None);
        }
        let mut n = 0;
        loop {
            self.skip_ws();
            if n == index {
                return Some(Some(self.i));
            }
            self.skip_value()?;
            self.skip_ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => return Some(None),
                _ => return None,
            }
            n += 1;
        }
    }

    /// Read a string literal at `i`, decoding escapes.
    fn read_string(&mut self) -> Option<String> {
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.read_hex4()?;
                            if (0xD800..0xDC00).contains(&hi) {
                                // a surrogate pair: \uD83D\uDE00
                                if self.s.get(self.i..self.i + 2) == Some(b"\\u") {
                                    self.i += 2;
                                    let lo = self.read_hex4()?;
                                    let cp = 0x10000
                                        + ((hi - 0xD800) << 10)
                                        + (lo.wrapping_sub(0xDC00) & 0x3FF);
                                    char::from_u32(cp).unwrap_or('\u{FFFD}')
                                } else {
                                    '\u{FFFD}'
                                }
                            } else {
                                char::from_u32(hi).unwrap_or('\u{FFFD}')
                            }
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(b),
            }
        }
    }

    fn read_hex4(&mut self) -> Option<u32> {
        let hex = self.s.get(self.i..self.i + 4)?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    }

    /// Skip the value at `i` (strings without decoding, containers by depth).
    fn skip_value(&mut self) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.skip_string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                // number, true, false, null
                let start = self.i;
                while matches!(self.peek(), Some(b) if !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }

    fn skip_string(&mut self) -> Option<()> {
        self.i += 1; // opening quote
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => self.i += 2,
                _ => self.i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
  "id": "order-alert",
  "steps": [
    { "id": "start", "type": "start", "next": "check" },
    {
      "id": "check",
      "type": "condition",
      "branches": [ { "if": "{{ a }}", "next": "x" } ],
      "else": "done"
    }
  ],
  "a/b": { "~k": [1, [2, 3], {"z": null}] },
  "esc\"aped": "é",
  "\u00e9t\u00e9": true,
  "dup": 1, "dup": 2
}"#;

    fn at(pointer: &str) -> (usize, usize, bool) {
        let l = locate(DOC, pointer).unwrap();
        (l.value.line, l.value.column, l.exact)
    }

    #[test]
    fn finds_values_of_members_and_elements() {
        assert_eq!(at(""), (1, 1, true));
        assert_eq!(at("/id"), (2, 9, true));
        assert_eq!(at("/steps"), (3, 12, true));
        assert_eq!(at("/steps/0"), (4, 5, true));
        assert_eq!(at("/steps/0/next"), (4, 47, true));
        assert_eq!(at("/steps/1"), (5, 5, true));
        assert_eq!(at("/steps/1/type"), (7, 15, true));
        assert_eq!(at("/steps/1/branches/0/next"), (8, 48, true));
        assert_eq!(at("/steps/1/else"), (9, 15, true));
    }

    #[test]
    fn reports_the_key_of_the_last_member() {
        let l = locate(DOC, "/steps/1/else").unwrap();
        assert_eq!(l.key, Some(Position { line: 9, column: 7 }));
        assert_eq!(locate(DOC, "/steps/0").unwrap().key, None);
    }

    #[test]
    fn unescapes_pointer_tokens_and_json_keys() {
        assert_eq!(at("/a~1b/~0k/1/0"), (12, 23, true));
        assert_eq!(at("/a~1b/~0k/2/z"), (12, 36, true));
        assert_eq!(at("/esc\"aped"), (13, 16, true));
        assert_eq!(at("/été"), (14, 20, true));
    }

    #[test]
    fn last_duplicate_key_wins() {
        assert_eq!(at("/dup"), (15, 20, true));
    }

    #[test]
    fn missing_parts_land_on_the_deepest_ancestor() {
        assert_eq!(at("/steps/1/action"), (5, 5, false));
        assert_eq!(at("/steps/9/next"), (3, 12, false));
        assert_eq!(at("/id/deeper"), (2, 9, false));
        assert_eq!(at("/steps/x"), (3, 12, false));
        assert!(!locate(DOC, "/nope").unwrap().exact);
    }

    #[test]
    fn counts_columns_in_characters_and_handles_crlf() {
        let text = "{\r\n  \"é\": \"ü\", \"k\": 1\r\n}";
        let l = locate(text, "/k").unwrap();
        assert_eq!((l.value.line, l.value.column), (2, 18));
        assert!(locate("", "").is_none());
        assert!(locate("{\"a\": ", "/a/b").is_some() || locate("{\"a\": ", "/a/b").is_none());
    }
}
