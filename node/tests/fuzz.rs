//! Fuzzing of what a node reads from people: import files (CSV and JSON;
//! this build reads no XLSX) and `node.toml`. Seeds are the sample import
//! files and an export of their records, mutated by line, token, value and
//! byte. See RELIABILITY.md, "Fuzzing".

#[path = "../../core/tests/support/fuzz.rs"]
mod fuzz;

use std::path::Path;

use htx_core::schema;
use htx_node::cli::{FileFormat, read_import};
use htx_node::config::NodeConfig;
use proptest::prelude::*;

use fuzz::{Largest, bounded, config, json_input, text_input, toml_input};

#[global_allocator]
static ALLOC: Largest = Largest;

const SAMPLES: [&str; 3] = [
    include_str!("../../deploy/sample/nam-dinh-city.csv"),
    include_str!("../../deploy/sample/vu-ban.csv"),
    include_str!("../../deploy/sample/hai-hau.csv"),
];

/// The sample records as `htx-node export --format json` prints them.
fn exported() -> serde_json::Value {
    let mut rdr = csv::Reader::from_reader(SAMPLES[0].as_bytes());
    let headers = rdr.headers().unwrap().clone();
    rdr.records()
        .map(|row| {
            let row = row.unwrap();
            schema::record_from_strings(&row[0], headers.iter().zip(row.iter()))
                .unwrap()
                .to_json()
        })
        .collect()
}

/// Reads `bytes` as an import file named `name`; checks what a person
/// would: the file is imported whole, or refused with a reason that names
/// the file (and the rows at fault) in English and Vietnamese.
fn import(name: &str, bytes: &[u8], format: Option<FileFormat>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    match bounded("read_import", || read_import(&path, format))? {
        Ok(file) => {
            // Rows read are records of a known kind; rows that were not are
            // numbered, for the officer.
            for (_, r) in &file.rows {
                prop_assert!(schema::kind(&r.kind).is_ok(), "{r:?}");
            }
            for u in &file.unreadable {
                prop_assert!(u.row > 0, "{u:?}");
            }
        }
        Err(e) => {
            let msg = format!("{e:#}");
            prop_assert!(msg.contains(name), "the file is not named: {msg}");
            prop_assert!(msg.contains(" / "), "not in both languages: {msg}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn csv_imports(input in prop_oneof![
        text_input(SAMPLES[0].to_owned()),
        text_input(SAMPLES[1].to_owned()),
        text_input(SAMPLES[2].to_owned()),
    ]) {
        import("import.csv", &input, None)?;
    }

    #[test]
    fn json_imports(input in json_input(exported())) {
        import("import.json", &input, None)?;
    }

    /// The format flag wins over the name: JSON read as CSV and back.
    #[test]
    fn imports_of_the_other_format(input in json_input(exported()), csv in text_input(SAMPLES[0].to_owned())) {
        import("import.json", &csv, Some(FileFormat::Csv))?;
        import("import.csv", &input, Some(FileFormat::Json))?;
    }

    /// A damaged `node.toml` is read or refused with its path named.
    #[test]
    fn node_config_files(input in prop_oneof![
        toml_input(include_str!("../../deploy/node.example.toml")),
        toml_input(&toml::to_string(&NodeConfig::default()).unwrap()),
    ]) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(NodeConfig::FILE), &input).unwrap();
        match bounded("NodeConfig::load", || NodeConfig::load(dir.path()))? {
            Ok(cfg) => {
                let text = toml::to_string(&cfg).unwrap();
                prop_assert_eq!(toml::from_str::<NodeConfig>(&text).unwrap(), cfg);
            }
            Err(e) => prop_assert!(e.to_string().contains("node.toml"), "{e}"),
        }
    }
}

#[test]
fn the_samples_import() {
    for (i, s) in SAMPLES.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{i}.csv"));
        std::fs::write(&path, s).unwrap();
        let file = read_import(Path::new(&path), None).unwrap();
        assert!(!file.rows.is_empty() && file.unreadable.is_empty());
    }
}

/// Found by `csv_imports` and `json_imports`: a file that is not text, not
/// a JSON array, or has no `kind` column was refused in English only.
#[test]
fn refused_import_files_are_explained_in_both_languages() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("binary.csv", &b"kind,name\n\xff\xfe\n"[..]),
        ("object.json", &b"{\"kind\": \"cadre\"}"[..]),
        ("columns.csv", &b"name,level\nAn,commune\n"[..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let e = format!("{:#}", read_import(&path, None).unwrap_err());
        assert!(e.contains(name) && e.contains(" / "), "{e}");
    }
}
