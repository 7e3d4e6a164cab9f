//! Progress as the province and a district office see it: the hub keeps
//! it current as nodes sync, serves it over gRPC (mutual TLS) and HTTP
//! (JSON, CSV) with the freshness of every figure, refuses bad questions
//! clearly, and a node computes the same for its own units offline.

use htx_core::schema::record_from_strings;
use htx_proto::v1 as pb;
use htx_tests::{Record, TestHub, TestNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An in-scope HTX (a woman chairs it), founded with Union support and
/// consolidated in 2024: one more for HTX_CONSOLIDATED.
fn consolidated_htx(node: &TestNode, unit: &str, name: &str) -> String {
    let mut coop = record_from_strings(
        "cooperative",
        [
            ("type", "HTX"),
            ("name", name),
            ("unit", unit),
            ("union_supported", "true"),
            ("founded_on", "2020-01-01"),
            ("consolidated_on", "2024-06-01"),
        ],
    )
    .unwrap();
    coop.id = htx_core::schema::new_id();
    let chair: Record = record_from_strings(
        "manager",
        [
            ("cooperative", coop.id.as_str()),
            ("name", "Nguyễn Thị Hoa"),
            ("gender", "female"),
            ("role", "chair"),
        ],
    )
    .unwrap();
    let id = coop.id.clone();
    node.write(vec![coop, chair]).expect("recorded");
    id
}

fn figure<'a>(
    reply: &'a pb::ProgressReply,
    unit: &str,
    indicator: &str,
    phase: &str,
) -> &'a pb::Figure {
    reply
        .units
        .iter()
        .find(|u| u.unit == unit)
        .unwrap_or_else(|| panic!("unit {unit} in the reply"))
        .figures
        .iter()
        .find(|f| f.indicator == indicator && f.phase == phase)
        .unwrap_or_else(|| panic!("{indicator} phase {phase}"))
}

async fn http_get(base: &str, path: &str) -> (u16, String) {
    let addr = base.strip_prefix("http://").unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a response");
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_keeps_progress_current_and_serves_it() {
    let hub = TestHub::start().await;
    let city = hub.enroll_node("356", "node-356");
    let vu_ban = hub.enroll_node("359", "node-359");
    consolidated_htx(&city, "13633", "HTX Dệt may Hạ Long");
    consolidated_htx(&vu_ban, "13741", "HTX Mây tre Gôi");
    // Out of scope: no woman in management, no observation.
    city.write(vec![
        record_from_strings(
            "cooperative",
            [
                ("type", "HTX"),
                ("name", "HTX Cơ khí"),
                ("unit", "13636"),
                ("union_supported", "true"),
                ("consolidated_on", "2024-06-01"),
            ],
        )
        .unwrap(),
    ])
    .unwrap();
    city.sync().await.unwrap();
    vu_ban.sync().await.unwrap();

    let default = htx_hub::progress::Query::default();
    let p = hub.hub().progress(&default).expect("progress");
    assert_eq!(p.hierarchy, "2023");
    assert_eq!(p.units[0].unit, "36", "the province first");
    let f = figure(&p, "36", "HTX_CONSOLIDATED", "1");
    assert_eq!((f.numerator, f.target.as_str()), (2, "≥ 10"));
    assert_eq!(figure(&p, "356", "HTX_CONSOLIDATED", "1").numerator, 1);
    assert_eq!(figure(&p, "359", "HTX_CONSOLIDATED", "1").numerator, 1);
    let sources: Vec<&str> = p.units[0].sources.iter().map(|s| s.node.as_str()).collect();
    assert_eq!(sources, ["node-356", "node-359"]);
    assert!(p.units[0].sources.iter().all(|s| !s.last_sync.is_empty()));

    // One more merges: the live figures move without asking twice.
    consolidated_htx(&city, "13684", "HTX Hoa Lộc Hạ");
    city.sync().await.unwrap();
    let p = hub.hub().progress(&default).unwrap();
    assert_eq!(figure(&p, "36", "HTX_CONSOLIDATED", "1").numerator, 3);
    assert_eq!(figure(&p, "356", "HTX_CONSOLIDATED", "1").numerator, 2);
    // The same data asked under the 2025 hierarchy (computed from scratch)
    // counts the same cooperatives under the merged province.
    let q = htx_hub::progress::Query {
        hierarchy: Some("2025".into()),
        ..Default::default()
    };
    let p25 = hub.hub().progress(&q).unwrap();
    assert_eq!(figure(&p25, "37", "HTX_CONSOLIDATED", "1").numerator, 3);
    // Before the consolidations, nothing counted.
    let q = htx_hub::progress::Query {
        as_of: Some("2024-01-01".into()),
        ..Default::default()
    };
    assert_eq!(
        figure(
            &hub.hub().progress(&q).unwrap(),
            "36",
            "HTX_CONSOLIDATED",
            "1"
        )
        .numerator,
        0
    );

    // HTTP: JSON, CSV, and clear refusals.
    let (code, body) = http_get(&hub.http_url(), "/api/progress?unit=356&as_of=2025-12-31").await;
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["units"][0]["unit"], "356");
    assert_eq!(json["as_of"], "2025-12-31");
    let first = json["units"][0]["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["indicator"] == "HTX_CONSOLIDATED")
        .unwrap();
    assert_eq!(first["numerator"], 2);
    assert!(
        json["units"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["unit"] == "13633"),
        "communes below come too"
    );
    let (code, csv) = http_get(&hub.http_url(), "/api/progress.csv?unit=36").await;
    assert_eq!(code, 200);
    assert!(csv.starts_with("unit,name,level,indicator,phase"));
    assert!(
        csv.lines()
            .any(|l| l.starts_with("36,Tỉnh Nam Định,province,HTX_CONSOLIDATED,1,count,3,")),
        "{csv}"
    );
    for (bad, says) in [
        ("/api/progress?unit=99999", "unknown unit"),
        ("/api/progress?as_of=2025-13-01", "not a date"),
        ("/api/progress?hierarchy=1999", "unknown hierarchy version"),
    ] {
        let (code, body) = http_get(&hub.http_url(), bad).await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body.contains(says), "{bad}: {body}");
    }

    // gRPC over mutual TLS, with a node's certificate.
    let ch = htx_node::sync_client::connect(city.node())
        .await
        .expect("mutual TLS");
    let reply = pb::progress_client::ProgressClient::new(ch)
        .get(pb::ProgressRequest {
            unit: "359".into(),
            ..Default::default()
        })
        .await
        .expect("progress over gRPC")
        .into_inner();
    assert_eq!(figure(&reply, "359", "HTX_CONSOLIDATED", "1").numerator, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_computes_progress_for_its_units_offline() {
    let hub = TestHub::create(); // never served: the node is offline
    let node = hub.enroll_node("356", "node-356");
    consolidated_htx(&node, "13633", "HTX Dệt may Hạ Long");
    let p = node
        .node()
        .progress(None, Some("2025-06-30"), None)
        .expect("progress offline");
    assert_eq!(p.units[0].unit, "356", "its own district first");
    assert_eq!(figure(&p, "356", "HTX_CONSOLIDATED", "1").numerator, 1);
    assert_eq!(figure(&p, "13633", "HTX_CONSOLIDATED", "1").numerator, 1);
    assert_eq!(
        p.units[0].sources[0].last_sync, "",
        "never synced, and it says so"
    );
    let err = node.node().progress(Some("99999"), None, None).unwrap_err();
    assert!(err.to_string().contains("unknown unit"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_use_the_plan_the_hub_publishes_and_cannot_change_it() {
    let mut hub = TestHub::create();
    // The province adds a sub-target for Thành phố Nam Định: no code change.
    let plan = format!(
        "{}\n[[targets]]\nindicator = \"HTX_CONSOLIDATED\"\nphase = \"1\"\nunit = \"356\"\nat_least = 3\n",
        htx_core::plan::DE_AN_01_NAM_DINH
    );
    std::fs::write(hub.dir().join("plan.toml"), plan).unwrap();
    let mut cfg = htx_hub::config::HubConfig::load(hub.dir()).unwrap();
    cfg.plan_file = "plan.toml".into();
    std::fs::write(hub.dir().join("hub.toml"), toml::to_string(&cfg).unwrap()).unwrap();
    hub.serve().await;
    let node = hub.enroll_node("356", "node-356");
    consolidated_htx(&node, "13633", "HTX Dệt may Hạ Long");

    let before = node
        .node()
        .progress(None, Some("2025-06-30"), None)
        .unwrap();
    assert_eq!(
        figure(&before, "356", "HTX_CONSOLIDATED", "1").target,
        "",
        "the built-in plan has no district target"
    );
    node.sync().await.unwrap();
    let after = node
        .node()
        .progress(None, Some("2025-06-30"), None)
        .unwrap();
    let f = figure(&after, "356", "HTX_CONSOLIDATED", "1");
    assert_eq!(
        (f.numerator, f.target.as_str()),
        (1, "≥ 3"),
        "the hub's plan, replicated down"
    );
    assert_eq!(
        figure(
            &hub.hub().progress(&Default::default()).unwrap(),
            "356",
            "HTX_CONSOLIDATED",
            "1"
        )
        .target,
        "≥ 3"
    );

    // The node may read the plan, not write it: it never sends the
    // reference document (a hub restored from an older backup must not be
    // handed a plan back), so the hub keeps its own.
    let reference = htx_core::docs::REFERENCE_DOC;
    node.node()
        .replica()
        .change(reference, |d| {
            use automerge::transaction::Transactable;
            d.put(
                automerge::ROOT,
                "plan",
                "format = 1 # rewritten by a district",
            )
        })
        .unwrap()
        .unwrap();
    let _ = node.sync().await;
    let hub_plan = {
        let r = hub.hub().replica();
        htx_core::docs::read_reference(r.doc(reference).unwrap())
            .unwrap()
            .plan
    };
    assert!(
        hub_plan.contains("unit = \"356\""),
        "the hub's plan is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_names_only_the_nodes_that_serve_a_unit_and_adds_up() {
    let hub = TestHub::start().await;
    let city = hub.enroll_node("356", "node-356");
    let hai_hau = hub.enroll_node("366", "node-366"); // enrolled, never syncs
    let province = hub.enroll_node("36", "node-36");
    consolidated_htx(&city, "13633", "HTX Dệt may Hạ Long");
    // The province office records a cadre of its own, at province level.
    province
        .write(vec![
            record_from_strings(
                "cadre",
                [
                    ("name", "Trần Thị Lan"),
                    ("level", "province"),
                    ("unit", "36"),
                    ("kttt_support", "true"),
                ],
            )
            .unwrap(),
        ])
        .unwrap();
    city.sync().await.unwrap();
    province.sync().await.unwrap();
    let _ = &hai_hau;

    let p = hub
        .hub()
        .progress(&htx_hub::progress::Query::default())
        .unwrap();
    let unit = |code: &str| p.units.iter().find(|u| u.unit == code).unwrap();
    let names =
        |code: &str| -> Vec<String> { unit(code).sources.iter().map(|s| s.node.clone()).collect() };
    // Nam Trực (362): no node serves it; the province's node holds nothing
    // there: "no node", not the province node's last sync.
    assert_eq!(unit("362").coverage, "no_node");
    assert!(names("362").is_empty());
    // The city: its own node only, not the province-level one.
    assert_eq!(names("356"), ["node-356"]);
    assert_eq!(unit("356").coverage, "reported");
    assert!(!unit("356").oldest_sync.is_empty());
    // Hải Hậu's node never synced: it is a source, and says so.
    assert_eq!(names("366"), ["node-366"]);
    assert!(unit("366").never_synced);
    // The province: every node, and the never-synced one is not hidden.
    let mut all = names("36");
    all.sort();
    assert_eq!(all, ["node-356", "node-36", "node-366"]);
    assert!(unit("36").never_synced);

    // The cadre is at the province itself: the districts' rows plus the
    // row "at this level" make the province's total.
    let total = figure(&p, "36", "CADRES_KTTT_TRAINED_PCT", "1");
    assert_eq!((total.denominator, total.here_denominator), (1, 1));
    let below: i64 = p
        .units
        .iter()
        .filter(|u| u.parent == "36")
        .map(|u| figure(&p, &u.unit, "HTX_CONSOLIDATED", "1").numerator)
        .sum();
    let htx = figure(&p, "36", "HTX_CONSOLIDATED", "1");
    assert_eq!(below + htx.here_numerator, htx.numerator);

    // The table as people read it.
    let table = htx_core::report::to_table(&p);
    let line = |code: &str| {
        table
            .lines()
            .find(|l| l.trim_start().starts_with(code))
            .unwrap_or_else(|| panic!("{code} in {table}"))
            .to_owned()
    };
    assert!(line("362").contains("no node"), "{table}");
    assert!(line("366").contains("never"), "{table}");
    assert!(table.contains("tại cấp này (không phân bổ"), "{table}");
}
