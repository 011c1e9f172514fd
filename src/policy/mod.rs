//! The pure policy engine: one Kubernetes object plus the [`Context`] it lands in
//! gives findings and a JSON patch. No I/O, no async, no clock: the webhook and
//! the CLI both call [`Engine::evaluate`], so they can never disagree.
//!
//! Every rule lives in one file under `rules/` (id, doc, tier, check, fix, tests)
//! and is listed once in `rules/mod.rs`.

pub mod cel;
pub mod config;
pub mod context;
pub mod error;
pub mod exception;
pub mod facts;
pub mod fixutil;
pub mod guard;
pub mod kinds;
pub mod namespace;
pub mod pss;
pub mod rule;
pub mod rules;
pub mod secrets;
pub mod target;
pub mod tier;

mod engine;

pub use config::PolicyConfig;
pub use context::{Context, Fact, ImageFacts, ImageVerdict, NamespaceFacts, Requester};
pub use engine::{Engine, Evaluation, Finding, Options};
pub use error::EngineError;
pub use rule::{Check, Fix, FixFn, Kinds, Rule, Violation};
pub use target::Target;
pub use tier::{Action, Mode, Tier};
