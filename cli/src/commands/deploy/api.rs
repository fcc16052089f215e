//! A small client of the management API for `wf deploy`: JSON in and out, authentication on
//! every attempt, timeouts, and retries of transient failures.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use super::auth::Auth;

/// Attempts per request (the first one included).
const ATTEMPTS: u32 = 4;
/// Delay before the first retry; doubled for each next one.
const BACKOFF: Duration = Duration::from_millis(250);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// How much of a body that is not our error shape is shown.
const BODY_EXCERPT: usize = 500;

pub struct Api {
    http: reqwest::Client,
    /// The API URL without a trailing `/` (a path prefix, e.g. `/lambda-url/api`, is kept).
    base: String,
    auth: Auth,
    timeout: Duration,
}

/// An API call that failed, and what it was.
#[derive(Debug)]
pub struct Failure {
    /// `POST /workflows/x/publish`.
    pub request: String,
    pub kind: FailureKind,
}

#[derive(Debug)]
pub enum FailureKind {
    /// The API answered with an error status.
    Status {
        status: StatusCode,
        /// `{"error": {"code", "message", "details"}}`, when the body has that shape.
        error: Option<ApiErrorBody>,
        /// The body as text (shown when it is not our error shape: e.g. Lambda's own 403).
        body: String,
        attempts: u32,
    },
    /// No answer: connection refused or reset, DNS, TLS, time out.
    Transport {
        message: String,
        timed_out: bool,
        attempts: u32,
    },
    /// The request could not be signed.
    Sign(String),
    /// A success status with a body that is not what the route answers.
    BadAnswer(String),
    /// The request could not be made (encoding, a header value).
    Request(String),
}

/// The API's error body.
#[derive(Debug)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
    pub details: Value,
}

impl Failure {
    /// The API answered `status` with error code `code`.
    pub fn is(&self, status: StatusCode, code: &str) -> bool {
        matches!(&self.kind, FailureKind::Status { status: s, error: Some(e), .. }
            if *s == status && e.code == code)
    }

    /// What went wrong, first line a summary, then the details and a hint (indented).
    pub fn lines(&self, sigv4: bool) -> Vec<String> {
        let mut out = Vec::new();
        match &self.kind {
            FailureKind::Status {
                status,
                error,
                body,
                attempts,
            } => {
                let tries = if *attempts > 1 {
                    format!(" (after {attempts} attempts)")
                } else {
                    String::new()
                };
                match error {
                    Some(e) => {
                        out.push(format!(
                            "{}: {status}: {}: {}{tries}",
                            self.request, e.code, e.message
                        ));
                        out.extend(detail_lines(&e.details));
                    }
                    None => out.push(format!(
                        "{}: {status}{tries}: {}",
                        self.request,
                        excerpt(body)
                    )),
                }
                if let Some(hint) = self.hint(sigv4) {
                    out.push(format!("  hint: {hint}"));
                }
            }
            FailureKind::Transport {
                message, attempts, ..
            } => out.push(format!(
                "{}: no answer after {attempts} attempt(s): {message}",
                self.request
            )),
            FailureKind::Sign(m) | FailureKind::BadAnswer(m) | FailureKind::Request(m) => {
                out.push(format!("{}: {m}", self.request))
            }
        }
        out
    }

    fn hint(&self, sigv4: bool) -> Option<&'static str> {
        let FailureKind::Status { status, error, .. } = &self.kind else {
            return None;
        };
        match *status {
            StatusCode::UNAUTHORIZED => Some(
                "the API wants `Authorization: Bearer <token>`: pass --token or set \
                 WF_API_TOKEN (the SSM parameter in the stack's ApiTokenParameter output)",
            ),
            StatusCode::FORBIDDEN if sigv4 => Some(
                "the function URL refused the signed request: the credentials need \
                 lambda:InvokeFunctionUrl on the api function, and the region (--region) must \
                 be the function's",
            ),
            StatusCode::FORBIDDEN => Some(
                "a function URL with AWS_IAM auth takes SigV4-signed requests: run without \
                 --no-sign and --token, with AWS credentials",
            ),
            StatusCode::NOT_FOUND
                if error
                    .as_ref()
                    .is_none_or(|e| e.message.starts_with("no such route")) =>
            {
                Some("is --api-url the management API (the stack's ApiUrl output)?")
            }
            _ => None,
        }
    }

    /// The failure as JSON, for `--json` reports.
    pub fn to_json(&self, sigv4: bool) -> Value {
        let mut v = json!({ "request": self.request, "message": self.lines(sigv4).join("\n") });
        match &self.kind {
            FailureKind::Status {
                status,
                error,
                attempts,
                ..
            } => {
                v["status"] = status.as_u16().into();
                v["attempts"] = (*attempts).into();
                if let Some(e) = error {
                    v["code"] = e.code.clone().into();
                    v["apiMessage"] = e.message.clone().into();
                    v["details"] = e.details.clone();
                }
            }
            FailureKind::Transport {
                timed_out,
                attempts,
                ..
            } => {
                v["attempts"] = (*attempts).into();
                v["timedOut"] = (*timed_out).into();
            }
            FailureKind::Sign(_) | FailureKind::BadAnswer(_) | FailureKind::Request(_) => {}
        }
        if let Some(h) = self.hint(sigv4) {
            v["hint"] = h.into();
        }
        v
    }
}

/// The details of an API error: each validation problem as `pointer: message` and its hint;
/// anything else as compact JSON.
fn detail_lines(details: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(problems) = details.get("problems").and_then(Value::as_array) {
        for p in problems {
            let field = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
            out.push(format!("  {}: {}", field("pointer"), field("message")));
            if !field("hint").is_empty() {
                out.push(format!("    hint: {}", field("hint")));
            }
        }
    } else if !details.is_null() {
        out.push(format!("  details: {details}"));
    }
    out
}

fn excerpt(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return "(empty body)".into();
    }
    match body.char_indices().nth(BODY_EXCERPT) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None => body.to_string(),
    }
}

pub use wf_core::error::error_chain;

/// One attempt's result.
enum Attempt {
    Done(Result<Value, FailureKind>),
    /// Worth another try, after at least the given delay (`Retry-After`).
    Retry(FailureKind, Option<Duration>),
}

impl Api {
    pub fn new(base: &Url, auth: Auth, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .user_agent(concat!("wf-deploy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))?;
        Ok(Self {
            http,
            base: base.as_str().trim_end_matches('/').to_string(),
            auth,
            timeout,
        })
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        self.call(Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// One API call: a 2xx answer's JSON body (`null` when empty), or why it failed.
    ///
    /// Retries are safe because every call `wf deploy` makes is idempotent by design, so
    /// repeating one whose answer was lost (a time out, a connection reset, a 5xx from a
    /// Lambda front end that may or may not have run the function) cannot do anything twice:
    /// GETs only read; PUT replaces the draft with the same body; publish compares the draft
    /// with the latest version and answers `unchanged` (no second version) when they are
    /// equal; activate names its version and deactivate sets a state; and a repeated create
    /// answers 409 `exists`, which the caller turns into the PUT. So 429, every 5xx and every
    /// failure to get an answer are retried, with a doubling delay (or `Retry-After`).
    async fn call(
        &self, method: Method, path: &str, body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let request = format!("{method} {path}");
        let fail = |kind| Failure {
            request: request.clone(),
            kind,
        };
        let url = format!("{}{path}", self.base);
        let bytes = match body {
            Some(b) => serde_json::to_vec(b)
                .map_err(|e| fail(FailureKind::Request(format!("cannot encode: {e}"))))?,
            None => Vec::new(),
        };
        let mut delay = BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match self
                .attempt(&method, &url, body.is_some(), &bytes, attempt)
                .await
            {
                Attempt::Done(result) => return result.map_err(fail),
                Attempt::Retry(kind, _) if attempt == ATTEMPTS => return Err(fail(kind)),
                Attempt::Retry(kind, retry_after) => {
                    tracing::debug!(%request, attempt, ?kind, "retrying");
                    let wait = retry_after.map_or(delay, |r| r.max(delay));
                    tokio::time::sleep(wait).await;
                    delay *= 2;
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn attempt(
        &self, method: &Method, url: &str, has_body: bool, body: &[u8], attempt: u32,
    ) -> Attempt {
        let mut headers: Vec<(String, String)> = Vec::new();
        if has_body {
            headers.push(("content-type".into(), "application/json".into()));
        }
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                headers.push(("authorization".into(), format!("Bearer {token}")))
            }
            // Signed on every attempt: the signature covers the time (`x-amz-date`).
            Auth::SigV4(signer) => {
                let signed: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                match signer.sign(method.as_str(), url, &signed, body).await {
                    Ok(extra) => headers.extend(extra),
                    Err(e) => return Attempt::Done(Err(FailureKind::Sign(e))),
                }
            }
        }
        let mut req = self.http.request(method.clone(), url).body(body.to_vec());
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            // A request that cannot be built (e.g. a header value) fails the same way again.
            Err(e) if e.is_builder() => {
                return Attempt::Done(Err(FailureKind::Request(format!(
                    "cannot make the request: {}",
                    error_chain(&e)
                ))));
            }
            Err(e) => return Attempt::Retry(self.transport(&e, attempt), None),
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return Attempt::Retry(self.transport(&e, attempt), None),
        };
        if status.is_success() {
            if text.trim().is_empty() {
                return Attempt::Done(Ok(Value::Null));
            }
            return Attempt::Done(serde_json::from_str(&text).map_err(|e| {
                FailureKind::BadAnswer(format!(
                    "{status} with a body that is not JSON ({e}): {}",
                    excerpt(&text)
                ))
            }));
        }
        let kind = FailureKind::Status {
            status,
            error: parse_error(&text),
            body: text,
            attempts: attempt,
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Attempt::Retry(kind, retry_after)
        } else {
            Attempt::Done(Err(kind))
        }
    }

    fn transport(&self, e: &reqwest::Error, attempt: u32) -> FailureKind {
        let timed_out = e.is_timeout();
        let message = if timed_out {
            format!(
                "{} did not answer within {} s",
                self.base,
                self.timeout.as_secs_f64()
            )
        } else {
            format!("cannot reach {}: {}", self.base, error_chain(e))
        };
        FailureKind::Transport {
            message,
            timed_out,
            attempts: attempt,
        }
    }
}

/// `{"error": {"code", "message", "details"}}`, or `None` for any other body.
fn parse_error(text: &str) -> Option<ApiErrorBody> {
    let v: Value = serde_json::from_str(text).ok()?;
    let e = v.get("error")?;
    Some(ApiErrorBody {
        code: e.get("code")?.as_str()?.to_string(),
        message: e.get("message")?.as_str()?.to_string(),
        details: e.get("details").cloned().unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_show_code_message_and_every_problem() {
        let f = Failure {
            request: "POST /workflows/a/publish".into(),
            kind: FailureKind::Status {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                error: parse_error(
                    r#"{"error":{"code":"invalid_workflow","message":"2 problems","details":{"problems":[
                    {"pointer":"/steps/0/next","message":"unknown step","hint":"use an id"},
                    {"pointer":"/id","message":"bad id","hint":""}]}}}"#,
                ),
                body: String::new(),
                attempts: 1,
            },
        };
        assert_eq!(
            f.lines(false),
            vec![
                "POST /workflows/a/publish: 422 Unprocessable Entity: invalid_workflow: 2 problems",
                "  /steps/0/next: unknown step",
                "    hint: use an id",
                "  /id: bad id",
            ]
        );
        assert!(f.is(StatusCode::UNPROCESSABLE_ENTITY, "invalid_workflow"));
        assert!(!f.is(StatusCode::CONFLICT, "invalid_workflow"));
    }

    #[test]
    fn other_bodies_are_shown_cut() {
        assert_eq!(
            parse_error(r#"{"Message":"Forbidden"}"#).map(|e| e.code),
            None
        );
        assert_eq!(parse_error("not json").map(|e| e.code), None);
        let long = "x".repeat(BODY_EXCERPT + 10);
        assert_eq!(excerpt(&long).chars().count(), BODY_EXCERPT + 1);
        assert_eq!(excerpt("  "), "(empty body)");
    }
}
