//! What hypersweep prints for its user, on stdout and stderr, through writes that never panic:
//! a reader that goes away (`hypersweep run … | head -2`, a closed terminal) stops the printing,
//! never the training. `println!` panics on a broken pipe (Rust ignores SIGPIPE), which stopped
//! a sweep after its first trial and left its claim behind; clippy.toml forbids it in `src/`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout, unless an earlier write found no one reading.
pub fn out(text: &str) {
    write(&STDOUT_GONE, &mut std::io::stdout().lock(), text);
}

/// Writes `text` to stderr, unless an earlier write found no one reading.
pub fn err(text: &str) {
    write(&STDERR_GONE, &mut std::io::stderr().lock(), text);
}

fn write(gone: &AtomicBool, w: &mut impl Write, text: &str) {
    if gone.load(Ordering::Relaxed) {
        return;
    }
    if w.write_all(text.as_bytes())
        .and_then(|()| w.flush())
        .is_err()
    {
        gone.store(true, Ordering::Relaxed);
    }
}

/// `println!` that stops printing, without panicking, once stdout has no reader.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::out(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that stops printing, without panicking, once stderr has no reader.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::err(&format!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Closed(usize);
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            self.0 += 1;
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_reader_stops_the_printing_without_a_panic() {
        let gone = AtomicBool::new(false);
        let mut w = Closed(0);
        write(&gone, &mut w, "one\n");
        write(&gone, &mut w, "two\n");
        assert!(gone.load(Ordering::Relaxed));
        assert_eq!(w.0, 1, "nothing more is tried once the reader has gone");
    }
}
