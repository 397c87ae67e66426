//! Heap allocations per stored send: the send path's allocator traffic, counted.
//!
//! At full load the allocator was about a tenth of the broker's user-side CPU (docs/perf.md,
//! issue 14), most of it short-lived copies on the send path. This counts what one
//! SEND_MESSAGE_V2 of a typical Java-client message costs through the processor dispatch of
//! an in-process broker (ASYNC_FLUSH, store on a temporary directory), so a change that adds
//! copies back fails here rather than in a noisy load test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rmq_broker::testing::{Harness, run};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

/// Counts the allocations (and reallocations) made by the thread that enabled counting.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the allocator runs during thread teardown too.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations one stored send may make. 11 on 2026-12-07: the record, the records list, its
/// properties, the shard's copy of the topic, the durability waiter (and its release), the
/// handler's boxed future, the response's header text and field list, one round's write
/// views and compio's timer wake-up. It was 31 before the send path borrowed its header,
/// wrote response fields and the message id straight into the response, and stopped
/// cloning the topic's config.
const BUDGET_PER_SEND: u64 = 12;

/// Properties as the Java client 4.9 sets them on a plain send with a tag and a key.
const PROPERTIES: &str = "KEYS\u{1}order-1\u{2}UNIQ_KEY\u{1}7F0000010E2C18B4AAC2\
    5E4A1F2B0000\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}";

fn send_v2(topic: &str) -> RemotingCommand {
    RemotingCommand::new_request(rc::SEND_MESSAGE_V2)
        .with_ext("a", "please_rename_unique_group_name")
        .with_ext("b", topic)
        .with_ext("c", "TBW102")
        .with_ext("d", 4)
        .with_ext("e", 1)
        .with_ext("f", 0)
        .with_ext("g", 1_733_540_000_000_i64)
        .with_ext("h", 0)
        .with_ext("i", PROPERTIES)
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_body(vec![b'x'; 128])
}

#[test]
fn a_stored_send_allocates_within_budget() {
    run(async {
        let harness = Harness::new().await;
        // The first sends create the topic and warm the registries and stats maps.
        for _ in 0..16 {
            let response = harness.call(send_v2("AllocTopic")).await;
            assert_eq!(response.code, ResponseCode::Success.code());
        }
        const SENDS: u64 = 256;
        let requests: Vec<RemotingCommand> = (0..SENDS).map(|_| send_v2("AllocTopic")).collect();
        COUNTING.with(|on| on.set(true));
        let before = ALLOCATIONS.with(Cell::get);
        let mut stored = 0;
        for request in requests {
            let response = harness.call(request).await;
            stored += u64::from(response.code == ResponseCode::Success.code());
        }
        let allocations = ALLOCATIONS.with(Cell::get) - before;
        COUNTING.with(|on| on.set(false));
        assert_eq!(stored, SENDS, "every send is stored");
        let per_send = allocations as f64 / SENDS as f64;
        assert!(
            per_send <= BUDGET_PER_SEND as f64,
            "a stored send allocated {per_send:.2} times on average, over the budget of \
             {BUDGET_PER_SEND}"
        );
        println!("allocations per stored send: {per_send:.2}");
    });
}
