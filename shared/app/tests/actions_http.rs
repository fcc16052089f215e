//! `http.request` and `message.send` against wiremock on loopback (and a raw TCP peer for an
//! endless chunked body), with the real SQLite store behind the runner.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wf_app::actions::{BuiltinActions, OutboundPolicy};
use wf_core::StepError;
use wf_core::ports::{ActionContext, ActionRunner, SystemClock};
use wf_local::SqliteStore;
use wiremock::matchers::{body_json, body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "01JD8X3Q0000000000000000AB/notify";

struct Fixture {
    runner: BuiltinActions,
    _dir: tempfile::TempDir,
}

fn fixture(policy: OutboundPolicy) -> Fixture {
    let client = policy.build_client().expect("client builds");
    fixture_with_client(policy, client)
}

fn fixture_with_client(policy: OutboundPolicy, client: reqwest::Client) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("wf.db")).expect("store opens");
    let bus = Arc::new(store.event_bus());
    let runner = BuiltinActions::new(client, Arc::new(store), bus, Arc::new(SystemClock), policy);
    Fixture { runner, _dir: dir }
}

fn ctx(timeout: Duration) -> ActionContext {
    ActionContext {
        execution_id: "01JD8X3Q0000000000000000AB".into(),
        path: "notify".into(),
        attempt: 1,
        idempotency_key: KEY.into(),
        timeout,
        event_chain: Vec::new(),
        event_limits: Default::default(),
    }
}

async fn run(f: &Fixture, action: &str, params: Value) -> Result<Value, StepError> {
    f.runner
        .run(action, params, &ctx(Duration::from_secs(10)))
        .await
}

async fn request_count(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

#[tokio::test]
async fn json_response_is_parsed_and_headers_query_and_idempotency_key_are_sent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/orders"))
        .and(query_param("q", "big orders"))
        .and(query_param("limit", "5"))
        .and(query_param("open", "true"))
        .and(header("x-api-key", "k-123"))
        .and(header("idempotency-key", KEY))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-request-id", "r-1")
                .set_body_json(json!({ "orders": [1, 2] })),
        )
        .expect(1)
        .mount(&server)
        .await;
    let f = fixture(OutboundPolicy::local());
    let out = run(
        &f,
        "http.request",
        json!({
            "url": format!("{}/orders", server.uri()),
            "headers": { "X-Api-Key": "k-123" },
            "query": { "q": "big orders", "limit": 5, "open": true }
        }),
    )
    .await
    .expect("request succeeds");
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], json!({ "orders": [1, 2] }));
    assert_eq!(out["headers"]["x-request-id"], "r-1");
    assert!(
        out["headers"]["content-type"]
            .as_str()
            .is_some_and(|c| c.starts_with("application/json"))
    );
}

#[tokio::test]
async fn text_response_stays_text() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("hello, {not json}", "text/plain"))
        .mount(&server)
        .await;
    let f = fixture(OutboundPolicy::local());
    let out = run(&f, "http.request", json!({ "url": server.uri() }))
        .await
        .expect("request succeeds");
    assert_eq!(out["body"], "hello, {not json}");
}

#[tokio::test]
async fn json_and_text_bodies_are_sent_with_their_content_types() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/json"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({ "text": "Order 7: 250", "n": null })))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/text"))
        .and(header("content-type", "text/plain; charset=utf-8"))
        .and(body_string("plain words"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/null"))
        .and(body_string("null"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let f = fixture(OutboundPolicy::local());
    let out = run(
        &f,
        "http.request",
        json!({ "method": "POST", "url": format!("{}/json", server.uri()),
                "json": { "text": "Order 7: 250", "n": null } }),
    )
    .await
    .expect("json body");
    assert_eq!(out["status"], 201);
    assert_eq!(out["body"], "");
    let out = run(
        &f,
        "http.request",
        json!({ "method": "PUT", "url": format!("{}/text", server.uri()), "body": "plain words" }),
    )
    .await
    .expect("text body");
    assert_eq!(out["status"], 204);
    // A JSON `null` body is a body, not an absent one.
    run(
        &f,
        "http.request",
        json!({ "method": "POST", "url": format!("{}/null", server.uri()), "json": null }),
    )
    .await
    .expect("null body");
}

#[tokio::test]
async fn non_2xx_is_retryable_with_status_and_truncated_body() {
    let server = MockServer::start().await;
    let long = "x".repeat(10_000);
    Mock::given(path("/busy"))
        .respond_with(ResponseTemplate::new(503).set_body_string("try later"))
        .mount(&server)
        .await;
    Mock::given(path("/long"))
        .respond_with(ResponseTemplate::new(400).set_body_string(long.clone()))
        .mount(&server)
        .await;
    let f = fixture(OutboundPolicy::local());
    let err = run(
        &f,
        "http.request",
        json!({ "url": format!("{}/busy", server.uri()) }),
    )
    .await
    .expect_err("503 fails");
    assert_eq!(err.code, "http.status");
    assert!(err.retryable);
    let details = err.details.expect("details");
    assert_eq!(details["status"], 503);
    assert_eq!(details["body"], "try later");

    let err = run(
        &f,
        "http.request",
        json!({ "url": format!("{}/long", server.uri()) }),
    )
    .await
    .expect_err("400 fails");
    assert_eq!(err.code, "http.status");
    assert!(
        err.retryable,
        "the catalog makes every unexpected status retryable"
    );
    let details = err.details.expect("details");
    assert_eq!(details["status"], 400);
    let body = details["body"].as_str().expect("body text");
    assert!(
        body.len() < long.len() && !body.is_empty(),
        "body truncated to {}",
        body.len()
    );
    assert_eq!(details["truncated"], true);
}

#[tokio::test]
async fn expect_status_turns_a_status_into_success() {
    let server = MockServer::start().await;
    Mock::given(path("/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({ "error": "no such order" })))
        .mount(&server)
        .await;
    let f = fixture(OutboundPolicy::local());
    let out = run(
        &f,
        "http.request",
        json!({ "url": format!("{}/missing", server.uri()), "expectStatus": [404, 409] }),
    )
    .await
    .expect("404 expected");
    assert_eq!(out["status"], 404);
    assert_eq!(out["body"]["error"], "no such order");
}

#[tokio::test]
async fn timeouts_are_retryable_and_bounded_by_the_step() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let f = fixture(OutboundPolicy::local());
    let url = format!("{}/slow", server.uri());

    let started = Instant::now();
    let err = run(&f, "http.request", json!({ "url": url, "timeoutMs": 200 }))
        .await
        .expect_err("timeoutMs");
    assert_eq!(err.code, "timeout");
    assert!(err.retryable);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // No timeoutMs (or a larger one): the step's remaining time bounds the request.
    let started = Instant::now();
    let err = f
        .runner
        .run(
            "http.request",
            json!({ "url": url, "timeoutMs": 60000 }),
            &ctx(Duration::from_millis(200)),
        )
        .await
        .expect_err("ctx timeout");
    assert_eq!(err.code, "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn responses_over_the_limit_fail_without_retry() {
    let server = MockServer::start().await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string("y".repeat(4096)))
        .mount(&server)
        .await;
    let policy = OutboundPolicy {
        max_response_bytes: 1024,
        ..OutboundPolicy::local()
    };
    let f = fixture(policy);
    let err = run(
        &f,
        "http.request",
        json!({ "url": format!("{}/big", server.uri()) }),
    )
    .await
    .expect_err("too large");
    assert_eq!(err.code, "http.response_too_large");
    assert!(!err.retryable);
    assert!(err.message.contains("1024"), "{}", err.message);
}

/// A peer that streams a chunked body forever: only cutting while streaming ends the request.
#[tokio::test]
async fn an_endless_chunked_body_is_cut_while_streaming() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut buf = [0u8; 4096];
        // The request fits one read (a small GET).
        let _ = socket.read(&mut buf).await;
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("400\r\n{}\r\n", "z".repeat(0x400));
        // Until the client hangs up.
        while socket.write_all(chunk.as_bytes()).await.is_ok() {}
    });
    let policy = OutboundPolicy {
        max_response_bytes: 64 * 1024,
        ..OutboundPolicy::local()
    };
    let f = fixture(policy);
    let err = run(
        &f,
        "http.request",
        json!({ "url": format!("http://{addr}/stream") }),
    )
    .await
    .expect_err("cut");
    assert_eq!(err.code, "http.response_too_large");
    assert!(err.message.contains("65536"), "{}", err.message);
    peer.abort();
}

#[tokio::test]
async fn redirects_are_followed_within_the_bound_and_refused_beyond() {
    let server = MockServer::start().await;
    for i in 0..10 {
        Mock::given(path(format!("/r{i}")))
            .respond_with(
                ResponseTemplate::new(302).insert_header("location", format!("/r{}", i + 1)),
            )
            .mount(&server)
            .await;
    }
    Mock::given(path("/r10"))
        .respond_with(ResponseTemplate::new(200).set_body_string("landed"))
        .mount(&server)
        .await;
    let policy = OutboundPolicy {
        max_redirects: 3,
        ..OutboundPolicy::local()
    };
    let f = fixture(policy);
    let out = run(
        &f,
        "http.request",
        json!({ "url": format!("{}/r7", server.uri()) }),
    )
    .await
    .expect("3 redirects are fine");
    assert_eq!(out["body"], "landed");

    let err = run(
        &f,
        "http.request",
        json!({ "url": format!("{}/r0", server.uri()) }),
    )
    .await
    .expect_err("10 redirects are not");
    assert_eq!(err.code, "http.too_many_redirects");
    assert!(!err.retryable);
}

#[tokio::test]
async fn metadata_ip_literal_is_refused_before_any_connection() {
    // A client whose every request would go to wiremock as a proxy: if the action sent
    // anything, wiremock would see it. The IP-literal check must not depend on the client.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let proxy = reqwest::Proxy::all(server.uri()).expect("proxy url");
    let client = reqwest::Client::builder()
        .proxy(proxy)
        .build()
        .expect("client");
    let f = fixture_with_client(OutboundPolicy::local(), client);
    for url in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
    ] {
        let err = run(&f, "http.request", json!({ "url": url }))
            .await
            .expect_err("metadata refused");
        assert_eq!(err.code, "http.forbidden_address", "{url}");
        assert!(!err.retryable);
        let details = err.details.expect("details");
        assert!(
            err.message
                .contains(details["address"].as_str().expect("address"))
        );
    }
    let err = run(
        &f,
        "http.request",
        json!({ "url": "http://169.254.169.254/" }),
    )
    .await
    .expect_err("refused");
    assert!(err.message.contains("169.254.169.254"), "{}", err.message);
    assert_eq!(request_count(&server).await, 0, "nothing was sent");
}

#[tokio::test]
async fn a_redirect_to_the_metadata_address_is_refused() {
    let server = MockServer::start().await;
    Mock::given(path("/innocent"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", "http://169.254.169.254/latest/meta-data/"),
        )
        .mount(&server)
        .await;
    let f = fixture(OutboundPolicy::local());
    let started = Instant::now();
    let err = run(
        &f,
        "http.request",
        json!({ "url": format!("{}/innocent", server.uri()) }),
    )
    .await
    .expect_err("refused");
    assert_eq!(err.code, "http.forbidden_address");
    assert_eq!(err.details.expect("details")["address"], "169.254.169.254");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no connect attempt to wait for"
    );
}

#[tokio::test]
async fn private_addresses_depend_on_the_policy() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let port = server.address().port();
    let literal = format!("http://127.0.0.1:{port}/");
    // A name goes through the resolver, which filters what it resolves to.
    let named = format!("http://localhost:{port}/");

    let aws = fixture(OutboundPolicy::aws());
    let err = run(&aws, "http.request", json!({ "url": literal }))
        .await
        .expect_err("loopback literal refused");
    assert_eq!(err.code, "http.forbidden_address");
    assert!(err.message.contains("127.0.0.1"), "{}", err.message);
    let err = run(&aws, "http.request", json!({ "url": named }))
        .await
        .expect_err("loopback by name refused");
    assert_eq!(err.code, "http.forbidden_address", "{err:?}");
    assert!(!err.retryable);
    assert_eq!(err.details.expect("details")["host"], "localhost");
    let err = run(
        &aws,
        "message.send",
        json!({ "url": literal, "text": "hi" }),
    )
    .await
    .expect_err("message.send under the same policy");
    assert_eq!(err.code, "http.forbidden_address");
    assert_eq!(request_count(&server).await, 0);

    let local = fixture(OutboundPolicy::local());
    for url in [&literal, &named] {
        let out = run(&local, "http.request", json!({ "url": url }))
            .await
            .expect("allowed locally");
        assert_eq!(out["body"], "ok");
    }
}

#[tokio::test]
async fn only_http_schemes() {
    let f = fixture(OutboundPolicy::local());
    for url in ["ftp://example.com/x", "file:///etc/passwd", "not a url"] {
        let err = run(&f, "http.request", json!({ "url": url }))
            .await
            .expect_err("refused");
        assert!(
            err.code == "http.invalid_url" || err.code == "action.params",
            "{url}: {err:?}"
        );
        assert!(!err.retryable);
    }
}

#[tokio::test]
async fn message_send_posts_text_and_blocks() {
    let server = MockServer::start().await;
    let blocks = json!([{ "type": "section", "text": { "type": "mrkdwn", "text": "*big*" } }]);
    Mock::given(method("POST"))
        .and(path("/hook/ok"))
        .and(header("content-type", "application/json"))
        .and(header("idempotency-key", KEY))
        .and(body_json(json!({ "text": "Order 7", "blocks": blocks })))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook/down"))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .mount(&server)
        .await;
    let f = fixture(OutboundPolicy::local());
    let out = run(
        &f,
        "message.send",
        json!({ "url": format!("{}/hook/ok", server.uri()), "text": "Order 7", "blocks": blocks }),
    )
    .await
    .expect("sent");
    assert_eq!(out, json!({ "status": 200 }));

    let err = run(
        &f,
        "message.send",
        json!({ "url": format!("{}/hook/down", server.uri()), "text": "x" }),
    )
    .await
    .expect_err("500");
    assert_eq!(err.code, "http.status");
    assert!(err.retryable);
    assert_eq!(err.details.expect("details")["body"], "oops");
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    // Bind then drop: the port is (almost certainly) closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let f = fixture(OutboundPolicy::local());
    let err = run(
        &f,
        "http.request",
        json!({ "url": format!("http://127.0.0.1:{port}/") }),
    )
    .await
    .expect_err("refused");
    assert_eq!(err.code, "http.connect");
    assert!(err.retryable);
}

#[tokio::test]
async fn a_json_response_nested_past_the_bound_fails_the_step_and_is_not_stored() {
    use wf_core::json_depth::MAX_JSON_DEPTH;
    let nested = |d: usize| format!("{}1{}", "[".repeat(d), "]".repeat(d));
    let server = MockServer::start().await;
    for (route, depth) in [
        ("/at", MAX_JSON_DEPTH),
        ("/past", MAX_JSON_DEPTH + 1),
        ("/deep", 100_000),
    ] {
        Mock::given(path(route))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(nested(depth), "application/json"),
            )
            .mount(&server)
            .await;
    }
    let f = fixture(OutboundPolicy::local());
    let at = run(
        &f,
        "http.request",
        json!({ "url": format!("{}/at", server.uri()) }),
    )
    .await
    .expect("at the bound: parsed");
    assert_eq!(
        wf_core::json_depth::value_depth(&at["body"]),
        MAX_JSON_DEPTH
    );
    for route in ["/past", "/deep"] {
        let err = run(
            &f,
            "http.request",
            json!({ "url": format!("{}{route}", server.uri()) }),
        )
        .await
        .expect_err("past the bound");
        assert_eq!(err.code, "http.response_too_deep", "{route}");
        assert!(!err.retryable, "the same answer would come again");
        assert!(err.message.contains("limit of 64"), "{}", err.message);
        assert_eq!(err.details.as_deref().unwrap()["limit"], json!(64));
    }
}

/// Every form of the metadata address tried so far (issue 10), as regression tests: each is
/// refused by the policy itself (`http.forbidden_address`), never by the network being
/// unreachable, and nothing is sent.
#[tokio::test]
async fn every_form_of_the_metadata_address_is_refused_by_the_policy() {
    let f = fixture(OutboundPolicy::local());
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        // IPv4-compatible (deprecated ::/96): refused by the policy, not by the route.
        "http://[::169.254.169.254]/",
        "http://[::a9fe:a9fe]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
        // hex, decimal, octal and mixed forms (WHATWG URL parsing makes them literals)
        "http://0xa9fea9fe/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://2852039166/",
        "http://0251.0376.0251.0376/",
        "http://169.254.43518/",
        "http://[fd00:ec2::254]/",
    ] {
        let started = Instant::now();
        let err = run(&f, "http.request", json!({ "url": url }))
            .await
            .expect_err("refused");
        assert_eq!(err.code, "http.forbidden_address", "{url}: {err:?}");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{url}: refused before any connect"
        );
    }
}

/// A name is judged by the address it resolves to when the connection is made, not by the
/// name: a host resolving to the metadata address is refused (directly and after a redirect),
/// and `localhost` is refused under the AWS policy because it resolves to loopback.
#[tokio::test]
async fn a_name_is_judged_by_the_address_it_resolves_to_at_connect_time() {
    use std::collections::HashMap;
    use std::net::IpAddr;
    let hosts: HashMap<String, Vec<IpAddr>> = [
        (
            "metadata.example.test",
            vec!["169.254.169.254".parse().unwrap()],
        ),
        (
            "metadata6.example.test",
            vec!["::169.254.169.254".parse().unwrap()],
        ),
        ("internal.example.test", vec!["10.0.0.7".parse().unwrap()]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let local = OutboundPolicy::local();
    let client = local
        .client_builder_with_hosts(hosts.clone())
        .build()
        .unwrap();
    let f = fixture_with_client(local, client);
    for host in ["metadata.example.test", "metadata6.example.test"] {
        let err = run(
            &f,
            "http.request",
            json!({ "url": format!("http://{host}/latest/") }),
        )
        .await
        .expect_err("refused");
        assert_eq!(err.code, "http.forbidden_address", "{host}: {err:?}");
        let details = err.details.expect("details");
        assert_eq!(details["host"], host);
        let address = details["address"].as_str().unwrap();
        assert!(
            address == "169.254.169.254" || address == "::a9fe:a9fe",
            "{address}"
        );
    }
    // A redirect to such a name: the resolver refuses the second hop too.
    let server = MockServer::start().await;
    Mock::given(path("/hop"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", "http://metadata.example.test/"),
        )
        .mount(&server)
        .await;
    let err = run(
        &f,
        "http.request",
        json!({ "url": format!("{}/hop", server.uri()) }),
    )
    .await
    .expect_err("refused");
    assert_eq!(err.code, "http.forbidden_address", "{err:?}");

    // Under the AWS policy, a private name and `localhost` (the system resolver) are refused.
    let aws = OutboundPolicy::aws();
    let client = aws.client_builder_with_hosts(hosts).build().unwrap();
    let f = fixture_with_client(aws, client);
    let port = server.address().port();
    for url in [
        "http://internal.example.test/".to_string(),
        format!("http://localhost:{port}/hop"),
    ] {
        let err = run(&f, "http.request", json!({ "url": url }))
            .await
            .expect_err("refused");
        assert_eq!(err.code, "http.forbidden_address", "{url}: {err:?}");
    }
}
