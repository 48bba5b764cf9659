//! Peak heap of the chunk path, counted by a global allocator: 1, 12 and
//! 120 chunks in sequence (10 points × 12 UTC months, `chunk::plan`
//! order) of 30-second data (86,400 samples, 9 pages a chunk). Each page
//! arrives as a fresh buffer and is dropped after parsing, as an HTTP body
//! is; generating the pages is not counted. Prints one JSON line per run.

#[path = "../../../format/benches/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tsp_bench::{chunk_path, Chunk};
use tsp_format::chunk::{plan, MAX_WINDOW_DAYS};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static UNTRACKED: Cell<bool> = const { Cell::new(false) };
}

fn tracked() -> bool {
    !UNTRACKED.try_with(Cell::get).unwrap_or(false)
}

fn grow(n: usize) {
    let now = CURRENT.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call goes straight to `System`; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() && tracked() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        if tracked() {
            CURRENT.fetch_sub(layout.size(), Relaxed);
        }
    }

    // A moving realloc holds old and new at once: count both at its peak.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() && tracked() {
            PEAK.fetch_max(CURRENT.load(Relaxed) + new_size, Relaxed);
            grow(new_size);
            CURRENT.fetch_sub(layout.size(), Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn untracked<T>(f: impl FnOnce() -> T) -> T {
    UNTRACKED.with(|u| u.set(true));
    let out = f();
    UNTRACKED.with(|u| u.set(false));
    out
}

fn main() -> Result<(), String> {
    let (start, end) = common::year();
    let points = common::points(10);
    // The old point × month chunks: each point over each month.
    let chunks: Vec<(u32, tsp_format::chunk::Chunk)> = (0..points.len() as u32)
        .flat_map(|p| {
            plan(start, end, MAX_WINDOW_DAYS)
                .into_iter()
                .map(move |c| (p, c))
        })
        .collect();
    for n in [1usize, 12, 120] {
        let base = CURRENT.load(Relaxed);
        PEAK.store(base, Relaxed);
        let mut samples = 0;
        for (p, c) in &chunks[..n] {
            let point = &points[*p as usize];
            let chunk = untracked(|| Chunk {
                point_idx: *p,
                point: point.clone(),
                start: c.start,
                end: c.end,
                pages: common::pages(
                    point,
                    &common::sim(point, c.start, c.end, common::THIRTY_S_MS),
                ),
            });
            samples += chunk_path(&chunk, true)?.0.samples;
            untracked(|| drop(chunk));
        }
        let peak = PEAK.load(Relaxed) - base;
        println!(
            "{{\"chunks\":{n},\"samples\":{samples},\"peak_mib\":{:.2}}}",
            peak as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(())
}
