//! The `lrp` binary: see the `lrp_cli` library for everything it does.
//!
//! What belongs to the process alone lives here: the standard streams.
//! None of them is locked for the run (the progress bar is drawn on stderr
//! from worker threads, and a lock held by `main` would stop them for
//! good), and a closed standard output is noticed instead of being
//! silently skipped.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// mimalloc keeps the pages of a batch's traces for the next batch; the
/// system allocator unmapped and faulted them back in every time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Whether standard output was closed when the process started.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// The check runs before the standard library's start-up code, which
/// quietly opens `/dev/null` on closed standard descriptors: after that, a
/// closed stdout cannot be told from `>/dev/null`. (Linux runs the
/// functions in `.init_array` before `main`'s runtime; elsewhere a closed
/// stdout stays unnoticed.)
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static RECORD_CLOSED_STREAMS: extern "C" fn() = record_closed_streams;

#[cfg(target_os = "linux")]
extern "C" fn record_closed_streams() {
    STDOUT_CLOSED.store(occupy_closed_streams(), Ordering::Relaxed);
}

fn main() -> ExitCode {
    // `run` reports a panic as one line of its own; keep the default hook's
    // message and backtrace note out of stderr.
    std::panic::set_hook(Box::new(|_| {}));
    // `lrp serve` stops on these signals by itself, finishing the requests
    // under way; it writes no temporary files.
    if std::env::args_os().nth(1).is_none_or(|command| command != "serve") {
        remove_temporary_files_on_signals();
    }
    // Output written to a closed stdout would be lost without a word.
    let mut stdout: Box<dyn Write + Send> = if STDOUT_CLOSED.load(Ordering::Relaxed) {
        Box::new(ClosedStdout)
    } else {
        Box::new(std::io::stdout())
    };
    let mut stderr = std::io::stderr();
    let terminal = lrp_cli::Terminal::detect();
    let mut code = lrp_cli::run_with(std::env::args_os(), &mut stdout, &mut stderr, terminal);
    if let Err(e) = stdout.flush() {
        if code == 0 && e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = writeln!(stderr, "error: cannot write the output: {e}");
        }
        code = code.max(1);
    }
    ExitCode::from(code)
}

/// Puts `/dev/null` on every closed standard descriptor (0, 1, 2), as the
/// standard library would, so that no file the run opens later takes its
/// number; returns whether descriptor 1 was closed.
#[cfg(target_os = "linux")]
fn occupy_closed_streams() -> bool {
    use std::os::fd::{AsRawFd, IntoRawFd};
    let mut stdout_closed = false;
    // `open` returns the lowest free descriptor: while that is 0, 1 or 2,
    // the descriptor was closed.
    for _ in 0..3 {
        let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") else {
            break;
        };
        match null.as_raw_fd() {
            fd @ 0..=2 => {
                stdout_closed |= fd == 1;
                let _kept_open = null.into_raw_fd();
            }
            _ => break,
        }
    }
    stdout_closed
}

/// Standard output when it was closed: every write fails, and `lrp` says so.
struct ClosedStdout;

impl Write for ClosedStdout {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("standard output is closed"))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// On SIGINT or SIGTERM, removes the temporary file an `--out` write may
/// have open and exits with 128 + the signal's number (130, 143), as the
/// default action would, but leaving nothing behind.
fn remove_temporary_files_on_signals() {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        // Without the handler an interrupt still stops lrp (the default
        // action); it may then leave a temporary file.
        if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
            std::thread::spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    lrp_io::remove_pending_temporary_files();
                    std::process::exit(128 + signal);
                }
            });
        }
    }
}
