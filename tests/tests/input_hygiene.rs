//! Input hygiene: every error of an import file in one pass, JSON that is
//! not text refused for text fields, text kept in Unicode NFC, and
//! nonsensical settings refused at start-up.

use std::time::Duration;

use htx_core::schema::{Record, Value};
use htx_hub::config::HubConfig;
use htx_node::config::NodeConfig;
use htx_tests::{TestHub, parse_export, run, spawn};

/// "Nguyễn Thị Hằng" typed on a keyboard that sends decomposed characters
/// (NFD: base letters and combining marks) and as NFC.
const NAME_NFD: &str = "Nguye\u{302}\u{303}n Thi\u{323} Ha\u{306}\u{300}ng";
const NAME_NFC: &str = "Nguyễn Thị Hằng";

async fn cli_export(dir: &str) -> Vec<serde_json::Value> {
    parse_export(run("htx-node", &["export", dir]).await.ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_reports_every_error_of_the_file_at_once() {
    let hub = TestHub::start().await;
    let mut node = hub.enroll_node("356", "node-356");
    node.close();
    let dir = node.dir().to_str().unwrap().to_owned();

    let good_coop = "0190a2b4-0000-7000-8000-000000000001";
    let bad_coop = "0190a2b4-0000-7000-8000-000000000002";
    let csv = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    std::fs::write(
        csv.path(),
        format!(
            "kind,id,type,name,unit,founded_on,cooperative,observed_on,members\n\
             cooperative,{good_coop},HTX,HTX Một,13633,2020-01-15,,,\n\
             cooperative,,HTX,HTX Hai,13633,2025-13-01,,,\n\
             cooperative,,HTX,HTX Ba,99999,,,,\n\
             observation,,,,,,0190a2b4-0000-7000-8000-00000000dead,2025-06-30,12\n\
             observation,,,,,,{good_coop},2025-06-30,10\n\
             cooperative,{bad_coop},HTX,HTX Sáu,13633,2025-02-30,,,\n\
             observation,,,,,,{bad_coop},2025-06-30,10\n"
        ),
    )
    .unwrap();
    let out = run("htx-node", &["import", &dir, csv.path().to_str().unwrap()]).await;
    let stderr = out.failed();
    // A date the schema refuses, a unit the hierarchy does not know and a
    // reference to nothing: three rounds of fixing before, one now.
    assert!(
        stderr.contains("row 2") && stderr.contains("2025-13-01"),
        "{stderr}"
    );
    assert!(
        stderr.contains("row 3") && stderr.contains("unknown unit code \"99999\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("row 4") && stderr.contains("00000000dead"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("row 1:") && !stderr.contains("row 5:"),
        "{stderr}"
    );
    // A row that refers to a bad row says which row to fix.
    assert!(
        stderr.contains("row 6") && stderr.contains("2025-02-30"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("row 7: observation: field \"cooperative\": \"{bad_coop}\" is the id of row 6, which is refused")),
        "{stderr}"
    );
    assert!(stderr.contains("5 bad row(s)"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert!(cli_export(&dir).await.is_empty(), "nothing imported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_that_is_not_text_is_refused_for_text_fields() {
    let hub = TestHub::start().await;
    let mut node = hub.enroll_node("356", "node-356");
    node.close();
    let dir = node.dir().to_str().unwrap().to_owned();
    let cases = [
        (
            r#"{"kind":"cooperative","type":"HTX","name":["HTX","Lúa"],"unit":"13633"}"#,
            "\"name\"",
        ),
        (
            r#"{"kind":"cooperative","type":"HTX","name":"HTX Lúa","sector":{"vi":"nông nghiệp"},"unit":"13633"}"#,
            "\"sector\"",
        ),
        (
            r#"{"kind":"cooperative","type":"HTX","name":"HTX Lúa","unit":["13633"]}"#,
            "\"unit\"",
        ),
        (
            r#"{"kind":"cooperative","id":12,"type":"HTX","name":"HTX Lúa","unit":"13633"}"#,
            "\"id\"",
        ),
    ];
    for (row, field) in cases {
        let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
        std::fs::write(file.path(), format!("[{row}]")).unwrap();
        let out = run("htx-node", &["import", &dir, file.path().to_str().unwrap()]).await;
        let stderr = out.failed();
        assert!(stderr.contains("row 1"), "{stderr}");
        assert!(stderr.contains(field), "names {field}: {stderr}");
        assert!(stderr.contains("not text"), "{stderr}");
        assert!(cli_export(&dir).await.is_empty(), "{row} was not stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_is_stored_in_unicode_nfc_whichever_way_it_came() {
    assert_ne!(NAME_NFD, NAME_NFC);
    assert_eq!(NAME_NFD.chars().count(), 20);
    assert_eq!(NAME_NFC.chars().count(), 15);
    let hub = TestHub::start().await;
    let mut node = hub.enroll_node("356", "node-356");

    // Through the write API, as a client program sends typed values.
    let mut coop = htx_tests::coop("13633", "HTX");
    coop.fields
        .insert("name".into(), Value::Text(format!("HTX {NAME_NFD}")));
    coop.fields
        .insert("sector".into(), Value::Text(format!("  {NAME_NFD}  ")));
    let id = node.write(vec![coop]).unwrap().remove(0);
    let stored: Record = node.record(&id);
    assert_eq!(
        stored.text("name"),
        Some(format!("HTX {NAME_NFC}").as_str())
    );
    assert_eq!(stored.text("sector"), Some(NAME_NFC));

    // Through the officer's commands: `add` and a CSV import.
    node.close();
    let dir = node.dir().to_str().unwrap().to_owned();
    let added = run(
        "htx-node",
        &[
            "add", &dir, "cadre", "--name", NAME_NFD, "--level", "commune", "--unit", "13633",
        ],
    )
    .await;
    let cadre_id = added.ok().trim().to_owned();
    let csv = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    std::fs::write(
        csv.path(),
        format!("kind,name,level,unit\ncadre,{NAME_NFD} B,district,356\n"),
    )
    .unwrap();
    run("htx-node", &["import", &dir, csv.path().to_str().unwrap()])
        .await
        .ok();
    let records = cli_export(&dir).await;
    let names: Vec<&str> = records
        .iter()
        .filter(|r| r["kind"] == "cadre")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{records:?}");
    assert!(names.contains(&NAME_NFC), "{names:?}");
    assert!(
        names.contains(&format!("{NAME_NFC} B").as_str()),
        "{names:?}"
    );
    assert!(records.iter().any(|r| r["id"] == cadre_id.as_str()));
}

/// Writes `DIR/node.toml`: the defaults, with the setting of `line` replaced.
fn node_toml_with(dir: &std::path::Path, line: &str) {
    let key = line[..line.find('=').unwrap()].trim();
    let text = toml::to_string(&NodeConfig::default()).unwrap();
    let text: Vec<&str> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} ")) {
                line
            } else {
                l
            }
        })
        .collect();
    std::fs::write(dir.join(NodeConfig::FILE), text.join("\n")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsensical_settings_are_refused_at_start_up() {
    let hub = TestHub::start().await;
    let mut node = hub.enroll_node("356", "node-356");
    node.close();
    let dir = node.dir().to_owned();

    for (line, field) in [
        ("sync_interval_secs = 0", "sync_interval_secs"),
        ("retry_min_secs = 0", "retry_min_secs"),
        ("retry_min_secs = 600", "retry_min_secs"),
        ("max_batch_bytes = 0", "max_batch_bytes"),
        ("timeout_secs = 0", "timeout_secs"),
        ("api_listen = \"0.0.0.0:0\"", "api_listen"),
    ] {
        node_toml_with(&dir, line);
        let err = NodeConfig::load(&dir).expect_err(line).to_string();
        assert!(err.contains(field), "{line}: names the field: {err}");
        assert!(err.contains(" / "), "{line}: in both languages: {err}");
    }

    // The real process refuses to start, and says why.
    node_toml_with(&dir, "sync_interval_secs = 0");
    let log = dir.join("run.log");
    let mut p = spawn("htx-node", &["run", dir.to_str().unwrap()], &log);
    let status = tokio::time::timeout(Duration::from_secs(20), p.child.wait())
        .await
        .expect("htx-node run exits at once with a bad setting")
        .unwrap();
    assert!(!status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("sync_interval_secs"), "{text}");
    assert!(!dir.join("api.addr").exists(), "nothing was served");
    node_toml_with(&dir, "sync_interval_secs = 30");
    NodeConfig::load(&dir).expect("a sensible setting is accepted");

    // The hub's settings, likewise.
    let hub_dir = hub.dir().to_owned();
    let good = std::fs::read_to_string(hub_dir.join(HubConfig::FILE)).unwrap();
    type Change = fn(&mut HubConfig);
    let cases: [(Change, &str); 6] = [
        (|c| c.idle_timeout_secs = 0, "idle_timeout_secs"),
        (|c| c.max_message_bytes = 0, "max_message_bytes"),
        (|c| c.max_batch_bytes = 0, "max_batch_bytes"),
        (|c| c.node_cert_days = 0, "node_cert_days"),
        (|c| c.max_sessions_per_node = 0, "max_sessions_per_node"),
        (|c| c.admin_listen = "0.0.0.0:0".into(), "admin_listen"),
    ];
    for (change, field) in cases {
        let mut cfg: HubConfig = toml::from_str(&good).unwrap();
        change(&mut cfg);
        std::fs::write(
            hub_dir.join(HubConfig::FILE),
            toml::to_string(&cfg).unwrap(),
        )
        .unwrap();
        let err = HubConfig::load(&hub_dir).expect_err(field).to_string();
        assert!(err.contains(field), "names the field: {err}");
        assert!(err.contains(" / "), "in both languages: {err}");
    }
    std::fs::write(hub_dir.join(HubConfig::FILE), good).unwrap();
    HubConfig::load(&hub_dir).expect("the hub's own settings are accepted");
}
