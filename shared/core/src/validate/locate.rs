//! JSON pointer -> line/column in the source text.
//!
//! serde_json keeps no positions in a `Value`, and no well-kept crate maps an RFC 6901 pointer
//! to a span of the original text (the span-keeping JSON parsers are either unmaintained or
//! bring their own value types), so this is a small scanner: it walks the text along the
//! pointer, skipping the values it does not descend into. It only reads text that already
//! parsed as JSON, but it never panics on anything else (it returns `None`).

use std::collections::HashMap;

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
/// serde_json). For many pointers into one text, build one [`Locator`].
pub fn locate(text: &str, pointer: &str) -> Option<Located> {
    Locator::new(text).locate(pointer)
}

/// The members of one object (last key wins) or the elements of one array: value starts.
enum Children {
    Object(HashMap<String, (usize, usize)>),
    Array(Vec<usize>),
}

/// Locates many pointers in one text in time proportional to the text plus the pointers: each
/// container is scanned once, on the first pointer through it, and line and column come from
/// indexes built once (a validation of 5,000 problems in a 300 KB one-line file would otherwise
/// rescan the text per problem).
pub struct Locator<'a> {
    text: &'a str,
    /// The start of the root value (None: no value).
    root: Option<usize>,
    children: HashMap<usize, Option<Children>>,
    /// Byte offset of each line's start.
    line_starts: Vec<usize>,
    /// Characters before byte `k * CHAR_STEP`.
    chars_at: Vec<usize>,
}

/// Bytes between two entries of [`Locator::chars_at`].
const CHAR_STEP: usize = 1024;

impl<'a> Locator<'a> {
    pub fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let mut sc = Scanner { s: bytes, i: 0 };
        sc.skip_bom();
        sc.skip_ws();
        let root = (sc.i < bytes.len()).then_some(sc.i);
        let line_starts = std::iter::once(0)
            .chain(
                bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        let mut chars_at = vec![0];
        let mut chars = 0;
        for chunk in bytes.chunks(CHAR_STEP) {
            chars += chunk.iter().filter(|b| !is_continuation(**b)).count();
            chars_at.push(chars);
        }
        Locator {
            text,
            root,
            children: HashMap::new(),
            line_starts,
            chars_at,
        }
    }

    /// Where `pointer` lands (see [`locate`]).
    pub fn locate(&mut self, pointer: &str) -> Option<Located> {
        let mut value_at = self.root?;
        let mut key_at = None;
        let mut exact = true;
        for token in super::pointer_tokens(pointer) {
            let found = match self.children_of(value_at) {
                Some(Children::Object(members)) => members.get(&token).map(|(k, v)| (Some(*k), *v)),
                Some(Children::Array(elements)) => match token.parse::<usize>() {
                    Ok(index) if !token.starts_with('+') => elements.get(index).map(|v| (None, *v)),
                    _ => None,
                },
                None => None,
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
            value: self.position(value_at),
            key: if exact {
                key_at.map(|k| self.position(k))
            } else {
                None
            },
            exact,
        })
    }

    /// The container at byte `at`, scanned on first use (None: not a container, or text that
    /// does not scan).
    fn children_of(&mut self, at: usize) -> Option<&Children> {
        let text = self.text.as_bytes();
        self.children
            .entry(at)
            .or_insert_with(|| {
                let mut sc = Scanner { s: text, i: at };
                match sc.peek()? {
                    b'{' => sc.members().map(Children::Object),
                    b'[' => sc.elements().map(Children::Array),
                    _ => None,
                }
            })
            .as_ref()
    }

    fn position(&self, byte: usize) -> Position {
        let byte = byte.min(self.text.len());
        let line = self.line_starts.partition_point(|start| *start <= byte);
        let line_start = self.line_starts[line - 1];
        Position {
            line,
            column: self.chars_before(byte) - self.chars_before(line_start) + 1,
        }
    }

    /// Characters in `text[..byte]`.
    fn chars_before(&self, byte: usize) -> usize {
        let step = byte / CHAR_STEP;
        let from = step * CHAR_STEP;
        self.chars_at[step]
            + self.text.as_bytes()[from..byte]
                .iter()
                .filter(|b| !is_continuation(**b))
                .count()
    }
}

/// A UTF-8 continuation byte (not the start of a character).
fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
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

    /// The object at `i`: each member's name and (key start, value start); the last of a
    /// duplicated name wins.
    fn members(&mut self) -> Option<HashMap<String, (usize, usize)>> {
        self.expect(b'{')?;
        let mut found = HashMap::new();
        self.skip_ws();
        if self.peek()? == b'}' {
            return Some(found);
        }
        loop {
            self.skip_ws();
            let key_start = self.i;
            let name = self.read_string()?;
            self.expect(b':')?;
            self.skip_ws();
            found.insert(name, (key_start, self.i));
            self.skip_value()?;
            self.skip_ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => return Some(found),
                _ => return None,
            }
        }
    }

    /// The array at `i`: the start of each element.
    fn elements(&mut self) -> Option<Vec<usize>> {
        self.expect(b'[')?;
        self.skip_ws();
        let mut starts = Vec::new();
        if self.peek()? == b']' {
            return Some(starts);
        }
        loop {
            self.skip_ws();
            starts.push(self.i);
            self.skip_value()?;
            self.skip_ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => return Some(starts),
                _ => return None,
            }
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

    #[test]
    fn one_locator_finds_every_pointer_of_a_one_line_document() {
        // A compact file: every step on line 1, with a multi-byte name before each id so that
        // columns (characters) and bytes differ.
        let steps: Vec<String> = (0..3000)
            .map(|i| format!(r#"{{"name":"é{i}","id":"s{i}","type":"output"}}"#))
            .collect();
        let text = format!(r#"{{"id":"w","steps":[{}]}}"#, steps.join(","));
        let mut locator = Locator::new(&text);
        for i in [0usize, 1, 1499, 2999] {
            let at = locator.locate(&format!("/steps/{i}/id")).expect("located");
            let needle = format!(r#""s{i}""#);
            let byte = text.find(&needle).expect("in the text");
            assert!(at.exact);
            assert_eq!(at.value.line, 1);
            assert_eq!(
                at.value.column,
                text[..byte].chars().count() + 1,
                "step {i}"
            );
            assert_eq!(
                at.value,
                locate(&text, &format!("/steps/{i}/id")).unwrap().value
            );
        }
        let missing = locator.locate("/steps/3000/id").expect("an ancestor");
        assert!(!missing.exact);
        assert_eq!(
            missing.value.column,
            text.find('[').unwrap() + 1,
            "the steps array"
        );
    }

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
