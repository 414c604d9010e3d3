//! Loading the settings in layers (see the folder's doc), each kept apart so that a bad
//! value is reported with the layer it came from.

use std::collections::HashMap;
use std::path::PathBuf;

use config::{Config, Environment, File, FileFormat, Value, ValueKind};

use super::error::{from_config_error, SettingsError};
use super::layers::{deployer_source_of, Layer};
use super::settings::{Settings, DEFAULT_TOML};

/// The name of the compiled-in defaults' layer.
const BUILT_IN: &str = "built-in defaults";

/// Where to look for settings; `from_process` reads the real environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Directory holding `default.toml`, `{env}.toml`, `local.toml`. Default `config`.
    pub config_dir: Option<PathBuf>,
    /// The `--config PATH` file.
    pub config_file: Option<PathBuf>,
    /// The environment variables to consult.
    pub env: HashMap<String, String>,
}

impl LoadOptions {
    /// Options reading the process environment and `./config`.
    pub fn from_process(config_file: Option<PathBuf>) -> Self {
        LoadOptions {
            config_dir: None,
            config_file,
            env: std::env::vars().collect(),
        }
    }
}

/// The Node server's plain variables and the key each one sets.
const PLAIN_VARIABLES: [(&str, &str); 5] = [
    ("PORT", "server.port"),
    ("DATABASE_URL", "database.url"),
    ("SOCKET_SECRET", "auth.secret"),
    ("NEXTJS_URL", "cors.origins"),
    ("REDIS_URL", "redis.url"),
];

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: [&str; 4] = [
    "engineio.transports",
    "cors.origins",
    "server.trusted_proxies",
    "admin.origins",
];

impl Settings {
    /// Loads and validates the layered settings.
    pub fn load(options: &LoadOptions) -> Result<Settings, SettingsError> {
        let layers = collect_layers(options)?;
        let mut builder = Config::builder();
        for layer in &layers {
            builder = builder.add_source(layer.config.clone());
        }
        let merged = builder.build().map_err(|e| from_config_error(e, &layers))?;
        let mut settings: Settings = merged
            .try_deserialize()
            .map_err(|e| from_config_error(e, &layers))?;
        settings.environment = options
            .env
            .get("COURIER_ENV")
            .filter(|v| !v.is_empty())
            .cloned();
        settings.database_url_source = deployer_source_of("database.url", &layers);
        settings.validate(&layers)?;
        Ok(settings)
    }
}

fn file_layer<S>(name: String, source: S, deployer: bool) -> Result<Layer, SettingsError>
where
    S: config::Source + Send + Sync + 'static,
{
    let config = Config::builder()
        .add_source(source)
        .build()
        .map_err(|e| SettingsError {
            key: None,
            source: name.clone(),
            message: e.to_string(),
        })?;
    Ok(Layer {
        name,
        config,
        deployer,
    })
}

fn collect_layers(options: &LoadOptions) -> Result<Vec<Layer>, SettingsError> {
    let dir = options
        .config_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("config"));
    let mut layers = Vec::new();
    layers.push(file_layer(
        BUILT_IN.into(),
        File::from_str(DEFAULT_TOML, FileFormat::Toml),
        false,
    )?);
    // The repository's own defaults on disk count as defaults, not as the deployer's choice.
    let mut optional = vec![(dir.join("default.toml"), false)];
    if let Some(env) = options.env.get("COURIER_ENV").filter(|v| !v.is_empty()) {
        optional.push((dir.join(format!("{env}.toml")), true));
    }
    optional.push((dir.join("local.toml"), true));
    for (path, deployer) in optional {
        if path.is_file() {
            layers.push(file_layer(
                path.display().to_string(),
                File::from(path.clone()).format(FileFormat::Toml),
                deployer,
            )?);
        }
    }
    if let Some(path) = &options.config_file {
        if !path.is_file() {
            return Err(SettingsError {
                key: None,
                source: format!("--config {}", path.display()),
                message: "file not found".into(),
            });
        }
        layers.push(file_layer(
            path.display().to_string(),
            File::from(path.clone()).format(FileFormat::Toml),
            true,
        )?);
    }

    // COURIER__SECTION__KEY
    let mut env_source = Environment::with_prefix("COURIER")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .source(Some(options.env.clone()));
    for key in LIST_KEYS {
        env_source = env_source.with_list_parse_key(key);
    }
    let env_config = Config::builder()
        .add_source(env_source)
        .build()
        .map_err(|e| SettingsError {
            key: None,
            source: "environment (COURIER__*)".into(),
            message: e.to_string(),
        })?;
    layers.push(Layer {
        name: "environment (COURIER__*)".into(),
        config: env_config,
        deployer: true,
    });

    // The Node server's plain variables, each its own layer.
    for (var, key) in PLAIN_VARIABLES {
        let Some(raw) = options.env.get(var) else {
            continue;
        };
        let origin = format!("environment variable {var}");
        let value = if LIST_KEYS.contains(&key) {
            let items: Vec<Value> = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::new(Some(&origin), s))
                .collect();
            Value::new(Some(&origin), ValueKind::Array(items))
        } else {
            Value::new(Some(&origin), raw.as_str())
        };
        let config = Config::builder()
            .set_override(key, value)
            .and_then(|b| b.build())
            .map_err(|e| SettingsError {
                key: Some(key.into()),
                source: origin.clone(),
                message: e.to_string(),
            })?;
        layers.push(Layer {
            name: origin,
            config,
            deployer: true,
        });
    }
    Ok(layers)
}
