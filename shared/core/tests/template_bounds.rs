//! Templates are bounded while they render (issue 10): output past `MAX_RENDERED_BYTES` stops
//! the render, fuel stops long loops, and a string literal repeated past the output limit is
//! refused before it is built (at validation and at run time). Peak memory of this test binary
//! stays flat; measure it with `/usr/bin/time -v` (see the report in ARCHITECTURE.md).

use std::time::{Duration, Instant};

use serde_json::json;
use wf_core::expr::{ExprContext, FUEL, MAX_RENDERED_BYTES, check_template};

fn ctx() -> ExprContext {
    ExprContext::new(
        json!({ "input": { "n": 100_000_000, "s": "x" } })
            .as_object()
            .unwrap()
            .clone(),
    )
}

#[test]
fn a_loop_printing_gigabytes_stops_at_the_output_limit() {
    // The template of issue 10 (10 GB, then the kernel's OOM killer), with its repetition
    // spelled by a variable so that it is not refused before rendering.
    let started = Instant::now();
    let src = "{% for i in range(100000) %}{{ input.s * 1000000 }}{% endfor %}";
    let e = ctx().render_str(src).unwrap_err();
    assert_eq!(e.code, "template.too_large");
    assert!(
        e.message.contains(&MAX_RENDERED_BYTES.to_string()),
        "{}",
        e.message
    );
    assert!(e.message.contains("MAX_RENDERED_BYTES"), "{}", e.message);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // 2 MB per iteration, 1000 iterations: 2 GB before, stopped at 1 MiB now.
    let src = "{% for i in range(1000) %}{{ input.s * 2000000 }}{% endfor %}";
    assert_eq!(
        ctx().render_str(src).unwrap_err().code,
        "template.too_large"
    );
    // Just under the limit renders.
    let src = format!(
        "{{% for i in range(4) %}}{{{{ input.s * {} }}}}{{% endfor %}}",
        MAX_RENDERED_BYTES / 4
    );
    let out = ctx().render_str(&src).unwrap();
    assert_eq!(out.as_str().unwrap().len(), MAX_RENDERED_BYTES);
}

#[test]
fn a_literal_repetition_past_the_limit_is_refused_before_it_is_built() {
    let src = r#"{% for i in range(100000) %}{{ "x" * 100000000 }}{% endfor %}"#;
    let started = Instant::now();
    let e = ctx().render_str(src).unwrap_err();
    assert_eq!(e.code, "template.too_large");
    assert!(e.message.contains("100000000 bytes"), "{}", e.message);
    assert!(
        e.message.contains(&MAX_RENDERED_BYTES.to_string()),
        "{}",
        e.message
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    // Validation says the same (minijinja would fold the constant at compile time).
    let problem = check_template(src).unwrap_err();
    assert!(problem.message.contains("over the limit"), "{problem}");
    // As one expression, in either order, and with a count that is not a literal.
    for src in [
        r#"{{ "x" * 100000000 }}"#,
        r#"{{ 100000000 * "ab" }}"#,
        r#"{{ "x" * input.n }}"#,
    ] {
        assert_eq!(
            ctx().render_str(src).unwrap_err().code,
            "template.too_large",
            "{src}"
        );
        assert!(check_template(src).is_err(), "{src}");
    }
    // Small repetitions stay allowed, and `*` inside strings is text.
    assert_eq!(ctx().render_str(r#"{{ "-" * 3 }}"#).unwrap(), json!("---"));
    assert_eq!(
        ctx().render_str(r#"a{{ "*" }}b {{ 2 * 3 }}"#).unwrap(),
        json!("a*b 6")
    );
    assert!(check_template(r#"{{ "x * 100000000" }}"#).is_ok());
}

#[test]
fn a_value_over_the_limit_is_refused_without_being_built() {
    let e = ctx().render_str("{{ [input.s] * 100000000 }}").unwrap_err();
    assert_eq!(e.code, "template.too_large", "{}", e.message);
}

#[test]
fn fuel_stops_a_billion_iterations_in_well_under_a_second() {
    for src in [
        "{% for i in range(1000000000) %}{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    ] {
        let started = Instant::now();
        let e = ctx().render_str(src).unwrap_err();
        let took = started.elapsed();
        assert!(
            e.code == "template.limit" || e.code == "template.error",
            "{src}: {e:?}"
        );
        assert!(took < Duration::from_secs(1), "{src}: {took:?}");
        if e.code == "template.limit" {
            assert!(e.message.contains(&FUEL.to_string()), "{}", e.message);
        }
        println!("{src}: {} in {took:?}", e.code);
    }
}
