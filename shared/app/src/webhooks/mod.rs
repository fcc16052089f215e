//! Incoming webhooks (`POST /hooks/{workflowId}/{token}`): the checks that come before an
//! execution starts. Pure functions over headers and the raw body; the HTTP handler does the I/O.
//!
//! How the handler uses them, in order:
//! 1. Look up the workflow and its webhook trigger (a wrong token is a 404, before any of this).
//! 2. [`secrets_from_source`] with the trigger's `secretEnv` (or [`Secrets::new`] with secrets
//!    kept by the API), then [`verify`] with the trigger's scheme, the headers, the **raw** body
//!    bytes (before any JSON parsing: signatures are over the exact bytes) and the current Unix
//!    time. On `Err(e)`: refuse (401, or 503 `not_configured` for a server-side configuration
//!    problem, [`SignatureError::is_config_error`]) with `e.to_string()` as the message, count
//!    `e.reason()` at `/metrics`, and log at most the reason and the message: neither ever
//!    contains a secret. (`App::receive_webhook` does all of this.)
//! 3. For the Slack scheme, [`slack_url_verification`] on the verified body: when it gives a
//!    challenge, answer `200` with it and start nothing.
//! 4. [`idempotency_key`]: the `Idempotency-Key` header, else the scheme's message id; the
//!    trigger stores `DEDUPE#<workflow>#<key>` for [`IDEMPOTENCY_WINDOW_SECS`] and answers a
//!    repeat with the first execution.

// The checks are pure, so they live in wf-core (`wf_core::webhook::signature`, where the fuzz
// target `signature_verify` reaches them without the AWS SDK); re-exported here under their old
// paths.
pub use wf_core::webhook::signature;

pub use signature::{
    IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_WINDOW_SECS, REASONS, Secrets, SignatureError,
    TOLERANCE_SECS, Verified, idempotency_key, secrets_from_source, sign, slack_url_verification,
    verify,
};
