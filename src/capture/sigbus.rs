//! A clear message and exit status 2, instead of a bare "Bus error", when a mapped capture file
//! is cut short by another process while the walk reads it (docs/robustness.md).
//!
//! The kernel raises SIGBUS when the walk touches a mapped page past the file's new end. No
//! Rust code can resume after that fault, so the handler only writes a message naming the file
//! and the byte offset, and ends the process with the status of an incomplete input. A SIGBUS
//! anywhere else gets the handler that was there before. One mapped file is walked at a time:
//! a newer [`Watch`] replaces the older one's range.

use std::ffi::c_void;
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// The mapped bytes being walked: `[START, END)`.
static START: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);
/// The message's first part (`tcplens: FILE: `), owned by the current [`Watch`].
static MESSAGE: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());
static MESSAGE_LEN: AtomicUsize = AtomicUsize::new(0);
/// The SIGBUS action before ours, for faults outside the map.
static PREVIOUS: OnceLock<Option<libc::sigaction>> = OnceLock::new();

/// Turns a SIGBUS inside a mapped capture into a message and exit status 2 while it lives.
pub(super) struct Watch {
    message: Box<[u8]>,
}

impl Watch {
    /// Installs the handler (once per process) and names `path` in its message.
    pub(super) fn new(path: &str) -> Watch {
        PREVIOUS.get_or_init(install);
        let mut message: Box<[u8]> = format!("tcplens: {path}: ").into_bytes().into();
        MESSAGE_LEN.store(message.len(), Ordering::Relaxed);
        MESSAGE.store(message.as_mut_ptr(), Ordering::Release);
        Watch { message }
    }

    /// The mapped bytes the walk reads now (the map moves when a growing file is mapped again).
    pub(super) fn range(&self, map: &[u8]) {
        let start = map.as_ptr() as usize;
        START.store(start, Ordering::Relaxed);
        END.store(start + map.len(), Ordering::Release);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Only the current watch clears the range; a newer one keeps its own.
        let mine = self.message.as_mut_ptr();
        if MESSAGE
            .compare_exchange(mine, ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            END.store(0, Ordering::Release);
            START.store(0, Ordering::Relaxed);
        }
    }
}

/// Installs [`on_sigbus`]; returns the action it replaced (`None` if it could not install).
#[allow(unsafe_code)]
fn install() -> Option<libc::sigaction> {
    // SAFETY: both structs are plain C data, zeroed and then filled as sigaction(2) requires;
    // the handler is an `extern "C"` function that only does async-signal-safe work.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as extern "C" fn(_, _, _) as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(libc::SIGBUS, &action, &mut old) == 0).then_some(old)
    }
}

/// Writes `tcplens: FILE: the file was cut short while being read (SIGBUS at byte offset N);
/// stopped, the output is incomplete` and exits with status 2, when the fault is in
/// the watched map; otherwise restores the previous action, and the fault happens again there.
#[allow(unsafe_code)]
extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers; `si_addr` is the
    // faulting address for SIGBUS. The message's bytes live as long as the watch that stored
    // them, and the watch is dropped only by the thread that walks the map, never inside a
    // fault. write(2), _exit(2) and sigaction(2) are async-signal-safe; nothing here allocates.
    unsafe {
        let addr = (*info).si_addr() as usize;
        let end = END.load(Ordering::Acquire);
        let start = START.load(Ordering::Relaxed);
        let message = MESSAGE.load(Ordering::Acquire);
        if addr >= start && addr < end && !message.is_null() {
            let len = MESSAGE_LEN.load(Ordering::Relaxed);
            libc::write(2, message.cast(), len);
            let head = b"the file was cut short while being read (SIGBUS at byte offset ";
            libc::write(2, head.as_ptr().cast(), head.len());
            let mut digits = [0u8; 20];
            let text = decimal(addr - start, &mut digits);
            libc::write(2, text.as_ptr().cast(), text.len());
            let tail = b"); stopped, the output is incomplete\n";
            libc::write(2, tail.as_ptr().cast(), tail.len());
            libc::_exit(2);
        }
        match PREVIOUS.get() {
            Some(Some(old)) => libc::sigaction(libc::SIGBUS, old, ptr::null_mut()),
            _ => libc::sigaction(libc::SIGBUS, &default_action(), ptr::null_mut()),
        };
    }
}

/// The default SIGBUS action (end the process with a core dump).
#[allow(unsafe_code)]
fn default_action() -> libc::sigaction {
    // SAFETY: a zeroed sigaction is valid plain data; SIG_DFL needs no handler.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = libc::SIG_DFL;
    action
}

/// `n` in decimal, written at the end of `buf` without allocating.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::Command;

    const CHILD: &str = "TCPLENS_SIGBUS_CHILD";

    #[test]
    fn decimal_matches_format() {
        let mut buf = [0u8; 20];
        for n in [0, 7, 10, 4096, 123_456_789, usize::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    /// Run in a child process (the fault ends it): maps a file, cuts it short, touches a byte
    /// past the new end.
    #[test]
    fn cut_short_map_exits_with_message() {
        if let Some(path) = std::env::var_os(CHILD) {
            let path = path.into_string().unwrap();
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            #[allow(unsafe_code)]
            // SAFETY: the test wants the fault the map's documented hazard causes.
            let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
            let watch = Watch::new(&path);
            watch.range(&map);
            file.set_len(4096).unwrap();
            let byte = std::hint::black_box(&map[3 * 4096 + 5]);
            panic!("no SIGBUS: read {byte}");
        }
        let (out, path) = in_child("cut_short_map_exits_with_message", "cut");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
        let want = format!(
            "tcplens: {}: the file was cut short while being read (SIGBUS at byte offset 12293); stopped, the output is incomplete\n",
            path.display()
        );
        assert!(stderr.contains(&want), "stderr: {stderr}");
    }

    /// A SIGBUS outside the watched map still ends the process by the previous action.
    #[test]
    fn other_sigbus_is_not_ours() {
        if let Some(path) = std::env::var_os(CHILD).filter(|p| !p.is_empty()) {
            let path = path.into_string().unwrap();
            let watched = std::fs::File::open(&path).unwrap();
            #[allow(unsafe_code)]
            // SAFETY: nobody changes this file while it is mapped.
            let watched = unsafe { memmap2::Mmap::map(&watched).unwrap() };
            let watch = Watch::new("watched");
            watch.range(&watched);
            let other = format!("{path}.other");
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&other)
                .unwrap();
            file.set_len(4 * 4096).unwrap();
            #[allow(unsafe_code)]
            // SAFETY: the test wants the fault the map's documented hazard causes.
            let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
            file.set_len(4096).unwrap();
            let byte = std::hint::black_box(&map[3 * 4096]);
            panic!("no SIGBUS: read {byte}");
        }
        let (out, _) = in_child("other_sigbus_is_not_ours", "other");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("cut short"), "stderr: {stderr}");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGBUS), "stderr: {stderr}");
    }

    /// Runs test `name` again in a child process, with the path of a 16 KiB scratch file
    /// (removed afterwards) in [`CHILD`]; returns the child's output and the path.
    fn in_child(name: &str, tag: &str) -> (std::process::Output, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("tcplens-sigbus-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cut.pcap");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&[0xa5; 4 * 4096])
            .unwrap();
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &format!("capture::sigbus::tests::{name}")])
            .env(CHILD, &path)
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        (out, path)
    }
}
