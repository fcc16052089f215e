//! Validation: one test per class of problem (exact pointer + a message fragment), several
//! problems at once, line/column mapping, and valid examples passing.

use serde_json::{Value, json};
use wf_core::model::{WORKFLOW_ID_MAX_LEN, check_workflow_id};
use wf_core::validate::{
    Problem, codes, format_problems, format_warnings, validate_source, validate_value,
    validate_workflow, workflow_warnings,
};

/// A small valid workflow: start -> check -> notify -> each (loop: price) -> done.
fn base() -> Value {
    json!({
        "id": "order-alert",
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "check" },
            { "id": "check", "type": "condition",
              "branches": [{ "if": "{{ input.amount > 100 }}", "next": "notify" }], "else": "done" },
            { "id": "notify", "type": "action", "action": "http.request",
              "params": { "method": "POST", "url": "{{ vars.hook }}", "json": { "text": "Order {{ input.id }}" } },
              "next": "each" },
            { "id": "each", "type": "loop", "items": "{{ input.lines }}",
              "steps": [{ "id": "price", "type": "action", "action": "record.get",
                          "params": { "collection": "products", "id": "{{ item.sku }}" } }],
              "next": "done" },
            { "id": "done", "type": "output", "output": { "ok": true } }
        ]
    })
}

fn with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut v = base();
    edit(&mut v);
    v
}

fn problems(v: &Value) -> Vec<Problem> {
    validate_value(v).problems
}

/// Exactly one problem at `pointer`, with `code`, whose message contains `fragment`.
#[track_caller]
fn expect(v: &Value, code: &str, pointer: &str, fragment: &str) -> Problem {
    let all = problems(v);
    let at: Vec<&Problem> = all.iter().filter(|p| p.pointer == pointer).collect();
    assert_eq!(
        at.len(),
        1,
        "expected one problem at {pointer}, got: {all:#?}"
    );
    let p = at[0];
    assert_eq!(p.code, code, "{p:#?}");
    assert!(
        p.message.contains(fragment),
        "message {:?} lacks {fragment:?}",
        p.message
    );
    assert!(!p.hint.is_empty(), "no hint: {p:#?}");
    p.clone()
}

#[track_caller]
fn expect_only(v: &Value, code: &str, pointer: &str, fragment: &str) -> Problem {
    let p = expect(v, code, pointer, fragment);
    let all = problems(v);
    assert_eq!(all.len(), 1, "expected only {pointer}: {all:#?}");
    p
}

// ---- valid examples ----

#[test]
fn the_base_workflow_is_valid() {
    let report = validate_value(&base());
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(report.workflow.unwrap().id, "order-alert");
    assert!(validate_workflow(&serde_json::from_value(base()).unwrap()).is_empty());
}

#[test]
fn the_design_example_is_valid() {
    let report = validate_source(include_str!("fixtures/order-alert.json"));
    assert!(
        report.is_valid(),
        "{}",
        format_problems("order-alert.json", &report.problems)
    );
    let wf = report.workflow.unwrap();
    assert_eq!(wf.steps.len(), 6);
    assert_eq!(wf.triggers().len(), 4);
}

// ---- syntax and structure ----

#[test]
fn json_syntax_error_has_line_and_column() {
    let report = validate_source(
        "{\n  \"id\": \"x\",\n  \"steps\": [\n    {\"id\": \"a\" \"type\": \"start\"}\n  ]\n}",
    );
    assert!(report.workflow.is_none());
    assert_eq!(report.problems.len(), 1);
    let p = &report.problems[0];
    assert_eq!((p.code, p.pointer.as_str()), (codes::JSON_SYNTAX, ""));
    assert!(p.message.contains("invalid JSON"), "{}", p.message);
    assert_eq!((p.line, p.column), (Some(4), Some(16)));
}

#[test]
fn a_document_that_is_not_an_object() {
    expect_only(
        &json!([1, 2]),
        codes::NOT_OBJECT,
        "",
        "must be a JSON object",
    );
}

#[test]
fn unknown_top_level_field_names_it_and_suggests() {
    let p = expect_only(
        &with(|v| v["nmae"] = "x".into()),
        codes::UNKNOWN_FIELD,
        "/nmae",
        "unknown field `nmae`",
    );
    assert!(p.message.contains("did you mean \"name\""), "{}", p.message);
    assert!(
        p.hint.contains("id, name, description, config, steps"),
        "{}",
        p.hint
    );
}

#[test]
fn unknown_step_field_suggests_the_close_one() {
    let p = expect_only(
        &with(|v| {
            let step = v["steps"][2].as_object_mut().unwrap();
            let next = step.remove("next").unwrap();
            step.insert("nxt".into(), next);
        }),
        codes::UNKNOWN_FIELD,
        "/steps/2/nxt",
        "unknown field `nxt` (did you mean \"next\"?)",
    );
    assert!(p.hint.contains("onError"), "{}", p.hint);
}

#[test]
fn config_fields_and_variables_are_checked() {
    let v = with(|v| v["config"] = json!({ "timeoutMs": "5", "variables": [1], "retries": 2 }));
    expect(
        &v,
        codes::WRONG_TYPE,
        "/config/timeoutMs",
        "must be an integer, found string",
    );
    expect(
        &v,
        codes::WRONG_TYPE,
        "/config/variables",
        "`variables` must be an object, found array",
    );
    expect(
        &v,
        codes::UNKNOWN_FIELD,
        "/config/retries",
        "unknown field `retries`",
    );
    assert_eq!(problems(&v).len(), 3);
}

#[test]
fn missing_required_field_points_where_it_belongs() {
    let p = expect_only(
        &with(|v| {
            v["steps"][2].as_object_mut().unwrap().remove("action");
        }),
        codes::MISSING_FIELD,
        "/steps/2/action",
        "missing required field `action`",
    );
    assert!(p.hint.contains("http.request"), "{}", p.hint);
}

#[test]
fn wrong_type_names_the_field() {
    expect_only(
        &with(|v| v["steps"][3]["concurrency"] = "5".into()),
        codes::WRONG_TYPE,
        "/steps/3/concurrency",
        "`concurrency` must be an integer, found string",
    );
}

#[test]
fn unknown_or_missing_step_type_lists_the_types() {
    let p = expect_only(
        &with(|v| v["steps"][1]["type"] = "conditon".into()),
        codes::STEP_TYPE,
        "/steps/1/type",
        "unknown step type \"conditon\" (did you mean \"condition\"?)",
    );
    assert!(
        p.hint
            .contains("start, action, llm, condition, loop, output"),
        "{}",
        p.hint
    );
    expect_only(
        &with(|v| {
            v["steps"][4].as_object_mut().unwrap().remove("type");
        }),
        codes::STEP_TYPE,
        "/steps/4/type",
        "has no `type`",
    );
    expect_only(
        &with(|v| v["steps"][4] = json!(5)),
        codes::WRONG_TYPE,
        "/steps/4",
        "a step must be an object",
    );
}

#[test]
fn unknown_trigger_type_and_trigger_fields() {
    let p = expect_only(
        &with(|v| v["steps"][0]["triggers"][0] = json!({ "type": "cronjob" })),
        codes::TRIGGER_TYPE,
        "/steps/0/triggers/0/type",
        "unknown trigger type \"cronjob\"",
    );
    assert!(p.hint.contains("webhook, schedule, event, manual"));
    let v =
        with(|v| v["steps"][0]["triggers"][0] = json!({ "type": "schedule", "crom": "@daily" }));
    expect(
        &v,
        codes::MISSING_FIELD,
        "/steps/0/triggers/0/cron",
        "missing required field `cron`",
    );
    expect(
        &v,
        codes::UNKNOWN_FIELD,
        "/steps/0/triggers/0/crom",
        "unknown field `crom` (did you mean \"cron\"?)",
    );
    assert_eq!(problems(&v).len(), 2);
}

#[test]
fn loop_bodies_are_checked_structurally() {
    let v = with(|v| {
        v["steps"][3]["steps"][0]["nxt"] = "x".into();
        v["steps"][3]["steps"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "id": "sum", "type": "llm", "model": "m" }));
    });
    expect(
        &v,
        codes::UNKNOWN_FIELD,
        "/steps/3/steps/0/nxt",
        "unknown field `nxt`",
    );
    expect(
        &v,
        codes::MISSING_FIELD,
        "/steps/3/steps/1/prompt",
        "missing required field `prompt`",
    );
    assert_eq!(problems(&v).len(), 2);
}

#[test]
fn enum_values_suggest_the_close_one() {
    let p = expect_only(
        &with(|v| {
            v["steps"][0]["triggers"][0] =
                json!({ "type": "webhook", "scheme": "githb", "secretEnv": "S" })
        }),
        codes::BAD_VALUE,
        "/steps/0/triggers/0/scheme",
        "\"githb\", which is not allowed (did you mean \"github\"?)",
    );
    assert!(
        p.hint
            .contains("\"standard\", \"github\", \"stripe\", \"slack\", \"none\""),
        "{}",
        p.hint
    );
}

#[test]
fn numbers_out_of_the_type_range_are_explained() {
    expect_only(
        &with(|v| v["config"] = json!({ "maxRetries": -1 })),
        codes::BAD_VALUE,
        "/config/maxRetries",
        "below the minimum 0",
    );
}

#[test]
fn structural_problems_stop_before_the_semantic_checks() {
    // an unknown field and an unknown step id: only the structure is reported
    let v = with(|v| {
        v["bogus"] = true.into();
        v["steps"][0]["next"] = "nowhere".into();
    });
    let all = problems(&v);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].pointer, "/bogus");
}

// ---- semantic checks ----

#[test]
fn workflow_id_must_be_url_safe() {
    let p = expect_only(
        &with(|v| v["id"] = "Order Alert".into()),
        codes::WORKFLOW_ID,
        "/id",
        "\"Order Alert\" is not URL-safe",
    );
    assert!(p.hint.contains("\"order-alert\""), "{}", p.hint);
}

#[test]
fn step_id_must_be_an_identifier() {
    let v = with(|v| {
        v["steps"][2]["id"] = "send-email".into();
        v["steps"][1]["branches"][0]["next"] = "send-email".into();
    });
    let p = expect(
        &v,
        codes::STEP_ID,
        "/steps/2/id",
        "\"send-email\" is not a valid identifier",
    );
    assert!(p.hint.contains("\"send_email\""), "{}", p.hint);
}

#[test]
fn duplicate_step_ids_across_loop_bodies() {
    let p = expect_only(
        &with(|v| v["steps"][3]["steps"][0]["id"] = "notify".into()),
        codes::DUPLICATE_ID,
        "/steps/3/steps/0/id",
        "duplicate step id \"notify\"",
    );
    assert!(p.message.contains("/steps/2"), "{}", p.message);
}

#[test]
fn exactly_one_start_step_at_top_level() {
    // missing
    let v = with(|v| {
        v["steps"][0] = json!({ "id": "start", "type": "output" });
    });
    expect(&v, codes::START_MISSING, "/steps", "no start step");
    // a second one
    let v = with(|v| {
        v["steps"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "id": "again", "type": "start", "triggers": [{ "type": "manual" }] }));
    });
    let p = expect_only(
        &v,
        codes::START_DUPLICATE,
        "/steps/5",
        "a second start step \"again\"",
    );
    assert!(p.message.contains("/steps/0"));
    // inside a loop body
    let v = with(|v| {
        v["steps"][3]["steps"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "id": "inner", "type": "start" }));
        v["steps"][3]["steps"][0]["next"] = "inner".into();
    });
    expect_only(
        &v,
        codes::START_IN_LOOP,
        "/steps/3/steps/1",
        "inside a loop body",
    );
}

#[test]
fn a_workflow_needs_a_trigger() {
    let p = expect_only(
        &with(|v| {
            v["steps"][0].as_object_mut().unwrap().remove("triggers");
        }),
        codes::TRIGGER_MISSING,
        "/steps/0/triggers",
        "no trigger",
    );
    assert!(p.hint.contains("{\"type\": \"manual\"}"), "{}", p.hint);
}

#[test]
fn unknown_step_ids_in_every_kind_of_edge() {
    // (notify and each become unreachable as well)
    let p = expect(
        &with(|v| v["steps"][1]["branches"][0]["next"] = "notfy".into()),
        codes::UNKNOWN_STEP,
        "/steps/1/branches/0/next",
        "unknown step id \"notfy\" (did you mean \"notify\"?)",
    );
    assert!(p.hint.contains("notify"), "{}", p.hint);
    expect(
        &with(|v| v["steps"][1]["else"] = "dne".into()),
        codes::UNKNOWN_STEP,
        "/steps/1/else",
        "\"dne\" (did you mean \"done\"?)",
    );
    expect_only(
        &with(|v| v["steps"][2]["onError"] = "fallback".into()),
        codes::UNKNOWN_STEP,
        "/steps/2/onError",
        "unknown step id \"fallback\"",
    );
    expect(
        &with(|v| v["steps"][0]["next"] = "chek".into()),
        codes::UNKNOWN_STEP,
        "/steps/0/next",
        "(did you mean \"check\"?)",
    );
}

#[test]
fn edges_stay_in_their_scope() {
    // from a loop body out to the top level
    expect_only(
        &with(|v| v["steps"][3]["steps"][0]["next"] = "done".into()),
        codes::CROSS_SCOPE,
        "/steps/3/steps/0/next",
        "\"done\" in the top level, but this step is in the body of loop `each`",
    );
    // from the top level into a loop body
    let v = with(|v| v["steps"][2]["onError"] = "price".into());
    let p = expect_only(
        &v,
        codes::CROSS_SCOPE,
        "/steps/2/onError",
        "in the body of loop `each`",
    );
    assert!(p.hint.contains("`each`"), "{}", p.hint);
}

#[test]
fn cycles_outside_loops_are_reported_at_the_closing_edge() {
    let v = with(|v| v["steps"][2]["next"] = "check".into());
    // each is now unreachable too; the cycle is check -> notify -> check
    expect(
        &v,
        codes::CYCLE,
        "/steps/2/next",
        "cycle: check -> notify -> check",
    );
    let v = with(|v| v["steps"][3]["steps"][0]["next"] = "price".into());
    expect_only(
        &v,
        codes::CYCLE,
        "/steps/3/steps/0/next",
        "cycle: price -> price",
    );
}

#[test]
fn unreachable_steps_at_top_level_and_in_loop_bodies() {
    let v = with(|v| {
        v["steps"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "id": "orphan", "type": "output" }));
    });
    expect_only(
        &v,
        codes::UNREACHABLE,
        "/steps/5",
        "step \"orphan\" is unreachable",
    );
    let v = with(|v| {
        v["steps"][3]["steps"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "id": "stray", "type": "output" }));
    });
    let p = expect_only(
        &v,
        codes::UNREACHABLE,
        "/steps/3/steps/1",
        "\"stray\" is unreachable",
    );
    assert!(
        p.message.contains("first step of loop `each`"),
        "{}",
        p.message
    );
}

#[test]
fn template_syntax_errors_quote_the_text() {
    let v = with(|v| v["steps"][2]["params"]["json"]["text"] = "Order {{ input.id ".into());
    expect_only(
        &v,
        codes::TEMPLATE,
        "/steps/2/params/json/text",
        "\"Order {{ input.id \"",
    );
    let v = with(|v| v["steps"][4]["output"] = json!({ "list": ["ok", "{% for %}"] }));
    expect_only(&v, codes::TEMPLATE, "/steps/4/output/list/1", "{% for %}");
    let v = with(|v| {
        v["steps"][2] = json!({ "id": "notify", "type": "llm", "model": "m", "system": "{{ }}", "prompt": "Hi {{ input.name | }}", "next": "each" });
    });
    expect(
        &v,
        codes::TEMPLATE,
        "/steps/2/prompt",
        "template syntax error",
    );
    expect(
        &v,
        codes::TEMPLATE,
        "/steps/2/system",
        "template syntax error",
    );
}

#[test]
fn conditions_filters_and_items_are_single_expressions() {
    expect_only(
        &with(|v| v["steps"][1]["branches"][0]["if"] = "input.amount > 100".into()),
        codes::TEMPLATE,
        "/steps/1/branches/0/if",
        "must be exactly one expression",
    );
    expect_only(
        &with(|v| v["steps"][3]["items"] = "{{ input.lines }} and more".into()),
        codes::TEMPLATE,
        "/steps/3/items",
        "must be exactly one expression",
    );
    expect_only(
        &with(
            |v| v["steps"][0]["triggers"][0] = json!({ "type": "event", "event": "order.created", "filter": "{{ event.detail.amount > }}" }),
        ),
        codes::TEMPLATE,
        "/steps/0/triggers/0/filter",
        "template syntax error",
    );
}

#[test]
fn invalid_cron_is_reported_with_a_fix() {
    let p = expect_only(
        &with(|v| {
            v["steps"][0]["triggers"][0] = json!({ "type": "schedule", "cron": "0 25 * * *" })
        }),
        codes::CRON,
        "/steps/0/triggers/0/cron",
        "hour value 25 is out of range",
    );
    assert!(
        p.hint
            .contains("minute hour day-of-month month day-of-week"),
        "{}",
        p.hint
    );
    // plain English gets the cron it means as the hint
    let p = expect_only(
        &with(|v| {
            v["steps"][0]["triggers"][0] =
                json!({ "type": "schedule", "cron": "every weekday at 9am" })
        }),
        codes::CRON,
        "/steps/0/triggers/0/cron",
        "has 4 fields",
    );
    assert!(p.hint.contains("\"0 9 * * 1-5\""), "{}", p.hint);
    // valid cron that EventBridge cannot run
    expect_only(
        &with(|v| {
            v["steps"][0]["triggers"][0] = json!({ "type": "schedule", "cron": "0 9 1 * MON" })
        }),
        codes::CRON,
        "/steps/0/triggers/0/cron",
        "restricts both the day of the month",
    );
    // presets are fine
    assert!(
        problems(&with(
            |v| v["steps"][0]["triggers"][0] = json!({ "type": "schedule", "cron": "@every5m" })
        ))
        .is_empty()
    );
}

#[test]
fn unknown_action_suggests_from_the_catalog() {
    let p = expect_only(
        &with(|v| v["steps"][2]["action"] = "http.reqest".into()),
        codes::UNKNOWN_ACTION,
        "/steps/2/action",
        "unknown action \"http.reqest\" (did you mean \"http.request\"?)",
    );
    assert!(p.hint.contains("record.create"), "{}", p.hint);
}

#[test]
fn params_are_checked_against_the_action_schema() {
    let v = with(|v| {
        v["steps"][2]["params"] = json!({
            "method": "FETCH", "url": 5, "headers": { "X-A": 1 }, "methd": "x", "timeoutMs": "{{ vars.t }}"
        });
    });
    expect(&v, codes::ACTION_PARAMS, "/steps/2/params/method", "FETCH");
    expect(
        &v,
        codes::ACTION_PARAMS,
        "/steps/2/params/url",
        "`url` must be a string, found number",
    );
    expect(
        &v,
        codes::ACTION_PARAMS,
        "/steps/2/params/headers/X-A",
        "must be a string",
    );
    expect(
        &v,
        codes::ACTION_PARAMS,
        "/steps/2/params/methd",
        "unknown parameter `methd` for http.request (did you mean \"method\"?)",
    );
    // `timeoutMs` is a single {{ expr }}: only known at run time, so not an error
    assert_eq!(problems(&v).len(), 4, "{:#?}", problems(&v));

    let v = with(|v| v["steps"][3]["steps"][0]["params"] = json!({ "collection": "products" }));
    expect_only(
        &v,
        codes::ACTION_PARAMS,
        "/steps/3/steps/0/params/id",
        "missing required parameter `id` for record.get",
    );

    let v = with(|v| v["steps"][2]["params"]["body"] = "text".into());
    expect_only(
        &v,
        codes::ACTION_PARAMS,
        "/steps/2/params",
        "`json` and `body` cannot be used together",
    );
}

#[test]
fn params_known_only_at_run_time_are_not_errors() {
    // a whole params object from an expression
    assert!(
        problems(&with(
            |v| v["steps"][2]["params"] = "{{ input.request }}".into()
        ))
        .is_empty()
    );
    // a single expression where an integer / object is expected
    let v = with(|v| {
        v["steps"][3]["steps"][0]["action"] = "record.create".into();
        v["steps"][3]["steps"][0]["params"] =
            json!({ "collection": "orders", "data": "{{ item }}" });
    });
    assert!(problems(&v).is_empty(), "{:#?}", problems(&v));
    // text around a template renders a string: a pattern cannot be judged, a type can
    let v = with(|v| {
        v["steps"][3]["steps"][0]["params"]["collection"] = "products-{{ vars.region }}".into()
    });
    assert!(problems(&v).is_empty(), "{:#?}", problems(&v));
    let v = with(|v| {
        v["steps"][3]["steps"][0]["action"] = "record.query".into();
        v["steps"][3]["steps"][0]["params"] =
            json!({ "collection": "p", "limit": "top {{ vars.n }}" });
    });
    expect_only(
        &v,
        codes::ACTION_PARAMS,
        "/steps/3/steps/0/params/limit",
        "must be an integer, found string",
    );
}

#[test]
fn input_schema_must_be_a_valid_json_schema() {
    let v = with(|v| {
        v["steps"][0]["inputSchema"] =
            json!({ "type": "objec", "properties": { "amount": { "type": "number" } } })
    });
    expect_only(
        &v,
        codes::JSON_SCHEMA,
        "/steps/0/inputSchema/type",
        "\"objec\" is not a JSON Schema type (did you mean \"object\"?)",
    );
    let v =
        with(|v| v["steps"][0]["inputSchema"] = json!({ "type": "object", "required": "amount" }));
    expect_only(
        &v,
        codes::JSON_SCHEMA,
        "/steps/0/inputSchema/required",
        "invalid JSON Schema",
    );
    let v = with(|v| v["steps"][0]["inputSchema"] = json!("object"));
    expect_only(
        &v,
        codes::JSON_SCHEMA,
        "/steps/0/inputSchema",
        "must be a JSON Schema (an object), found string",
    );
    // passes the meta-schema but does not compile: a remote $ref is never fetched
    let v = with(|v| {
        v["steps"][0]["inputSchema"] = json!({ "$ref": "https://example.com/schema.json" })
    });
    expect_only(
        &v,
        codes::JSON_SCHEMA,
        "/steps/0/inputSchema",
        "invalid JSON Schema",
    );
    let v = with(|v| v["steps"][0]["inputSchema"] = json!({ "type": "string", "pattern": "(" }));
    let all = problems(&v);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(
        all[0].pointer.starts_with("/steps/0/inputSchema"),
        "{all:#?}"
    );
    // other drafts by $schema; booleans are schemas
    let ok = with(|v| {
        v["steps"][0]["inputSchema"] =
            json!({ "$schema": "http://json-schema.org/draft-07/schema#", "type": "object" })
    });
    assert!(problems(&ok).is_empty(), "{:#?}", problems(&ok));
    assert!(problems(&with(|v| v["steps"][0]["inputSchema"] = json!(true))).is_empty());
}

#[test]
fn llm_json_schema_must_be_valid_too() {
    let v = with(|v| {
        v["steps"][2] = json!({ "id": "notify", "type": "llm", "model": "openai/gpt-4o-mini", "prompt": "Hi",
                                "responseFormat": "json", "jsonSchema": { "type": "object", "properties": { "n": { "type": "numbr" } } },
                                "next": "each" });
    });
    expect_only(
        &v,
        codes::JSON_SCHEMA,
        "/steps/2/jsonSchema/properties/n/type",
        "\"numbr\" is not a JSON Schema type",
    );
    let ok = with(|v| {
        v["steps"][2] = json!({ "id": "notify", "type": "llm", "model": "m", "prompt": "Hi", "responseFormat": "json", "next": "each" });
    });
    assert!(problems(&ok).is_empty(), "{:#?}", problems(&ok));
}

#[test]
fn limits_concurrency_timeouts_and_empty_loops() {
    expect_only(
        &with(|v| v["steps"][3]["concurrency"] = 101.into()),
        codes::LIMIT,
        "/steps/3/concurrency",
        "outside 1..=100",
    );
    expect_only(
        &with(|v| v["steps"][3]["concurrency"] = 0.into()),
        codes::LIMIT,
        "/steps/3/concurrency",
        "`concurrency` is 0",
    );
    assert!(problems(&with(|v| v["steps"][3]["concurrency"] = 100.into())).is_empty());
    expect_only(
        &with(|v| v["steps"][2]["timeoutMs"] = 0.into()),
        codes::LIMIT,
        "/steps/2/timeoutMs",
        "greater than 0",
    );
    expect_only(
        &with(|v| v["config"] = json!({ "timeoutMs": 0 })),
        codes::LIMIT,
        "/config/timeoutMs",
        "greater than 0",
    );
    expect_only(
        &with(|v| v["steps"][3]["steps"] = json!([])),
        codes::LIMIT,
        "/steps/3/steps",
        "empty body",
    );
}

#[test]
fn webhook_triggers_one_and_signed_with_a_secret() {
    let p = expect_only(
        &with(|v| v["steps"][0]["triggers"][0] = json!({ "type": "webhook" })),
        codes::WEBHOOK_SECRET,
        "/steps/0/triggers/0/secretEnv",
        "\"standard\" signs requests but no `secretEnv`",
    );
    assert!(p.hint.contains("\"scheme\": \"none\""), "{}", p.hint);
    assert!(
        problems(&with(
            |v| v["steps"][0]["triggers"][0] = json!({ "type": "webhook", "scheme": "none" })
        ))
        .is_empty()
    );
    assert!(
        problems(&with(
            |v| v["steps"][0]["triggers"][0] =
                json!({ "type": "webhook", "scheme": "github", "secretEnv": "GH_SECRET" })
        ))
        .is_empty()
    );
    expect_only(
        &with(|v| {
            v["steps"][0]["triggers"][0] = json!({ "type": "webhook", "secretEnv": "my secret" })
        }),
        codes::WEBHOOK_SECRET,
        "/steps/0/triggers/0/secretEnv",
        "not an environment variable name",
    );
    expect_only(
        &with(|v| {
            v["steps"][0]["triggers"] = json!([{ "type": "webhook", "scheme": "none" }, { "type": "manual" }, { "type": "webhook", "scheme": "none" }]);
        }),
        codes::WEBHOOK_DUPLICATE,
        "/steps/0/triggers/2",
        "more than one webhook trigger",
    );
}

// ---- everything at once, positions, output ----

#[test]
fn several_problems_are_all_reported_at_once() {
    let v = with(|v| {
        v["id"] = "Bad Id".into();
        v["steps"][0]["triggers"][0] = json!({ "type": "schedule", "cron": "61 * * * *" });
        v["steps"][1]["branches"][0]["next"] = "notfy".into();
        v["steps"][2]["action"] = "http.reqest".into();
        v["steps"][3]["items"] = "input.lines".into();
        v["steps"][3]["steps"][0]["params"] = json!({ "collection": "products" });
        v["steps"][4]["output"] = json!({ "x": "{{ oops" });
    });
    let all = problems(&v);
    let pointers: Vec<&str> = all.iter().map(|p| p.pointer.as_str()).collect();
    for expected in [
        "/id",
        "/steps/0/triggers/0/cron",
        "/steps/1/branches/0/next",
        "/steps/2", // notify is now unreachable
        "/steps/2/action",
        "/steps/3", // and so is each, which only notify leads to
        "/steps/3/items",
        "/steps/3/steps/0/params/id",
        "/steps/4/output/x",
    ] {
        assert!(
            pointers.contains(&expected),
            "{expected} missing from {pointers:#?}"
        );
    }
    assert_eq!(all.len(), 9, "{all:#?}");
    let report = validate_value(&v);
    assert!(report.workflow.is_none());
}

#[test]
fn problems_from_source_carry_line_and_column() {
    let text = r#"{
  "id": "order-alert",
  "steps": [
    { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "notify" },
    { "id": "notify", "type": "action", "action": "http.request",
      "params": { "url": "https://example.com" },
      "next": "notfy", "nxt": "x" }
  ]
}"#;
    // structural first: the unknown field points at its key
    let report = validate_source(text);
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(
        (p.pointer.as_str(), p.line, p.column),
        ("/steps/1/nxt", Some(7), Some(24))
    );
    // then the semantic problem points at the value
    let report = validate_source(&text.replace(r#", "nxt": "x""#, ""));
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(
        (p.pointer.as_str(), p.line, p.column),
        ("/steps/1/next", Some(7), Some(15))
    );
    let shown = format_problems("workflows/order-alert.json", &report.problems);
    assert!(
        shown.starts_with(
            "workflows/order-alert.json:7:15: /steps/1/next: unknown step id \"notfy\" (did you mean \"notify\"?)\n    hint: `next` must name a step of the top level: start\n"
        ),
        "{shown}"
    );
    // a missing field lands on its object
    let report = validate_source(&text.replace(r#""action": "http.request","#, ""));
    let p = &report.problems[0];
    assert_eq!(
        (p.pointer.as_str(), p.line, p.column),
        ("/steps/1/action", Some(5), Some(5))
    );
}

#[test]
fn problems_are_sorted_by_position_in_the_source() {
    let text = "{\"id\": \"Bad\",\n \"steps\": [\n {\"id\": \"start\", \"type\": \"start\", \"next\": \"zzz\"}\n]}";
    let report = validate_source(text);
    let lines: Vec<usize> = report.problems.iter().map(|p| p.line.unwrap()).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    assert!(report.problems.len() >= 3, "{:#?}", report.problems);
}

#[test]
fn problems_serialize_in_camel_case() {
    let report = validate_source("{\"id\": \"x\", \"steps\": []}");
    let v = serde_json::to_value(&report.problems[0]).unwrap();
    assert_eq!(v["pointer"], "/steps");
    assert_eq!(v["code"], codes::START_MISSING);
    assert_eq!(v["line"], 1);
    assert!(v["column"].is_number() && v["message"].is_string() && v["hint"].is_string());
}

// ---- the workflow-id rule ----

#[test]
fn a_workflow_id_over_64_characters_is_a_problem_at_id() {
    let long = "a".repeat(70);
    let p = expect_only(
        &with(|v| v["id"] = long.clone().into()),
        codes::WORKFLOW_ID,
        "/id",
        "is too long (70 characters, at most 64)",
    );
    assert!(p.hint.contains("at most 64 characters"), "{}", p.hint);
    assert!(
        p.hint
            .contains(&format!("{:?}", "a".repeat(WORKFLOW_ID_MAX_LEN))),
        "the example fits: {}",
        p.hint
    );
    // The same rule as the API's (one function in wf-core).
    assert_eq!(
        check_workflow_id(&long).map_err(|e| e.message),
        Err(format!(
            "workflow id {long:?} must match ^[a-z0-9][a-z0-9-]*$ (at most 64 characters)"
        ))
    );
    // 64 is fine.
    let ok = validate_value(&with(|v| v["id"] = "a".repeat(64).into()));
    assert!(ok.is_valid(), "{:#?}", ok.problems);
    // Too long and not URL-safe: one problem that says both.
    let both = format!("Order Alert {}", "x".repeat(60));
    let p = expect_only(
        &with(|v| v["id"] = both.clone().into()),
        codes::WORKFLOW_ID,
        "/id",
        "is not URL-safe and too long (72 characters",
    );
    assert!(p.hint.contains("\"order-alert-xxx"), "{}", p.hint);
}

#[test]
fn the_schema_bounds_the_workflow_id_like_validation() {
    let schema = wf_core::schema::workflow_schema();
    assert_eq!(
        schema["properties"]["id"]["maxLength"],
        json!(WORKFLOW_ID_MAX_LEN)
    );
}

// ---- warnings ----

/// The base workflow with a notify step that retries past the workflow's timeout: 5 retries from
/// 2 s doubling (2 + 4 + 8 + 16 + 32 = 62 s of backoff) against a 60 s timeout, as the
/// order-alert example once had.
fn retrying_past_the_timeout() -> Value {
    with(|v| {
        v["config"] = json!({ "timeoutMs": 60000 });
        v["steps"][2]["retry"] =
            json!({ "maxRetries": 5, "backoffMs": 2000, "backoffMultiplier": 2 });
        v["steps"][2]["onError"] = "done".into();
    })
}

#[test]
fn a_retry_schedule_longer_than_the_timeout_is_a_warning_not_a_problem() {
    let report = validate_value(&retrying_past_the_timeout());
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert!(report.is_valid(), "a workflow with only warnings is valid");
    assert_eq!(report.warnings.len(), 1, "{:#?}", report.warnings);
    let w = &report.warnings[0];
    assert_eq!(w.code, codes::RETRY_OUTLASTS_TIMEOUT);
    assert_eq!(w.pointer, "/steps/2/retry");
    for fragment in [
        "\"notify\"",
        "62000 ms",
        "60000 ms",
        "5 retries",
        "onError",
        "\"done\"",
    ] {
        assert!(
            w.message.contains(fragment),
            "{fragment} in {:?}",
            w.message
        );
    }
    assert!(
        w.hint.contains("maxRetries")
            && w.hint.contains("backoffMs")
            && w.hint.contains("timeoutMs"),
        "{}",
        w.hint
    );
    // The same from the typed workflow.
    let wf = report.workflow.unwrap();
    assert_eq!(workflow_warnings(&wf), report.warnings);
    assert!(validate_workflow(&wf).is_empty());
}

#[test]
fn a_schedule_within_the_timeout_is_quiet() {
    // 2 + 4 + 8 + 16 = 30 s of backoff: fits 60 s.
    let v = with(|v| {
        v["config"] = json!({ "timeoutMs": 60000 });
        v["steps"][2]["retry"] =
            json!({ "maxRetries": 4, "backoffMs": 2000, "backoffMultiplier": 2 });
    });
    let report = validate_value(&v);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
    // The defaults (3 retries, 1 s) against the default 5 minutes.
    assert!(validate_value(&base()).warnings.is_empty());
    // A cap keeps the schedule short: 2 + 3 * 4 s.
    let capped = with(|v| {
        v["config"] = json!({ "timeoutMs": 20000 });
        v["steps"][2]["retry"] = json!({ "maxRetries": 4, "backoffMs": 2000, "backoffMultiplier": 10, "maxBackoffMs": 4000 });
    });
    assert!(validate_value(&capped).warnings.is_empty());
}

#[test]
fn the_attempt_timeout_counts_and_config_retries_point_at_the_step() {
    // No per-step retry: the config's 3 retries of 1 s (3 s) plus 4 attempts of 20 s = 83 s.
    let v = with(|v| {
        v["config"] = json!({ "timeoutMs": 60000 });
        v["steps"][3]["steps"][0]["timeoutMs"] = 20000.into();
    });
    let report = validate_value(&v);
    assert!(report.is_valid(), "{:#?}", report.problems);
    assert_eq!(report.warnings.len(), 1, "{:#?}", report.warnings);
    let w = &report.warnings[0];
    assert_eq!(w.pointer, "/steps/3/steps/0");
    assert!(w.message.contains("\"price\""), "{}", w.message);
    assert!(w.message.contains("83000 ms"), "{}", w.message);
    assert!(
        w.message.contains("4 attempt(s) of up to 20000 ms"),
        "{}",
        w.message
    );
    assert!(
        !w.message.contains("onError"),
        "price has no onError: {}",
        w.message
    );
    // Without retries, one attempt longer than the deadline still warns.
    let v = with(|v| {
        v["config"] = json!({ "timeoutMs": 1000, "maxRetries": 0 });
        v["steps"][2]["timeoutMs"] = 5000.into();
    });
    let warned: Vec<String> = validate_value(&v)
        .warnings
        .into_iter()
        .map(|w| w.pointer)
        .collect();
    assert_eq!(warned, ["/steps/2"]);
}

#[test]
fn warnings_have_positions_and_print_prefixed() {
    let text = serde_json::to_string_pretty(&retrying_past_the_timeout()).unwrap();
    let report = validate_source(&text);
    assert!(report.is_valid());
    let w = &report.warnings[0];
    assert!(w.line.is_some() && w.column.is_some(), "{w:#?}");
    let shown = format_warnings("workflows/x.json", &report.warnings);
    let mut lines = shown.lines();
    let first = lines.next().unwrap();
    assert!(
        first.starts_with(&format!(
            "warning: workflows/x.json:{}:{}: /steps/2/retry: step \"notify\"",
            w.line.unwrap(),
            w.column.unwrap()
        )),
        "{shown}"
    );
    assert!(lines.next().unwrap().starts_with("    hint: "), "{shown}");
    // Serialized only when there are some.
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(v["warnings"][0]["code"], codes::RETRY_OUTLASTS_TIMEOUT);
    let quiet = serde_json::to_value(validate_value(&base())).unwrap();
    assert!(quiet.get("warnings").is_none(), "{quiet}");
}

#[test]
fn the_example_workflows_are_valid_without_warnings() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json")
            || path.file_name().is_some_and(|n| n == "schema.json")
        {
            continue;
        }
        seen += 1;
        let name = path.display().to_string();
        let report = validate_source(&std::fs::read_to_string(&path).unwrap());
        assert!(
            report.is_valid(),
            "{}",
            format_problems(&name, &report.problems)
        );
        assert!(
            report.warnings.is_empty(),
            "{}",
            format_warnings(&name, &report.warnings)
        );
    }
    assert!(
        seen >= 5,
        "expected the examples in workflows/, found {seen}"
    );
}

#[test]
fn a_definition_nested_past_the_json_depth_bound_is_one_problem_with_its_place() {
    use wf_core::json_depth::MAX_JSON_DEPTH;
    let deep = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
    // `config.variables.v` sits 3 levels deep: at the bound it is fine.
    let text = |d: usize| {
        let mut v = base();
        v["config"] = json!({ "variables": { "v": "X" } });
        serde_json::to_string_pretty(&v)
            .unwrap()
            .replace("\"X\"", &deep(d))
    };
    let at = validate_source(&text(MAX_JSON_DEPTH - 3));
    assert!(at.problems.is_empty(), "{:?}", at.problems);
    for d in [MAX_JSON_DEPTH - 2, 100_000] {
        let report = validate_source(&text(d));
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        let p = &report.problems[0];
        assert_eq!(p.code, codes::JSON_TOO_DEEP);
        assert!(p.message.contains("limit of 64"), "{}", p.message);
        assert!(p.line.is_some() && p.column.is_some());
    }
    let value: Value = serde_json::from_str(&text(MAX_JSON_DEPTH - 2)).unwrap();
    let p = expect_only(&value, codes::JSON_TOO_DEEP, "", "limit of 64");
    assert!(p.hint.contains("flatten"));
}
