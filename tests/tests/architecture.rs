//! The invariants of ARCHITECTURE.md that a test can check, checked on the source text:
//!
//! * wf-core does no I/O (no filesystem, network, process, async runtime or SDK).
//! * No use case returns an HTTP type (`app/` never names axum, `ApiError` or a status code).
//! * Entry points never reach a port: the HTTP handlers, the Lambda handlers, `wf dev`, the
//!   functions and the CLI call use cases of `App`, never `.services()`.
//! * The modules of wf-app import each other without a cycle.
//! * The deployed functions contain no emulator code (the bridge lives in wf-tests).
//! * The libraries do not print (tracing, or data handed to the CLI).
//! * No library returns a bare string as its error (`Result<_, String>`): each layer has its
//!   error type.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file at or under `dir`, with its text without comment lines.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries: Vec<PathBuf> = if d.is_file() {
            vec![d.clone()]
        } else {
            std::fs::read_dir(&d)
                .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
                .map(|e| e.unwrap().path())
                .collect()
        };
        for p in entries {
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let code: String = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                out.push((p, code));
            }
        }
    }
    assert!(!out.is_empty(), "no sources under {}", dir.display());
    out
}

fn offenders(dir: &Path, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, code) in sources(dir) {
        for f in forbidden {
            if code.contains(f) {
                found.push(format!("{}: {f}", path.display()));
            }
        }
    }
    found
}

#[test]
fn wf_core_does_no_io() {
    let found = offenders(
        &root().join("shared/core/src"),
        &[
            "std::fs",
            "std::net",
            "std::process",
            "tokio",
            "reqwest",
            "rusqlite",
            "aws_sdk",
            "std::env::var",
        ],
    );
    assert!(found.is_empty(), "wf-core does I/O: {found:#?}");
    let manifest = std::fs::read_to_string(root().join("shared/core/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|d| d.split("\n[").next())
        .unwrap_or_default();
    for crate_name in ["tokio", "reqwest", "rusqlite", "aws-", "axum", "ulid"] {
        assert!(
            !deps.contains(crate_name),
            "wf-core depends on {crate_name}"
        );
    }
}

#[test]
fn libraries_do_not_print() {
    let mut found = Vec::new();
    for krate in ["core", "local", "aws", "app"] {
        for (path, code) in sources(&root().join("shared").join(krate).join("src")) {
            // Unit tests at the end of a file may print.
            let code = code.split("#[cfg(test)]").next().unwrap_or_default();
            for p in ["println!", "eprintln!", "print!(", "eprint!(", "dbg!("] {
                if code.contains(p) {
                    found.push(format!("{}: {p}", path.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "libraries print: {found:#?}");
}

#[test]
fn no_library_returns_a_string_error() {
    let mut found = Vec::new();
    for krate in ["core", "local", "aws", "app"] {
        for (path, code) in sources(&root().join("shared").join(krate).join("src")) {
            let code = code.split("#[cfg(test)]").next().unwrap_or_default();
            // `Result<T, String>` with any T (no `>` inside T is needed for the shapes used).
            for (i, _) in code.match_indices(", String>") {
                let before = &code[..i];
                let open = before.rfind("Result<");
                let close = before.rfind('>');
                if open.is_some_and(|o| close.is_none_or(|c| c < o)) {
                    let line = before.matches('\n').count() + 1;
                    found.push(format!("{}:{line}", path.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "libraries return Result<_, String>: {found:#?}"
    );
}

#[test]
fn no_use_case_returns_an_http_type() {
    let found = offenders(
        &root().join("shared/app/src/app"),
        &[
            "axum",
            "ApiError",
            "StatusCode",
            "crate::http",
            "IntoResponse",
        ],
    );
    assert!(found.is_empty(), "use cases name HTTP types: {found:#?}");
}

#[test]
fn entry_points_call_use_cases_never_ports() {
    let app = root().join("shared/app/src");
    let mut found = Vec::new();
    for dir in [
        app.join("http"),
        app.join("lambda"),
        root().join("functions"),
        root().join("cli/src"),
    ] {
        found.extend(offenders(&dir, &[".services()", "svc.", "Services {"]));
    }
    found.extend(offenders(&app.join("dev.rs"), &[".services()"]));
    assert!(found.is_empty(), "entry points reach the ports: {found:#?}");
}

#[test]
fn deployed_functions_contain_no_emulator_code() {
    let found = offenders(
        &root().join("shared/app/src"),
        &["struct Bridge", "mod bridge", "lambda::bridge"],
    );
    assert!(found.is_empty(), "emulator code in wf-app: {found:#?}");
    let lib = std::fs::read_to_string(root().join("shared/app/src/lib.rs")).unwrap();
    assert!(
        lib.contains("#[cfg(feature = \"test-support\")]\npub mod testing;"),
        "test doubles must stay behind the test-support feature"
    );
    for f in ["api", "webhook", "trigger", "worker"] {
        let manifest =
            std::fs::read_to_string(root().join(format!("functions/{f}/Cargo.toml"))).unwrap();
        assert!(
            !manifest.contains("test-support"),
            "function {f} builds the test doubles"
        );
    }
}

/// The top-level module of wf-app a source file belongs to (`app/triggers.rs` -> `app`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib").then_some(name)
}

#[test]
fn wf_app_modules_import_each_other_without_a_cycle() {
    let src = root().join("shared/app/src");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, code) in sources(&src) {
        let Some(from) = module_of(&src, &path) else {
            continue;
        };
        let deps = edges.entry(from.clone()).or_default();
        for piece in code.split("crate::").skip(1) {
            let to: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !to.is_empty() && to != from {
                deps.insert(to);
            }
        }
    }
    // A cycle is a back edge of a depth-first search.
    fn visit(
        n: &str, edges: &BTreeMap<String, BTreeSet<String>>, state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    assert!(edges.len() > 10, "the module graph was not read: {edges:?}");
    for n in edges.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(n, &edges, &mut state, &mut Vec::new())
        {
            panic!(
                "import cycle between wf-app modules: {}",
                cycle.join(" -> ")
            );
        }
    }
}
