//! The optional TOML config file, layered under flags and the environment: its values become
//! the defaults of the command line, giving the precedence flag > environment > `.env`
//! (already loaded into the environment) > config file > built-in default.

use std::path::PathBuf;

use super::{Cli, Failure};

/// Parses the command line with the config file's values as defaults, giving the precedence
/// flag > environment > `.env` (already loaded into the environment) > config file > default.
pub fn parse_args(args: Vec<std::ffi::OsString>) -> Result<Cli, Failure> {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    if let Some(path) = config_file_path(&args) {
        let text = std::fs::read_to_string(&path).map_err(|e| Failure {
            message: format!("configuration error: {}: {e}", path.display()),
            code: 2,
        })?;
        let table: toml::Table = text.parse().map_err(|e| Failure {
            message: format!("configuration error: {}: {e}", path.display()).replace('\n', " "),
            code: 2,
        })?;
        let known: Vec<String> = cmd
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        for (key, value) in table {
            let id = key.to_ascii_lowercase();
            if !known.contains(&id) || id == "config" {
                return Err(Failure {
                    message: format!(
                        "configuration error: {}: unknown setting {key:?}",
                        path.display()
                    ),
                    code: 2,
                });
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(Failure {
                        message: format!(
                            "configuration error: {}: {key}: unsupported value {other}",
                            path.display()
                        ),
                        code: 2,
                    });
                }
            };
            cmd = cmd.mut_arg(id, |arg| arg.default_value(text));
        }
    }
    let matches = cmd.try_get_matches_from(args).map_err(Failure::from_clap)?;
    Cli::from_arg_matches(&matches).map_err(Failure::from_clap)
}

/// `--config PATH`, else EMPLOYEE_API_CONFIG, else `./employee-api.toml` when present.
fn config_file_path(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
    }
    if let Some(path) = std::env::var_os("EMPLOYEE_API_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let default = PathBuf::from("employee-api.toml");
    default.exists().then_some(default)
}
