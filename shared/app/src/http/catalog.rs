//! `GET /actions`: the action catalog (name, description, params JSON Schema), what the console's
//! Add Step menu and its action forms read. The workflow JSON Schema (`wf schema`) names an
//! action only as a string; the params schemas live in this catalog (`wf_core::catalog`).

use axum::Json;
use serde_json::{Value, json};

#[utoipa::path(get, path = "/actions", tag = "workflows",
    responses((status = 200, description = "`[{ name, description, paramsSchema }]`: every action, in documentation order", body = Vec<super::schemas::Action>)))]
pub async fn list() -> Json<Value> {
    let actions: Vec<Value> = wf_core::catalog::actions()
        .into_iter()
        .map(|a| json!({ "name": a.name, "description": a.description, "paramsSchema": a.params_schema }))
        .collect();
    Json(Value::Array(actions))
}
