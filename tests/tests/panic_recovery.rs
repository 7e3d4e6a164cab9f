//! A panic while the hub holds its replica (a bug in a dependency, met on
//! a crafted input) must not stop the hub: the next session loads the
//! replica again from the store and every node keeps syncing.

use htx_tests::TestHub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_survives_a_panic_under_its_replica_lock() {
    let hub = TestHub::start().await;
    let node = hub.enroll_node("356", "node-356");
    let first = node.add_coop("13633", "HTX Hạ Long");
    node.sync().await.expect("first sync");

    let h = hub.hub().clone();
    let crashed = std::thread::spawn(move || {
        let _held = h.replica();
        panic!("a simulated bug while the replica is held");
    })
    .join();
    assert!(crashed.is_err(), "the task panicked");

    let second = node.add_coop("13636", "HTX Trần Tế Xương");
    let r = node.sync().await.expect("the hub still syncs");
    assert!(r.in_sync, "{r:?}");
    let ids: Vec<String> = hub.export().into_iter().map(|r| r.id).collect();
    assert!(ids.contains(&first) && ids.contains(&second), "{ids:?}");
}
