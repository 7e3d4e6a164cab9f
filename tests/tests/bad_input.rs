//! Bad input gets a clear error, and changes nothing.

use htx_core::schema::{Record, Value};
use htx_node::node::NodeError;
use htx_node::sync_client::SyncError;
use htx_tests::{TestHub, coop, parse_export, run};

/// What `htx-node export DIR` prints, parsed.
async fn cli_export(dir: &str) -> Vec<serde_json::Value> {
    parse_export(
        run("htx-node", &["export", dir, "--format", "json"])
            .await
            .ok(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let mut hub = TestHub::start().await;
    let mut node = hub.enroll_node("356", "node-356");
    let coop_id = node.add_coop("13633", "HTX Hạ Long");
    node.sync().await.expect("sync");
    let before = node.export();

    // Through the write API, with typed values, as a client program sends them.
    let refused = |rec: Record, expected: &str| {
        let err = node.write(vec![rec]).expect_err("refused");
        assert!(matches!(err, NodeError::Invalid(_)), "{err:?}");
        assert!(err.to_string().contains(expected), "{expected:?} in {err}");
        assert_eq!(node.export(), before, "nothing changed after: {err}");
    };
    refused(coop("99999", "HTX Ma"), "unknown unit code \"99999\"");
    refused(
        coop("13741", "HTX Gôi"),
        "unit 13741 is outside the units this node serves (356 and below)",
    );
    let mut bad_date = coop("13633", "HTX Mới");
    bad_date
        .fields
        .insert("founded_on".into(), Value::Text("2025-13-01".into()));
    refused(
        bad_date,
        "\"2025-13-01\" is not a date of the form YYYY-MM-DD",
    );
    let mut negative = Record {
        kind: "observation".into(),
        ..Default::default()
    };
    for (k, v) in [
        ("cooperative", Value::Text(coop_id.clone())),
        ("observed_on", Value::Text("2025-06-30".into())),
        ("members", Value::Int(-3)),
    ] {
        negative.fields.insert(k.into(), v);
    }
    refused(negative, "\"members\": -3 is negative");

    // A node enrolled at hub A, pointed at hub B's address: refused before
    // anything is exchanged.
    let other = TestHub::start().await;
    node.reconfigure(|c| c.hub_url = Some(other.url()));
    let err = node.sync().await.expect_err("wrong hub");
    assert!(matches!(err, SyncError::WrongHub { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("is not the hub this node was enrolled with"),
        "{err}"
    );
    assert_eq!(node.export(), before);
    assert!(other.export().is_empty(), "hub B received nothing");
    assert!(other.nodes().is_empty());
    node.reconfigure(|c| c.hub_url = None);

    // The officer's commands, on the node's directory.
    node.close();
    let dir = node.dir().to_str().unwrap().to_owned();
    let before = cli_export(&dir).await;
    assert_eq!(before.len(), 1);
    let add = |extra: &[&str]| {
        let mut args = vec!["add", dir.as_str(), "cooperative", "--type", "HTX"];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            add(&["--name", "HTX Ma", "--unit", "99999"]),
            "unknown unit code \"99999\"",
        ),
        (
            add(&["--name", "HTX Gôi", "--unit", "13741"]),
            "outside the units this node serves",
        ),
        (
            add(&[
                "--name",
                "HTX Mới",
                "--unit",
                "13633",
                "--founded-on",
                "2025-13-01",
            ]),
            "\"2025-13-01\" is not a date of the form YYYY-MM-DD",
        ),
        (
            [
                "add",
                &dir,
                "observation",
                "--cooperative",
                &coop_id,
                "--observed-on",
                "2025-06-30",
                "--members",
                "-3",
            ]
            .map(str::to_owned)
            .to_vec(),
            "\"members\": -3 is negative",
        ),
    ];
    for (args, expected) in cases {
        let out = run("htx-node", &args).await;
        let stderr = out.failed();
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
        assert_eq!(cli_export(&dir).await, before, "after {args:?}");
    }

    // An import file with one bad row imports nothing, and says which row.
    let csv = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    std::fs::write(
        csv.path(),
        "kind,type,name,unit,founded_on\n\
         cooperative,HTX,HTX Một,13633,2020-01-15\n\
         cooperative,HTX,HTX Hai,13633,2025-13-01\n\
         cooperative,THT,THT Ba,13636,\n",
    )
    .unwrap();
    let out = run("htx-node", &["import", &dir, csv.path().to_str().unwrap()]).await;
    let stderr = out.failed();
    assert!(stderr.contains("row 2"), "names the bad row: {stderr}");
    assert!(stderr.contains("2025-13-01"), "{stderr}");
    assert!(
        !stderr.contains("row 1") && !stderr.contains("row 3"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert_eq!(cli_export(&dir).await, before, "nothing imported");

    // The hub is down: the sync command says so and fails.
    hub.stop().await;
    let out = run("htx-node", &["sync", &dir, "--once"]).await;
    let stderr = out.failed();
    assert!(stderr.contains("cannot reach the hub"), "{stderr}");
    assert!(stderr.contains(&hub.url()), "names the address: {stderr}");
    assert_eq!(cli_export(&dir).await, before);
}
