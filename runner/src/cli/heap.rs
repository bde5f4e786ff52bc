//! Keeps freed memory in the process for the next allocation.
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
