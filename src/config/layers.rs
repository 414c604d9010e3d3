//! A layer of settings (a file, the environment, one of the Node server's variables), and
//! which layer set a key: what lets a bad value be reported with where it came from.

use config::{Config, Value};

pub(super) struct Layer {
    pub(super) name: String,
    pub(super) config: Config,
    /// Set by the deployer (the environment, or a file the repository does not ship), as
    /// opposed to `config/default.toml`, compiled in or on disk.
    pub(super) deployer: bool,
}
/// The last layer that sets `key`.
pub(super) fn layer_of<'a>(key: &str, layers: &'a [Layer]) -> Option<&'a Layer> {
    layers
        .iter()
        .rev()
        .find(|layer| layer.config.get::<Value>(key).is_ok())
}

/// The name of a layer for a human, as the source of `key`.
fn layer_name(key: &str, layer: &Layer) -> String {
    if layer.name.starts_with("environment (") {
        return format!(
            "environment variable COURIER__{}",
            key.to_ascii_uppercase().replace('.', "__")
        );
    }
    layer.name.clone()
}

/// The last layer that sets `key`, named for a human.
pub(super) fn source_of(key: &str, layers: &[Layer]) -> String {
    layer_of(key, layers).map_or_else(|| "unknown source".into(), |l| layer_name(key, l))
}

/// The source of `key`, when the deployer set it (not `config/default.toml`).
pub(super) fn deployer_source_of(key: &str, layers: &[Layer]) -> Option<String> {
    layer_of(key, layers)
        .filter(|layer| layer.deployer)
        .map(|layer| layer_name(key, layer))
}
