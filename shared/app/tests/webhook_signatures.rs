//! Webhook signature verification: every scheme against its provider's published example, then
//! the failure cases (tampered body, wrong secret, replays, rotation, missing and malformed
//! headers), and that no error message ever carries a secret.

use http::{HeaderMap, HeaderName, HeaderValue};
use wf_app::webhooks::signature::header;
use wf_app::webhooks::{
    Secrets, SignatureError, TOLERANCE_SECS, Verified, idempotency_key, secrets_from_source, sign,
    slack_url_verification, verify,
};
use wf_core::model::WebhookScheme;

// ----- published example vectors ---------------------------------------------------------------

/// Standard Webhooks specification's test vector.
const STD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STD_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const STD_TS: i64 = 1614265330;
const STD_BODY: &[u8] = br#"{"test": 2432232314}"#;
const STD_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

/// GitHub's documentation example ("Validating webhook deliveries").
const GH_SECRET: &str = "It's a Secret to Everybody";
const GH_BODY: &[u8] = b"Hello, World!";
const GH_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

/// Slack's documentation example ("Verifying requests from Slack").
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const SLACK_TS: i64 = 1531420618;
const SLACK_BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

/// Stripe publishes the scheme, not a vector: this one was computed independently (Python's
/// `hmac`) as hex(HMAC-SHA256(secret, "{t}.{body}")), with the secret's bytes as the key.
const STRIPE_SECRET: &str = "whsec_test_secret";
const STRIPE_OLD_SECRET: &str = "whsec_old_secret";
const STRIPE_TS: i64 = 1492774577;
const STRIPE_BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
const STRIPE_V1: &str = "88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a";
const STRIPE_V1_OLD: &str = "aed64a3c4c277a17c2a83b486f08da11442d772bc6e44361371cabce6d56f8af";

/// A second Standard Webhooks secret (the `standardwebhooks` crate's own test secret).
const STD_OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

// ----- helpers ----------------------------------------------------------------------------------

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn signed(scheme: WebhookScheme, secret: &str, body: &[u8], ts: i64, id: &str) -> HeaderMap {
    let pairs = sign(scheme, secret, body, ts, id).expect("signs");
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    map
}

fn one(secret: &str) -> Secrets {
    Secrets::new([secret])
}

fn std_headers(sig: &str) -> HeaderMap {
    headers(&[
        ("webhook-id", STD_MSG_ID),
        ("webhook-timestamp", &STD_TS.to_string()),
        ("webhook-signature", sig),
    ])
}

fn slack_headers(sig: &str) -> HeaderMap {
    headers(&[
        ("X-Slack-Request-Timestamp", &SLACK_TS.to_string()),
        ("X-Slack-Signature", sig),
    ])
}

fn stripe_headers(value: &str) -> HeaderMap {
    headers(&[("Stripe-Signature", value)])
}

/// Asserts an error's texts (Display and Debug) carry none of the secrets.
fn assert_no_secret(err: &SignatureError, secrets: &[&str]) {
    let texts = [err.to_string(), format!("{err:?}")];
    for text in &texts {
        for secret in secrets {
            assert!(!text.contains(secret), "{text:?} contains a secret");
        }
    }
}

const ALL_SECRETS: &[&str] = &[
    STD_SECRET,
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    STD_OTHER_SECRET,
    GH_SECRET,
    SLACK_SECRET,
    STRIPE_SECRET,
    STRIPE_OLD_SECRET,
];

/// Verifies, expecting an error, and checks it is counted under `reason` with no secret in it.
fn refused(
    scheme: WebhookScheme, secrets: &Secrets, headers: &HeaderMap, body: &[u8], now: i64,
    reason: &str,
) -> SignatureError {
    let err = verify(scheme, secrets, headers, body, now).expect_err("must be refused");
    assert_eq!(err.reason(), reason, "{err}");
    assert_no_secret(&err, ALL_SECRETS);
    if !err.is_config_error() {
        assert!(!err.is_config_error(), "a request fault (401)");
    }
    err
}

// ----- Standard Webhooks ------------------------------------------------------------------------

#[test]
fn standard_spec_vector_verifies() {
    let v = verify(
        WebhookScheme::Standard,
        &one(STD_SECRET),
        &std_headers(STD_SIG),
        STD_BODY,
        STD_TS,
    )
    .unwrap();
    assert_eq!(v.message_id.as_deref(), Some(STD_MSG_ID));
}

#[test]
fn standard_sign_reproduces_spec_vector() {
    let pairs = sign(
        WebhookScheme::Standard,
        STD_SECRET,
        STD_BODY,
        STD_TS,
        STD_MSG_ID,
    )
    .unwrap();
    assert_eq!(
        pairs,
        vec![
            ("webhook-id", STD_MSG_ID.to_owned()),
            ("webhook-timestamp", STD_TS.to_string()),
            ("webhook-signature", STD_SIG.to_owned()),
        ]
    );
}

#[test]
fn standard_secret_without_prefix_is_the_same_key() {
    let secrets = one("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    verify(
        WebhookScheme::Standard,
        &secrets,
        &std_headers(STD_SIG),
        STD_BODY,
        STD_TS,
    )
    .unwrap();
}

#[test]
fn standard_default_scheme_is_standard() {
    assert_eq!(WebhookScheme::default(), WebhookScheme::Standard);
}

#[test]
fn standard_tampered_body_is_a_mismatch() {
    let err = refused(
        WebhookScheme::Standard,
        &one(STD_SECRET),
        &std_headers(STD_SIG),
        br#"{"test": 2432232315}"#,
        STD_TS,
        "mismatch",
    );
    assert_eq!(err, SignatureError::Mismatch);
}

#[test]
fn standard_tampered_id_or_timestamp_is_a_mismatch() {
    let mut h = std_headers(STD_SIG);
    h.insert("webhook-id", HeaderValue::from_static("msg_other"));
    refused(
        WebhookScheme::Standard,
        &one(STD_SECRET),
        &h,
        STD_BODY,
        STD_TS,
        "mismatch",
    );

    let mut h = std_headers(STD_SIG);
    h.insert("webhook-timestamp", HeaderValue::from_static("1614265331"));
    refused(
        WebhookScheme::Standard,
        &one(STD_SECRET),
        &h,
        STD_BODY,
        STD_TS,
        "mismatch",
    );
}

#[test]
fn standard_wrong_secret_is_a_mismatch() {
    refused(
        WebhookScheme::Standard,
        &one(STD_OTHER_SECRET),
        &std_headers(STD_SIG),
        STD_BODY,
        STD_TS,
        "mismatch",
    );
}

#[test]
fn standard_stale_timestamps_are_replays() {
    let secrets = one(STD_SECRET);
    let h = std_headers(STD_SIG);
    // Exactly at the tolerance, either way: accepted.
    for now in [STD_TS + TOLERANCE_SECS, STD_TS - TOLERANCE_SECS] {
        verify(WebhookScheme::Standard, &secrets, &h, STD_BODY, now).unwrap();
    }
    // One second beyond, in the past and in the future: a replay.
    let err = refused(
        WebhookScheme::Standard,
        &secrets,
        &h,
        STD_BODY,
        STD_TS + TOLERANCE_SECS + 1,
        "stale_timestamp",
    );
    assert_eq!(
        err,
        SignatureError::StaleTimestamp {
            timestamp: STD_TS,
            now: STD_TS + 301
        }
    );
    assert!(err.to_string().contains("301 s behind"), "{err}");
    let err = refused(
        WebhookScheme::Standard,
        &secrets,
        &h,
        STD_BODY,
        STD_TS - TOLERANCE_SECS - 1,
        "stale_timestamp",
    );
    assert!(err.to_string().contains("301 s ahead of"), "{err}");
}

#[test]
fn standard_forged_old_request_is_a_mismatch_not_a_replay() {
    // The signature is checked before the timestamp: a forgery never counts as a replay.
    refused(
        WebhookScheme::Standard,
        &one(STD_OTHER_SECRET),
        &std_headers(STD_SIG),
        STD_BODY,
        STD_TS + 10_000,
        "mismatch",
    );
}

#[test]
fn standard_rotation_two_configured_secrets() {
    // Signed with the second of two configured secrets.
    let h = signed(
        WebhookScheme::Standard,
        STD_OTHER_SECRET,
        STD_BODY,
        STD_TS,
        STD_MSG_ID,
    );
    let secrets = Secrets::new([STD_SECRET, STD_OTHER_SECRET]);
    verify(WebhookScheme::Standard, &secrets, &h, STD_BODY, STD_TS).unwrap();
    // With only the first, refused.
    refused(
        WebhookScheme::Standard,
        &one(STD_SECRET),
        &h,
        STD_BODY,
        STD_TS,
        "mismatch",
    );
}

#[test]
fn standard_header_with_several_signatures_one_matching() {
    let sig = format!(
        "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1a,bm90IGFuIGVkMjU1MTkgc2lnbmF0dXJl \
         {STD_SIG} v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE="
    );
    verify(
        WebhookScheme::Standard,
        &one(STD_SECRET),
        &std_headers(&sig),
        STD_BODY,
        STD_TS,
    )
    .unwrap();

    let none_match = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= \
                      v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=";
    refused(
        WebhookScheme::Standard,
        &one(STD_SECRET),
        &std_headers(none_match),
        STD_BODY,
        STD_TS,
        "mismatch",
    );
}

#[test]
fn standard_missing_headers() {
    let secrets = one(STD_SECRET);
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut h = std_headers(STD_SIG);
        h.remove(missing);
        let err = refused(
            WebhookScheme::Standard,
            &secrets,
            &h,
            STD_BODY,
            STD_TS,
            "missing_header",
        );
        assert_eq!(err, SignatureError::MissingHeader(missing));
        assert_eq!(err.to_string(), format!("missing header {missing}"));
    }
    refused(
        WebhookScheme::Standard,
        &secrets,
        &HeaderMap::new(),
        STD_BODY,
        STD_TS,
        "missing_header",
    );
}

#[test]
fn standard_malformed_headers() {
    let secrets = one(STD_SECRET);
    for bad_sig in [
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", // no version
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", // unknown version only
        "",
    ] {
        refused(
            WebhookScheme::Standard,
            &secrets,
            &std_headers(bad_sig),
            STD_BODY,
            STD_TS,
            "malformed",
        );
    }
    // A truncated v1 signature is well-formed but cannot match.
    refused(
        WebhookScheme::Standard,
        &secrets,
        &std_headers("v1,"),
        STD_BODY,
        STD_TS,
        "mismatch",
    );
    refused(
        WebhookScheme::Standard,
        &secrets,
        &std_headers(&STD_SIG[..20]),
        STD_BODY,
        STD_TS,
        "mismatch",
    );
    for bad_ts in [
        "yesterday",
        "-1614265330",
        "+1614265330",
        "1614265330.5",
        "",
    ] {
        let mut h = std_headers(STD_SIG);
        h.insert("webhook-timestamp", HeaderValue::from_str(bad_ts).unwrap());
        refused(
            WebhookScheme::Standard,
            &secrets,
            &h,
            STD_BODY,
            STD_TS,
            "malformed",
        );
    }
    let mut h = std_headers(STD_SIG);
    h.insert(
        "webhook-signature",
        HeaderValue::from_bytes(b"v1,\xff\xfe").unwrap(),
    );
    refused(
        WebhookScheme::Standard,
        &secrets,
        &h,
        STD_BODY,
        STD_TS,
        "malformed",
    );
}

#[test]
fn standard_svix_branded_headers_are_accepted() {
    let h = headers(&[
        ("svix-id", STD_MSG_ID),
        ("svix-timestamp", &STD_TS.to_string()),
        ("svix-signature", STD_SIG),
    ]);
    let v = verify(
        WebhookScheme::Standard,
        &one(STD_SECRET),
        &h,
        STD_BODY,
        STD_TS,
    )
    .unwrap();
    assert_eq!(v.message_id.as_deref(), Some(STD_MSG_ID));
}

#[test]
fn standard_secret_that_is_not_base64_is_a_config_error() {
    let err = refused(
        WebhookScheme::Standard,
        &one("whsec_not base64!!"),
        &std_headers(STD_SIG),
        STD_BODY,
        STD_TS,
        "invalid_secret",
    );
    assert!(err.is_config_error());
    assert!(err.is_config_error(), "a configuration fault (503)");
    assert!(!err.to_string().contains("not base64!!"));
    // An unusable secret next to a good one does not get in the way.
    let secrets = Secrets::new(["whsec_not base64!!", STD_SECRET]);
    verify(
        WebhookScheme::Standard,
        &secrets,
        &std_headers(STD_SIG),
        STD_BODY,
        STD_TS,
    )
    .unwrap();
    assert!(
        sign(
            WebhookScheme::Standard,
            "not base64!!",
            STD_BODY,
            STD_TS,
            "m"
        )
        .is_err()
    );
}

// ----- GitHub -----------------------------------------------------------------------------------

fn gh_headers(sig: &str) -> HeaderMap {
    headers(&[
        ("X-Hub-Signature-256", sig),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-GitHub-Event", "push"),
    ])
}

#[test]
fn github_docs_vector_verifies() {
    let v = verify(
        WebhookScheme::Github,
        &one(GH_SECRET),
        &gh_headers(GH_SIG),
        GH_BODY,
        0,
    )
    .unwrap();
    assert_eq!(
        v.message_id.as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    let pairs = sign(WebhookScheme::Github, GH_SECRET, GH_BODY, 0, "").unwrap();
    assert_eq!(pairs, vec![("x-hub-signature-256", GH_SIG.to_owned())]);
}

#[test]
fn github_docs_secret_with_spaces_works_from_a_list() {
    // The docs secret has spaces, which also separate rotated secrets in a list: the whole text
    // is still a candidate.
    let secrets = Secrets::parse(GH_SECRET);
    verify(
        WebhookScheme::Github,
        &secrets,
        &gh_headers(GH_SIG),
        GH_BODY,
        0,
    )
    .unwrap();
}

#[test]
fn github_no_delivery_header_means_no_message_id() {
    let h = headers(&[("X-Hub-Signature-256", GH_SIG)]);
    let v = verify(WebhookScheme::Github, &one(GH_SECRET), &h, GH_BODY, 0).unwrap();
    assert_eq!(v, Verified { message_id: None });
}

#[test]
fn github_tampered_body_and_wrong_secret() {
    refused(
        WebhookScheme::Github,
        &one(GH_SECRET),
        &gh_headers(GH_SIG),
        b"Hello, World?",
        0,
        "mismatch",
    );
    refused(
        WebhookScheme::Github,
        &one("It's a Secret to Nobody"),
        &gh_headers(GH_SIG),
        GH_BODY,
        0,
        "mismatch",
    );
}

#[test]
fn github_has_no_timestamp_so_any_time_passes() {
    // GitHub signs no timestamp; replays are stopped by X-GitHub-Delivery (idempotency).
    for now in [0, 1_600_000_000, i64::MAX] {
        verify(
            WebhookScheme::Github,
            &one(GH_SECRET),
            &gh_headers(GH_SIG),
            GH_BODY,
            now,
        )
        .unwrap();
    }
}

#[test]
fn github_rotation_two_configured_secrets() {
    let h = signed(WebhookScheme::Github, "new-secret-7d1f", GH_BODY, 0, "d-1");
    let secrets = Secrets::new([GH_SECRET, "new-secret-7d1f"]);
    let v = verify(WebhookScheme::Github, &secrets, &h, GH_BODY, 0).unwrap();
    assert_eq!(v.message_id.as_deref(), Some("d-1"));
    refused(
        WebhookScheme::Github,
        &one(GH_SECRET),
        &h,
        GH_BODY,
        0,
        "mismatch",
    );
}

#[test]
fn github_missing_and_malformed_header() {
    let secrets = one(GH_SECRET);
    // The legacy SHA-1 header alone is not enough.
    let h = headers(&[(
        "X-Hub-Signature",
        "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6",
    )]);
    let err = refused(
        WebhookScheme::Github,
        &secrets,
        &h,
        GH_BODY,
        0,
        "missing_header",
    );
    assert_eq!(err, SignatureError::MissingHeader("x-hub-signature-256"));
    for bad in [
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", // no prefix
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1", // short
        "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", // not hex
        "sha256=",
    ] {
        refused(
            WebhookScheme::Github,
            &secrets,
            &gh_headers(bad),
            GH_BODY,
            0,
            "malformed",
        );
    }
}

// ----- Stripe -----------------------------------------------------------------------------------

#[test]
fn stripe_vector_verifies_and_gives_event_id() {
    let value = format!("t={STRIPE_TS},v1={STRIPE_V1}");
    let v = verify(
        WebhookScheme::Stripe,
        &one(STRIPE_SECRET),
        &stripe_headers(&value),
        STRIPE_BODY,
        STRIPE_TS,
    )
    .unwrap();
    assert_eq!(v.message_id.as_deref(), Some("evt_test_webhook"));
    let pairs = sign(
        WebhookScheme::Stripe,
        STRIPE_SECRET,
        STRIPE_BODY,
        STRIPE_TS,
        "",
    )
    .unwrap();
    assert_eq!(pairs, vec![("stripe-signature", value)]);
}

#[test]
fn stripe_several_v1_entries_one_matching() {
    // As Stripe sends while an endpoint secret is rolled, plus a v0 test-mode entry.
    let value = format!(
        "t={STRIPE_TS},v1={STRIPE_V1_OLD},v1={STRIPE_V1},\
         v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    );
    verify(
        WebhookScheme::Stripe,
        &one(STRIPE_SECRET),
        &stripe_headers(&value),
        STRIPE_BODY,
        STRIPE_TS,
    )
    .unwrap();
    // Entries that are not hex digests are skipped, not fatal.
    let value = format!("t={STRIPE_TS}, v1=garbage, v1={STRIPE_V1}");
    verify(
        WebhookScheme::Stripe,
        &one(STRIPE_SECRET),
        &stripe_headers(&value),
        STRIPE_BODY,
        STRIPE_TS,
    )
    .unwrap();
}

#[test]
fn stripe_rotation_two_configured_secrets() {
    let value = format!("t={STRIPE_TS},v1={STRIPE_V1_OLD}");
    let secrets = Secrets::new([STRIPE_SECRET, STRIPE_OLD_SECRET]);
    verify(
        WebhookScheme::Stripe,
        &secrets,
        &stripe_headers(&value),
        STRIPE_BODY,
        STRIPE_TS,
    )
    .unwrap();
    refused(
        WebhookScheme::Stripe,
        &one(STRIPE_SECRET),
        &stripe_headers(&value),
        STRIPE_BODY,
        STRIPE_TS,
        "mismatch",
    );
}

#[test]
fn stripe_tampered_body_wrong_secret_and_tampered_timestamp() {
    let value = format!("t={STRIPE_TS},v1={STRIPE_V1}");
    refused(
        WebhookScheme::Stripe,
        &one(STRIPE_SECRET),
        &stripe_headers(&value),
        br#"{"id":"evt_test_webhook","object":"evil"}"#,
        STRIPE_TS,
        "mismatch",
    );
    refused(
        WebhookScheme::Stripe,
        &one("whsec_wrong"),
        &stripe_headers(&value),
        STRIPE_BODY,
        STRIPE_TS,
        "mismatch",
    );
    // Moving t forward to dodge the replay window breaks the signature.
    let moved = format!("t={},v1={STRIPE_V1}", STRIPE_TS + 1000);
    refused(
        WebhookScheme::Stripe,
        &one(STRIPE_SECRET),
        &stripe_headers(&moved),
        STRIPE_BODY,
        STRIPE_TS + 1000,
        "mismatch",
    );
}

#[test]
fn stripe_stale_timestamps_are_replays() {
    let h = stripe_headers(&format!("t={STRIPE_TS},v1={STRIPE_V1}"));
    let secrets = one(STRIPE_SECRET);
    for now in [STRIPE_TS + TOLERANCE_SECS, STRIPE_TS - TOLERANCE_SECS] {
        verify(WebhookScheme::Stripe, &secrets, &h, STRIPE_BODY, now).unwrap();
    }
    for now in [
        STRIPE_TS + TOLERANCE_SECS + 1,
        STRIPE_TS - TOLERANCE_SECS - 1,
    ] {
        refused(
            WebhookScheme::Stripe,
            &secrets,
            &h,
            STRIPE_BODY,
            now,
            "stale_timestamp",
        );
    }
}

#[test]
fn stripe_missing_and_malformed_header() {
    let secrets = one(STRIPE_SECRET);
    let err = refused(
        WebhookScheme::Stripe,
        &secrets,
        &HeaderMap::new(),
        STRIPE_BODY,
        STRIPE_TS,
        "missing_header",
    );
    assert_eq!(err, SignatureError::MissingHeader("stripe-signature"));
    for bad in [
        format!("v1={STRIPE_V1}"),                             // no t
        format!("t={STRIPE_TS}"),                              // no v1
        format!("t={STRIPE_TS},v0={STRIPE_V1}"),               // only v0
        format!("t=abc,v1={STRIPE_V1}"),                       // t not a number
        format!("t={STRIPE_TS},t={STRIPE_TS},v1={STRIPE_V1}"), // two t
        "garbage".to_owned(),
    ] {
        refused(
            WebhookScheme::Stripe,
            &secrets,
            &stripe_headers(&bad),
            STRIPE_BODY,
            STRIPE_TS,
            "malformed",
        );
    }
}

#[test]
fn stripe_body_that_is_not_json_has_no_message_id() {
    let body = b"not json";
    let h = signed(WebhookScheme::Stripe, STRIPE_SECRET, body, STRIPE_TS, "");
    let v = verify(
        WebhookScheme::Stripe,
        &one(STRIPE_SECRET),
        &h,
        body,
        STRIPE_TS,
    )
    .unwrap();
    assert_eq!(v.message_id, None);
}

// ----- Slack ------------------------------------------------------------------------------------

#[test]
fn slack_docs_vector_verifies() {
    let v = verify(
        WebhookScheme::Slack,
        &one(SLACK_SECRET),
        &slack_headers(SLACK_SIG),
        SLACK_BODY,
        SLACK_TS,
    )
    .unwrap();
    assert_eq!(v.message_id, None, "a slash command has no event id");
    let pairs = sign(WebhookScheme::Slack, SLACK_SECRET, SLACK_BODY, SLACK_TS, "").unwrap();
    assert_eq!(
        pairs,
        vec![
            ("x-slack-request-timestamp", SLACK_TS.to_string()),
            ("x-slack-signature", SLACK_SIG.to_owned()),
        ]
    );
}

#[test]
fn slack_tampered_body_and_wrong_secret() {
    let mut body = SLACK_BODY.to_vec();
    body.extend_from_slice(b"&admin=true");
    refused(
        WebhookScheme::Slack,
        &one(SLACK_SECRET),
        &slack_headers(SLACK_SIG),
        &body,
        SLACK_TS,
        "mismatch",
    );
    refused(
        WebhookScheme::Slack,
        &one("8f742231b10e8888abcd99yyyzzz85a6"),
        &slack_headers(SLACK_SIG),
        SLACK_BODY,
        SLACK_TS,
        "mismatch",
    );
}

#[test]
fn slack_stale_timestamps_are_replays() {
    let secrets = one(SLACK_SECRET);
    let h = slack_headers(SLACK_SIG);
    for now in [SLACK_TS + TOLERANCE_SECS, SLACK_TS - TOLERANCE_SECS] {
        verify(WebhookScheme::Slack, &secrets, &h, SLACK_BODY, now).unwrap();
    }
    for now in [SLACK_TS + TOLERANCE_SECS + 1, SLACK_TS - TOLERANCE_SECS - 1] {
        refused(
            WebhookScheme::Slack,
            &secrets,
            &h,
            SLACK_BODY,
            now,
            "stale_timestamp",
        );
    }
}

#[test]
fn slack_rotation_two_configured_secrets() {
    let h = signed(
        WebhookScheme::Slack,
        "0123456789abcdef0123456789abcdef",
        SLACK_BODY,
        SLACK_TS,
        "",
    );
    let secrets = Secrets::parse(&format!("{SLACK_SECRET}, 0123456789abcdef0123456789abcdef"));
    verify(WebhookScheme::Slack, &secrets, &h, SLACK_BODY, SLACK_TS).unwrap();
    refused(
        WebhookScheme::Slack,
        &one(SLACK_SECRET),
        &h,
        SLACK_BODY,
        SLACK_TS,
        "mismatch",
    );
}

#[test]
fn slack_missing_and_malformed_headers() {
    let secrets = one(SLACK_SECRET);
    for missing in ["x-slack-signature", "x-slack-request-timestamp"] {
        let mut h = slack_headers(SLACK_SIG);
        h.remove(missing);
        let err = refused(
            WebhookScheme::Slack,
            &secrets,
            &h,
            SLACK_BODY,
            SLACK_TS,
            "missing_header",
        );
        assert_eq!(err, SignatureError::MissingHeader(missing));
    }
    for bad in [
        "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", // no v0=
        "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        "v0=a2114d57",
        "v0=",
    ] {
        refused(
            WebhookScheme::Slack,
            &secrets,
            &slack_headers(bad),
            SLACK_BODY,
            SLACK_TS,
            "malformed",
        );
    }
    let h = headers(&[
        ("X-Slack-Request-Timestamp", "soon"),
        ("X-Slack-Signature", SLACK_SIG),
    ]);
    refused(
        WebhookScheme::Slack,
        &secrets,
        &h,
        SLACK_BODY,
        SLACK_TS,
        "malformed",
    );
}

#[test]
fn slack_url_verification_challenge() {
    // Slack's documented example: signed like any request, answered with the challenge.
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let h = signed(WebhookScheme::Slack, SLACK_SECRET, body, SLACK_TS, "");
    verify(WebhookScheme::Slack, &one(SLACK_SECRET), &h, body, SLACK_TS).unwrap();
    assert_eq!(
        slack_url_verification(body).as_deref(),
        Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    );
    // Anything else is not a challenge.
    assert_eq!(slack_url_verification(SLACK_BODY), None);
    assert_eq!(
        slack_url_verification(br#"{"type":"event_callback","challenge":"x"}"#),
        None
    );
    assert_eq!(
        slack_url_verification(br#"{"type":"url_verification"}"#),
        None
    );
    assert_eq!(
        slack_url_verification(br#"{"type":"url_verification","challenge":7}"#),
        None
    );
    assert_eq!(slack_url_verification(b"[]"), None);
}

#[test]
fn slack_event_callback_gives_event_id() {
    let body =
        br#"{"type":"event_callback","event_id":"Ev08MFMKH6","event":{"type":"app_mention"}}"#;
    let h = signed(WebhookScheme::Slack, SLACK_SECRET, body, SLACK_TS, "");
    let v = verify(WebhookScheme::Slack, &one(SLACK_SECRET), &h, body, SLACK_TS).unwrap();
    assert_eq!(v.message_id.as_deref(), Some("Ev08MFMKH6"));
}

// ----- scheme none, configuration, secrets ------------------------------------------------------

#[test]
fn scheme_none_accepts_everything() {
    for h in [
        HeaderMap::new(),
        std_headers("v1,garbage"),
        gh_headers("nonsense"),
    ] {
        let v = verify(
            WebhookScheme::None,
            &Secrets::default(),
            &h,
            b"\xff anything",
            0,
        )
        .unwrap();
        assert_eq!(v, Verified::default());
    }
    assert!(
        sign(WebhookScheme::None, "x", b"", 0, "")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn signed_scheme_without_secret_is_a_config_error() {
    for scheme in [
        WebhookScheme::Standard,
        WebhookScheme::Github,
        WebhookScheme::Stripe,
        WebhookScheme::Slack,
    ] {
        let err = refused(
            scheme,
            &Secrets::default(),
            &HeaderMap::new(),
            b"{}",
            0,
            "no_secret",
        );
        assert!(err.is_config_error());
        assert!(err.is_config_error(), "a configuration fault (503)");
        // Blank values are no secret either.
        refused(
            scheme,
            &Secrets::parse(" , "),
            &HeaderMap::new(),
            b"{}",
            0,
            "no_secret",
        );
    }
}

#[test]
fn secrets_from_the_environment_list_and_rotate() {
    let var = "WF_TEST_WEBHOOK_SECRETS_ROTATION";
    // SAFETY: this variable is unique to this test; nothing else reads or writes it.
    unsafe { std::env::set_var(var, format!(" {STD_OTHER_SECRET},{STD_SECRET} ")) };
    let secrets = secrets_from_source(&wf_app::services::EnvSecrets, var);
    verify(
        WebhookScheme::Standard,
        &secrets,
        &std_headers(STD_SIG),
        STD_BODY,
        STD_TS,
    )
    .unwrap();
    let debug = format!("{secrets:?}");
    assert!(
        !debug.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "{debug}"
    );
    assert!(!debug.contains("C2FVsBQIhrscChlQIMV"), "{debug}");

    let unset = "WF_TEST_WEBHOOK_SECRETS_UNSET";
    let secrets = secrets_from_source(&wf_app::services::EnvSecrets, unset);
    assert!(secrets.is_empty());
    let err = refused(
        WebhookScheme::Github,
        &secrets,
        &HeaderMap::new(),
        b"",
        0,
        "no_secret",
    );
    assert!(err.to_string().contains(unset), "{err}");
}

#[test]
fn secrets_parse_splits_on_commas_and_whitespace() {
    assert_eq!(
        Secrets::parse("a1, b2\tc3\n").len(),
        4,
        "three parts plus the whole text"
    );
    assert_eq!(Secrets::parse("  only  ").len(), 1);
    assert_eq!(Secrets::parse("").len(), 0);
    assert_eq!(Secrets::new(["x", "", "x", " y "]).len(), 2);
}

// ----- idempotency ------------------------------------------------------------------------------

#[test]
fn idempotency_key_prefers_the_header() {
    let verified = Verified {
        message_id: Some("msg_1".into()),
    };
    let h = headers(&[("Idempotency-Key", " order-42 ")]);
    assert_eq!(idempotency_key(&h, &verified).as_deref(), Some("order-42"));
    assert_eq!(
        idempotency_key(&HeaderMap::new(), &verified).as_deref(),
        Some("msg_1")
    );
    let blank = headers(&[("Idempotency-Key", "  ")]);
    assert_eq!(idempotency_key(&blank, &verified).as_deref(), Some("msg_1"));
    assert_eq!(
        idempotency_key(&HeaderMap::new(), &Verified::default()),
        None
    );
}

#[test]
fn idempotency_key_from_each_scheme_message_id() {
    let v = verify(
        WebhookScheme::Standard,
        &one(STD_SECRET),
        &std_headers(STD_SIG),
        STD_BODY,
        STD_TS,
    )
    .unwrap();
    assert_eq!(
        idempotency_key(&HeaderMap::new(), &v).as_deref(),
        Some(STD_MSG_ID)
    );
    let v = verify(
        WebhookScheme::Github,
        &one(GH_SECRET),
        &gh_headers(GH_SIG),
        GH_BODY,
        0,
    )
    .unwrap();
    assert_eq!(
        idempotency_key(&HeaderMap::new(), &v).as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
}

#[test]
fn idempotency_key_long_keys_are_hashed() {
    let long = "k".repeat(1000);
    let h = headers(&[("Idempotency-Key", &long)]);
    let key = idempotency_key(&h, &Verified::default()).unwrap();
    assert!(key.starts_with("sha256:") && key.len() == 7 + 64, "{key}");
    assert_eq!(
        idempotency_key(&h, &Verified::default()).unwrap(),
        key,
        "stable"
    );
}

// ----- counting and messages --------------------------------------------------------------------

#[test]
fn sign_then_verify_round_trips_for_every_scheme() {
    let body = br#"{"order":{"id":"o-1","total":120}}"#;
    let now = 1_760_000_000;
    for (scheme, secret) in [
        (WebhookScheme::Standard, STD_SECRET),
        (WebhookScheme::Github, GH_SECRET),
        (WebhookScheme::Stripe, STRIPE_SECRET),
        (WebhookScheme::Slack, SLACK_SECRET),
    ] {
        let h = signed(scheme, secret, body, now, "msg_rt");
        verify(scheme, &one(secret), &h, body, now + 10).unwrap();
        // A second later the body changes: refused.
        let err = verify(scheme, &one(secret), &h, b"{}", now).unwrap_err();
        assert_eq!(err, SignatureError::Mismatch, "{scheme:?}");
    }
}

#[test]
fn header_names_are_lowercase_constants() {
    for name in [
        header::WEBHOOK_ID,
        header::WEBHOOK_TIMESTAMP,
        header::WEBHOOK_SIGNATURE,
        header::GITHUB_SIGNATURE,
        header::GITHUB_DELIVERY,
        header::STRIPE_SIGNATURE,
        header::SLACK_SIGNATURE,
        header::SLACK_TIMESTAMP,
    ] {
        assert_eq!(name, name.to_ascii_lowercase());
        HeaderName::from_static(name);
    }
}
