//! workflows/README.md is the format by example (for people and AI editors): every ```json block
//! with `"steps"` in it must be a valid workflow, and together they must show every step type,
//! every trigger type and every action.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use wf_core::model::{STEP_TYPES, TRIGGER_TYPES};
use wf_core::validate::{format_problems, format_warnings, validate_source};

fn readme() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows/README.md");
    std::fs::read_to_string(&path).expect("workflows/README.md")
}

/// `(first line number, text)` of every ```json block.
fn json_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed.starts_with("```json") => current = Some((i + 2, String::new())),
            Some(_) if trimmed.starts_with("```") => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```json block");
    blocks
}

fn collect(
    steps: &Value, types: &mut BTreeSet<String>, triggers: &mut BTreeSet<String>,
    actions: &mut BTreeSet<String>,
) {
    for step in steps.as_array().into_iter().flatten() {
        if let Some(t) = step["type"].as_str() {
            types.insert(t.to_owned());
        }
        if let Some(a) = step["action"].as_str() {
            actions.insert(a.to_owned());
        }
        for trigger in step["triggers"].as_array().into_iter().flatten() {
            if let Some(t) = trigger["type"].as_str() {
                triggers.insert(t.to_owned());
            }
        }
        collect(&step["steps"], types, triggers, actions);
    }
}

#[test]
fn every_workflow_in_the_format_guide_is_valid() {
    let text = readme();
    let blocks: Vec<(usize, String)> = json_blocks(&text)
        .into_iter()
        .filter(|(_, b)| b.contains("\"steps\""))
        .collect();
    assert!(
        blocks.len() >= 6,
        "expected the guide's examples, found {}",
        blocks.len()
    );
    let mut failures = String::new();
    let (mut types, mut triggers, mut actions) = Default::default();
    let mut ids = BTreeSet::new();
    for (line, block) in &blocks {
        let report = validate_source(block);
        // The guide shows what to write: not even a warning.
        failures.push_str(&format_warnings(
            &format!("workflows/README.md (block at line {line})"),
            &report.warnings,
        ));
        if !report.is_valid() {
            failures.push_str(&format_problems(
                &format!("workflows/README.md (block at line {line})"),
                &report.problems,
            ));
            continue;
        }
        let v: Value = serde_json::from_str(block).unwrap();
        assert!(
            ids.insert(v["id"].as_str().unwrap().to_owned()),
            "duplicate example id {}",
            v["id"]
        );
        collect(&v["steps"], &mut types, &mut triggers, &mut actions);
    }
    assert!(
        failures.is_empty(),
        "invalid examples in workflows/README.md:\n{failures}"
    );

    let missing = |want: Vec<String>, have: &BTreeSet<String>| -> Vec<String> {
        want.into_iter().filter(|w| !have.contains(w)).collect()
    };
    let step_types = missing(STEP_TYPES.iter().map(|s| s.to_string()).collect(), &types);
    assert!(
        step_types.is_empty(),
        "no example shows step types {step_types:?}"
    );
    let trigger_types = missing(
        TRIGGER_TYPES.iter().map(|s| s.to_string()).collect(),
        &triggers,
    );
    assert!(
        trigger_types.is_empty(),
        "no example shows triggers {trigger_types:?}"
    );
    let names = missing(
        wf_core::catalog::actions()
            .iter()
            .map(|a| a.name.to_string())
            .collect(),
        &actions,
    );
    assert!(names.is_empty(), "no example shows actions {names:?}");
}

#[test]
fn the_guide_points_editors_at_the_schema_and_the_check() {
    let text = readme();
    for needle in ["wf validate", "wf schema", "schema.json"] {
        assert!(
            text.contains(needle),
            "workflows/README.md should mention {needle}"
        );
    }
    let agents =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../AGENTS.md"))
            .expect("AGENTS.md at the repository root");
    for needle in ["workflows/README.md", "wf schema", "wf validate"] {
        assert!(agents.contains(needle), "AGENTS.md should mention {needle}");
    }
}

#[test]
fn blocks_are_extracted_with_their_lines() {
    let md = "text\n```json\n{ \"a\": 1 }\n```\n```sh\nls\n```\n  ```json\n{}\n  ```\n";
    assert_eq!(
        json_blocks(md),
        vec![(3, "{ \"a\": 1 }\n".to_string()), (9, "{}\n".to_string())]
    );
}
