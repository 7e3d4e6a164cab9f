//! A hub over unit lists of its own (`units_dir`), not the built-in ones of
//! Nam Định and Ninh Bình: its nodes are enrolled for units of those lists,
//! record there, and the hub counts them under the plan's territory.
//!
//! The lists are the process's hierarchy once installed, so this story has
//! a test binary (a process) of its own.

use htx_core::units::Hierarchy;
use htx_hub::config::HubConfig;
use htx_tests::{TestHub, consolidated_htx, figure, run, write_synthetic_units};

fn write_config(hub: &TestHub, change: impl FnOnce(&mut HubConfig)) {
    let text = std::fs::read_to_string(hub.dir().join("hub.toml")).unwrap();
    let mut cfg: HubConfig = toml::from_str(&text).unwrap();
    change(&mut cfg);
    std::fs::write(hub.dir().join("hub.toml"), toml::to_string(&cfg).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hub_serves_the_unit_lists_it_is_given_and_its_nodes_record_under_them() {
    let mut hub = TestHub::create();
    // A plan over province 90 of the hub's own lists.
    let plan = htx_core::plan::DE_AN_01_NAM_DINH.replacen("unit = \"36\"", "unit = \"90\"", 1);
    assert_ne!(plan, htx_core::plan::DE_AN_01_NAM_DINH);
    std::fs::write(hub.dir().join("plan.toml"), plan).unwrap();

    // Lists that are not there, or not lists, are refused by name, and
    // nothing is installed.
    write_config(&hub, |c| c.units_dir = "missing".into());
    let e = HubConfig::load(hub.dir()).unwrap_err().to_string();
    assert!(
        e.contains("units_dir") && e.contains("nam_dinh_units_2023.csv"),
        "{e}"
    );
    let broken = hub.dir().join("broken");
    write_synthetic_units(&broken, "90", "Tỉnh Thử Nghiệm", 2, 2);
    std::fs::write(
        broken.join("nam_dinh_units_2024.csv"),
        "level,code\n\"unclosed",
    )
    .unwrap();
    write_config(&hub, |c| c.units_dir = "broken".into());
    let e = HubConfig::load(hub.dir()).unwrap_err().to_string();
    assert!(e.contains("danh mục đơn vị"), "{e}");
    assert!(Hierarchy::current().unit("2023", "90").is_err());

    write_synthetic_units(&hub.dir().join("units"), "90", "Tỉnh Thử Nghiệm", 3, 4);
    write_config(&hub, |c| {
        c.units_dir = "units".into();
        c.plan_file = "plan.toml".into();
    });
    hub.serve().await;
    assert_eq!(
        Hierarchy::current().unit("2023", "90").unwrap().name,
        "Tỉnh Thử Nghiệm"
    );
    assert!(
        Hierarchy::current().unit("2023", "36").is_err(),
        "not Nam Định's lists"
    );

    // A unit of the built-in lists is not one of this hub's.
    let cfg = HubConfig::load(hub.dir()).unwrap();
    let refused = htx_hub::home::Home::new(hub.dir()).enroll(&cfg, "13741", None, Some("x"), false);
    assert!(refused.is_err(), "Xã Gôi is not in this hub's lists");

    // The real `htx-node init` (its own process) accepts a commune of the
    // hub's lists: the bundle carries them.
    let bundle = hub.dir().join("bundle-9001.json");
    hub.write_bundle("9001", "office-9001", &bundle);
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert!(
        text.contains("Tỉnh Thử Nghiệm"),
        "the bundle carries the lists"
    );
    let node_dir = tempfile::TempDir::new().unwrap();
    let init = run(
        "htx-node",
        &[
            "init".as_ref(),
            node_dir.path().join("n").as_os_str(),
            "--bundle".as_ref(),
            bundle.as_os_str(),
        ],
    )
    .await;
    assert!(init.status.success(), "{}", init.stderr);

    // Nodes of two districts record; the hub counts their cooperatives at
    // the district and at the province.
    let a = hub.enroll_node("9001", "node-9001");
    let b = hub.enroll_node("9002", "node-9002");
    consolidated_htx(&a, "900103", "HTX Một", "2020-01-01");
    consolidated_htx(&b, "900200", "HTX Hai", "2020-01-01");
    consolidated_htx(&b, "900201", "HTX Ba", "2020-01-01");
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    let reply = hub
        .hub()
        .progress(&htx_hub::progress::Query {
            as_of: Some("2025-12-01".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(reply.units[0].unit, "90");
    assert_eq!(reply.units[0].name, "Tỉnh Thử Nghiệm");
    assert_eq!(figure(&reply, "90", "HTX_CONSOLIDATED", "1").numerator, 3);
    assert_eq!(figure(&reply, "9001", "HTX_CONSOLIDATED", "1").numerator, 1);
    assert_eq!(figure(&reply, "9002", "HTX_CONSOLIDATED", "1").numerator, 2);

    // A node is refused a write for a unit outside its lists, and its
    // stored records stay as they were.
    let before = a.export().len();
    let outside = htx_tests::coop("13741", "HTX Gôi");
    assert!(a.write(vec![outside]).is_err());
    assert_eq!(a.export().len(), before);

    // A process serves one hierarchy: the same lists again are accepted,
    // others refused.
    let same = htx_core::units::read_lists(&hub.dir().join("units")).unwrap();
    assert!(Hierarchy::install(same).is_ok());
    let builtin = Hierarchy::builtin();
    let other = htx_core::units::BUILTIN_LISTS.map(|(n, t)| (n.to_owned(), t.to_owned()));
    assert!(Hierarchy::install(other.to_vec()).is_err());
    assert!(Hierarchy::current().unit("2023", "90").is_ok());
    assert!(builtin.unit("2023", "90").is_err());

    // Nodes are sent the hub's lists with the plan: the node reads its
    // hierarchy from the document it got (not from what it installed).
    let reference = htx_core::docs::REFERENCE_DOC.to_owned();
    assert!(
        a.docs().contains(&reference),
        "the reference document synced"
    );
    let lists = {
        let replica = a.node().replica();
        let doc = replica.doc(&reference).expect("loaded");
        htx_core::docs::read_reference(doc)
            .expect("a reference")
            .lists
    };
    assert!(
        lists
            .iter()
            .any(|(_, text)| text.contains("Tỉnh Thử Nghiệm"))
    );
    assert!(
        a.node()
            .reference()
            .is_ok_and(|(_, h)| h.unit("2023", "900103").is_ok())
    );
}
