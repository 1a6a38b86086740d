//! Secrets from `{env: NAME}`, `{file: PATH}` or (for development) `{value: ...}`.

use super::raw::RawSecret;
use std::path::Path;

/// Resolves a secret to its bytes; the error says which source failed, never the secret.
pub fn resolve(secret: &RawSecret, base_dir: &Path) -> Result<Vec<u8>, String> {
    match (&secret.env, &secret.file, &secret.value) {
        (Some(name), None, None) => match std::env::var_os(name) {
            Some(v) if !v.is_empty() => Ok(v.into_encoded_bytes()),
            Some(_) => Err(format!("environment variable {name} is empty")),
            None => Err(format!("environment variable {name} is not set")),
        },
        (None, Some(path), None) => {
            let full = base_dir.join(path);
            std::fs::read(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))
        }
        (None, None, Some(value)) => Ok(value.clone().into_bytes()),
        (None, None, None) => Err("give one of env, file or value".into()),
        _ => Err("give only one of env, file or value".into()),
    }
}

/// Whether `secret` is a well-formed `{env}` or `{file}` secret that is not present on this
/// machine (variable not set, file missing): what `check-config --no-secrets` skips.
pub fn absent(secret: &RawSecret, base_dir: &Path) -> bool {
    match (&secret.env, &secret.file, &secret.value) {
        (Some(name), None, None) => std::env::var_os(name).is_none(),
        (None, Some(path), None) => !base_dir.join(path).exists(),
        _ => false,
    }
}

/// Trims the trailing whitespace a text editor or `echo` leaves after a text secret.
pub fn trim_text(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(end);
    &bytes[start..end]
}
