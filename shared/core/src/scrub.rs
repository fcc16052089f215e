//! The one scrubber: given the secret values an execution resolved, remove them from anything
//! about to be stored, logged or answered, in every form a step may have turned them into.
//!
//! For each secret it replaces with `***`: the value; its upper- and lower-case forms; its
//! base64 (standard and URL-safe alphabets, with and without padding, and also where it sits
//! inside a longer base64 text at any byte alignment, as in `Basic base64(user:secret)`); its
//! URL-encoded forms (any of its reserved characters escaped or kept, since encoders differ;
//! `%20` or `+` for spaces; upper- or lower-case hex); its JSON-escaped form (as it
//! appears inside a JSON text that was kept as a string). Encoded forms are made of the value
//! and of its upper- and lower-case forms. In JSON values it scrubs strings and object keys,
//! at any depth.
//!
//! Derived forms shorter than [`MIN_DERIVED_LEN`] characters are not looked for (they would
//! match ordinary text); the value itself always is, whatever its length.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::{Map, Value};

use crate::error::StepError;
use crate::execution::{ExecutionUpdate, StepRecord};

/// What replaces a secret.
pub const MASK: &str = "***";

/// Shortest derived form (base64 fragment, encoding) looked for.
pub const MIN_DERIVED_LEN: usize = 6;

/// Removes a fixed set of secret values, in all their forms, from strings and JSON values.
/// One pass over a string finds every form at once (Aho-Corasick, leftmost-longest), so the
/// cost is the length of the text, whatever the number of forms.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    /// Every form to replace, longest first (a longer form wins over a prefix of it).
    needles: Vec<String>,
    matcher: Option<AhoCorasick>,
}

impl PartialEq for Scrubber {
    fn eq(&self, other: &Self) -> bool {
        self.needles == other.needles
    }
}

impl Eq for Scrubber {}

impl Scrubber {
    /// A scrubber of `secrets` (empty values are ignored).
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut needles: Vec<String> = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.is_empty() {
                continue;
            }
            needles.push(secret.to_string());
            let mut derived = vec![secret.to_uppercase(), secret.to_lowercase()];
            for form in [
                secret.to_string(),
                secret.to_uppercase(),
                secret.to_lowercase(),
            ] {
                derived.push(json_escaped(&form));
                derived.extend(url_encodings(&form));
                for alphabet in [STANDARD, URL_SAFE] {
                    let full = base64(form.as_bytes(), alphabet);
                    derived.push(full.clone());
                    derived.push(full.trim_end_matches('=').to_string());
                    // Inside a longer base64 text the secret may start at any byte offset:
                    // keep the characters that only its own bytes determine.
                    for offset in 0..3 {
                        derived.push(base64_core(form.as_bytes(), offset, alphabet));
                    }
                }
            }
            needles.extend(
                derived
                    .into_iter()
                    .filter(|d| d.len() >= MIN_DERIVED_LEN || d == secret),
            );
        }
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        let matcher = (!needles.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&needles)
                    .ok()
            })
            .flatten();
        Self { needles, matcher }
    }

    /// Whether there is nothing to scrub.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `s` with every form of every secret replaced by [`MASK`].
    pub fn str<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let Some(matcher) = &self.matcher else {
            return Cow::Borrowed(s);
        };
        if !matcher.is_match(s) {
            return Cow::Borrowed(s);
        }
        let mut out = String::with_capacity(s.len());
        matcher.replace_all_with(s, &mut out, |_, _, dst| {
            dst.push_str(MASK);
            true
        });
        Cow::Owned(out)
    }

    /// Scrub a string in place.
    pub fn string(&self, s: &mut String) {
        if let Cow::Owned(clean) = self.str(s) {
            *s = clean;
        }
    }

    /// Scrub every string and object key of a JSON value, in place.
    pub fn value(&self, v: &mut Value) {
        if self.is_empty() {
            return;
        }
        match v {
            Value::String(s) => self.string(s),
            Value::Array(items) => items.iter_mut().for_each(|x| self.value(x)),
            Value::Object(map) => {
                let dirty = map.keys().any(|k| matches!(self.str(k), Cow::Owned(_)));
                if dirty {
                    let old = std::mem::take(map);
                    let mut clean = Map::new();
                    for (k, x) in old {
                        clean.insert(self.str(&k).into_owned(), x);
                    }
                    *map = clean;
                }
                map.values_mut().for_each(|x| self.value(x));
            }
            _ => {}
        }
    }

    /// A scrubbed copy of a JSON value.
    pub fn scrubbed(&self, v: &Value) -> Value {
        let mut v = v.clone();
        self.value(&mut v);
        v
    }

    /// Scrub a step error: its message and details.
    pub fn error(&self, e: &mut StepError) {
        self.string(&mut e.message);
        if let Some(d) = e.details.as_mut() {
            self.value(d);
        }
    }

    /// Scrub everything a step record carries (input, output, error); its protocol fields
    /// (status, attempts, lease) are left as they are, so conditional writes still match.
    pub fn step_record(&self, r: &mut StepRecord) {
        if self.is_empty() {
            return;
        }
        self.value(&mut r.input);
        self.value(&mut r.output);
        if let Some(e) = r.error.as_mut() {
            self.error(e);
        }
    }

    /// Scrub an execution update (output, error).
    pub fn execution_update(&self, u: &mut ExecutionUpdate) {
        if let Some(o) = u.output.as_mut() {
            self.value(o);
        }
        if let Some(e) = u.error.as_mut() {
            self.error(e);
        }
    }
}

fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted)
        .to_string()
}

/// At most this many reserved characters in a secret are tried encoded and not encoded
/// independently (2^n forms); past it, the two usual encodings only.
const MAX_VARIABLE_URL_CHARS: usize = 6;

/// The URL-encoded forms of `s`: encoders differ in which reserved characters they escape
/// (`encodeURIComponent` escapes `/` and `+`, a URL parser only spaces and quotes, form
/// encoding writes spaces as `+`), so every combination of escaped and kept ASCII reserved
/// characters is made (up to [`MAX_VARIABLE_URL_CHARS`] of them), in upper- and lower-case hex;
/// non-ASCII bytes are always escaped.
fn url_encodings(s: &str) -> Vec<String> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    let bytes = s.as_bytes();
    let variable: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii() && !unreserved(bytes[i]))
        .collect();
    let masks: Vec<u64> = if variable.len() <= MAX_VARIABLE_URL_CHARS {
        (0..1u64 << variable.len()).collect()
    } else {
        // All escaped, or only spaces and quotes (what a URL parser does).
        let parser_escapes = variable
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(bytes[**i], b' ' | b'"' | b'<' | b'>' | b'`' | b'#'))
            .fold(0u64, |m, (k, _)| m | (1 << k));
        vec![u64::MAX, parser_escapes]
    };
    let mut out = Vec::new();
    for mask in masks {
        for upper in [true, false] {
            for plus in [false, true] {
                let mut text = String::with_capacity(bytes.len() * 3);
                let mut k = 0;
                for (i, &b) in bytes.iter().enumerate() {
                    let escape = if variable.get(k) == Some(&i) {
                        k += 1;
                        mask & (1 << (k - 1)) != 0
                    } else {
                        !b.is_ascii()
                    };
                    match (escape, b) {
                        (false, _) => text.push(b as char),
                        (true, b' ') if plus => text.push('+'),
                        (true, _) if upper => text.push_str(&format!("%{b:02X}")),
                        (true, _) => text.push_str(&format!("%{b:02x}")),
                    }
                }
                out.push(text);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The base64 characters determined only by `secret`'s bytes when it follows `offset` other
/// bytes inside a longer text (whatever those and the following bytes are).
fn base64_core(secret: &[u8], offset: usize, alphabet: &[u8; 64]) -> String {
    let mut padded = vec![0u8; offset];
    padded.extend_from_slice(secret);
    let encoded = base64(&padded, alphabet);
    let first = (8 * offset).div_ceil(6);
    let end = (8 * (offset + secret.len())) / 6;
    encoded
        .get(first..end.max(first))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &str = "s3cr3t-Tok/en+1";

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes(), STANDARD), enc);
        }
        assert_eq!(base64(&[0xfb, 0xff], URL_SAFE), "-_8=");
    }

    #[test]
    fn every_form_of_a_secret_is_masked() {
        let s = Scrubber::new([SECRET]);
        let forms = [
            SECRET.to_string(),
            SECRET.to_uppercase(),
            SECRET.to_lowercase(),
            base64(SECRET.as_bytes(), STANDARD),
            base64(SECRET.as_bytes(), STANDARD)
                .trim_end_matches('=')
                .to_string(),
            base64(SECRET.as_bytes(), URL_SAFE),
            "s3cr3t-Tok%2Fen%2B1".to_string(),
            "s3cr3t-Tok/en%2b1".to_string(),
            "S3CR3T-TOK%2FEN+1".to_string(),
            json_escaped(SECRET),
        ];
        for form in forms {
            let text = format!("before {form} after");
            let clean = s.str(&text);
            assert_eq!(clean, "before *** after", "form {form}");
        }
    }

    #[test]
    fn base64_inside_a_longer_text_is_masked_at_any_alignment() {
        let s = Scrubber::new([SECRET]);
        for prefix in ["", "u:", "us:", "use:", "user:"] {
            for suffix in ["", "!", "!!", "!!!"] {
                let plain = format!("{prefix}{SECRET}{suffix}");
                for alphabet in [STANDARD, URL_SAFE] {
                    let encoded = base64(plain.as_bytes(), alphabet);
                    let clean = s.str(&encoded);
                    assert!(clean.contains(MASK), "{plain} -> {encoded} -> {clean}");
                    // What is left encodes the prefix, the suffix and at most one character
                    // (a few bits) of the secret at each edge.
                    let left = clean.replace(MASK, "").trim_end_matches('=').len();
                    let around = (8 * (prefix.len() + suffix.len())).div_ceil(6);
                    assert!(left <= around + 2, "{plain}: {clean}");
                }
            }
        }
    }

    #[test]
    fn json_values_are_scrubbed_in_strings_and_keys() {
        let s = Scrubber::new(["k3y-secret"]);
        let mut v = json!({
            "headers": { "authorization": "Bearer k3y-secret", "K3Y-SECRET": 1 },
            "list": ["x", "k3y-secret", { "deep": "a k3y%2Dsecret" }],
            "raw": "{\"token\":\"k3y-secret\"}",
            "n": 3
        });
        s.value(&mut v);
        assert_eq!(
            v,
            json!({
                "headers": { "authorization": "Bearer ***", "***": 1 },
                "list": ["x", "***", { "deep": "a k3y%2Dsecret" }],
                "raw": "{\"token\":\"***\"}",
                "n": 3
            })
        );
        // `-` is unreserved: the URL-encoded form is the value itself; this one is not an
        // encoding the scrubber produces, and it is left.
    }

    #[test]
    fn records_and_errors_are_scrubbed_but_not_their_protocol_fields() {
        let s = Scrubber::new(["hunter22"]);
        let mut e = StepError::new("http.status", "500: hunter22")
            .with_details(json!({ "body": "echo HUNTER22", "hunter22": true }));
        s.error(&mut e);
        assert_eq!(e.message, "500: ***");
        assert_eq!(
            e.details.as_deref(),
            Some(&json!({ "body": "echo ***", "***": true }))
        );
        assert!(Scrubber::new([""]).is_empty());
    }
}
