//! The JSON names of the project contract (CONTRACT.md in the shared directory), read from the
//! contract's own text, are in the published schemas and in real output, exactly.

mod json_support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn contract() -> Option<String> {
    let dir = json_support::shared_dir()?;
    std::fs::read_to_string(dir.join("CONTRACT.md")).ok()
}

fn schema(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/schema")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Backticked words of `text`, split into those outside parentheses (field names) and, for
/// each field, those inside the parentheses after it (its values).
fn fields(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut depth = 0usize;
    let mut in_tick = false;
    let mut word = String::new();
    for ch in text.chars() {
        match ch {
            '`' if in_tick => {
                in_tick = false;
                let w = std::mem::take(&mut word);
                if depth == 0 {
                    out.push((w, Vec::new()));
                } else if let Some(last) = out.last_mut() {
                    last.1.push(w);
                }
            }
            '`' => in_tick = true,
            _ if in_tick => word.push(ch),
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    out
}

/// The bullet of the `## JSON records` section that starts with `` - `name` ``.
fn bullet<'a>(c: &'a str, name: &str) -> &'a str {
    let section = c
        .split("## JSON records")
        .nth(1)
        .expect("JSON records section");
    let start = section
        .find(&format!("- `{name}`:"))
        .unwrap_or_else(|| panic!("no bullet for {name}"));
    let rest = &section[start + 2..];
    let end = rest.find("\n- ").unwrap_or(rest.len());
    &rest[..end]
}

/// A `$defs` entry of the schema.
fn def<'a>(s: &'a Value, name: &str) -> &'a Value {
    &s["$defs"][name]
}

/// The strings a schema allows: its `enum`, or the `const`s of its `oneOf`.
fn enum_strings(v: &Value) -> BTreeSet<String> {
    if let Some(alts) = v["oneOf"].as_array() {
        return alts
            .iter()
            .map(|a| a["const"].as_str().expect("const").to_string())
            .collect();
    }
    v["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no enum in {v}"))
        .iter()
        .filter_map(|x| x.as_str().map(String::from))
        .collect()
}

fn check_record(contract: &str, record: &str, def_schema: &Value, failures: &mut Vec<String>) {
    let required: BTreeSet<&str> = def_schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let body = bullet(contract, record);
    let body = body.split_once(':').map_or(body, |(_, b)| b);
    for (field, values) in fields(body) {
        if !required.contains(field.as_str()) {
            failures.push(format!(
                "{record}: field {field} is not a required property"
            ));
            continue;
        }
        let prop = &def_schema["properties"][&field];
        // Value lists of plain words are the field's enum (addr:port patterns are not words).
        let words: BTreeSet<String> = values
            .iter()
            .filter(|v| v.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .cloned()
            .collect();
        if words.len() >= 2 {
            let have = enum_strings(prop);
            if have != words {
                failures.push(format!(
                    "{record}.{field}: contract {words:?}, schema {have:?}"
                ));
            }
        }
    }
}

#[test]
fn contract_names_are_in_the_schemas() {
    let Some(c) = contract() else {
        eprintln!("json_contract: skipped (no shared/CONTRACT.md; set TCPLENS_SHARED)");
        return;
    };
    let nd = schema("tcplens-ndjson.schema.json");
    let doc = schema("tcplens-report.schema.json");
    let mut failures = Vec::new();

    // Every line has `type`, one of the contract's record types.
    let line = c
        .lines()
        .find(|l| l.contains("Every `--ndjson` line"))
        .expect("ndjson line rule");
    let (_, types) = line.split_once("with `type`:").expect("type list");
    let types: BTreeSet<String> = fields(types).into_iter().map(|(w, _)| w).collect();
    let mut seen = BTreeSet::new();
    for r in nd["anyOf"].as_array().unwrap() {
        let name = r["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
        let d = def(&nd, name);
        let tag = d["properties"]["type"]["$ref"]
            .as_str()
            .map(|t| def(&nd, t.rsplit('/').next().unwrap()))
            .unwrap_or(&d["properties"]["type"]);
        seen.extend(enum_strings(tag));
        if !d["required"].as_array().unwrap().contains(&"type".into()) {
            failures.push(format!("{name}: type not required"));
        }
    }
    assert_eq!(seen, types, "record types");

    check_record(&c, "packet", def(&nd, "PacketRec"), &mut failures);
    check_record(&c, "connection", def(&nd, "ConnLine"), &mut failures);
    check_record(&c, "finding", def(&nd, "FindingLine"), &mut failures);
    check_record(&c, "connection", def(&doc, "ConnRecord"), &mut failures);
    check_record(&c, "finding", def(&doc, "Finding"), &mut failures);

    // The document's members.
    let line = c
        .lines()
        .find(|l| l.contains("The `--json` document has"))
        .expect("document rule");
    let (_, members) = line.split_once("has").unwrap();
    let required: Vec<&Value> = doc["required"].as_array().unwrap().iter().collect();
    for (m, _) in fields(members) {
        if !required.contains(&&Value::from(m.as_str())) {
            failures.push(format!("document: {m} not required"));
        }
    }

    // Names: states, annotation kinds, finding kinds.
    let names = c.split("## Names used in text and JSON").nth(1).unwrap();
    let names = names.split("## JSON records").next().unwrap();
    let item = |start: &str| -> BTreeSet<String> {
        let s = names.find(start).unwrap_or_else(|| panic!("{start}"));
        let rest = &names[s..];
        let end = rest[1..].find("\n- ").map_or(rest.len(), |e| e + 1);
        fields(&rest[..end])
            .into_iter()
            .map(|(w, _)| w)
            .filter(|w| w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .collect()
    };
    let states = item("- TCP states");
    let schema_states = enum_strings(&def(&doc, "ConnRecord")["properties"]["client_state"]);
    assert_eq!(states, schema_states, "TCP states");
    let kinds: BTreeSet<String> = item("- Annotation kinds shared")
        .into_iter()
        .chain(item("- Our own annotation kinds"))
        .collect();
    let schema_kinds = enum_strings(&def(&nd, "PacketRec")["properties"]["annotations"]["items"]);
    for k in &kinds {
        if !schema_kinds.contains(k) {
            failures.push(format!("annotation kind {k} missing"));
        }
    }
    let counted: BTreeSet<String> =
        def(&doc, "ConnRecord")["properties"]["annotations"]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
    assert_eq!(counted, schema_kinds, "every kind is counted");
    let findings = item("- Finding kinds");
    assert_eq!(
        findings,
        enum_strings(&def(&doc, "Finding")["properties"]["kind"]),
        "finding kinds"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(kinds.len() >= 26 && states.len() == 11 && findings.len() == 3);
}
