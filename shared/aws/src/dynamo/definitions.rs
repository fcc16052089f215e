//! `DefinitionStore` on the `workflows` table: DRAFT, V#n and META items.

use async_trait::async_trait;
use serde_json::Value;
use wf_core::model::Workflow;
use wf_core::ports::{DefinitionStore, WorkflowMeta};
use wf_core::{StoreError, StoreResult};

use super::items::{DraftItem, Item, MetaItem, VersionItem, decode, encode, n, s};
use super::keys::{self, DRAFT_SK, META_SK, SK, WORKFLOWS_PK};
use super::{Condition, Conditional, DynamoStore};
use crate::error::SdkResultExt;

fn key(id: &str, sk: &str) -> Item {
    Item::from([(WORKFLOWS_PK.to_string(), s(id)), (SK.to_string(), s(sk))])
}

#[async_trait]
impl DefinitionStore for DynamoStore {
    async fn put_draft(&self, workflow_id: &str, draft: &Value, now: i64) -> StoreResult<()> {
        let item = DraftItem {
            id: workflow_id.to_string(),
            sk: DRAFT_SK.into(),
            draft: draft.clone(),
            updated_at: now,
        };
        let item = encode(&item, &format!("{workflow_id}/{DRAFT_SK}"), self.item_limit)?;
        self.put_item(&self.workflows, item, "put_draft").await
    }

    async fn get_draft(&self, workflow_id: &str) -> StoreResult<Option<Value>> {
        let what = format!("{workflow_id}/{DRAFT_SK}");
        self.get_item(&self.workflows, key(workflow_id, DRAFT_SK), "get_draft")
            .await?
            .map(|i| decode::<DraftItem>(i, &what).map(|d| d.draft))
            .transpose()
    }

    async fn put_version(&self, workflow: &Workflow, version: u32) -> StoreResult<()> {
        let sk = keys::version_sk(version);
        let item = VersionItem {
            id: workflow.id.clone(),
            sk: sk.clone(),
            version,
            definition: workflow.clone(),
        };
        let item = encode(&item, &format!("{}/{sk}", workflow.id), self.item_limit)?;
        let put = self
            .put_if(&self.workflows, item, Condition::absent(SK), "put_version")
            .await?;
        if put.written() {
            return Ok(());
        }
        Err(StoreError::Conflict(format!(
            "workflow {} version {version} exists already",
            workflow.id
        )))
    }

    async fn get_version(&self, workflow_id: &str, version: u32) -> StoreResult<Option<Workflow>> {
        let sk = keys::version_sk(version);
        let what = format!("{workflow_id}/{sk}");
        self.get_item(&self.workflows, key(workflow_id, &sk), "get_version")
            .await?
            .map(|i| decode::<VersionItem>(i, &what).map(|v| v.definition))
            .transpose()
    }

    async fn get_meta(&self, workflow_id: &str) -> StoreResult<Option<WorkflowMeta>> {
        let what = format!("{workflow_id}/{META_SK}");
        self.get_item(&self.workflows, key(workflow_id, META_SK), "get_meta")
            .await?
            .map(|i| decode::<MetaItem>(i, &what).map(WorkflowMeta::from))
            .transpose()
    }

    async fn put_meta(
        &self, meta: &WorkflowMeta, expected_updated_at: Option<i64>,
    ) -> StoreResult<()> {
        let what = format!("{}/{META_SK}", meta.id);
        let item = encode(&MetaItem::from(meta), &what, self.item_limit)?;
        let condition = match expected_updated_at {
            None => Condition::absent(SK),
            Some(expected) => {
                Condition::new("updatedAt = :expected").value(":expected", n(expected))
            }
        };
        let put = self
            .put_if(&self.workflows, item, condition.return_old(), "put_meta")
            .await?;
        match put {
            Conditional::Written(_) => Ok(()),
            Conditional::Refused(stored) => {
                Err(StoreError::Conflict(match (expected_updated_at, stored) {
                    (None, _) => format!("workflow {} META exists already", meta.id),
                    (Some(expected), Some(item)) => format!(
                        "workflow {} META changed (updatedAt {}, expected {expected})",
                        meta.id,
                        super::items::get_n(&item, "updatedAt").unwrap_or_default()
                    ),
                    (Some(_), None) => format!("workflow {} META does not exist", meta.id),
                }))
            }
        }
    }

    /// A scan filtered on `sk = META`: the workflows table holds a few items per workflow, and
    /// this runs on activation sweeps and listings, not per step.
    async fn list_metas(&self) -> StoreResult<Vec<WorkflowMeta>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.workflows)
                .filter_expression("#sk = :meta")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":meta", s(META_SK))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .store_err("list_metas")?;
            for item in page.items.unwrap_or_default() {
                let meta: MetaItem = decode(item, "META")?;
                out.push(WorkflowMeta::from(meta));
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn delete_workflow(&self, workflow_id: &str) -> StoreResult<()> {
        self.delete_partition(
            &self.workflows,
            WORKFLOWS_PK,
            workflow_id,
            "delete_workflow",
        )
        .await
    }
}
