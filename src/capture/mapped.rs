//! A regular capture file read through a read-only memory map instead of `read()`, which copied
//! every byte out of the page cache (a third of the front thread's time in the annotated mode).
//!
//! The walk reads the map in order; [`prefetch_ahead`] asks for the cache lines a few KiB ahead
//! of it, because each record header's address depends on the previous record's length, so
//! without the hint every cold line was a serial miss (session 3's mapped input saved nothing
//! for that reason). Pages behind the walk are given back ([`Mapped::extend`]), so the mapped
//! pages, which count in the resident set, stay within about one [`CHUNK`] (on Unix).
//!
//! Only bytes the file held at its last length check (at most one [`CHUNK`] ago) are touched. A
//! file that grows is mapped again at its new length, as `read()` would return the new bytes; a
//! file that shrinks before the walk gets there ends where `read()` would have ended.

use memmap2::Mmap;
use std::fs::File;
use std::io;

/// Bytes walked between two length checks, page releases and page-table fills: mapped pages add
/// up to this much to the peak resident set. 512 KiB to 4 MiB measured the same CPU while the
/// back thread slept when it waited; now that it polls, it is running on the other CPU at each
/// release, which then costs an interrupt there (a TLB shootdown): 2 MiB instead of 512 KiB
/// took the annotated mode's CPU down 7% on the 1M workload, for 1.5 MiB more peak RSS.
pub(super) const CHUNK: usize = 2 << 20;
/// The usual page size. Where pages are larger, a release may give back the walk's own page,
/// which the next touch maps again: only a little slower.
const PAGE: usize = 4096;
/// How far ahead of the walk cache lines are requested: 2 to 8 KiB measured the same.
const AHEAD: usize = 4 << 10;

/// A regular file mapped whole, with how much of it the walk may read.
pub(super) struct Mapped {
    file: File,
    map: Mmap,
    /// The walk may read the map's bytes up to here: the file held them at the last check.
    end: usize,
    /// Pages before this offset have been given back.
    released: usize,
    /// Where the record walk goes on (set when it first starts, after the file header).
    pub(super) at: Option<usize>,
    /// [`CHUNK`], or a smaller size in tests, so that records straddle chunk ends.
    chunk: usize,
    /// A SIGBUS in the map (the file cut short under the walk) ends the run with a message.
    #[cfg(target_os = "linux")]
    watch: super::sigbus::Watch,
}

impl Mapped {
    /// Maps `file` (named `path` in messages) when it is a regular, non-empty file that can be
    /// mapped; `None` otherwise (the caller reads it instead). `chunk` is [`CHUNK`] but in tests.
    pub(super) fn new(file: &File, path: &str, chunk: usize) -> Option<Mapped> {
        let len = file.metadata().ok().filter(|m| m.is_file())?.len();
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        let file = file.try_clone().ok()?;
        let map = map(&file, len).ok()?;
        #[cfg(target_os = "linux")]
        let watch = super::sigbus::Watch::new(path);
        #[cfg(target_os = "linux")]
        watch.range(&map);
        #[cfg(not(target_os = "linux"))]
        let _ = path;
        Some(Mapped {
            file,
            map,
            end: 0,
            released: 0,
            at: None,
            chunk: chunk.max(1),
            #[cfg(target_os = "linux")]
            watch,
        })
    }

    /// The bytes the walk may read.
    #[inline]
    pub(super) fn bytes(&self) -> &[u8] {
        self.map.get(..self.end).unwrap_or_default()
    }

    /// Makes at least `need` bytes from `at` readable, or as many as the file holds: gives back
    /// the pages before `at`, looks at the file's length again (mapping it again if it grew),
    /// and moves the readable end at most a [`CHUNK`] (or `need`) past `at`. `Ok(false)`: no
    /// more bytes than before.
    pub(super) fn extend(&mut self, at: usize, need: usize) -> io::Result<bool> {
        self.release(at);
        let len = usize::try_from(self.file.metadata()?.len()).unwrap_or(usize::MAX);
        if len > self.map.len() {
            // A capture still being written: map its new length (the old map is dropped).
            self.map = map(&self.file, len)?;
            #[cfg(target_os = "linux")]
            self.watch.range(&self.map);
            self.released = at - at % PAGE;
        }
        let end = at
            .saturating_add(need.max(self.chunk))
            .min(len)
            .min(self.map.len());
        let grew = end > self.end;
        #[cfg(target_os = "linux")]
        if grew {
            // Map the new bytes' pages in one call, not a fault per 64 KiB: a prefetch of a
            // line whose page is not mapped yet is dropped. (Only a hint: Linux 5.14 and later.)
            let _ = self
                .map
                .advise_range(memmap2::Advice::PopulateRead, self.end, end - self.end);
        }
        // A file that shrank ends the walk where it ends now.
        self.end = end;
        Ok(grew)
    }

    /// Gives back the mapped pages before the one that holds `at`.
    #[allow(unsafe_code)]
    fn release(&mut self, at: usize) {
        let to = at - at % PAGE;
        if to <= self.released {
            return;
        }
        // SAFETY: the map is a read-only shared map of a file: MADV_DONTNEED only unmaps the
        // pages, and a later touch maps the file's page-cache page again, so no byte ever reads
        // differently. The walk never goes back before `at` anyway.
        #[cfg(unix)]
        let _ = unsafe {
            self.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                self.released,
                to - self.released,
            )
        };
        self.released = to;
    }
}

/// Asks for the cache lines of `data` up to [`AHEAD`] bytes past `at` not yet asked for;
/// `ahead` is where the previous call stopped.
#[inline]
pub(super) fn prefetch_ahead(data: &[u8], ahead: &mut usize, at: usize) {
    let to = at.saturating_add(AHEAD).min(data.len());
    if to > *ahead {
        crate::analysis::prefetch(data.as_ptr().wrapping_add(*ahead).cast(), to - *ahead);
        *ahead = to;
    }
}

/// Maps the first `len` bytes of `file` read-only.
#[allow(unsafe_code)]
fn map(file: &File, len: usize) -> io::Result<Mmap> {
    // SAFETY: the map is read-only and no `&mut` to it exists; its bytes can change only if
    // another process writes the file. Appending is harmless. Rewriting bytes in place breaks
    // the `&[u8]` promise that they do not change, but every read of them is bounds-checked
    // against the map's fixed length, so the worst outcome is garbled packets. Truncation: the
    // walk reads only bytes the file held at its last length check (`Mapped::extend`, once per
    // CHUNK), but a truncation inside that window, between the check and the walk's touch,
    // raises SIGBUS, which ends the run with a message (`sigbus.rs`, docs/robustness.md).
    unsafe { memmap2::MmapOptions::new().len(len).map(file) }
}
