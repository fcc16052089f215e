//! Engine overhead per pure step, in-process and without I/O: build the step's expression
//! context, evaluate it (condition or output), make the step record and derive its effects.
//! Target: <= 20 µs per step. Run: `cargo bench -p wf-core --bench engine`.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use serde_json::{Value, json};
use wf_core::engine::{
    CompiledWorkflow, DEFAULT_LEASE_MS, StepOutcome, claim_record, effects_for, evaluate_condition,
    finish_record,
};
use wf_core::expr::ExprContext;
use wf_core::model::{Step, Workflow};
use wf_core::path::StepPath;

fn workflow() -> CompiledWorkflow {
    let wf: Workflow = serde_json::from_value(json!({
        "id": "bench", "config": { "variables": { "threshold": 100 } },
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "check" },
            { "id": "check", "type": "condition",
              "branches": [ { "if": "{{ input.amount > vars.threshold }}", "next": "done" } ], "else": "done" },
            { "id": "done", "type": "output",
              "output": { "orderId": "{{ input.orderId }}", "big": "{{ steps.check.output.branch == 0 }}",
                          "text": "Order {{ input.orderId }}: {{ input.amount }}" } }
        ]
    }))
    .unwrap();
    CompiledWorkflow::new(wf, 1)
}

fn context(steps: Value) -> ExprContext {
    let ctx = json!({
        "input": { "orderId": "A-1001", "amount": 250, "customer": "Acme" },
        "vars": { "threshold": 100 },
        "execution": { "id": "01JD0000000000000000000000", "trigger": { "type": "webhook" } },
        "steps": steps,
    });
    ExprContext::new(ctx.as_object().cloned().unwrap_or_default())
}

fn pure_step(c: &CompiledWorkflow, path: &StepPath, steps: Value) -> usize {
    let step = c.step(path).unwrap();
    let ctx = context(steps);
    let claim = claim_record(path, step, 1, 1_000, 301_000, None, DEFAULT_LEASE_MS);
    let (input, outcome) = match step {
        Step::Condition(cond) => {
            let (input, output, next) = evaluate_condition(cond, &ctx).unwrap();
            (input, StepOutcome::Succeeded { output, next })
        }
        Step::Output(o) => {
            let v = ctx.render(&o.output).unwrap();
            (
                ctx.redact(&v),
                StepOutcome::Succeeded {
                    output: v,
                    next: None,
                },
            )
        }
        _ => unreachable!(),
    };
    let rec = finish_record(c, &claim, step, input, outcome, 1_001);
    effects_for(c, "E", path, &rec).len()
}

fn bench(cr: &mut Criterion) {
    let c = workflow();
    let check = StepPath::top("check");
    let done = StepPath::top("done");
    cr.bench_function("pure step: condition", |b| {
        b.iter(|| black_box(pure_step(&c, &check, json!({}))))
    });
    cr.bench_function("pure step: output", |b| {
        b.iter(|| {
            black_box(pure_step(
                &c,
                &done,
                json!({ "check": { "output": { "branch": 0 } } }),
            ))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
