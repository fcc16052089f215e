//! `OpenAiCompatible` against wiremock: request shape, parsing, and every error path.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wf_app::llm::{LlmConfig, OpenAiCompatible};
use wf_core::ports::{LlmProvider, LlmRequest};
use wiremock::matchers::{body_json, body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn provider(server: &MockServer, key: Option<&str>) -> OpenAiCompatible {
    let config = LlmConfig::new(format!("{}/v1", server.uri()), key.map(str::to_owned));
    OpenAiCompatible::new(config).expect("client builds")
}

fn request() -> LlmRequest {
    LlmRequest {
        model: "openai/gpt-4o-mini".into(),
        system: Some("You are terse.".into()),
        prompt: "Summarize: 3 orders".into(),
        temperature: Some(0.2),
        max_tokens: Some(64),
        json: false,
        json_schema: None,
    }
}

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
        "choices": [ { "index": 0, "message": { "role": "assistant", "content": content },
                       "finish_reason": "stop" } ],
        "usage": { "prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26 }
    })
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn text_completion_request_and_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-test"))
        .and(body_json(json!({
            "model": "gpt-4o-mini",
            "messages": [
                { "role": "system", "content": "You are terse." },
                { "role": "user", "content": "Summarize: 3 orders" }
            ],
            "temperature": 0.2,
            "max_tokens": 64
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("Three orders.")))
        .expect(1)
        .mount(&server)
        .await;
    let out = provider(&server, Some("sk-test"))
        .complete(&request(), 5 * SECOND)
        .await
        .expect("completion");
    assert_eq!(out.text, "Three orders.");
    assert_eq!(out.model, "gpt-4o-mini-2024-07-18");
    assert_eq!((out.input_tokens, out.output_tokens), (21, 5));
}

#[tokio::test]
async fn without_a_key_no_authorization_and_minimal_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_json(json!({
            "model": "local-model",
            "messages": [ { "role": "user", "content": "hi" } ]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("hello")))
        .expect(1)
        .mount(&server)
        .await;
    let req = LlmRequest {
        model: "local-model".into(),
        system: None,
        prompt: "hi".into(),
        temperature: None,
        max_tokens: None,
        json: false,
        json_schema: None,
    };
    provider(&server, None)
        .complete(&req, 5 * SECOND)
        .await
        .expect("ok");
    let received = server.received_requests().await.expect("recording on");
    assert!(received[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn json_mode_with_a_schema_uses_llama_cpp_form() {
    let server = MockServer::start().await;
    let schema = json!({ "type": "object", "required": ["ok"], "properties": { "ok": { "type": "boolean" } } });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(json!({
            "response_format": { "type": "json_object", "schema": schema }
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("{\"ok\": true}")))
        .expect(1)
        .mount(&server)
        .await;
    let req = LlmRequest {
        json: true,
        json_schema: Some(schema.clone()),
        ..request()
    };
    let out = provider(&server, None)
        .complete(&req, 5 * SECOND)
        .await
        .expect("ok");
    assert_eq!(
        serde_json::from_str::<Value>(&out.text).expect("json"),
        json!({ "ok": true })
    );
    let received = server.received_requests().await.expect("recording on");
    let body: Value = received[0].body_json().expect("json body");
    assert!(
        body["response_format"].get("json_schema").is_none(),
        "not OpenAI's json_schema form"
    );
}

#[tokio::test]
async fn json_mode_without_a_schema() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("{}")))
        .mount(&server)
        .await;
    let req = LlmRequest {
        json: true,
        ..request()
    };
    provider(&server, None)
        .complete(&req, 5 * SECOND)
        .await
        .expect("ok");
    let received = server.received_requests().await.expect("recording on");
    let body: Value = received[0].body_json().expect("json body");
    assert_eq!(body["response_format"], json!({ "type": "json_object" }));
}

#[tokio::test]
async fn rate_limits_are_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .set_body_json(
                    json!({ "error": { "message": "Rate limit reached", "type": "requests" } }),
                ),
        )
        .mount(&server)
        .await;
    let err = provider(&server, None)
        .complete(&request(), 5 * SECOND)
        .await
        .expect_err("429");
    assert_eq!(err.code, "llm.rate_limited");
    assert!(err.retryable);
    assert!(
        err.message.contains("Rate limit reached"),
        "{}",
        err.message
    );
    let details = err.details.expect("details");
    assert_eq!(details["status"], 429);
    assert_eq!(details["retryAfter"], "7");
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .mount(&server)
        .await;
    let err = provider(&server, None)
        .complete(&request(), 5 * SECOND)
        .await
        .expect_err("500");
    assert_eq!(err.code, "llm.server_error");
    assert!(err.retryable);
    assert!(err.message.contains("upstream exploded"), "{}", err.message);
}

#[tokio::test]
async fn client_errors_carry_the_provider_message_and_are_final() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": { "message": "The model `gpt-9` does not exist", "type": "invalid_request_error" }
        })))
        .mount(&server)
        .await;
    let err = provider(&server, None)
        .complete(&request(), 5 * SECOND)
        .await
        .expect_err("400");
    assert_eq!(err.code, "llm.request");
    assert!(!err.retryable);
    assert!(
        err.message.contains("The model `gpt-9` does not exist"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_slow_provider_times_out_retryably() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion("late"))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let started = Instant::now();
    let err = provider(&server, None)
        .complete(&request(), Duration::from_millis(200))
        .await
        .expect_err("timeout");
    assert_eq!(err.code, "timeout");
    assert!(err.retryable);
    assert!(started.elapsed() < 3 * SECOND, "{:?}", started.elapsed());
}

#[tokio::test]
async fn malformed_answers_are_retryable_bad_responses() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("<html>gateway</html>", "text/html"))
        .mount(&server)
        .await;
    let err = provider(&server, None)
        .complete(&request(), 5 * SECOND)
        .await
        .expect_err("not json");
    assert_eq!(err.code, "llm.bad_response");
    assert!(err.retryable);

    let server = MockServer::start().await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "choices": [] })))
        .mount(&server)
        .await;
    let err = provider(&server, None)
        .complete(&request(), 5 * SECOND)
        .await
        .expect_err("no choices");
    assert_eq!(err.code, "llm.bad_response");
    assert!(err.retryable);
}

#[tokio::test]
async fn an_unreachable_provider_is_retryable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let provider =
        OpenAiCompatible::new(LlmConfig::new(format!("http://127.0.0.1:{port}/v1"), None))
            .expect("client");
    let err = provider
        .complete(&request(), 5 * SECOND)
        .await
        .expect_err("refused");
    assert!(err.retryable, "{err:?}");
}

#[tokio::test]
async fn json_mode_with_a_schema_uses_openais_form_when_configured() {
    let server = MockServer::start().await;
    let schema = json!({ "type": "object", "required": ["ok"], "properties": { "ok": { "type": "boolean" } } });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(json!({
            "response_format": { "type": "json_schema",
                                 "json_schema": { "name": "output", "schema": schema, "strict": false } }
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("{\"ok\": true}")))
        .expect(1)
        .mount(&server)
        .await;
    let config = LlmConfig::new(format!("{}/v1", server.uri()), None)
        .with_schema_form(wf_app::llm::SchemaForm::OpenAi);
    let req = LlmRequest {
        json: true,
        json_schema: Some(schema.clone()),
        ..request()
    };
    let out = OpenAiCompatible::new(config)
        .expect("client builds")
        .complete(&req, 5 * SECOND)
        .await
        .expect("ok");
    assert_eq!(
        serde_json::from_str::<Value>(&out.text).expect("json"),
        json!({ "ok": true })
    );
    let received = server.received_requests().await.expect("recording on");
    let body: Value = received[0].body_json().expect("json body");
    assert!(
        body["response_format"].get("schema").is_none(),
        "not llama.cpp's form"
    );
}

#[test]
fn the_schema_form_follows_the_provider_unless_configured() {
    use wf_app::llm::{ENV_BASE_URL, ENV_SCHEMA_FORM, SchemaForm};
    let openai = LlmConfig::from_lookup(|_| None);
    assert_eq!(openai.schema_form, SchemaForm::OpenAi, "api.openai.com");
    let local = LlmConfig::from_lookup(|n| {
        (n == ENV_BASE_URL).then(|| "http://127.0.0.1:8080/v1".to_string())
    });
    assert_eq!(
        local.schema_form,
        SchemaForm::JsonObject,
        "llama.cpp and others"
    );
    let forced = LlmConfig::from_lookup(|n| match n {
        ENV_BASE_URL => Some("https://llm.internal/v1".into()),
        ENV_SCHEMA_FORM => Some("openai".into()),
        _ => None,
    });
    assert_eq!(forced.schema_form, SchemaForm::OpenAi);
}
