//! Errors of the device side.

/// What can go wrong running kernels.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No device of the requested kind.
    #[error("no {kind} device: {reason}")]
    NoDevice {
        /// `wgpu` or `cuda:N`.
        kind: String,
        /// What was found instead.
        reason: String,
    },
    /// A buffer does not fit in the device's memory.
    #[error(
        "out of device memory: {what} needs {bytes} bytes ({mib:.1} MiB){limit}",
        mib = *bytes as f64 / 1_048_576.0,
        limit = match limit { Some(l) => format!(", over the limit of {l} bytes"), None => String::new() }
    )]
    OutOfMemory {
        /// The buffer.
        what: String,
        /// Its size in bytes.
        bytes: u64,
        /// The limit it exceeds, when known.
        limit: Option<u64>,
    },
    /// The device failed (a driver or compilation error).
    #[error("device error in {what}: {message}")]
    Device {
        /// The operation.
        what: String,
        /// The device's message.
        message: String,
    },
    /// Inputs that do not match the layout.
    #[error("invalid kernel input: {0}")]
    Invalid(String),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, KernelError>;
