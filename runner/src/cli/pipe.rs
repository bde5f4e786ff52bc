//! A closed standard output ends the program quietly.
//!
//! `sieve plugins | head -1` closes the pipe after one line. Rust ignores
//! SIGPIPE, so the next `println!` fails with EPIPE and panics (a
//! backtrace and exit code 101). Every command prints to stdout (the run's
//! table, the plugin list, predictions, bench tables), much of it with
//! `println!`, so the fix is made once, here: SIGPIPE gets its default
//! action back, and the process ends the way `cat` or `grep` do when the
//! reader goes away (killed by SIGPIPE; shells report 141), with nothing on
//! stderr. Writes to files are unaffected: SIGPIPE is raised only for
//! pipes and sockets with no reader.
//!
//! The alternative, writing through a locked stdout and turning EPIPE into
//! a quiet exit, would have to reach every print in every command and every
//! future one; a missed `println!` would panic again.

/// Restores the default SIGPIPE action (unix; elsewhere there is no such
/// signal and nothing to do).
pub fn exit_quietly_on_closed_stdout() {
    #[cfg(unix)]
    {
        // SIGPIPE is 13 and SIG_DFL is 0 on every unix Rust supports.
        const SIGPIPE: i32 = 13;
        const SIG_DFL: usize = 0;
        extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        // SAFETY: `signal` only sets the disposition of SIGPIPE to its
        // default; it is called at the start of `main`, before any thread
        // exists, and no handler code of ours runs.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}
