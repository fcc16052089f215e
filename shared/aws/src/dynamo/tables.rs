//! The tables' definitions (keys, indexes, TTL), for tests, emulators and `wf deploy`-less setups.
//! The deployed stack declares the same in its template.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use wf_core::StoreResult;

use super::keys::{
    BY_LIVE_INDEX, BY_START_INDEX, BY_STATUS_INDEX, BY_TRIGGER_INDEX, BY_WORKFLOW_INDEX,
    BY_WORKFLOW_STATUS_INDEX, BY_WORKFLOW_TRIGGER_INDEX, ENTITY_ATTR, EXECUTIONS_PK,
    LIVE_SHARD_ATTR, RECORDS_PK, RECORDS_SK, SK, STARTED_KEY_ATTR, STATUS_SHARD_ATTR,
    TRIGGER_SHARD_ATTR, TTL_ATTRIBUTE, WORKFLOW_ID_ATTR, WORKFLOW_STATUS_ATTR,
    WORKFLOW_TRIGGER_ATTR, WORKFLOWS_PK,
};
use crate::config::Config;
use crate::error::{Failure, build_error, classify, store_error};

fn attr(name: &str) -> StoreResult<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| build_error("an attribute definition", e))
}

fn key(name: &str, kind: KeyType) -> StoreResult<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| build_error("a key schema", e))
}

/// A keys-only index: listing reads the page's items afterwards, so updates of an execution's
/// status or output never write to the index (only its creation does, and for `byLive` the
/// removal of `liveShard` when it finishes).
fn index(name: &str, pk: &str, sk: &str) -> StoreResult<GlobalSecondaryIndex> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash)?)
        .key_schema(key(sk, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(|e| build_error("an index", e))
}

/// Create one table unless it exists (on-demand billing).
async fn create_table(
    client: &Client, name: &str, pk: &str, sk: &str, extra_attrs: &[&str],
    indexes: Vec<GlobalSecondaryIndex>,
) -> StoreResult<()> {
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(pk, KeyType::Hash)?)
        .key_schema(key(sk, KeyType::Range)?)
        .attribute_definitions(attr(pk)?)
        .attribute_definitions(attr(sk)?);
    for a in extra_attrs {
        req = req.attribute_definitions(attr(a)?);
    }
    if !indexes.is_empty() {
        req = req.set_global_secondary_indexes(Some(indexes));
    }
    match req.send().await {
        Ok(_) => Ok(()),
        Err(e)
            if classify(&e) == Failure::Permanent
                && e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(store_error("create_table", e)),
    }
}

/// Create the three tables of `config` (idempotent) and turn on TTL for executions.
pub async fn ensure_tables(client: &Client, config: &Config) -> StoreResult<()> {
    create_table(
        client,
        &config.workflows_table,
        WORKFLOWS_PK,
        SK,
        &[],
        vec![],
    )
    .await?;
    create_table(
        client,
        &config.executions_table,
        EXECUTIONS_PK,
        SK,
        &[
            WORKFLOW_ID_ATTR,
            STARTED_KEY_ATTR,
            ENTITY_ATTR,
            LIVE_SHARD_ATTR,
            STATUS_SHARD_ATTR,
            TRIGGER_SHARD_ATTR,
            WORKFLOW_STATUS_ATTR,
            WORKFLOW_TRIGGER_ATTR,
        ],
        vec![
            index(BY_WORKFLOW_INDEX, WORKFLOW_ID_ATTR, STARTED_KEY_ATTR)?,
            index(BY_START_INDEX, ENTITY_ATTR, STARTED_KEY_ATTR)?,
            index(BY_LIVE_INDEX, LIVE_SHARD_ATTR, STARTED_KEY_ATTR)?,
            index(BY_STATUS_INDEX, STATUS_SHARD_ATTR, STARTED_KEY_ATTR)?,
            index(BY_TRIGGER_INDEX, TRIGGER_SHARD_ATTR, STARTED_KEY_ATTR)?,
            index(
                BY_WORKFLOW_STATUS_INDEX,
                WORKFLOW_STATUS_ATTR,
                STARTED_KEY_ATTR,
            )?,
            index(
                BY_WORKFLOW_TRIGGER_INDEX,
                WORKFLOW_TRIGGER_ATTR,
                STARTED_KEY_ATTR,
            )?,
        ],
    )
    .await?;
    create_table(
        client,
        &config.records_table,
        RECORDS_PK,
        RECORDS_SK,
        &[],
        vec![],
    )
    .await?;
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(TTL_ATTRIBUTE)
        .enabled(true)
        .build()
        .map_err(|e| build_error("a TTL specification", e))?;
    match client
        .update_time_to_live()
        .table_name(&config.executions_table)
        .time_to_live_specification(ttl)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // Enabling it twice is refused ("TimeToLive is already enabled"): that is the goal.
        Err(e) if crate::error::describe("update_time_to_live", &e).contains("already enabled") => {
            Ok(())
        }
        Err(e) => Err(store_error("update_time_to_live", e)),
    }
}
