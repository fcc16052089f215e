#[test]
fn probe() {
    for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../workflows")).unwrap() {
        let p = f.unwrap().path();
        if p.file_name().unwrap() == "schema.json" || p.extension().unwrap() != "json" { continue; }
        let text = std::fs::read_to_string(&p).unwrap();
        let r = wf_core::validate::validate_source(&text);
        println!("{} valid={}", p.display(), r.is_valid());
        print!("{}", wf_core::validate::format_problems(&p.display().to_string(), &r.problems));
    }
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/order-alert.json")).unwrap();
    let r = wf_core::validate::validate_source(&text);
    print!("fixture valid={} {}", r.is_valid(), wf_core::validate::format_problems("fixture", &r.problems));
}
