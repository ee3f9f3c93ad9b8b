//! Errors of a reconcile, each with a short category used as a metric label and event reason.

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed (transient: retried with backoff).
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// An object could not be (de)serialized.
    #[error("serialization: {0}")]
    Serde(#[from] serde_json::Error),

    /// The object lacks something the API server always sets (namespace, uid).
    #[error("object {0} is missing {1}")]
    MissingField(String, &'static str),

    /// A ControllerRevision with the expected name holds a different template.
    #[error("ControllerRevision {0} exists with a different template (hash collision)")]
    RevisionCollision(String),

    /// A revision's template cannot be rendered as a hot-swap pod (a template from before
    /// `hotSwap` was set; the spec's own template is checked by validation).
    #[error("the template of revision {revision} cannot be rendered as a hot-swap pod: {source}")]
    HotSwapRender {
        /// The revision whose pod was to be created.
        revision: String,
        /// Why.
        source: crate::hotswap::RenderError,
    },

    /// The canary's router or Services could not be written.
    #[error("traffic: {0}")]
    Traffic(#[from] crate::traffic::RouterError),
}

impl Error {
    /// The API server refused to create something because the namespace is being deleted
    /// (the NamespaceLifecycle admission plugin's 403).
    pub fn is_namespace_terminating(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s))
            if s.code == 403 && s.message.contains("because it is being terminated"))
    }

    /// Short, stable category for metrics labels and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) if self.is_namespace_terminating() => "namespace_terminating",
            Error::Kube(_) => "api",
            Error::Serde(_) => "serialization",
            Error::MissingField(..) => "missing_field",
            Error::RevisionCollision(_) => "revision_collision",
            Error::HotSwapRender { .. } => "hot_swap_render",
            Error::Traffic(_) => "traffic",
        }
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;
