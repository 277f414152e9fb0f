//! Handing freed memory back to the system. The binary allocates with mimalloc, which keeps
//! freed pages for reuse and purges them only after a delay, and only while it is being
//! called: a gateway that loads a large configuration (tens of MiB of decoded objects,
//! dropped once the snapshot is built) and then idles would keep them resident for good.

/// Returns the memory freed so far to the system (mimalloc's `mi_collect(force)`). Call it
/// after a burst of allocation that has been dropped, such as a configuration reload; not on
/// the request path.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: `mi_collect` takes no arguments that point anywhere; it only walks and purges
    // mimalloc's own heaps and may be called from any thread at any time. When mimalloc is
    // not the process's allocator (library tests), it has nothing to collect.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
