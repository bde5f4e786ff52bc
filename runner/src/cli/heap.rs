//! Keeps freed memory in the process for the next allocation, and backs
//! large allocations with huge pages.
//!
//! A run allocates and frees many large matrices (every probe bank gathers,
//! standardises and rounds its columns; the correlation selector builds its
//! panels). glibc serves each with a fresh `mmap` and returns it on free, so
//! the next one faults in and zeroes every page again: measured at 5-8% of
//! the CPU time of a WSJ selection (page faults, cgroup charging, page
//! clearing). With `mmap` off and no trimming, freed blocks stay in the heap
//! and are reused; the peak memory is still that of the largest live set.

/// Tells glibc's allocator to keep freed memory (no effect elsewhere).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // From glibc's malloc.h.
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_MAX: i32 = -4;
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes allocator parameters; it is called
        // before the program allocates anything large or starts threads.
        unsafe {
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}

/// The system allocator, asking Linux for transparent huge pages (2 MiB)
/// under every allocation of at least [`HUGE_PAGE_MIN_BYTES`].
///
/// Why: the probes' matrices (215 MB for the 2,688 WSJ columns in f32, half
/// that in bf16) are filled once and then read a random row at a time, each
/// batch. With 4 KiB pages, filling them faults every page in (~190,000
/// faults per WSJ run) and nearly every random row misses the TLB; with
/// huge pages, measured: 60,000 faults and ~5% less CPU time per run (five
/// alternating runs each of `configs/pos-wsj-bf16.yaml` under `perf stat`).
/// This host's THP mode is `madvise` (the usual default), so the pages
/// must be asked for; in mode `always` the advice changes nothing, in
/// `never` the kernel ignores it.
pub struct HugePageAllocator;

/// Allocations from this size up are advised (smaller ones would rarely
/// span a whole aligned 2 MiB page).
pub const HUGE_PAGE_MIN_BYTES: usize = 8 << 20;

const HUGE_PAGE: usize = 2 << 20;

// SAFETY: every call is forwarded to `System` with the caller's arguments;
// `advise` only gives the kernel advice on whole pages inside the block
// `System` returned, which neither moves nor changes its contents.
unsafe impl std::alloc::GlobalAlloc for HugePageAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let block = unsafe { std::alloc::System.alloc(layout) };
        advise_huge_pages(block, layout.size());
        block
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        let block = unsafe { std::alloc::System.alloc_zeroed(layout) };
        advise_huge_pages(block, layout.size());
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let moved = unsafe { std::alloc::System.realloc(block, layout, size) };
        advise_huge_pages(moved, size);
        moved
    }
}

/// `madvise(MADV_HUGEPAGE)` on the whole 2 MiB pages inside the block.
fn advise_huge_pages(block: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    {
        if block.is_null() || size < HUGE_PAGE_MIN_BYTES {
            return;
        }
        const MADV_HUGEPAGE: i32 = 14;
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        let start = (block as usize).next_multiple_of(HUGE_PAGE);
        let end = (block as usize + size) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // SAFETY: [start, end) lies inside the block just allocated;
            // the advice only changes how its pages are backed. A failure
            // (an old kernel) just leaves small pages.
            unsafe { madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout};

    /// Blocks above the advice threshold are served, zeroed when asked,
    /// and keep their contents when they grow.
    #[test]
    fn large_blocks_are_served_zeroed_and_kept_on_growth() {
        let allocator = HugePageAllocator;
        let size = HUGE_PAGE_MIN_BYTES + 12_345;
        let layout = Layout::from_size_align(size, 64).unwrap();
        // SAFETY: the layout has a non-zero size; every pointer is checked
        // non-null before use, read and written within its block's size,
        // and freed once with the layout it was allocated with.
        unsafe {
            let block = allocator.alloc_zeroed(layout);
            assert!(!block.is_null());
            let bytes = std::slice::from_raw_parts_mut(block, size);
            assert!(bytes.iter().all(|&b| b == 0));
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = (i % 251) as u8;
            }
            let grown = allocator.realloc(block, layout, 2 * size);
            assert!(!grown.is_null());
            let kept = std::slice::from_raw_parts(grown, size);
            assert!(kept.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
            allocator.dealloc(grown, Layout::from_size_align(2 * size, 64).unwrap());
            // A small block takes the same path without advice.
            let small = Layout::from_size_align(64, 8).unwrap();
            let block = allocator.alloc(small);
            assert!(!block.is_null());
            allocator.dealloc(block, small);
        }
    }
}
