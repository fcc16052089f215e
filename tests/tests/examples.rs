//! Every example in workflows/ runs: its outbound HTTP and LLM go to wiremock (variables are
//! pointed at it, as `wf run --var` would).

use serde_json::{Value, json};
use wf_core::execution::ExecutionStatus;
use wf_core::expr::ExprContext;
use wf_tests::harness::{QueueMode, TestEngine, step};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn example(id: &str) -> Value {
    let file = format!("{}/../workflows/{id}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

fn set_var(wf: &mut Value, key: &str, value: Value) {
    wf["config"]["variables"][key] = value;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_alert_notifies_sales_for_big_orders_only() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sales"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let e = TestEngine::new(QueueMode::Clean, &server.uri()).await;
    let mut wf = example("order-alert");
    set_var(
        &mut wf,
        "salesHook",
        json!(format!("{}/sales", server.uri())),
    );
    let big = e
        .run(
            wf.clone(),
            json!({ "orderId": "A-1", "amount": 250, "customer": "Acme" }),
        )
        .await;
    assert_eq!(big.execution.status, ExecutionStatus::Succeeded, "{big:#?}");
    assert_eq!(
        big.execution.output,
        json!({ "alerted": true, "orderId": "A-1" })
    );
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["text"], json!("Big order A-1 from Acme: $250"));
    let small = e.run(wf, json!({ "orderId": "A-2", "amount": 5 })).await;
    assert_eq!(
        small.execution.output,
        json!({ "alerted": false, "orderId": "A-2" })
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weekday_report_fetches_metrics_and_posts_them() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/daily"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "orders": 12, "revenue": 3400 })),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/team"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let e = TestEngine::new(QueueMode::Clean, &server.uri()).await;
    let mut wf = example("weekday-report");
    set_var(
        &mut wf,
        "metricsUrl",
        json!(format!("{}/daily", server.uri())),
    );
    set_var(&mut wf, "teamHook", json!(format!("{}/team", server.uri())));
    let v = e
        .run(wf, json!({ "scheduledTime": "2026-11-24T09:00:00Z" }))
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    assert_eq!(v.execution.output, json!({ "orders": 12, "posted": true }));
    let posted: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[1].body).unwrap();
    assert_eq!(posted["text"], json!("Sales yesterday: 12 orders, $3400"));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restock_orders_from_the_supplier_and_marks_the_product() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    let e = TestEngine::new(QueueMode::Clean, &server.uri()).await;
    e.store
        .create(
            "products",
            "sku-9",
            &json!({ "name": "Mug", "supplier": "acme" }),
            "seed",
        )
        .await
        .unwrap();
    let mut wf = example("restock");
    set_var(
        &mut wf,
        "supplierApi",
        json!(format!("{}/orders", server.uri())),
    );
    // the event filter: discontinued products are skipped
    let filter = wf["steps"][0]["triggers"][0]["filter"]
        .as_str()
        .unwrap()
        .to_string();
    let ctx = |d: Value| {
        ExprContext::new(
            json!({ "event": { "type": "product.stock_depleted", "detail": d } })
                .as_object()
                .unwrap()
                .clone(),
        )
    };
    assert!(ctx(json!({ "sku": "sku-9" })).eval_bool(&filter).unwrap());
    assert!(
        !ctx(json!({ "sku": "sku-9", "discontinued": true }))
            .eval_bool(&filter)
            .unwrap()
    );
    let v = e.run(wf, json!({ "sku": "sku-9" })).await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    assert_eq!(
        v.execution.output,
        json!({ "sku": "sku-9", "supplierStatus": 201 })
    );
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(
        sent,
        json!({ "sku": "sku-9", "supplier": "acme", "quantity": 50 })
    );
    let product = e.store.get("products", "sku-9").await.unwrap().unwrap();
    assert_eq!(
        product,
        json!({ "name": "Mug", "supplier": "acme", "onOrder": 50 })
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_triage_pages_on_call_for_urgent_tickets() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "gpt-4o-mini",
            "choices": [ { "message": { "role": "assistant", "content": "{\"category\": \"outage\", \"urgent\": true}" } } ],
            "usage": { "prompt_tokens": 40, "completion_tokens": 9 }
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oncall"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let e = TestEngine::new(QueueMode::Clean, &server.uri()).await;
    let mut wf = example("support-triage");
    set_var(
        &mut wf,
        "oncallHook",
        json!(format!("{}/oncall", server.uri())),
    );
    let v = e
        .run(
            wf,
            json!({ "subject": "Site down", "body": "Nothing loads since 9:02" }),
        )
        .await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    assert_eq!(
        v.execution.output,
        json!({ "category": "outage", "paged": true })
    );
    let llm_req: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(llm_req["model"], json!("gpt-4o-mini"));
    assert_eq!(llm_req["response_format"]["type"], json!("json_object"));
    assert_eq!(step(&v, "classify").output["json"]["urgent"], json!(true));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_checkup_loops_over_customers_ten_at_a_time() {
    let server = MockServer::start().await;
    for i in 0..30 {
        Mock::given(path(format!("/accounts/c{i:02}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "health": if i % 7 == 0 { 20 } else { 90 } })),
            )
            .mount(&server)
            .await;
    }
    let e = TestEngine::new(QueueMode::Clean, &server.uri()).await;
    for i in 0..30 {
        e.store
            .create(
                "customers",
                &format!("c{i:02}"),
                &json!({ "name": format!("Customer {i}") }),
                "seed",
            )
            .await
            .unwrap();
    }
    let mut wf = example("customer-checkup");
    set_var(
        &mut wf,
        "crmApi",
        json!(format!("{}/accounts", server.uri())),
    );
    let v = e.run(wf, json!({})).await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    assert_eq!(
        v.execution.output,
        json!({ "checked": 30, "toCall": ["Customer 0", "Customer 7", "Customer 14", "Customer 21", "Customer 28"] })
    );
    assert_eq!(step(&v, "each[29]/verdict").output["id"], json!("c29"));
    e.shutdown().await;
}
