//! Peak memory of validation (development aid): `cargo run --release -p wf-core --example rss_probe -- workflows/order-alert.json`.
fn rss() -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .filter(|l| l.starts_with("VmHWM"))
        .collect::<Vec<_>>()
        .join(" ")
}
fn main() {
    println!("start {}", rss());
    let v: serde_json::Value = serde_json::json!({ "id": "x", "steps": [] });
    let _ = wf_core::validate::validate_value(&v);
    println!("after validating an empty workflow {}", rss());
    if let Some(path) = std::env::args().nth(1) {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let _ = wf_core::validate::validate_source(&text);
        println!("after validating the file {}", rss());
    }
}
