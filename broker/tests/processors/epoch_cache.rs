//! GET_BROKER_EPOCH_CACHE (1007, mqadmin `getBrokerEpoch`): the epoch history with each
//! epoch's end, in controller mode only.

use rmq_broker::testing::{Harness, run};
use rmq_core::body::controller::{EpochEntry, EpochEntryCache};
use rmq_core::body::decode_body;
use rmq_core::remoting::controller::controller_request_code::GET_BROKER_EPOCH_CACHE;
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use crate::requests::{assert_code, remark};

fn append(h: &Harness, count: usize) -> i64 {
    let mut end = 0;
    for i in 0..count {
        let body = vec![b'e'; 100 + i];
        let mut record = rmq_test_support::record::encode("EpochT", 0, &body, "", 0);
        end = h
            .store()
            .append("EpochT", 0, &mut record, 0, 1_000)
            .unwrap()
            .end_offset;
    }
    end
}

#[test]
fn the_epoch_history_is_served_with_each_epochs_end() {
    run(async {
        let h = Harness::with_config(&[
            ("enableControllerMode", "true"),
            ("controllerAddr", "127.0.0.1:1"),
            ("brokerName", "broker-e"),
        ])
        .await;
        h.store().begin_epoch(3).unwrap();
        let switch = append(&h, 5);
        h.store().begin_epoch(5).unwrap();
        let end = append(&h, 3);
        let response = h
            .call(RemotingCommand::new_request(GET_BROKER_EPOCH_CACHE))
            .await;
        assert_code(&response, ResponseCode::Success);
        let cache: EpochEntryCache = decode_body(&response.body).unwrap();
        assert_eq!(cache.broker_name, "broker-e");
        assert_eq!(cache.max_offset, end);
        assert_eq!(
            cache.epoch_list,
            [
                EpochEntry {
                    epoch: 3,
                    start_offset: 0,
                    end_offset: switch
                },
                EpochEntry {
                    epoch: 5,
                    start_offset: switch,
                    end_offset: end
                },
            ]
        );
    });
}

#[test]
fn outside_controller_mode_the_request_is_refused_as_rocketmq_does() {
    run(async {
        let h = Harness::new().await;
        let response = h
            .call(RemotingCommand::new_request(GET_BROKER_EPOCH_CACHE))
            .await;
        assert_code(&response, ResponseCode::SystemError);
        assert_eq!(remark(&response), "this request only for controllerMode ");
    });
}

#[test]
fn a_role_change_notification_reaches_the_controller_client() {
    use rmq_core::body::controller::SyncStateSet;
    use rmq_core::remoting::controller::NotifyBrokerRoleChangedRequestHeader;
    use rmq_core::remoting::controller::controller_request_code::NOTIFY_BROKER_ROLE_CHANGED;
    run(async {
        let h = Harness::with_config(&[
            ("enableControllerMode", "true"),
            ("controllerAddr", "127.0.0.1:1"),
        ])
        .await;
        let mut request = RemotingCommand::new_request(NOTIFY_BROKER_ROLE_CHANGED);
        NotifyBrokerRoleChangedRequestHeader {
            master_address: Some("127.0.0.1:30911".into()),
            master_epoch: Some(4),
            sync_state_set_epoch: Some(7),
            master_broker_id: Some(2),
        }
        .write_to(&mut request);
        let sss = SyncStateSet {
            sync_state_set: [2, 3].into(),
            sync_state_set_epoch: 7,
        };
        let request = request.with_body(rmq_core::body::encode_body(&sss));
        assert_code(&h.call(request.clone()).await, ResponseCode::Success);
        let info = h.ctx().controller_inbox.take().expect("queued");
        assert_eq!(info.master_id, Some(2));
        assert_eq!(info.master_addr.as_deref(), Some("127.0.0.1:30911"));
        assert_eq!(info.master_epoch, 4);
        assert_eq!(info.sync_state_set, [2, 3]);
        let garbage = request.clone().with_body(&b"{not json"[..]);
        assert_code(&h.call(garbage).await, ResponseCode::SystemError);
        assert!(h.ctx().controller_inbox.take().is_none());
        let classic = Harness::new().await;
        assert_code(&classic.call(request).await, ResponseCode::SystemError);
    });
}
