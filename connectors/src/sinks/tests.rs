//! `check` and `build`: what depends on the environment is refused naming the key at fault.

use std::collections::HashMap;

use ferry_stream_manager::definition::{
    CredentialsSettings, ExportKind, HttpSettings, IotSettings, KinesisSettings, S3Settings,
};

use super::*;

fn env(vars: &[(&str, &str)]) -> SinkEnv {
    SinkEnv::from_vars(
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    )
}

fn with_keys(mut s: KinesisSettings) -> KinesisSettings {
    s.aws.credentials = Some(CredentialsSettings {
        access_key_id: Some("AKID".into()),
        secret_access_key: Some("secret".into()),
        ..CredentialsSettings::default()
    });
    s
}

#[test]
fn an_aws_export_without_a_region_anywhere_is_refused_naming_settings_region() {
    let def = ExportDefinition::new(
        "k",
        ExportKind::Kinesis(with_keys(KinesisSettings::new("s"))),
    );
    let e = check(&def, "stream", &env(&[])).unwrap_err();
    assert_eq!(e.key, "settings.region");
    assert!(e.reason.contains("AWS_REGION"), "{e}");
    assert_eq!(
        check(&def, "stream", &env(&[("AWS_REGION", "eu-west-1")])),
        Ok(())
    );
    assert_eq!(
        check(&def, "stream", &env(&[("AWS_DEFAULT_REGION", "eu-west-1")])),
        Ok(())
    );
}

#[test]
fn credentials_from_the_environment_or_nowhere() {
    let mut s3 = S3Settings::new("b");
    s3.aws.region = Some("eu-west-1".into());
    let def = ExportDefinition::new("o", ExportKind::S3(s3));
    let keys = [("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S")];
    assert_eq!(check(&def, "stream", &env(&keys)), Ok(()));
    let e = check(&def, "stream", &env(&[])).unwrap_err();
    assert_eq!(e.key, "settings.credentials");
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_str().unwrap();
    let e = check(&def, "stream", &env(&[("HOME", home)])).unwrap_err();
    assert!(e.reason.contains(".aws/credentials"), "{e}");
}

#[test]
fn an_unreadable_device_certificate_is_refused_naming_its_setting() {
    let mut k = KinesisSettings::new("s");
    k.aws.region = Some("eu-west-1".into());
    k.aws.credentials = Some(CredentialsSettings {
        iot: Some(IotSettings {
            endpoint: "prefix.credentials.iot.eu-west-1.amazonaws.com".into(),
            role_alias: "ferry".into(),
            thing_name: None,
            cert_file: "/nonexistent/device.pem".into(),
            key_file: "/nonexistent/device.key".into(),
            ca_file: None,
        }),
        ..CredentialsSettings::default()
    });
    let def = ExportDefinition::new("k", ExportKind::Kinesis(k));
    let e = check(&def, "stream", &env(&[])).unwrap_err();
    assert_eq!(e.key, "settings.credentials.iot.cert_file");
    assert!(e.reason.contains("/nonexistent/device.pem"), "{e}");
}

#[test]
fn a_definition_built_in_code_is_validated_as_well() {
    let mut def = ExportDefinition::new("h", ExportKind::Http(HttpSettings::new("http://x")));
    assert_eq!(check(&def, "stream", &env(&[])), Ok(()));
    def.priority = 0;
    assert_eq!(
        check(&def, "stream", &env(&[])).unwrap_err().key,
        "priority"
    );
    let mut headers = HttpSettings::new("http://x");
    headers.headers.insert("x-ok".into(), "line\nbreak".into());
    let def = ExportDefinition::new("h", ExportKind::Http(headers));
    assert_eq!(
        check(&def, "stream", &env(&[])).unwrap_err().key,
        "settings.headers.x-ok"
    );
}
