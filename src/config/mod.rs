//! Configuration: raw YAML mirror → validation (every error with its path) → model.

pub mod location;
pub mod model;
pub mod raw;
pub mod restart;
pub mod secret;
pub mod validate;

pub use model::*;
pub use restart::restart_only_changes;
pub use validate::{
    check_file, check_str, database_kind, load_file, parse_str, Checked, ConfigError, Secrets,
};
