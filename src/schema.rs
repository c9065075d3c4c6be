//! The spec describes itself: a JSON Schema (draft-07) of the spec, derived from the types
//! in [`crate::spec`] so that it cannot drift from them; `meshboot schema` prints it.
//!
//! Editors use it through the yaml-language-server comment (see the README). The schema
//! says what the reader accepts at every key; the checks only the whole spec can make
//! (names unique, CIDRs not overlapping, a server present) stay with
//! [`crate::validate`].

use crate::spec::Spec;
use schemars::generate::SchemaSettings;

/// The schema as a JSON value.
pub fn schema() -> serde_json::Value {
    let schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Spec>();
    schema.to_value()
}

/// The schema as printed: pretty JSON and a final newline.
pub fn schema_json() -> String {
    let mut out = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::allowed_keys;
    use serde_json::Value;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    /// `value`, with a `$ref` into `#/definitions/` followed.
    fn resolve<'a>(root: &'a Value, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.trim_start_matches("#/definitions/");
                resolve(root, &root["definitions"][name])
            }
            None => value,
        }
    }

    /// Every object with properties in the schema, by where it is in a spec (`nodes[]`
    /// for the items of a list), with its property names. `oneOf`/`anyOf`/`allOf` branches
    /// at one place add up: `{ env }` or `{ file }` is one mapping with keys env and file.
    fn properties_by_place(
        root: &Value,
        schema: &Value,
        place: &str,
        out: &mut BTreeMap<String, BTreeSet<String>>,
    ) {
        let schema = resolve(root, schema);
        for combinator in ["oneOf", "anyOf", "allOf"] {
            for branch in schema[combinator].as_array().into_iter().flatten() {
                properties_by_place(root, branch, place, out);
            }
        }
        if let Some(items) = schema.get("items") {
            properties_by_place(root, items, &format!("{place}[]"), out);
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            out.entry(place.to_string())
                .or_default()
                .extend(props.keys().cloned());
            for (key, sub) in props {
                let child = if place.is_empty() {
                    key.clone()
                } else {
                    format!("{place}.{key}")
                };
                properties_by_place(root, sub, &child, out);
            }
        }
    }

    #[test]
    fn the_schema_allows_exactly_the_keys_the_reader_allows_at_every_level() {
        let schema = schema();
        let mut from_schema = BTreeMap::new();
        properties_by_place(&schema, &schema, "", &mut from_schema);
        let from_reader: BTreeMap<String, BTreeSet<String>> = allowed_keys()
            .into_iter()
            .map(|(place, keys)| {
                (
                    place.to_string(),
                    keys.iter().map(|k| k.to_string()).collect(),
                )
            })
            .collect();
        // Not hollow: the walk found the nested levels.
        assert!(
            from_schema.contains_key("nodes[].firewall"),
            "{from_schema:#?}"
        );
        assert!(
            from_schema.contains_key("k3s.agent_token"),
            "{from_schema:#?}"
        );
        assert_eq!(from_schema, from_reader);
        // Unknown keys are refused at every level, as the reader refuses them.
        let text = schema.to_string();
        assert!(!text.contains("\"additionalProperties\":true"), "{text}");
    }

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
    }

    fn yaml_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("fixtures readable")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        files
    }

    /// The errors the schema finds in a YAML file, one line each.
    fn schema_errors(validator: &jsonschema::Validator, path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).expect("readable");
        let instance: Value = serde_yaml::from_str(&text).expect("YAML");
        validator
            .iter_errors(&instance)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect()
    }

    #[test]
    fn every_good_fixture_validates_against_the_schema_and_bad_ones_do_not() {
        let validator = jsonschema::draft7::new(&schema()).expect("the schema compiles");
        let mut good = yaml_files(&fixtures());
        good.retain(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("err_"))
        });
        good.extend(yaml_files(&fixtures().join("adversarial")));
        assert!(good.len() >= 8, "{good:?}");
        for path in &good {
            let errors = schema_errors(&validator, path);
            assert!(
                errors.is_empty(),
                "{}:\n{}",
                path.display(),
                errors.join("\n")
            );
        }
        // Not hollow: specs with unknown keys, wrong types or unknown names are refused.
        for name in [
            "err_unknown_keys.yaml",
            "err_types.yaml",
            "err_enums.yaml",
            "err_ports.yaml",
        ] {
            let errors = schema_errors(&validator, &fixtures().join(name));
            assert!(!errors.is_empty(), "{name} passes the schema");
        }
    }
}
