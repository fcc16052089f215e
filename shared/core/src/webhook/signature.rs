//! Webhook signature verification, one scheme per webhook trigger ([`WebhookScheme`]).
//!
//! | scheme     | headers                                                  | signed content            | key                     |
//! |------------|----------------------------------------------------------|---------------------------|-------------------------|
//! | `standard` | `webhook-id`, `webhook-timestamp`, `webhook-signature`   | `{id}.{timestamp}.{body}` | base64 after `whsec_`   |
//! | `github`   | `x-hub-signature-256: sha256=<hex>`                      | `{body}`                  | the secret's bytes      |
//! | `stripe`   | `stripe-signature: t=<ts>,v1=<hex>[,v1=<hex>…]`          | `{t}.{body}`              | the secret's bytes      |
//! | `slack`    | `x-slack-request-timestamp`, `x-slack-signature: v0=<hex>` | `v0:{timestamp}:{body}` | the secret's bytes      |
//! | `none`     | —                                                        | —                         | —                       |
//!
//! All are HMAC-SHA256. Rules common to every scheme:
//! * Several secrets may be configured at once ([`Secrets`]): a request signed with any of them
//!   passes, which is how a secret is rotated without dropping deliveries.
//! * Where the scheme signs a timestamp (standard, stripe, slack), a timestamp more than
//!   [`TOLERANCE_SECS`] away from now, in the past or the future, is a replay. The signature is
//!   checked first, so `stale_timestamp` counts only authentic but old requests, and a forgery is
//!   always a `mismatch`. GitHub signs no timestamp: there, replays are stopped by the delivery id
//!   through [`idempotency_key`].
//! * Comparisons of signatures are constant-time ([`subtle::ConstantTimeEq`]).
//! * Error messages are built from fixed text, header names and numbers only: never a secret,
//!   never a header value. They are safe to return to the caller and to log.
//!
//! Crates: the `standard` scheme uses the `standardwebhooks` crate (the reference implementation
//! published by the Standard Webhooks project) for secret decoding and signing; see
//! `verify_standard` for why its own `verify` is not called. GitHub, Stripe and Slack have no
//! small, well-kept verification crate (their SDKs are large API clients), and their schemes are
//! a few lines of `hmac` + `sha2` + `hex`, checked against each provider's published example.

use std::fmt;

use crate::model::WebhookScheme;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How far (seconds) a signed timestamp may be from now, either way, before the request is
/// treated as a replay: 5 minutes, as every one of these providers recommends.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The request header that names an idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// How long an idempotency key (or a scheme's message id) keeps a second execution from starting.
pub const IDEMPOTENCY_WINDOW_SECS: i64 = 24 * 60 * 60;

/// Keys longer than this many bytes are replaced by `sha256:<hex>` of themselves, so that a
/// stored dedupe key stays small whatever the sender puts in the header.
const MAX_KEY_LEN: usize = 200;

/// Header names (lowercase, as HTTP/2 requires and as [`sign`] returns them).
pub mod header {
    pub const WEBHOOK_ID: &str = "webhook-id";
    pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
    pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
    /// Svix (the origin of Standard Webhooks) sends the same three headers under `svix-`.
    pub const SVIX_ID: &str = "svix-id";
    pub const SVIX_TIMESTAMP: &str = "svix-timestamp";
    pub const SVIX_SIGNATURE: &str = "svix-signature";
    pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
    pub const GITHUB_DELIVERY: &str = "x-github-delivery";
    pub const STRIPE_SIGNATURE: &str = "stripe-signature";
    pub const SLACK_SIGNATURE: &str = "x-slack-signature";
    pub const SLACK_TIMESTAMP: &str = "x-slack-request-timestamp";
}

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// The secrets a webhook accepts: one normally, several while a secret is being rotated.
///
/// `Debug` shows how many there are, never their values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    values: Vec<String>,
    /// Where they came from, for the "no secret configured" message (never a value).
    source: Option<String>,
}

impl Secrets {
    /// Secrets given one by one (from the API or a secret store), each used verbatim; empty
    /// ones are dropped.
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut secrets = Secrets::default();
        for value in values {
            secrets.push(value.into());
        }
        secrets
    }

    /// Parses a list such as an environment variable holds: values separated by commas and/or
    /// whitespace (`"whsec_old whsec_new"`), so that two can be accepted during a rotation.
    ///
    /// A GitHub secret may itself contain spaces (GitHub's own example is
    /// `It's a Secret to Everybody`), so when the text has separators the whole trimmed text is
    /// accepted as one more candidate after the parts. That adds nothing an attacker could use:
    /// it is a key only someone who knows every part could sign with.
    pub fn parse(list: &str) -> Self {
        let mut secrets = Secrets::default();
        let whole = list.trim();
        for part in whole.split(|c: char| c == ',' || c.is_whitespace()) {
            secrets.push(part.to_owned());
        }
        if secrets.values.len() > 1 || secrets.values.first().is_some_and(|v| v != whole) {
            secrets.push(whole.to_owned());
        }
        secrets
    }

    /// Names where these secrets came from (e.g. "environment variable `HOOK_SECRET`"); shown
    /// when none is configured. Never pass a value here.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// How many candidate secrets there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when no secret is configured (every signed scheme then refuses every request).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn push(&mut self, value: String) {
        let value = value.trim();
        if !value.is_empty() && !self.values.iter().any(|v| v == value) {
            self.values.push(value.to_owned());
        }
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(String::as_str)
    }

    fn missing(&self) -> SignatureError {
        SignatureError::NoSecretConfigured(match &self.source {
            Some(source) => format!("{source} is unset or empty"),
            None => "the webhook trigger has no secret (set secretEnv)".to_owned(),
        })
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("count", &self.values.len())
            .field("source", &self.source)
            .finish()
    }
}

/// The secrets named `var` in `source` (the environment locally, SSM on AWS; see
/// [`Secrets::parse`] for the list syntax); none when it is unset or empty.
pub fn secrets_from_source(source: &dyn crate::ports::SecretSource, var: &str) -> Secrets {
    let secrets = match source.get(var) {
        Some(list) => Secrets::parse(&list),
        None => Secrets::default(),
    };
    secrets.with_source(source.describe(var))
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a request was refused. The messages are safe to return to the caller: fixed text, header
/// names and numbers, never a secret nor a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header the scheme requires is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header (or the body, where the scheme needs it) cannot be read.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// The signature is valid but its timestamp is more than [`TOLERANCE_SECS`] from now.
    #[error(
        "timestamp {timestamp} is {} s {} the server's time; more than {TOLERANCE_SECS} s \
         is treated as a replay",
        now.saturating_sub(*timestamp).unsigned_abs(),
        if *timestamp <= *now { "behind" } else { "ahead of" }
    )]
    StaleTimestamp { timestamp: i64, now: i64 },
    /// No signature in the request was made with any configured secret over this body.
    #[error("signature does not match the payload")]
    Mismatch,
    /// Server-side configuration: the scheme needs a secret and none is set.
    #[error("no signing secret is configured: {0}")]
    NoSecretConfigured(String),
    /// Server-side configuration: no configured secret can be used with this scheme.
    #[error("the configured signing secret is unusable: {0}")]
    InvalidSecret(&'static str),
}

/// Every [`SignatureError::reason`], in a fixed order (for metrics).
pub const REASONS: [&str; 6] = [
    "missing_header",
    "malformed",
    "stale_timestamp",
    "mismatch",
    "no_secret",
    "invalid_secret",
];

impl SignatureError {
    /// A short, stable code to count failures by (one of [`REASONS`]).
    pub fn reason(&self) -> &'static str {
        REASONS[self.reason_index()]
    }

    fn reason_index(&self) -> usize {
        match self {
            SignatureError::MissingHeader(_) => 0,
            SignatureError::Malformed(_) => 1,
            SignatureError::StaleTimestamp { .. } => 2,
            SignatureError::Mismatch => 3,
            SignatureError::NoSecretConfigured(_) => 4,
            SignatureError::InvalidSecret(_) => 5,
        }
    }

    /// True when the fault is the server's configuration, not the request.
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            SignatureError::NoSecretConfigured(_) | SignatureError::InvalidSecret(_)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// What a verified request tells about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// The scheme's id for this message, stable across the sender's retries: standard
    /// `webhook-id`; github `X-GitHub-Delivery`; stripe the event `id` of a JSON body; slack the
    /// `event_id` of an Events API body. `None` when there is none.
    pub message_id: Option<String>,
}

/// Verifies a request's signature under `scheme`.
///
/// `body` must be the raw bytes as received; `now_unix_secs` is the current time (a parameter so
/// that callers and tests control the clock). Scheme `none` accepts every request.
pub fn verify(
    scheme: WebhookScheme, secrets: &Secrets, headers: &HeaderMap, body: &[u8], now_unix_secs: i64,
) -> Result<Verified, SignatureError> {
    if scheme == WebhookScheme::None {
        return Ok(Verified::default());
    }
    if secrets.is_empty() {
        return Err(secrets.missing());
    }
    match scheme {
        WebhookScheme::Standard => verify_standard(secrets, headers, body, now_unix_secs),
        WebhookScheme::Github => verify_github(secrets, headers, body),
        WebhookScheme::Stripe => verify_stripe(secrets, headers, body, now_unix_secs),
        WebhookScheme::Slack => verify_slack(secrets, headers, body, now_unix_secs),
        WebhookScheme::None => unreachable!("handled above"),
    }
}

/// Standard Webhooks (<https://www.standardwebhooks.com/>): HMAC-SHA256 over
/// `{webhook-id}.{webhook-timestamp}.{body}` with the base64-decoded secret (after `whsec_`),
/// base64 in `webhook-signature` as space-separated `v1,<sig>` entries (several during a
/// rotation on the sender's side; other versions such as `v1a` are ignored).
///
/// The `standardwebhooks` crate decodes the secret and signs (so the message format is the
/// reference implementation's). Its `Webhook::verify` is not used because it reads the system
/// clock itself (no way to pass `now`, so the spec's published vector, dated 2021, could never
/// verify, and the tolerance could not be tested either way), it folds stale timestamps and bad
/// secrets into errors we could not tell apart without matching on its messages, and it takes one
/// secret, not a rotation set. The comparison done here is constant-time like the crate's.
fn verify_standard(
    secrets: &Secrets, headers: &HeaderMap, body: &[u8], now: i64,
) -> Result<Verified, SignatureError> {
    use header::*;
    // The Svix-branded names are accepted when none of the unbranded ones is present.
    let unbranded = [WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE]
        .iter()
        .any(|h| headers.contains_key(*h));
    let (id_h, ts_h, sig_h) = if unbranded || !headers.contains_key(SVIX_SIGNATURE) {
        (WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE)
    } else {
        (SVIX_ID, SVIX_TIMESTAMP, SVIX_SIGNATURE)
    };
    let id = header_str(headers, id_h)?;
    let ts_raw = header_str(headers, ts_h)?;
    let sig = header_str(headers, sig_h)?;
    let timestamp = parse_timestamp(ts_raw, ts_h)?;
    if id.is_empty() {
        return Err(SignatureError::Malformed(format!("{id_h} is empty")));
    }
    let candidates: Vec<&str> = sig
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .map(|(_, s)| s)
        .collect();
    if candidates.is_empty() {
        return Err(SignatureError::Malformed(format!(
            "{sig_h} has no `v1,<base64>` entry"
        )));
    }
    // Standard Webhooks payloads are JSON; the crate signs text.
    if std::str::from_utf8(body).is_err() {
        return Err(SignatureError::Malformed(
            "the body is not UTF-8".to_owned(),
        ));
    }

    let mut usable = false;
    for secret in secrets.iter() {
        let Ok(webhook) = standardwebhooks::Webhook::new(secret) else {
            continue; // not base64: unusable for this scheme (reported below if none is)
        };
        usable = true;
        let signed = webhook
            .sign(id, timestamp, body)
            .map_err(|_| SignatureError::Malformed("the body is not UTF-8".to_owned()))?;
        let expected = signed.strip_prefix("v1,").unwrap_or(&signed);
        if candidates
            .iter()
            .any(|c| ct_eq(c.as_bytes(), expected.as_bytes()))
        {
            check_timestamp(timestamp, now)?;
            return Ok(Verified {
                message_id: Some(id.to_owned()),
            });
        }
    }
    if usable {
        Err(SignatureError::Mismatch)
    } else {
        Err(SignatureError::InvalidSecret(
            "a Standard Webhooks secret is base64, optionally prefixed with `whsec_`",
        ))
    }
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`. GitHub signs no
/// timestamp; `X-GitHub-Delivery` (a GUID, the same on redelivery) is the message id. The legacy
/// SHA-1 `X-Hub-Signature` is not accepted.
fn verify_github(
    secrets: &Secrets, headers: &HeaderMap, body: &[u8],
) -> Result<Verified, SignatureError> {
    let value = header_str(headers, header::GITHUB_SIGNATURE)?;
    let provided = prefixed_digest(value, header::GITHUB_SIGNATURE, "sha256=")?;
    if !secrets
        .iter()
        .any(|s| ct_eq(&hmac_sha256(s, &[body]), &provided))
    {
        return Err(SignatureError::Mismatch);
    }
    let message_id = headers
        .get(header::GITHUB_DELIVERY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    Ok(Verified { message_id })
}

/// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]`; each `v1` is
/// hex HMAC-SHA256 over `{t}.{body}` with the endpoint secret's bytes as the key (`whsec_…` is
/// used verbatim, not decoded). Several `v1` entries appear while Stripe rolls a secret; one
/// matching is enough. The event `id` of the JSON body is the message id.
fn verify_stripe(
    secrets: &Secrets, headers: &HeaderMap, body: &[u8], now: i64,
) -> Result<Verified, SignatureError> {
    let h = header::STRIPE_SIGNATURE;
    let value = header_str(headers, h)?;
    let mut t: Option<&str> = None;
    let mut candidates = Vec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" if t.is_some() => {
                return Err(SignatureError::Malformed(format!(
                    "{h} has more than one t="
                )));
            }
            "t" => t = Some(val),
            // An entry that is not a hex digest can match nothing: skipped, as Stripe's libraries do.
            "v1" => candidates.extend(decode_hex_digest(val)),
            _ => {}
        }
    }
    let t = t.ok_or_else(|| SignatureError::Malformed(format!("{h} has no t=<timestamp>")))?;
    let timestamp = parse_timestamp(t, h)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed(format!(
            "{h} has no v1=<hex digest> signature"
        )));
    }
    let matched = secrets.iter().any(|s| {
        let expected = hmac_sha256(s, &[t.as_bytes(), b".", body]);
        candidates.iter().any(|c| ct_eq(&expected, c))
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    check_timestamp(timestamp, now)?;
    Ok(Verified {
        message_id: json_string_field(body, "id"),
    })
}

/// Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:{ts}:{body}")>` with
/// `X-Slack-Request-Timestamp: {ts}`. An Events API body's `event_id` (the same on Slack's
/// retries) is the message id; slash commands and interactions have none.
fn verify_slack(
    secrets: &Secrets, headers: &HeaderMap, body: &[u8], now: i64,
) -> Result<Verified, SignatureError> {
    let ts_raw = header_str(headers, header::SLACK_TIMESTAMP)?;
    let value = header_str(headers, header::SLACK_SIGNATURE)?;
    let timestamp = parse_timestamp(ts_raw, header::SLACK_TIMESTAMP)?;
    let provided = prefixed_digest(value, header::SLACK_SIGNATURE, "v0=")?;
    let matched = secrets.iter().any(|s| {
        let expected = hmac_sha256(s, &[b"v0:", ts_raw.as_bytes(), b":", body]);
        ct_eq(&expected, &provided)
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    check_timestamp(timestamp, now)?;
    Ok(Verified {
        message_id: json_string_field(body, "event_id"),
    })
}

/// The challenge to answer when `body` is Slack's Events API `url_verification` request
/// (`{"type":"url_verification","challenge":"…","token":"…"}`); `None` for anything else.
///
/// Slack signs this request like any other: call it after [`verify`] succeeded, then answer
/// `200` with the challenge (as `text/plain`, or JSON `{"challenge": …}`) and start no execution.
pub fn slack_url_verification(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("type")?.as_str()? != "url_verification" {
        return None;
    }
    value.get("challenge")?.as_str().map(str::to_owned)
}

/// The key that lets at most one execution start per delivery: the `Idempotency-Key` header when
/// present and non-empty, else the scheme's message id. Keys longer than 200 bytes become
/// `sha256:<hex>` of themselves. `None`: nothing to deduplicate on.
pub fn idempotency_key(headers: &HeaderMap, verified: &Verified) -> Option<String> {
    let from_header = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let key = from_header.or(verified.message_id.as_deref().map(str::trim))?;
    if key.is_empty() {
        None
    } else if key.len() > MAX_KEY_LEN {
        Some(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(key.as_bytes()))
        ))
    } else {
        Some(key.to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// Signing (tests, and users' tooling)
// ---------------------------------------------------------------------------------------------

/// Headers that make a request with `body` pass [`verify`] under `scheme` with `secret`, at
/// `timestamp` (Unix seconds). `msg_id` becomes `webhook-id` (standard) or `x-github-delivery`
/// (github, when not empty); stripe and slack take their ids from the body. Scheme `none` gives
/// no headers. Fails for a standard secret that is not base64, or a standard body that is not
/// UTF-8.
pub fn sign(
    scheme: WebhookScheme, secret: &str, body: &[u8], timestamp: i64, msg_id: &str,
) -> Result<Vec<(&'static str, String)>, SignatureError> {
    Ok(match scheme {
        WebhookScheme::Standard => {
            let webhook = standardwebhooks::Webhook::new(secret).map_err(|_| {
                SignatureError::InvalidSecret(
                    "a Standard Webhooks secret is base64, optionally prefixed with `whsec_`",
                )
            })?;
            let signature = webhook
                .sign(msg_id, timestamp, body)
                .map_err(|_| SignatureError::Malformed("the body is not UTF-8".to_owned()))?;
            vec![
                (header::WEBHOOK_ID, msg_id.to_owned()),
                (header::WEBHOOK_TIMESTAMP, timestamp.to_string()),
                (header::WEBHOOK_SIGNATURE, signature),
            ]
        }
        WebhookScheme::Github => {
            let mut headers = vec![(
                header::GITHUB_SIGNATURE,
                format!("sha256={}", hex::encode(hmac_sha256(secret, &[body]))),
            )];
            if !msg_id.is_empty() {
                headers.push((header::GITHUB_DELIVERY, msg_id.to_owned()));
            }
            headers
        }
        WebhookScheme::Stripe => {
            let t = timestamp.to_string();
            let mac = hmac_sha256(secret, &[t.as_bytes(), b".", body]);
            vec![(
                header::STRIPE_SIGNATURE,
                format!("t={t},v1={}", hex::encode(mac)),
            )]
        }
        WebhookScheme::Slack => {
            let t = timestamp.to_string();
            let mac = hmac_sha256(secret, &[b"v0:", t.as_bytes(), b":", body]);
            vec![
                (header::SLACK_TIMESTAMP, t),
                (header::SLACK_SIGNATURE, format!("v0={}", hex::encode(mac))),
            ]
        }
        WebhookScheme::None => Vec::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn header_str<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, SignatureError> {
    headers
        .get(name)
        .ok_or(SignatureError::MissingHeader(name))?
        .to_str()
        .map(str::trim)
        .map_err(|_| SignatureError::Malformed(format!("{name} is not visible ASCII")))
}

/// Unix seconds as plain decimal digits (no sign, no spaces: the text is part of what is
/// signed, so only one spelling is accepted).
fn parse_timestamp(raw: &str, name: &'static str) -> Result<i64, SignatureError> {
    if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed(format!(
            "{name} must be Unix seconds as decimal digits"
        )));
    }
    raw.parse()
        .map_err(|_| SignatureError::Malformed(format!("{name} is out of range")))
}

fn check_timestamp(timestamp: i64, now: i64) -> Result<(), SignatureError> {
    if now.saturating_sub(timestamp).unsigned_abs() > TOLERANCE_SECS.unsigned_abs() {
        Err(SignatureError::StaleTimestamp { timestamp, now })
    } else {
        Ok(())
    }
}

fn hmac_sha256(secret: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The digest in the value of signature header `name`, which must be `<prefix><64 hex digits>`
/// (GitHub's `sha256=`, Slack's `v0=`).
fn prefixed_digest(value: &str, name: &str, prefix: &str) -> Result<[u8; 32], SignatureError> {
    value
        .strip_prefix(prefix)
        .and_then(decode_hex_digest)
        .ok_or_else(|| {
            SignatureError::Malformed(format!("{name} must be `{prefix}` and 64 hex digits"))
        })
}

fn decode_hex_digest(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).ok()?;
    Some(out)
}

/// Constant-time equality (the lengths, which are public, may be compared first).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn json_string_field(body: &[u8], field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value
        .get(field)?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}
