//! Delay delivery under SYNC_MASTER: the delay offset (which a promoted slave takes from the
//! master) never moves past a re-put copy the slave does not hold.

use std::time::Duration;

use rmq_broker::schedule::progress::QueueFamily;
use rmq_broker::testing::{Harness, run};
use rmq_core::message::properties::encode_properties;
use rmq_core::remoting::ResponseCode;

use crate::requests::{assert_code, create_topic, send};

async fn sleep_ms(ms: u64) {
    rmq_net::rt::sleep(Duration::from_millis(ms)).await;
}

#[test]
fn a_delayed_reput_the_slave_does_not_hold_keeps_the_delay_offset_until_it_does() {
    run(async {
        let h = Harness::with_config(&[
            ("brokerRole", "SYNC_MASTER"),
            ("messageDelayLevel", "1s 2s"),
            ("slaveTimeout", "200"),
        ])
        .await;
        assert_code(&h.call(create_topic("T", 1)).await, ResponseCode::Success);
        let props = encode_properties([("DELAY", "1")]);
        // No slave: the send is stored and answered SLAVE_NOT_AVAILABLE.
        let sent = h.call(send("T", 0, b"later", &props)).await;
        assert_code(&sent, ResponseCode::SlaveNotAvailable);
        rmq_broker::schedule::scanner::spawn_scanners(h.core());
        let store = h.store().clone();
        let schedule = &h.ctx().schedule;
        // The copy reaches the real queue on the master after ~1 s ...
        for _ in 0..40 {
            if store.max_queue_offset("T", 0) == 1 {
                break;
            }
            sleep_ms(100).await;
        }
        assert_eq!(store.max_queue_offset("T", 0), 1, "delivered on the master");
        // ... but no slave holds it: the delay offset must stay before it.
        sleep_ms(1_000).await;
        assert_eq!(
            schedule.get(QueueFamily::Level, 0),
            0,
            "the delay offset moved past a re-put no slave holds"
        );
        // A slave connects and reports the whole log: the offset moves, and the copy was
        // not re-put a second time.
        let replica = h.replica().clone();
        let _slave = replica.connected(store.max_physical_offset());
        for _ in 0..40 {
            if schedule.get(QueueFamily::Level, 0) == 1 {
                break;
            }
            sleep_ms(100).await;
        }
        assert_eq!(
            schedule.get(QueueFamily::Level, 0),
            1,
            "confirmed: offset moves"
        );
        assert_eq!(store.max_queue_offset("T", 0), 1, "no second copy");
        h.ctx()
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        sleep_ms(300).await;
    });
}
