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
    let before = hub.hub().progress_kept(&at(last_month)).unwrap();
    let before_past = hub.hub().progress_kept(&at(past)).unwrap();
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
    let after_past = hub.hub().progress_kept(&at(past)).unwrap();
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
