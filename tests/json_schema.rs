//! The published JSON Schemas (docs/schema/) are current, and every capture's `--json` and
//! `--ndjson` output is valid against them (checked by the `jsonschema` crate, draft 2020-12).
//!
//! Regenerate the schemas after changing a JSON type:
//! `UPDATE_SCHEMA=1 cargo test --test json_schema`.

mod json_support;

use json_support::{captures, run_tcplens};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn schema_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/schema")
        .join(name)
}

/// The generated schemas, pretty-printed, with their file names.
fn generated() -> [(&'static str, String); 2] {
    let pretty = |s: schemars::Schema| serde_json::to_string_pretty(&s).unwrap() + "\n";
    [
        (
            "tcplens-report.schema.json",
            pretty(tcplens::report::json::document_schema()),
        ),
        (
            "tcplens-ndjson.schema.json",
            pretty(tcplens::report::ndjson::ndjson_schema()),
        ),
    ]
}

#[test]
fn checked_in_schemas_are_current() {
    let update = std::env::var_os("UPDATE_SCHEMA").is_some();
    let mut stale = Vec::new();
    for (name, text) in generated() {
        let path = schema_path(name);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale JSON Schema: {stale:?}\nregenerate with: UPDATE_SCHEMA=1 cargo test --test json_schema"
    );
}

fn validator(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(schema_path(name)).expect("checked-in schema");
    let schema: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "{name} must be draft 2020-12"
    );
    jsonschema::draft202012::new(&schema).expect("a valid schema")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn every_capture_validates() {
    let doc_schema = validator("tcplens-report.schema.json");
    let line_schema = validator("tcplens-ndjson.schema.json");
    let files = captures();
    assert!(files.len() > 80, "captures found: {}", files.len());
    let mut failures = Vec::new();
    let mut types = std::collections::BTreeSet::new();
    for file in &files {
        let (code, out) = run_tcplens(file, &["--json"]);
        let text = String::from_utf8_lossy(&out);
        let doc: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!(
                    "{}: --json is not one JSON document: {e}",
                    file.display()
                ));
                continue;
            }
        };
        for e in errors(&doc_schema, &doc) {
            failures.push(format!("{}: --json: {e}", file.display()));
        }
        let complete = doc["inputs"][0]["complete"] == true;
        // Exit 0 exactly when the input was read completely (no -c here).
        if complete != (code == 0) {
            failures.push(format!(
                "{}: exit {code} but complete = {complete}",
                file.display()
            ));
        }
        let (code2, out) = run_tcplens(file, &["--ndjson"]);
        if code2 != code {
            failures.push(format!(
                "{}: --ndjson exit {code2}, --json {code}",
                file.display()
            ));
        }
        let text = String::from_utf8_lossy(&out);
        let mut last = Value::Null;
        for (i, line) in text.lines().enumerate() {
            match serde_json::from_str::<Value>(line) {
                Ok(v) => {
                    for e in errors(&line_schema, &v) {
                        failures.push(format!("{}: --ndjson line {}: {e}", file.display(), i + 1));
                    }
                    types.insert(v["type"].as_str().unwrap_or("?").to_string());
                    last = v;
                }
                Err(e) => failures.push(format!("{}: line {}: {e}", file.display(), i + 1)),
            }
        }
        if last["type"] != "summary" || last["inputs"] != doc["inputs"] {
            failures.push(format!(
                "{}: the last line is not the summary",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for t in ["packet", "connection", "summary"] {
        assert!(types.contains(t), "no {t} record in any capture");
    }
}

/// The schemas are strict: a field they do not list, or a wrong value, is an error.
#[test]
fn schemas_reject_unknown_fields_and_values() {
    let doc_schema = validator("tcplens-report.schema.json");
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/corpus/tcp-handshake-nano.pcap");
    let (code, out) = run_tcplens(&file, &["--json"]);
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_slice(&out).unwrap();
    assert!(doc_schema.is_valid(&doc));
    let mut extra = doc.clone();
    extra["connections"][0]["surprise"] = 1.into();
    assert!(!doc_schema.is_valid(&extra));
    let mut bad = doc.clone();
    bad["connections"][0]["client_state"] = "HALF_OPEN".into();
    assert!(!doc_schema.is_valid(&bad));
    let mut missing = doc;
    missing["connections"][0]
        .as_object_mut()
        .unwrap()
        .remove("zeek_history");
    assert!(!doc_schema.is_valid(&missing));
}

/// Detector findings (the kernel SYN-flood capture has some) are valid `finding` records and
/// valid items of the document's `findings`, the same in both forms.
#[test]
fn findings_validate_in_both_forms() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/kernel/detect/synflood_nocookies_v4.pcap");
    let (code, out) = run_tcplens(&file, &["--json"]);
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        errors(&validator("tcplens-report.schema.json"), &doc),
        Vec::<String>::new()
    );
    let findings = doc["findings"].as_array().unwrap();
    assert!(!findings.is_empty(), "the SYN flood capture has findings");
    let (code, out) = run_tcplens(&file, &["--ndjson"]);
    assert_eq!(code, 0);
    let line_schema = validator("tcplens-ndjson.schema.json");
    let mut streamed = Vec::new();
    for l in String::from_utf8(out).unwrap().lines() {
        let mut v: Value = serde_json::from_str(l).unwrap();
        if v["type"] == "finding" {
            assert_eq!(errors(&line_schema, &v), Vec::<String>::new(), "{v}");
            v.as_object_mut().unwrap().remove("type");
            streamed.push(v);
        }
    }
    assert_eq!(&streamed, findings);
    assert!(
        findings.iter().any(|f| f["kind"] == "syn_flood"),
        "{findings:?}"
    );
}
