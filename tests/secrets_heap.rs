//! The key log's byte accounting against the allocator: a counting global
//! allocator measures the heap the table really holds and the peak while a
//! key log many times its budget is read; what `KeyLog::bytes` counts must
//! cover it (and not by much), and the peak must stay within the budget
//! plus the reader's 64 KiB chunk.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use mtlsniff::tls::keylog::KeyLog;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: allocated above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn counted_bytes_cover_the_real_heap_and_the_peak_stays_in_budget() {
    let path = std::env::temp_dir().join(format!("mtlsniff-heap-{}.keylog", std::process::id()));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    for i in 0u32..60_000 {
        let random = format!("{i:08x}{}", "ab".repeat(28));
        for label in [
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        ] {
            writeln!(f, "{label} {random} {}", "cd".repeat(48)).expect("write");
        }
        if i % 3 == 0 {
            writeln!(f, "SERVER_TRAFFIC_SECRET_0 {random} {}", "ef".repeat(32)).expect("write");
        }
    }
    drop(f);
    for budget in [300 * 1024, 1024 * 1024, 3 * 1024 * 1024] {
        let before = LIVE.load(Ordering::SeqCst);
        PEAK.store(before, Ordering::SeqCst);
        let mut keys = KeyLog::new(budget);
        keys.load_file(&path, false).expect("read");
        let held = LIVE.load(Ordering::SeqCst) - before;
        let peak = PEAK.load(Ordering::SeqCst) - before;
        let counted = keys.bytes();
        let c = keys.counters();
        eprintln!("budget {budget}: counted {counted}, heap {held}, peak {peak}, {c:?}");
        assert!(c.dropped > 0, "{c:?}");
        assert!(counted <= budget);
        assert!(held <= counted, "heap {held} > counted {counted}");
        assert!(
            counted - held <= counted / 50,
            "counted {counted}, heap {held}"
        );
        // The reader's chunk, its path and a partial line besides.
        assert!(peak <= budget + 70 * 1024, "peak {peak} over {budget}");
        drop(keys);
    }
    let _ = std::fs::remove_file(&path);
}
