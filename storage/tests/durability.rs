//! Flush levels, group commit, segment rolling, layout rules.

mod common;

use std::rc::Rc;
use std::time::Duration;

use common::*;
use rmq_storage::{
    DsyncWrites, Durability, FlushMode, GetStatus, StoreConfig, StoreError, StoreLayout,
};

/// One concurrent sender per body, each appending to queue 0 of `topic` (queue offset = its
/// index) and waiting for `Flushed`; returns their end offsets once all are acknowledged,
/// checking each is at or below the flushed offset.
async fn flushed_senders(
    store: &Rc<rmq_storage::ShardStore>,
    topic: &'static str,
    bodies: impl Iterator<Item = Vec<u8>>,
) -> Vec<i64> {
    let handles: Vec<_> = bodies
        .enumerate()
        .map(|(i, body)| {
            let store = Rc::clone(store);
            compio::runtime::spawn(async move {
                let mut record = encode(topic, 0, &body, "", 0);
                let result = store.append(topic, 0, &mut record, 0, i as i64).unwrap();
                store
                    .wait_durable(result.end_offset, Durability::Flushed)
                    .await
                    .unwrap();
                result.end_offset
            })
        })
        .collect();
    let mut ends = Vec::new();
    for handle in handles {
        let end = handle.await.unwrap();
        assert!(store.flushed_offset() >= end);
        ends.push(end);
    }
    ends
}

#[test]
fn sync_mode_waits_resolve_at_flushed() {
    let dir = temp_dir();
    let mut cfg = small_config(dir.path(), 1);
    cfg.flush_mode = FlushMode::Sync;
    cfg.sync_flush_dsync_writes = DsyncWrites::Never;
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let mut record = encode("F", 0, b"sync", "", 0);
        let result = store.append("F", 0, &mut record, 0, 1).unwrap();
        store
            .wait_durable(result.end_offset, Durability::Appended)
            .await
            .unwrap();
        store
            .wait_durable(result.end_offset, Durability::Flushed)
            .await
            .unwrap();
        assert!(store.flushed_offset() >= result.end_offset);
        assert!(store.written_offset() >= store.flushed_offset());
        assert!(store.stats().fdatasyncs >= 1);
        println!("direct io: {}", store.stats().direct_io);
    });
}

#[test]
fn async_mode_acks_at_written_and_flushes_on_timer() {
    let dir = temp_dir();
    let mut cfg = small_config(dir.path(), 1);
    cfg.flush_mode = FlushMode::Async;
    cfg.flush_commit_log_least_pages = 0;
    cfg.flush_interval_commit_log = Duration::from_millis(30);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let mut record = encode("F", 0, b"async", "", 0);
        let result = store.append("F", 0, &mut record, 0, 1).unwrap();
        store
            .wait_durable(result.end_offset, Durability::Written)
            .await
            .unwrap();
        assert!(store.written_offset() >= result.end_offset);
        compio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            store.flushed_offset(),
            store.written_offset(),
            "timer flush ran"
        );
        // Someone asking for Flushed in ASYNC mode gets it without waiting for the timer.
        let mut record = encode("F", 0, b"async2", "", 0);
        let result = store.append("F", 0, &mut record, 0, 2).unwrap();
        store
            .wait_durable(result.end_offset, Durability::Flushed)
            .await
            .unwrap();
    });
}

#[test]
fn group_commit_releases_many_waiters_with_few_syncs() {
    let dir = temp_dir();
    let mut cfg = small_config(dir.path(), 1);
    cfg.flush_mode = FlushMode::Sync;
    cfg.sync_flush_dsync_writes = DsyncWrites::Never;
    cfg.commit_log_file_size = 4 << 20;
    const SENDERS: usize = 200;
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let before = store.stats();
        let bodies = (0..SENDERS).map(|i| format!("m{i}").into_bytes());
        flushed_senders(&store, "G", bodies).await;
        let after = store.stats();
        let syncs = after.fdatasyncs - before.fdatasyncs;
        println!("{SENDERS} waiters released by {syncs} fdatasyncs");
        assert!(
            syncs >= 1 && (syncs as usize) < SENDERS / 4,
            "{syncs} syncs"
        );
        // One segment: every sync round is one fdatasync, timed, and together they
        // acknowledged every sender.
        let rounds = |s: &rmq_storage::ShardStats| s.sync_micros.iter().sum::<u64>();
        assert_eq!(rounds(&after) - rounds(&before), syncs);
        let acking = |s: &rmq_storage::ShardStats| s.sync_acks.iter().sum::<u64>();
        assert_eq!(acking(&after) - acking(&before), syncs);
        assert_eq!(
            after.sync_acks_sum - before.sync_acks_sum,
            SENDERS as u64,
            "acks counted per sync round"
        );
        assert!(after.sync_micros_sum > before.sync_micros_sum);
        assert!(after.write_micros_sum > before.write_micros_sum);
    });
}

/// Returns once after being polled once: lets every task woken before it run first.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Sends `first`, lets the flusher start its round (it runs before this task resumes and
/// parks on the write), checks the round is in flight, then sends `second`: the round after
/// it is a loaded one. Returns both end offsets.
async fn send_during_a_round(
    store: &rmq_storage::ShardStore,
    send: impl Fn(i64) -> i64,
    first: i64,
    second: i64,
) -> (i64, i64) {
    let first = send(first);
    yield_now().await;
    assert!(
        store.written_offset() < first,
        "the first round is still in flight"
    );
    (first, send(second))
}

/// Waits until `end` is flushed.
async fn flushed(store: &rmq_storage::ShardStore, end: i64) {
    store.wait_durable(end, Durability::Flushed).await.unwrap();
}

/// The bodies of queue 0 of `topic`, in order (at most 32).
async fn bodies(store: &rmq_storage::ShardStore, topic: &str) -> Vec<Vec<u8>> {
    let pulled = store
        .get_messages(topic, 0, 0, 32, &accept_all)
        .await
        .unwrap();
    split_records(&pulled.body)
        .iter()
        .map(|r| body_of(r).to_vec())
        .collect()
}

/// `DsyncWrites::Idle` (and `Auto` until it measures otherwise): a round that starts idle is one `O_DSYNC` write, acked
/// without an `fdatasync`; a round whose write was overtaken by a new append leaves the next
/// round to write and `fdatasync`; once quiet again, rounds are durable writes; all of it
/// survives a crash.
#[test]
fn idle_rounds_write_durably_and_loaded_rounds_sync() {
    let dir = temp_dir();
    let mut cfg = small_config(dir.path(), 1);
    cfg.flush_mode = FlushMode::Sync;
    cfg.sync_flush_dsync_writes = DsyncWrites::Idle;
    let mut ends = Vec::new();
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let send = |i: i64| {
            let mut record = encode("I", 0, format!("idle-{i}").as_bytes(), "", 0);
            store.append("I", 0, &mut record, 0, i).unwrap().end_offset
        };
        // A lone sender, one message at a time: every round is a durable write.
        let before = store.stats();
        for i in 0..10 {
            let end = send(i);
            store.wait_durable(end, Durability::Flushed).await.unwrap();
            ends.push(end);
        }
        let after = store.stats();
        assert_eq!(
            after.fdatasyncs, before.fdatasyncs,
            "no fdatasync for a lone sender"
        );
        assert_eq!(after.sync_acks_sum - before.sync_acks_sum, 10);
        assert_eq!(store.flushed_offset(), *ends.last().unwrap());
        // A second send lands while the first one's round is in flight (the flusher runs
        // before this task resumes and parks on its write): the next round syncs.
        let before = store.stats();
        let (first, second) = send_during_a_round(&store, send, 10, 11).await;
        store
            .wait_durable(second, Durability::Flushed)
            .await
            .unwrap();
        assert!(store.flushed_offset() >= second);
        let after = store.stats();
        assert!(
            after.fdatasyncs > before.fdatasyncs,
            "the overtaken round's successor wrote, then synced"
        );
        ends.extend([first, second]);
        // Quiet again: back to durable writes.
        compio::time::sleep(Duration::from_millis(20)).await;
        let before = store.stats();
        let third = send(12);
        store
            .wait_durable(third, Durability::Flushed)
            .await
            .unwrap();
        assert_eq!(
            store.stats().fdatasyncs,
            before.fdatasyncs,
            "an idle round again"
        );
        ends.push(third);
        // Dropped without a shutdown: the next open recovers as after `kill -9`.
    });
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        assert!(!layout.previous_shutdown_clean);
        assert_eq!(store.max_physical_offset(), *ends.iter().max().unwrap());
        let expected: Vec<Vec<u8>> = (0..13).map(|i| format!("idle-{i}").into_bytes()).collect();
        assert_eq!(bodies(&store, "I").await, expected);
    });
}

/// A one-shard SYNC_FLUSH store whose every round is an `O_DSYNC` write, with a group commit
/// delay of `delay`.
fn delayed_config(dir: &std::path::Path, delay: Duration) -> StoreConfig {
    let mut cfg = small_config(dir, 1);
    cfg.flush_mode = FlushMode::Sync;
    cfg.sync_flush_dsync_writes = DsyncWrites::Always;
    cfg.sync_group_delay = delay;
    cfg
}

/// `sync_group_delay`: the round after a loaded one (a send arrived while a round's write
/// was in flight) starts only once the delay has passed since the loaded round started,
/// unless `sync_group_no_delay_count` sends wait for their flush; a lone sender's rounds
/// never wait; what was acknowledged survives a crash.
#[test]
fn a_group_delay_holds_the_round_after_a_loaded_one() {
    const DELAY: Duration = Duration::from_secs(1);
    let dir = temp_dir();
    let mut cfg = delayed_config(dir.path(), DELAY);
    cfg.sync_group_delay_probe = false;
    let mut ends = Vec::new();
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let send = |i: i64| {
            let mut record = encode("G", 0, format!("group-{i}").as_bytes(), "", 0);
            store.append("G", 0, &mut record, 0, i).unwrap().end_offset
        };
        // A lone sender: each round starts idle, none waits for the delay.
        let started = std::time::Instant::now();
        for i in 0..5 {
            let end = send(i);
            flushed(&store, end).await;
            ends.push(end);
        }
        assert!(
            started.elapsed() < DELAY,
            "idle rounds do not wait ({:?} for five)",
            started.elapsed()
        );
        // A send lands while a round is in flight: the next round waits out the delay.
        let started = std::time::Instant::now();
        let (first, second) = send_during_a_round(&store, send, 5, 6).await;
        flushed(&store, first).await;
        flushed(&store, second).await;
        assert!(
            started.elapsed() >= DELAY,
            "the round after a loaded one waited ({:?})",
            started.elapsed()
        );
        assert!(store.flushed_offset() >= second);
        ends.extend([first, second]);
        // Dropped without a shutdown: the next open recovers as after `kill -9`.
    });
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        assert_eq!(store.max_physical_offset(), *ends.iter().max().unwrap());
        let expected: Vec<Vec<u8>> = (0..7).map(|i| format!("group-{i}").into_bytes()).collect();
        assert_eq!(bodies(&store, "G").await, expected);
    });

    // Enough waiting sends end the delay at once: a delay of a minute is not waited for.
    let dir = temp_dir();
    let mut cfg = delayed_config(dir.path(), Duration::from_secs(60));
    cfg.sync_group_no_delay_count = 2;
    cfg.sync_group_delay_probe = false;
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let send = |i: i64| {
            let mut record = encode("N", 0, format!("count-{i}").as_bytes(), "", 0);
            store.append("N", 0, &mut record, 0, i).unwrap().end_offset
        };
        let started = std::time::Instant::now();
        let (_, second) = send_during_a_round(&store, send, 0, 1).await;
        let third = send(2);
        let waiter = {
            let store = Rc::clone(&store);
            compio::runtime::spawn(async move { flushed(&store, third).await })
        };
        flushed(&store, second).await;
        waiter.await.unwrap();
        assert!(store.flushed_offset() >= third);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "two waiting sends ended the delay ({:?})",
            started.elapsed()
        );
    });
}

/// `sync_group_delay_probe` (the default): a shard delays loaded rounds only once its probe
/// has measured that the delay costs no throughput, so before the first probe the round after
/// a loaded one starts at once.
#[test]
fn a_probed_group_delay_waits_for_the_probe() {
    const DELAY: Duration = Duration::from_secs(5);
    let dir = temp_dir();
    let cfg = delayed_config(dir.path(), DELAY);
    assert!(cfg.sync_group_delay_probe, "probed by default");
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let send = |i: i64| {
            let mut record = encode("P", 0, format!("probed-{i}").as_bytes(), "", 0);
            store.append("P", 0, &mut record, 0, i).unwrap().end_offset
        };
        let started = std::time::Instant::now();
        let (first, second) = send_during_a_round(&store, send, 0, 1).await;
        flushed(&store, first).await;
        flushed(&store, second).await;
        assert!(
            started.elapsed() < DELAY,
            "not delayed before a probe ({:?})",
            started.elapsed()
        );
        assert_eq!(store.stats().sync_group_delay_probes, 0);
    });
}

/// `DsyncWrites::Auto`: a loaded shard probes both ways to write (write + `fdatasync`, and
/// `O_DSYNC` writes) on its own traffic; across the switches every send is acknowledged at
/// `Flushed`, both ways ran, and everything survives a crash.
#[test]
fn auto_probes_both_ways_under_load_and_loses_nothing() {
    let dir = temp_dir();
    let mut cfg = small_config(dir.path(), 1);
    cfg.flush_mode = FlushMode::Sync;
    cfg.commit_log_file_size = 4 << 20;
    cfg.sync_flush_dsync_writes = DsyncWrites::Auto;
    const SENDERS: usize = 32;
    let mut sent = 0;
    let mut last = 0;
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let before = store.stats();
        let deadline = std::time::Instant::now() + Duration::from_millis(2600);
        let senders: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let store = Rc::clone(&store);
                compio::runtime::spawn(async move {
                    let mut ends = Vec::new();
                    while std::time::Instant::now() < deadline {
                        let body = format!("auto-{sender}-{}", ends.len());
                        let mut record = encode("A", 0, body.as_bytes(), "", 0);
                        let end = store.append("A", 0, &mut record, 0, 0).unwrap().end_offset;
                        store.wait_durable(end, Durability::Flushed).await.unwrap();
                        assert!(store.flushed_offset() >= end);
                        ends.push(end);
                        // Staggered turnarounds, as a network spreads producers: sends
                        // arrive while a round's write is in flight, so rounds are loaded.
                        let turnaround = 100 * (sender as u64 % 8 + 1);
                        compio::time::sleep(Duration::from_micros(turnaround)).await;
                    }
                    ends
                })
            })
            .collect();
        for sender in senders {
            let ends = sender.await.unwrap();
            sent += ends.len();
            last = last.max(*ends.iter().max().unwrap_or(&0));
        }
        let after = store.stats();
        assert!(
            after.sync_write_probes > before.sync_write_probes,
            "a probe ran"
        );
        assert!(
            after.fdatasyncs > before.fdatasyncs,
            "rounds wrote, then synced"
        );
        let rounds = after.sync_acks.iter().sum::<u64>() - before.sync_acks.iter().sum::<u64>();
        assert!(
            rounds > after.fdatasyncs - before.fdatasyncs,
            "and rounds were durable writes"
        );
        assert_eq!(after.sync_acks_sum - before.sync_acks_sum, sent as u64);
        // Dropped without a shutdown: the next open recovers as after `kill -9`.
    });
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        assert_eq!(
            store.max_physical_offset(),
            last,
            "recovered to the last ack"
        );
        assert_eq!(store.max_queue_offset("A", 0), sent as i64);
    });
}

/// `sync_flush_dsync_writes`: segments are `O_DSYNC`, a completed write is the round's sync.
/// Senders across several segment rolls are acknowledged at `Flushed` without one
/// `fdatasync`, one sync round per write, and everything survives a reopen.
#[test]
fn dsync_writes_ack_flushed_without_fdatasync() {
    let dir = temp_dir();
    let mut cfg = small_config(dir.path(), 1);
    cfg.flush_mode = FlushMode::Sync;
    cfg.sync_flush_dsync_writes = DsyncWrites::Always;
    const SENDERS: usize = 120;
    let body = vec![b'd'; 1500];
    let mut ends = Vec::new();
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let before = store.stats();
        let bodies = (0..SENDERS).map(|_| body.clone());
        ends.extend(flushed_senders(&store, "D", bodies).await);
        let after = store.stats();
        assert!(
            after.segments_created - before.segments_created >= 2,
            "the senders' records roll segments"
        );
        assert_eq!(after.fdatasyncs, before.fdatasyncs, "no fdatasync needed");
        assert_eq!(store.flushed_offset(), store.written_offset());
        let rounds = |s: &rmq_storage::ShardStats| s.sync_acks.iter().sum::<u64>();
        let writes = after.commit_log_writes - before.commit_log_writes;
        let rounds = rounds(&after) - rounds(&before);
        assert!(
            rounds >= 1 && rounds <= writes,
            "{rounds} rounds, {writes} writes"
        );
        assert_eq!(after.sync_acks_sum - before.sync_acks_sum, SENDERS as u64);
        // The write is the sync: a send released at `Written` is flushed by then too.
        let mut record = encode("D", 0, &body, "", 0);
        let lone = store
            .append("D", 0, &mut record, 0, SENDERS as i64)
            .unwrap();
        store
            .wait_durable(lone.end_offset, Durability::Written)
            .await
            .unwrap();
        assert!(
            store.flushed_offset() >= lone.end_offset,
            "flushed with the write"
        );
        ends.push(lone.end_offset);
        // Dropped without a shutdown: the next open recovers as after `kill -9`.
    });
    let last = *ends.iter().max().unwrap();
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        assert!(!layout.previous_shutdown_clean);
        assert_eq!(
            store.max_physical_offset(),
            last,
            "recovered to the last ack"
        );
        assert_eq!(store.max_queue_offset("D", 0), SENDERS as i64 + 1);
        let mut offset = 0;
        while offset <= SENDERS as i64 {
            let pulled = store
                .get_messages("D", 0, offset, 32, &accept_all)
                .await
                .unwrap();
            assert_eq!(pulled.status, GetStatus::Found);
            for record in split_records(&pulled.body) {
                assert_eq!(body_of(&record), body.as_slice());
                offset += 1;
            }
        }
    });
}

/// SYNC_FLUSH with a cohort (`StoreConfig::sync_cohort`): two shards on two threads, as in
/// the broker, sync once per cohort epoch each, and every sender is acknowledged.
#[test]
fn two_shards_sync_as_one_cohort() {
    let dir = temp_dir();
    let mut cfg = small_config(dir.path(), 2);
    cfg.flush_mode = FlushMode::Sync;
    cfg.sync_flush_dsync_writes = DsyncWrites::Never;
    cfg.commit_log_file_size = 4 << 20;
    let cohort = std::sync::Arc::new(rmq_storage::SyncCohort::default());
    cfg.sync_cohort = Some(cohort.clone());
    let layout = StoreLayout::open(&cfg).unwrap();
    let threads: Vec<_> = (0..2u32)
        .map(|shard| {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                run(async move {
                    let queue = queue_of_shard("C", shard, 2);
                    let store = rmq_storage::ShardStore::open(cfg, shard, true)
                        .await
                        .unwrap();
                    let senders: Vec<_> = (0..16)
                        .map(|sender| {
                            let store = Rc::clone(&store);
                            compio::runtime::spawn(async move {
                                for i in 0..20 {
                                    let body = format!("{shard}-{sender}-{i}");
                                    let mut record = encode("C", queue, body.as_bytes(), "", 0);
                                    let end = store
                                        .append("C", queue, &mut record, 0, i)
                                        .unwrap()
                                        .end_offset;
                                    store.wait_durable(end, Durability::Flushed).await.unwrap();
                                    assert!(store.flushed_offset() >= end);
                                }
                            })
                        })
                        .collect();
                    for sender in senders {
                        sender.await.unwrap();
                    }
                    let stats = store.stats();
                    store.shutdown().await.unwrap();
                    (stats.sync_micros.iter().sum::<u64>(), stats.sync_acks_sum)
                })
            })
        })
        .collect();
    let rounds: Vec<(u64, u64)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let epochs = cohort.epochs();
    println!("sync rounds per shard {rounds:?}, cohort epochs {epochs}");
    for (syncs, acks) in &rounds {
        assert_eq!(*acks, 16 * 20, "every send acknowledged by a sync round");
        assert!(
            *syncs >= 1 && *syncs <= epochs,
            "one sync per epoch at most"
        );
    }
    assert!(epochs <= rounds[0].0 + rounds[1].0, "an epoch holds a sync");
    layout.mark_clean_shutdown().unwrap();
}

#[test]
fn segments_roll_with_filler_and_survive_reopen() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    let mut expected = Vec::new();
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        assert!(layout.previous_shutdown_clean);
        for i in 0..300 {
            let body = vec![(i % 251) as u8; 900 + (i % 7) * 50];
            let mut record = encode("Roll", 0, &body, "", 0);
            let result = store.append("Roll", 0, &mut record, 0, i as i64).unwrap();
            let segment_offset = result.physical_offset as u64 % cfg.commit_log_file_size;
            assert!(segment_offset + record.len() as u64 + 8 <= cfg.commit_log_file_size);
            expected.push((result.physical_offset, body));
        }
        let end = store.max_physical_offset();
        store.wait_durable(end, Durability::Flushed).await.unwrap();
        store.shutdown().await.unwrap();
        layout.mark_clean_shutdown().unwrap();
    });
    let mut names: Vec<String> = std::fs::read_dir(&cfg.commit_log_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    assert_eq!(names[0], "00000000000000000000");
    assert_eq!(names[1], "00000000000000065536");
    for name in &names {
        assert_eq!(
            std::fs::metadata(cfg.commit_log_dir.join(name))
                .unwrap()
                .len(),
            65536
        );
    }
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        assert!(layout.previous_shutdown_clean);
        assert_eq!(store.max_queue_offset("Roll", 0), 300);
        let mut offset = 0;
        while offset < 300 {
            let pulled = store
                .get_messages("Roll", 0, offset, 32, &accept_all)
                .await
                .unwrap();
            assert_eq!(pulled.status, GetStatus::Found);
            for record in split_records(&pulled.body) {
                let (position, body) = &expected[offset as usize];
                assert_eq!(i64_at(&record, 28), *position);
                assert_eq!(i64_at(&record, 20), offset);
                assert_eq!(body_of(&record), &body[..]);
                offset += 1;
            }
        }
        assert!(store.stats().disk_reads > 0, "old data came from disk");
        let (position, body) = &expected[123];
        let record = store.read_record(*position).await.unwrap().unwrap();
        assert_eq!(body_of(&record), &body[..]);
        store.shutdown().await.unwrap();
    });
}

#[test]
fn record_larger_than_a_segment_is_rejected() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let mut record = encode("Big", 0, &vec![0u8; 70_000], "", 0);
        let result = store.append("Big", 0, &mut record, 0, 0);
        assert!(matches!(result, Err(StoreError::MessageTooLarge { .. })));
    });
}

#[test]
fn second_layout_open_is_locked_out() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 3);
    let layout = StoreLayout::open(&cfg).unwrap();
    assert_eq!(layout.shard_count, 3);
    assert!(matches!(
        StoreLayout::open(&cfg),
        Err(StoreError::Locked(_))
    ));
    drop(layout);
    let mut other = cfg.clone();
    other.requested_shard_count = 5;
    let layout = StoreLayout::open(&other).unwrap();
    assert_eq!(
        layout.shard_count, 3,
        "an existing store keeps its shard count"
    );
    assert!(
        !layout.previous_shutdown_clean,
        "abort marker left by the first open"
    );
    layout.mark_clean_shutdown().unwrap();
    drop(layout);
    assert!(StoreLayout::open(&cfg).unwrap().previous_shutdown_clean);
}

#[test]
fn two_shards_share_the_directory_without_seeing_each_other() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 2);
    let queue0 = queue_of_shard("Two", 0, 2);
    let queue1 = queue_of_shard("Two", 1, 2);
    run(async {
        let layout = StoreLayout::open(&cfg).unwrap();
        let shard0 = rmq_storage::ShardStore::open(cfg.clone(), 0, true)
            .await
            .unwrap();
        let shard1 = rmq_storage::ShardStore::open(cfg.clone(), 1, true)
            .await
            .unwrap();
        for i in 0..40 {
            let mut a = encode("Two", queue0, format!("zero-{i}").as_bytes(), "", 0);
            let mut b = encode("Two", queue1, format!("one-{i}").as_bytes(), "", 0);
            let ra = shard0.append("Two", queue0, &mut a, 0, i).unwrap();
            let rb = shard1.append("Two", queue1, &mut b, 0, i).unwrap();
            assert_eq!(rmq_storage::shard_of_offset(ra.physical_offset), 0);
            assert_eq!(rmq_storage::shard_of_offset(rb.physical_offset), 1);
        }
        shard0.shutdown().await.unwrap();
        shard1.shutdown().await.unwrap();
        layout.mark_clean_shutdown().unwrap();
    });
    let mut names: Vec<String> = std::fs::read_dir(&cfg.commit_log_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "00000000000000000000".to_string(),
            format!("{:020}", 1i64 << 56)
        ]
    );
    run(async {
        let layout = StoreLayout::open(&cfg).unwrap();
        let shard1 = rmq_storage::ShardStore::open(cfg.clone(), 1, true)
            .await
            .unwrap();
        let shard0 = rmq_storage::ShardStore::open(cfg.clone(), 0, true)
            .await
            .unwrap();
        assert_eq!(shard0.queues(), vec![("Two".to_string(), queue0)]);
        assert_eq!(shard1.queues(), vec![("Two".to_string(), queue1)]);
        assert_eq!(shard0.max_queue_offset("Two", queue0), 40);
        assert_eq!(shard1.max_queue_offset("Two", queue1), 40);
        assert_eq!(shard0.max_physical_offset() >> 56, 0);
        assert_eq!(shard1.max_physical_offset() >> 56, 1);
        let pulled = shard1
            .get_messages("Two", queue1, 39, 32, &accept_all)
            .await
            .unwrap();
        assert_eq!(body_of(&split_records(&pulled.body)[0]), b"one-39");
        shard0.shutdown().await.unwrap();
        shard1.shutdown().await.unwrap();
        layout.mark_clean_shutdown().unwrap();
    });
}

/// A store dropped without a shutdown (a crash, as tests and a restarted core see it) must not
/// leave its background segment preparation running: it would go on creating and renaming
/// `<next>.prep` in the directory the next instance owns, and rename that instance's own
/// preparation from under it (seen as "rename ... NotFound" on a reopened replica).
#[test]
fn a_dropped_store_leaves_no_segment_preparation_running() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let size = cfg.commit_log_file_size as i64;
        let mut end = 0;
        while end < size / 2 + 1024 {
            let mut record = encode("P", 0, &[b'p'; 1000], "", 0);
            end = store.append("P", 0, &mut record, 0, 1).unwrap().end_offset;
        }
        // The flusher writes the half-full segment and starts preparing the next one.
        store.wait_durable(end, Durability::Written).await.unwrap();
        let next = cfg
            .commit_log_dir
            .join(format!("{:020}", store.segment_start_of(end) + size));
        drop(store);
        compio::runtime::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !next.exists(),
            "a dropped store's preparation created {next:?}"
        );
    });
}
