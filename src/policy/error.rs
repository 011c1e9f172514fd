use thiserror::Error;

/// Why the engine could not judge an object.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The object is not a JSON object with `kind` and `apiVersion`.
    #[error("not a Kubernetes object: {0}")]
    NotAnObject(String),
    /// The object has the right kind but a field of the wrong shape.
    #[error("invalid {kind} {name:?}: {reason}")]
    Invalid {
        kind: String,
        name: String,
        reason: String,
    },
    /// A value given to the engine (tier, mode, PSS level…) is not accepted.
    #[error("{0}")]
    BadValue(String),
}
