//! Zlib bombs in a compressed REGISTER_BROKER body: refused without inflating them into
//! memory. A 0.26 MB bomb used to be inflated into one growing buffer (up to 256 MB) before
//! the refusal, and the allocator kept the pages: the name server stayed 500 MB larger.
//!
//! A counting global allocator (this test binary only) measures the peak heap use of each
//! decode.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use rmq_core::body::register::RegisterBrokerBody;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak heap growth while `f` runs.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed) - base
}

/// A compressed body: data version, `count` topics, then `tail` (a chunk that lies about
/// its length, followed by `filler` bytes of zeros).
fn bomb(declared: i32, filler: usize) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    let version = br#"{"counter":1,"timestamp":2}"#;
    encoder
        .write_all(&(version.len() as i32).to_be_bytes())
        .unwrap();
    encoder.write_all(version).unwrap();
    encoder.write_all(&1i32.to_be_bytes()).unwrap();
    encoder.write_all(&declared.to_be_bytes()).unwrap();
    let zeros = vec![b'a'; 1 << 20];
    let mut left = filler;
    while left > 0 {
        let n = left.min(zeros.len());
        encoder.write_all(&zeros[..n]).unwrap();
        left -= n;
    }
    encoder.finish().unwrap()
}

#[test]
fn a_zlib_bomb_is_refused_without_inflating_it() {
    // A topic chunk declaring 200 MB, followed by 40 MB of filler: ~40 KB compressed.
    let body = bomb(200 << 20, 40 << 20);
    assert!(body.len() < 1 << 20, "{} bytes", body.len());
    let mut result = None;
    let peak = peak_during(|| result = Some(RegisterBrokerBody::decode(&body, true)));
    assert!(
        peak < 4 << 20,
        "decoding the bomb took {peak} bytes of heap"
    );
    let error = result.unwrap().expect_err("the bomb is refused");
    assert!(error.to_string().contains("exceeds"), "{error}");
}
