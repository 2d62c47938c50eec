//! Where each setting comes from, and the one way every value is checked.
//!
//! Precedence: flag > environment > `.env` (loaded into the environment first, never over a
//! variable already set) > the TOML config file > built-in default. The config file's values
//! become the command line's defaults.
//!
//! Every value is checked by its setting's own parser (the `Settings` field's clap parser)
//! before clap sees it, whatever its source, so a bad value is one line naming the setting as
//! the user wrote it: `--rate-limit-per-minute`, `RATE_LIMIT_PER_MINUTE`,
//! `RATE_LIMIT_PER_MINUTE (in .env)` or `employee-api.toml: rate_limit_per_minute`. What the
//! parsers cannot see (ranges, addresses, one setting against another) is checked once by
//! `Config::from_settings`, whose errors are named the same way through [`Origins`].

use std::{
    collections::HashMap,
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
};

use clap::{
    Arg, ArgMatches, Args, Command, CommandFactory, FromArgMatches,
    error::{ContextKind, ContextValue, ErrorKind},
    parser::ValueSource,
};

use super::{Cli, Failure};
use crate::config::Settings;

/// The `.env` file of the working directory, loaded into the environment (never over a
/// variable already set). Returns the names it set, so messages can say where a value came
/// from.
pub fn load_dotenv() -> Vec<String> {
    let Ok(entries) = dotenvy::from_path_iter(".env") else {
        return Vec::new();
    };
    let set: Vec<String> = entries
        .flatten()
        .map(|(key, _)| key)
        .filter(|key| std::env::var_os(key).is_none())
        .collect();
    let _ = dotenvy::from_path(".env");
    set
}

/// How each setting was given, by its environment name: `--flag`, `NAME`, `NAME (in .env)`,
/// `FILE: key`, or just `NAME` for a default.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    names: HashMap<String, String>,
}

impl Origins {
    /// The setting as the user wrote it. A setting left at its default but given through its
    /// `_FILE` twin is named by the twin.
    pub fn name(&self, setting: &str) -> String {
        if let Some(name) = self.names.get(setting) {
            return name.clone();
        }
        if let Some(name) = self.names.get(&format!("{setting}_FILE")) {
            return name.clone();
        }
        setting.to_owned()
    }

    /// Whether `setting` (its environment name) was given on the command line.
    pub fn on_command_line(&self, setting: &str) -> bool {
        self.names
            .get(setting)
            .is_some_and(|name| name.starts_with("--"))
    }
}

/// The settings' ids (the `Settings` fields).
fn settings_ids() -> Vec<String> {
    Settings::augment_args(Command::new("settings"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

/// The command line: the settings are global (every subcommand accepts them) but shown only in
/// `serve --help`, so each other subcommand's help is about that subcommand.
pub fn command() -> Command {
    command_with(&[])
}

/// [`command`], with `defaults` (setting id, value: the config file's) in place of the
/// built-in defaults, on the global settings and on `serve`'s copies alike.
fn command_with(defaults: &[(String, String)]) -> Command {
    let ids = settings_ids();
    let mut cmd = Cli::command();
    for (id, value) in defaults {
        cmd = cmd.mut_arg(id.as_str(), |arg| arg.default_value(value.clone()));
    }
    let shown: Vec<Arg> = cmd
        .get_arguments()
        .filter(|a| ids.iter().any(|id| a.get_id() == id.as_str()))
        .map(|a| a.clone().help_heading("Server settings"))
        .collect();
    cmd = cmd.mut_subcommand("serve", |serve| serve.args(shown));
    for id in &ids {
        cmd = cmd.mut_arg(id.as_str(), |a| a.hide(true));
    }
    cmd
}

/// Parses the command line with the process environment; `dotenv` names the variables that
/// came from `.env` (see [`load_dotenv`]).
pub fn parse_args_with(args: Vec<OsString>, dotenv: &[String]) -> Result<Cli, Failure> {
    let plain = Cli::command();
    let ids = settings_ids();
    let mut defaults: Vec<(String, String)> = Vec::new();
    let on_command_line = |arg: &Arg| -> bool {
        let Some(long) = arg.get_long() else {
            return false;
        };
        args.iter().skip(1).any(|a| {
            let a = a.to_string_lossy();
            a == format!("--{long}") || a.starts_with(&format!("--{long}="))
        })
    };
    let mut file_keys: HashMap<String, String> = HashMap::new();
    let file = config_file_path(&args);
    if let Some(path) = &file {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::config(format!("{shown}: {}", crate::files::io_reason(&e))))?;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|span| text[..span.start].lines().count().max(1));
            Failure::config(format!(
                "{shown}{}: {}",
                line.map_or(String::new(), |l| format!(":{l}")),
                e.message().trim().replace('\n', " ")
            ))
        })?;
        for (key, value) in table {
            let id = key.to_ascii_lowercase();
            let Some(arg) = (ids.contains(&id))
                .then(|| plain.get_arguments().find(|a| a.get_id() == id.as_str()))
                .flatten()
                .cloned()
            else {
                return Err(Failure::config(format!(
                    "{shown}: unknown setting {key:?} (keys are the settings' environment names in lower case, e.g. bind_addr)"
                )));
            };
            let at = format!("{shown}: {key}");
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
                    return Err(Failure::config(format!(
                        "{at}: expected a string, number or boolean, got a {}",
                        other.type_str()
                    )));
                }
            };
            // Checked even when a flag or the environment overrides it: the file is wrong
            // either way, and clap would otherwise trip over a bad default.
            check_value(&arg, OsStr::new(&text))
                .map_err(|p| Failure::config(format!("{at}: {p}")))?;
            file_keys.insert(id.clone(), at);
            defaults.push((id, text));
        }
    }
    let mut cmd = command_with(&defaults);
    // The environment (and `.env`): every value a flag does not override.
    for arg in cmd.get_arguments() {
        if !ids.iter().any(|id| arg.get_id() == id.as_str()) || on_command_line(arg) {
            continue;
        }
        let Some(env) = arg.get_env() else { continue };
        let Some(value) = std::env::var_os(env).filter(|v| !v.is_empty()) else {
            continue;
        };
        check_value(arg, &value)
            .map_err(|p| Failure::config(format!("{}: {p}", env_name(env, dotenv))))?;
    }
    let matches = cmd
        .try_get_matches_from_mut(args.clone())
        .map_err(|e| from_clap_error(&cmd, e))?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| from_clap_error(&cmd, e))?;
    cli.origins = origins(&cmd, &matches, &ids, &file_keys, dotenv);
    Ok(cli)
}

/// Parses the command line with the process environment, taking no `.env` into account.
pub fn parse_args(args: Vec<OsString>) -> Result<Cli, Failure> {
    parse_args_with(args, &[])
}

fn env_name(env: &OsStr, dotenv: &[String]) -> String {
    let name = env.to_string_lossy();
    if dotenv.iter().any(|k| *k == name) {
        format!("{name} (in .env)")
    } else {
        name.into_owned()
    }
}

fn origins(
    cmd: &Command,
    matches: &ArgMatches,
    ids: &[String],
    file_keys: &HashMap<String, String>,
    dotenv: &[String],
) -> Origins {
    let mut names = HashMap::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if !ids.iter().any(|i| i == id) {
            continue;
        }
        let Some(env) = arg.get_env() else { continue };
        let name = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => arg.get_long().map(|l| format!("--{l}")),
            Some(ValueSource::EnvVariable) => Some(env_name(env, dotenv)),
            Some(ValueSource::DefaultValue) => file_keys.get(id).cloned(),
            _ => None,
        };
        if let Some(name) = name {
            names.insert(env.to_string_lossy().into_owned(), name);
        }
    }
    Origins { names }
}

/// Checks one value with its setting's own parser; the problem as a phrase, or `Ok`.
fn check_value(arg: &Arg, value: &OsStr) -> Result<(), String> {
    if !arg.get_action().takes_values() {
        // Switches (`REQUIRE_IF_MATCH`): clap's words for yes and no.
        const WORDS: [&str; 12] = [
            "y", "yes", "t", "true", "on", "1", "n", "no", "f", "false", "off", "0",
        ];
        let text = value.to_string_lossy().to_ascii_lowercase();
        return if WORDS.contains(&text.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "{:?} is not true or false",
                value.to_string_lossy()
            ))
        };
    }
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    let mut flag = OsString::from(format!("--{long}="));
    flag.push(value);
    let probe = Command::new("check").no_binary_name(true).arg(
        arg.clone()
            .global(false)
            .env(None)
            .required(false)
            .hide(true),
    );
    match probe.try_get_matches_from([flag]) {
        Ok(_) => Ok(()),
        Err(e) => Err(value_problem(&e, arg.is_hide_env_values_set())),
    }
}

/// What is wrong with a value clap refused, as a phrase (`"xml" is not one of pretty, json`).
fn value_problem(err: &clap::Error, hide_value: bool) -> String {
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => v.clone(),
        _ => String::new(),
    };
    let shown = if hide_value {
        "the value".to_owned()
    } else {
        format!("{value:?}")
    };
    if let Some(ContextValue::Strings(valid)) = err.get(ContextKind::ValidValue) {
        return format!("{shown} is not one of {}", valid.join(", "));
    }
    let cause = std::error::Error::source(err)
        .map(ToString::to_string)
        .unwrap_or_default();
    if let Some((_, range)) = cause.split_once(" is not in ") {
        let (low, high) = range.split_once("..=").unwrap_or((range, ""));
        return format!("{shown} is not a whole number from {low} to {high}");
    }
    if cause.contains("invalid digit") || cause.contains("empty string") {
        return format!("{shown} is not a whole number");
    }
    if cause.contains("too large") {
        return format!("{shown} is too large");
    }
    if cause.is_empty() {
        format!("{shown} is not valid")
    } else {
        format!("{shown}: {cause}")
    }
}

/// clap's error as one line. A bad value names the flag; usage errors keep clap's text.
fn from_clap_error(cmd: &Command, err: clap::Error) -> Failure {
    match err.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8 => {
            let flag = match err.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(arg)) => {
                    arg.split_whitespace().next().unwrap_or_default().to_owned()
                }
                _ => String::new(),
            };
            let hide = cmd
                .get_arguments()
                .find(|a| a.get_long().is_some_and(|l| flag == format!("--{l}")))
                .is_some_and(Arg::is_hide_env_values_set);
            Failure::config(format!("{flag}: {}", value_problem(&err, hide)))
        }
        _ => Failure::from_clap(err),
    }
}

/// `--config PATH`, else EMPLOYEE_API_CONFIG, else `./employee-api.toml` when present.
fn config_file_path(args: &[OsString]) -> Option<PathBuf> {
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
    let default = Path::new("employee-api.toml");
    default.exists().then(|| default.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, Failure> {
        parse_args(
            std::iter::once("employee-api")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect(),
        )
    }

    #[test]
    fn a_bad_flag_value_is_one_line_naming_the_flag() {
        let failure = parse(&["config", "--log-format", "xml"]).unwrap_err();
        assert_eq!(failure.code, 2);
        assert_eq!(
            failure.message,
            "configuration error: --log-format: \"xml\" is not one of pretty, json"
        );
        let failure = parse(&["config", "--rate-limit-per-minute=-1"]).unwrap_err();
        assert_eq!(
            failure.message,
            "configuration error: --rate-limit-per-minute: \"-1\" is not a whole number from 0 to 4294967295"
        );
    }

    #[test]
    fn settings_are_shown_only_in_serve_help() {
        let mut cmd = command();
        cmd.build();
        let serve = cmd
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(serve.contains("--rate-limit-per-minute"), "{serve}");
        let import = cmd
            .find_subcommand_mut("employees")
            .unwrap()
            .find_subcommand_mut("import")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!import.contains("--rate-limit-per-minute"), "{import}");
        assert!(import.contains("--dry-run"), "{import}");
    }

    #[test]
    fn settings_are_accepted_after_any_subcommand() {
        let cli = parse(&["user", "list", "--database-url", "sqlite://x.db"]).unwrap();
        assert_eq!(cli.settings.database_url, "sqlite://x.db");
        assert_eq!(cli.origins.name("DATABASE_URL"), "--database-url");
        let cli = parse(&["serve", "--rate-limit-per-minute", "7"]).unwrap();
        assert_eq!(cli.settings.rate_limit_per_minute, 7);
    }
}
