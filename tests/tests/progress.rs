//! Progress as the province and a district office see it: the hub keeps
//! it current as nodes sync, serves it over gRPC (mutual TLS) and HTTP
//! (JSON, CSV) with the freshness of every figure, refuses bad questions
//! clearly, and a node computes the same for its own units offline.

use htx_core::schema::record_from_strings;
use htx_proto::v1 as pb;
use htx_tests::{TestHub, consolidated_htx, figure};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_keeps_progress_current_and_serves_it() {
    let hub = TestHub::start().await;
    let city = hub.enroll_node("356", "node-356");
    let vu_ban = hub.enroll_node("359", "node-359");
    consolidated_htx(&city, "13633", "HTX Dệt may Hạ Long", "2020-01-01");
    consolidated_htx(&vu_ban, "13741", "HTX Mây tre Gôi", "2020-01-01");
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
    consolidated_htx(&city, "13684", "HTX Hoa Lộc Hạ", "2020-01-01");
    city.sync().await.unwrap();
    let p = hub.hub().progress(&default).unwrap();
    assert_eq!(figure(&p, "36", "HTX_CONSOLIDATED", "1").numerator, 3);
    assert_eq!(figure(&p, "356", "HTX_CONSOLIDATED", "1").numerator, 2);
    // The same data asked under the 2025 hierarchy (computed from scratch)
    // counts the same cooperatives under Nam Định's former territory (the
    // plan's), not the merged province.
    let q = htx_hub::progress::Query {
        hierarchy: Some("2025".into()),
        ..Default::default()
    };
    let p25 = hub.hub().progress(&q).unwrap();
    assert_eq!(p25.units[0].name, "Tỉnh Nam Định (địa bàn cũ)");
    assert_eq!(figure(&p25, "36", "HTX_CONSOLIDATED", "1").numerator, 3);
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
    let (code, body) = hub.api_get("/api/progress?unit=356&as_of=2025-12-31").await;
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
    let (code, csv) = hub.api_get("/api/progress.csv?unit=36").await;
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
        let (code, body) = hub.api_get(bad).await;
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

    // Dates a page asks to keep (the overview: the end of last month, a
    // past date) stay in the live view: as records merge, their figures
    // stay those of a computation from scratch over every merged record. A
    // cooperative consolidated today is not in them; one consolidated in
    // 2024 is.
    let today = htx_hub::progress::today();
    let last_month = htx_hub::views::previous_month_end(today);
    let past = htx_core::progress::parse_date("2025-06-30").unwrap();
    let at = |d| htx_hub::progress::Query {
        as_of: Some(htx_core::schema::format_date(d)),
        ..Default::default()
    };
    hub.hub().progress_kept(&at(last_month)).unwrap();
    hub.hub().progress_kept(&at(past)).unwrap();
    let before = hub.hub().progress(&at(last_month)).unwrap();
    let before_past = hub.hub().progress(&at(past)).unwrap();
    let plan = hub.hub().plan();
    assert_eq!(hub.hub().kept_dates(plan).unwrap(), [past, last_month]);
    // A query that does not ask to keep a date is answered from scratch.
    hub.hub()
        .progress(&at(htx_core::progress::parse_date("2024-06-30").unwrap()))
        .unwrap();
    assert_eq!(hub.hub().kept_dates(plan).unwrap(), [past, last_month]);
    htx_tests::consolidated_htx_on(
        &city,
        "13633",
        "HTX Rau sạch",
        "2020-01-01",
        &htx_core::schema::format_date(today),
    );
    consolidated_htx(&vu_ban, "13741", "HTX Gốm", "2020-01-01");
    city.sync().await.unwrap();
    vu_ban.sync().await.unwrap();
    let after = hub.hub().progress(&at(last_month)).unwrap();
    // Queries that do not ask to keep are answered from the kept dates,
    // every unit below the territory included; a page's query has its unit
    // and the units just below it.
    let after_past = hub.hub().progress(&at(past)).unwrap();
    assert!(
        after_past.units.len() > 200,
        "every unit: {}",
        after_past.units.len()
    );
    let page = hub.hub().progress_kept(&at(past)).unwrap();
    assert_eq!(page.units[0], after_past.units[0]);
    let districts: Vec<&str> = after_past
        .units
        .iter()
        .filter(|u| u.parent == "36")
        .map(|u| u.unit.as_str())
        .collect();
    let shown: Vec<&str> = page.units[1..].iter().map(|u| u.unit.as_str()).collect();
    assert_eq!(shown, districts);
    let phase_one =
        |r: &pb::ProgressReply, unit| figure(r, unit, "HTX_CONSOLIDATED", "1").numerator;
    for (before, after) in [(&before, &after), (&before_past, &after_past)] {
        assert_eq!(phase_one(after, "36"), phase_one(before, "36") + 1);
        assert_eq!(phase_one(after, "356"), phase_one(before, "356"));
        assert_eq!(phase_one(after, "359"), phase_one(before, "359") + 1);
    }
    let records = hub.hub().export(false).unwrap();
    for (date, kept) in [(last_month, &after), (past, &after_past)] {
        let fresh = htx_core::progress::recompute(
            hub.hub().plan(),
            htx_core::units::Hierarchy::current(),
            "2023",
            date,
            &records,
        )
        .unwrap();
        for unit in &kept.units {
            let mine = fresh.unit(&unit.unit).expect("the same units");
            for f in &unit.figures {
                let theirs = mine.figure(&f.indicator, &f.phase).unwrap();
                assert_eq!(
                    (f.numerator, f.denominator),
                    (
                        theirs.total.numerator as i64,
                        theirs.total.denominator as i64
                    ),
                    "{} {} {} as of {date}",
                    unit.unit,
                    f.indicator,
                    f.phase
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_computes_progress_for_its_units_offline() {
    let hub = TestHub::create(); // never served: the node is offline
    let node = hub.enroll_node("356", "node-356");
    consolidated_htx(&node, "13633", "HTX Dệt may Hạ Long", "2020-01-01");
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
    consolidated_htx(&node, "13633", "HTX Dệt may Hạ Long", "2020-01-01");

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
    consolidated_htx(&city, "13633", "HTX Dệt may Hạ Long", "2020-01-01");
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

/// Two plans over neighbouring territories, followed by one hub: Nam
/// Định's (2023 units) and a small test plan over Xã Bình Lục (a 2025
/// commune, once Hà Nam's). The same merged records; each plan counts
/// exactly its territory's, names itself in every output, and an unknown
/// plan is refused in both languages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_follows_two_plans_over_neighbouring_territories() {
    let mut hub = TestHub::create();
    hub.follow_two_plans();
    hub.serve().await;
    let vu_ban = hub.enroll_node("359", "node-359");
    let binh_luc = hub.enroll_node_in(Some("2025"), "13504", "node-binh-luc", |_| {});
    consolidated_htx(&vu_ban, "13741", "HTX Gôi", "2020-01-01");
    consolidated_htx(&vu_ban, "13744", "HTX Kim Thái", "2020-01-01");
    consolidated_htx(&binh_luc, "13504", "HTX Bình Lục", "2020-01-01");
    vu_ban.sync().await.unwrap();
    binh_luc.sync().await.unwrap();

    let ask = |plan: Option<&str>, hierarchy: Option<&str>| {
        hub.hub().progress(&htx_hub::progress::Query {
            plan: plan.map(str::to_owned),
            hierarchy: hierarchy.map(str::to_owned),
            as_of: Some("2025-12-01".into()),
            ..Default::default()
        })
    };
    // The default plan: Nam Định's, its own two cooperatives, the third
    // outside its territory.
    let nd = ask(None, None).unwrap();
    assert_eq!(nd.plan, "de-an-01-nam-dinh");
    assert_eq!(nd.units[0].unit, "36");
    assert_eq!(figure(&nd, "36", "HTX_CONSOLIDATED", "1").numerator, 2);
    assert_eq!(nd.outside, 2, "Bình Lục's cooperative and its chair");
    // Under 2025: Nam Định's territory, labelled as such, never the merged province.
    let nd25 = ask(Some("de-an-01-nam-dinh"), Some("2025")).unwrap();
    assert_eq!(nd25.units[0].name, "Tỉnh Nam Định (địa bàn cũ)");
    assert_eq!(nd25.territory_name, "Tỉnh Nam Định (former territory)");
    assert!(nd25.former_territory);
    assert_eq!(figure(&nd25, "36", "HTX_CONSOLIDATED", "1").numerator, 2);
    assert!(
        nd25.units
            .iter()
            .all(|u| u.unit != "37" && u.unit != "13504")
    );
    // The test plan: its own cooperative only, under any version.
    for version in ["2025", "2023"] {
        let bl = ask(Some("thu-nghiem-binh-luc"), Some(version)).unwrap();
        assert_eq!(bl.plan, "thu-nghiem-binh-luc");
        assert!(
            bl.plan_name_vi.contains("THỬ NGHIỆM"),
            "{}",
            bl.plan_name_vi
        );
        assert_eq!(bl.units[0].unit, "13504");
        assert_eq!(figure(&bl, "13504", "HTX_CONSOLIDATED", "1").numerator, 1);
        assert_eq!(
            bl.outside, 4,
            "Nam Định's two cooperatives and their chairs"
        );
        assert!(htx_core::report::to_table(&bl).contains("kế hoạch / plan thu-nghiem-binh-luc"));
        assert!(
            htx_core::report::to_csv(&bl)
                .lines()
                .skip(1)
                .all(|l| l.contains(",thu-nghiem-binh-luc,"))
        );
    }
    // Each node computes with the plan whose territory holds its unit (the
    // hub publishes them all), and its figures equal the hub's for it.
    for (node, plan, unit, version) in [
        (&binh_luc, "thu-nghiem-binh-luc", "13504", "2025"),
        (&vu_ban, "de-an-01-nam-dinh", "359", "2023"),
    ] {
        let own = node
            .node()
            .progress(None, Some("2025-12-01"), None)
            .unwrap();
        assert_eq!(own.plan, plan);
        let at_hub = ask(Some(plan), Some(version)).unwrap();
        for f in ["HTX_CONSOLIDATED", "MANAGERS_TRAINED_PCT", "ACTIVITIES"] {
            assert_eq!(
                figure(&own, unit, f, "1"),
                figure(&at_hub, unit, f, "1"),
                "{plan} {unit} {f}"
            );
        }
    }
    assert_eq!(
        figure(
            &binh_luc
                .node()
                .progress(None, Some("2025-12-01"), None)
                .unwrap(),
            "13504",
            "HTX_CONSOLIDATED",
            "1"
        )
        .numerator,
        1
    );
    // The yearly report of the other plan: its territory, its figures, its
    // indicators' names; a plan the hub does not follow is named as such.
    let report = |plan: &str| {
        htx_hub::report::build(
            hub.hub(),
            htx_web::Lang::Vi,
            &htx_hub::report::Request {
                plan: plan.into(),
                period: "2025".into(),
                hierarchy: "2025".into(),
                ..Default::default()
            },
        )
    };
    let bl = report("thu-nghiem-binh-luc").unwrap();
    assert_eq!(
        (bl.stamp.plan.as_str(), bl.stamp.unit.as_str()),
        ("thu-nghiem-binh-luc", "13504")
    );
    assert!(bl.stamp.plan_name.contains("THỬ NGHIỆM"));
    let json = serde_json::to_value(&bl).unwrap();
    let rows = json["sections"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), neighbour_indicators(), "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r.to_string().contains("HTX_CONSOLIDATED")),
        "{rows:?}"
    );
    let unknown = report("khong-co").unwrap_err().to_string();
    assert!(
        unknown.contains("thu-nghiem-binh-luc") && unknown.contains("de-an-01-nam-dinh"),
        "{unknown}"
    );
    // A record merged later counts for its plan only, in the live view too.
    consolidated_htx(&binh_luc, "13504", "HTX Bình Lục 2", "2020-01-01");
    binh_luc.sync().await.unwrap();
    let today = |plan: &str| {
        hub.hub()
            .progress(&htx_hub::progress::Query {
                plan: Some(plan.into()),
                ..Default::default()
            })
            .unwrap()
    };
    let bl = today("thu-nghiem-binh-luc");
    assert_eq!(bl.units[0].figures[0].numerator, 2);
    let nd = today("de-an-01-nam-dinh");
    assert_eq!(figure(&nd, "36", "HTX_CONSOLIDATED", "1").numerator, 2);
    assert_eq!(nd.outside, 4);

    // An unknown plan: a clear error, in both languages, over every door.
    let e = ask(Some("ke-hoach-khac"), None).unwrap_err().to_string();
    assert!(e.contains("unknown plan \"ke-hoach-khac\""), "{e}");
    assert!(e.contains("de-an-01-nam-dinh, thu-nghiem-binh-luc"), "{e}");
    assert!(e.contains("không theo dõi kế hoạch"), "{e}");
    let (code, body) = hub.api_get("/api/progress?plan=ke-hoach-khac").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown plan"), "{body}");
    let (code, body) = hub
        .api_get("/api/progress?plan=thu-nghiem-binh-luc&hierarchy=2025&as_of=2025-12-01")
        .await;
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["plan"], "thu-nghiem-binh-luc");
    assert_eq!(json["units"][0]["unit"], "13504");
}

/// A training organised at province level, attended by a district's
/// managers, counts the same in the district node's figures as in the
/// hub's: the hub publishes to the node the facts about its own people
/// (the training's date and type, and which of them attended), never the
/// training record or its other attendees. Until the node has synced, its
/// figures say they may be incomplete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_province_training_of_district_managers_counts_the_same_at_node_and_hub() {
    let hub = TestHub::start().await;
    let city = hub.enroll_node("356", "node-356");
    let hai_hau = hub.enroll_node("366", "node-366");
    let province = hub.enroll_node("36", "node-36");
    let manager = |coop: &str, name: &str| {
        let mut m = record_from_strings(
            "manager",
            [
                ("cooperative", coop),
                ("name", name),
                ("gender", "female"),
                ("role", "director"),
            ],
        )
        .unwrap();
        m.id = htx_core::schema::new_id();
        m
    };
    let coop = consolidated_htx(&city, "13633", "HTX Dệt may Hạ Long", "2020-01-01");
    let (m1, m2) = (manager(&coop, "Lê Thị Mai"), manager(&coop, "Phạm Thị Thu"));
    let ids = [m1.id.clone(), m2.id.clone()];
    city.write(vec![m1, m2]).unwrap();
    let other = consolidated_htx(&hai_hau, "14215", "HTX Yên Định", "2020-01-01");
    let m3 = manager(&other, "Đỗ Thị Hằng");
    let m3_id = m3.id.clone();
    hai_hau.write(vec![m3]).unwrap();
    let at = Some("2025-06-30");
    let offline = city.node().progress(None, at, None).unwrap();
    assert!(!offline.incomplete.is_empty(), "never synced: it says so");
    assert!(htx_core::report::to_table(&offline).contains("số liệu có thể chưa đầy đủ"));
    assert!(
        htx_core::report::to_csv(&offline)
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("may be incomplete")
    );
    city.sync().await.unwrap();
    hai_hau.sync().await.unwrap();
    province.sync().await.unwrap();
    // The province office trains two of the city's managers and one of
    // Hải Hậu's, and records it at province level.
    let mut training = record_from_strings(
        "training",
        [
            ("held_on", "2024-09-01"),
            ("type", "governance"),
            ("title", "Lớp bồi dưỡng quản trị HTX cấp tỉnh"),
            ("unit", "36"),
        ],
    )
    .unwrap();
    training.id = htx_core::schema::new_id();
    training.fields.insert(
        "attendees".into(),
        htx_core::schema::Value::List(vec![ids[0].clone(), ids[1].clone(), m3_id.clone()]),
    );
    let training_id = training.id.clone();
    province.write(vec![training]).unwrap();
    province.sync().await.unwrap();
    city.sync().await.unwrap();

    let node = city.node().progress(None, at, None).unwrap();
    assert!(node.incomplete.is_empty(), "{}", node.incomplete);
    let hub_reply = hub
        .hub()
        .progress(&htx_hub::progress::Query {
            unit: Some("356".into()),
            as_of: at.map(str::to_owned),
            ..Default::default()
        })
        .unwrap();
    // Managers of the city: the chair (not trained) and the two trained.
    let f = figure(&node, "356", "MANAGERS_TRAINED_PCT", "1");
    assert_eq!((f.numerator, f.denominator), (2, 3));
    // Every figure of every unit of the city, equal.
    for u in &node.units {
        let h = hub_reply.units.iter().find(|x| x.unit == u.unit).unwrap();
        for (a, b) in u.figures.iter().zip(&h.figures) {
            assert_eq!(
                (
                    &a.indicator,
                    &a.phase,
                    a.numerator,
                    a.denominator,
                    a.here_numerator
                ),
                (
                    &b.indicator,
                    &b.phase,
                    b.numerator,
                    b.denominator,
                    b.here_numerator
                ),
                "unit {}",
                u.unit
            );
        }
    }
    // What the city's node holds of the training: no record, no title, no
    // other district's attendee; only the facts about its own people.
    assert!(city.export().iter().all(|r| r.id != training_id));
    let facts = {
        let r = city.node().replica();
        htx_core::facts::read(r.doc(&htx_core::facts::doc_id("node-356")).unwrap()).unwrap()
    };
    assert_eq!(facts.trainings.len(), 1);
    let t = &facts.trainings[0];
    assert!(!t.fields.contains_key("title"));
    let htx_core::schema::Value::List(seen) = &t.fields["attendees"] else {
        panic!("attendees")
    };
    let mut want = ids.to_vec();
    want.sort();
    let mut seen = seen.clone();
    seen.sort();
    assert_eq!(seen, want, "its own two managers, not Hải Hậu's");
    // Hải Hậu's node gets its own facts, not the city's.
    hai_hau.sync().await.unwrap();
    let hh = hai_hau.node().progress(None, at, None).unwrap();
    let f = figure(&hh, "366", "MANAGERS_TRAINED_PCT", "1");
    assert_eq!((f.numerator, f.denominator), (1, 2));
    assert!(
        hai_hau
            .node()
            .replica()
            .doc(&htx_core::facts::doc_id("node-356"))
            .is_none()
    );
}

/// How many indicators the neighbouring test plan has.
fn neighbour_indicators() -> usize {
    htx_core::plan::Plan::parse(include_str!("../../deploy/plans/thu-nghiem-binh-luc.toml"))
        .unwrap()
        .indicators
        .len()
}
