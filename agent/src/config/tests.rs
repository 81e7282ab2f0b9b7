//! Configuration loading: the shipped example and systemd configs, defaults, and errors that name
//! the file, the key and the reason.

use super::*;

fn load_str(toml: &str, env: &[(&str, &str)]) -> Result<AgentConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.toml");
    std::fs::write(&path, toml).unwrap();
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    AgentConfig::load(Some(&path), &env)
}

#[test]
fn the_example_config_shipped_in_the_repository_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ferry.example.toml");
    let cfg = AgentConfig::load(Some(&path), &HashMap::new()).unwrap();
    assert_eq!(cfg.streams.len(), 2);
    assert_eq!(
        cfg.brokers.len(),
        1,
        "an external broker turns the embedded one off"
    );
    assert!(!cfg.embedded_enabled());
    assert!(
        cfg.brokers[0].tls.is_none(),
        "the TLS example is commented out: its files do not exist here"
    );
    assert_eq!(cfg.streams[0].exports.len(), 1, "an export example");
    assert_eq!(cfg.streams[0].exports[0].kind.name(), "http");
    assert_eq!(cfg.streams[0].time_to_live_ms, Some(604_800_000));
}

#[test]
fn the_config_the_systemd_install_ships_is_valid_and_uses_the_state_directory() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/ferry.toml");
    let cfg = AgentConfig::load(Some(&path), &HashMap::new()).unwrap();
    assert_eq!(cfg.data_dir, Path::new("/var/lib/ferry"));
    assert!(cfg.embedded_enabled());
}

#[test]
fn no_config_means_an_embedded_broker_and_one_stream_for_everything() {
    let cfg = AgentConfig::load(None, &HashMap::new()).unwrap();
    assert!(cfg.embedded_enabled());
    assert_eq!(cfg.data_dir, Path::new("./ferry-data"));
    assert_eq!(cfg.streams[0].name, DEFAULT_STREAM);
    assert_eq!(cfg.routes[0].filter, "#");
    assert_eq!(
        (cfg.brokers[0].name.as_str(), cfg.brokers[0].port),
        (EMBEDDED_CONNECTION, 1883)
    );
}

#[test]
fn an_unknown_key_is_rejected_naming_the_file_and_the_key() {
    let err = load_str(
        "[embedded_broker]\nlisten = \"127.0.0.1:1\"\nlisten_port = 5\n",
        &[],
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("ferry.toml") && msg.contains("listen_port"),
        "{msg}"
    );
}

#[test]
fn a_wrong_type_is_rejected_naming_the_key() {
    let msg = load_str("shutdown_timeout_ms = \"soon\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("ferry.toml") && msg.contains("shutdown_timeout_ms"),
        "{msg}"
    );
}

#[test]
fn an_invalid_value_is_rejected_naming_the_key_and_the_reason() {
    let msg = load_str("[[streams]]\nname = \"s\"\nmax_size_bytes = 10\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("streams[0]") && msg.contains("max_size_bytes"),
        "{msg}"
    );
    let msg = load_str(
        "[[streams]]\nname = \"s\"\n[[routes]]\nfilter = \"a/#/b\"\nstream = \"s\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("routes[0].filter"), "{msg}");
    let msg = load_str("[[routes]]\nfilter = \"#\"\nstream = \"nowhere\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("routes[0].stream") && msg.contains("nowhere"),
        "{msg}"
    );
    let msg = load_str("[[brokers]]\nname = \"b\"\nkeep_alive_secs = 0\n", &[])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("brokers[0].keep_alive_secs"), "{msg}");
}

#[test]
fn environment_variables_override_the_file() {
    let cfg = load_str(
        "data_dir = \"/from/file\"\n[log]\nformat = \"text\"\n",
        &[
            ("FERRY_DATA_DIR", "/from/env"),
            ("FERRY_LOG__FORMAT", "json"),
            ("FERRY_CONFIG", "ignored.toml"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.data_dir, Path::new("/from/env"));
    assert_eq!(cfg.log.format, LogFormat::Json);
    let msg = load_str("", &[("FERRY_NO_SUCH_KEY", "1")])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no_such_key"), "{msg}");
}

/// One stream with the given `[[streams.exports]]` tables.
fn with_exports(exports: &str) -> String {
    format!("[[streams]]\nname = \"s\"\n{exports}")
}

const HTTP_EXPORT: &str =
    "[[streams.exports]]\nidentifier = \"ok\"\nkind = \"http\"\nsettings = { url = \"http://127.0.0.1:9/\" }\n";

#[test]
fn an_export_of_an_unknown_kind_is_refused_naming_the_key() {
    let msg = load_str(
        &with_exports(&format!(
            "{HTTP_EXPORT}[[streams.exports]]\nidentifier = \"f\"\nkind = \"ftp\"\n"
        )),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("ferry.toml")
            && msg.contains("key `streams[0].exports[1].kind`: unknown export kind \"ftp\" (expected http, kinesis, firehose, s3 or s3_task)"),
        "{msg}"
    );
}

#[test]
fn a_kinesis_export_without_a_stream_name_is_refused_naming_the_key() {
    let msg = load_str(
        &with_exports(
            "[[streams.exports]]\nidentifier = \"k\"\nkind = \"kinesis\"\nsettings = { region = \"eu-west-1\" }\n",
        ),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains(
            "key `streams[0].exports[0].settings.stream_name`: required setting is missing"
        ),
        "{msg}"
    );
}

#[test]
fn an_export_with_a_bad_url_is_refused_naming_the_key() {
    let msg = load_str(
        &with_exports(
            "[[streams.exports]]\nidentifier = \"h\"\nkind = \"http\"\nsettings = { url = \"ftp://example.com/in\" }\n",
        ),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("key `streams[0].exports[0].settings.url`") && msg.contains("http or https"),
        "{msg}"
    );
}

#[test]
fn an_unknown_export_setting_is_refused_naming_the_key() {
    let msg = load_str(
        &with_exports(
            "[[streams.exports]]\nidentifier = \"h\"\nkind = \"http\"\nsettings = { url = \"http://x/\", verb = \"PUT\" }\n",
        ),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("key `streams[0].exports[0].settings.verb`: unknown setting"),
        "{msg}"
    );
    // A misspelled key of the export itself is refused by the deserialization, which names it
    // (the config crate writes the path as `streams[0]exports[0]`).
    let msg = load_str(
        &with_exports(
            "[[streams.exports]]\nidentifier = \"h\"\nkind = \"http\"\nsetings = { url = \"http://x/\" }\n",
        ),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("unknown field `setings`") && msg.contains("exports[0]"),
        "{msg}"
    );
}

#[test]
fn an_aws_export_needs_a_region_from_its_settings_or_the_environment() {
    let toml = with_exports(
        "[[streams.exports]]\nidentifier = \"f\"\nkind = \"firehose\"\nsettings = { delivery_stream_name = \"d\", credentials = { access_key_id = \"A\", secret_access_key = \"S\" } }\n",
    );
    let msg = load_str(&toml, &[]).unwrap_err().to_string();
    assert!(
        msg.contains("key `streams[0].exports[0].settings.region`") && msg.contains("AWS_REGION"),
        "{msg}"
    );
    let cfg = load_str(&toml, &[("AWS_REGION", "eu-central-1")]).unwrap();
    assert_eq!(cfg.streams[0].exports[0].kind.name(), "firehose");
}

#[test]
fn an_unreadable_credentials_file_is_refused_naming_the_key() {
    let msg = load_str(
        &with_exports(
            "[[streams.exports]]\nidentifier = \"o\"\nkind = \"s3\"\nsettings = { bucket = \"b\", region = \"eu-west-1\", credentials = { credentials_file = \"/nonexistent/aws-credentials\" } }\n",
        ),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("key `streams[0].exports[0].settings.credentials.credentials_file`")
            && msg.contains("/nonexistent/aws-credentials"),
        "{msg}"
    );
}

#[test]
fn a_valid_export_loads_typed() {
    let cfg = load_str(&with_exports(HTTP_EXPORT), &[]).unwrap();
    let export = &cfg.streams[0].exports[0];
    assert_eq!(export.kind.name(), "http");
    assert!(
        matches!(&export.kind, ferry_stream_manager::definition::ExportKind::Http(h) if h.url == "http://127.0.0.1:9/")
    );
}

#[test]
fn an_empty_api_token_is_refused_instead_of_turning_authentication_off() {
    let err = load_str("[api]\ntoken = \"\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("api.token") && err.contains("empty"), "{err}");
}

#[test]
fn an_api_open_beyond_loopback_without_a_token_is_flagged() {
    let cfg = load_str("[api]\nlisten = \"0.0.0.0:8470\"\n", &[]).unwrap();
    assert!(cfg.api.open_beyond_loopback());
    let cfg = load_str("[api]\nlisten = \"0.0.0.0:8470\"\ntoken = \"t\"\n", &[]).unwrap();
    assert!(!cfg.api.open_beyond_loopback());
    assert!(!AgentConfig::load(None, &HashMap::new())
        .unwrap()
        .api
        .open_beyond_loopback());
}

#[test]
fn a_divert_to_an_undeclared_stream_is_refused_naming_the_route() {
    let toml = "[[streams]]\nname = \"a\"\n[[routes]]\nfilter = \"#\"\nstream = \"a\"\non_full = { divert = \"nope\" }\n";
    let err = load_str(toml, &[]).unwrap_err().to_string();
    assert!(
        err.contains("routes[0].on_full.divert") && err.contains("nope"),
        "{err}"
    );
    let ok = "[[streams]]\nname = \"a\"\n[[streams]]\nname = \"o\"\n[[routes]]\nfilter = \"#\"\nstream = \"a\"\non_full = { divert = \"o\" }\n";
    assert!(load_str(ok, &[]).is_ok());
}

#[test]
fn a_log_level_that_names_no_level_is_refused_instead_of_silencing_the_log() {
    let err = load_str("", &[("FERRY_LOG__LEVEL", "verbose")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("log.level") && err.contains("verbose"),
        "{err}"
    );
    assert!(load_str("", &[("FERRY_LOG__LEVEL", "info,ferry_connectors=debug")]).is_ok());
    assert!(load_str("", &[("FERRY_LOG__LEVEL", "WARN")]).is_ok());
}

#[test]
fn an_unreadable_tls_file_fails_the_check_as_it_would_fail_the_start() {
    let toml = "[[brokers]]\nname = \"b\"\n[brokers.tls]\nca_file = \"/no/such/ca.pem\"\n";
    let err = load_str(toml, &[]).unwrap_err().to_string();
    assert!(
        err.contains("brokers[0].tls") && err.contains("/no/such/ca.pem"),
        "{err}"
    );
}

#[test]
fn sizes_and_durations_may_be_written_for_people() {
    let toml = "shutdown_timeout_ms = \"15s\"\n[[streams]]\nname = \"s\"\nmax_size_bytes = \"64MiB\"\ntime_to_live_ms = \"7d\"\n";
    let cfg = load_str(toml, &[("FERRY_API__MAX_BODY_BYTES", "1MiB")]).unwrap();
    assert_eq!(cfg.shutdown_timeout_ms, 15_000);
    assert_eq!(cfg.streams[0].max_size_bytes, 64 << 20);
    assert_eq!(cfg.streams[0].time_to_live_ms, Some(604_800_000));
    assert_eq!(cfg.api.max_body_bytes, 1 << 20);
    let err = load_str(
        "[[streams]]\nname = \"s\"\nmax_size_bytes = \"lots\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("lots") && err.contains("max_size_bytes"),
        "{err}"
    );
}

#[test]
fn an_unknown_enum_value_lists_the_valid_ones_and_the_key_has_its_dot() {
    let err = load_str(
        "[[streams]]\nname = \"s\"\nstrategy_on_full = \"reject\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("\"reject_new_data\", \"overwrite_oldest_data\"")
            && err.contains("streams[0].strategy_on_full"),
        "{err}"
    );
}

#[test]
fn a_listen_address_may_name_a_host() {
    let cfg = load_str("[api]\nlisten = \"localhost:8470\"\n", &[]).unwrap();
    assert!(cfg.api.listen.ip().is_loopback());
    assert_eq!(cfg.api.listen.port(), 8470);
    let err = load_str("", &[("FERRY_API__LISTEN", "garbage")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("FERRY_API__LISTEN=\"garbage\""), "{err}");
}
